"""The web app as `python app.py` and `svd-demo app` run it: settings → ZeroGPU start-up → studio → UI → launch.

Nothing here imports gradio or torch at import time: `--help` answers at once, and on ZeroGPU `spaces` must be
imported before anything touches CUDA (`zerogpu.start`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from svd_demo.core.library_logs import quiet_library_notices
from svd_demo.core.settings import Settings, parse_settings
from svd_demo.files.outputs import private_output_dir
from svd_demo.studio import zerogpu

if TYPE_CHECKING:
    import gradio as gr


def create_app(settings: Settings) -> gr.Blocks:
    """The app, ready to launch: the studio (models preloaded if asked) behind the interface. Give it settings
    with an output folder (`main` makes a private one): `launch_kwargs` serves that folder."""
    from svd_demo.engine.hub import log_progress
    from svd_demo.web.ui import build_demo

    studio = zerogpu.make_studio(settings)  # on ZeroGPU, one whose GPU entry points run as ZeroGPU calls
    if settings.preload:  # load before serving, e.g. where the first visitor should not wait for a download
        studio.cache.get("svd", studio.access.model("svd", None)[1], download=log_progress())
    demo = build_demo(settings, studio)
    demo.queue(max_size=settings.queue_size)
    return demo


def main(argv: Sequence[str] | None = None, prog: str = "app.py") -> int:
    quiet_library_notices()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from svd_demo.engine.hub import quiet_http_logs

    quiet_http_logs()
    settings = parse_settings(argv, prog=prog)
    if not os.environ.get("GRADIO_TEMP_DIR"):
        # Gradio serves every file in its upload folder, by default /tmp/gradio for every Gradio app on the
        # machine: one instance would serve another's uploads. Set before Gradio is imported (`spaces` imports it).
        os.environ["GRADIO_TEMP_DIR"] = str(private_output_dir(prefix="svd-demo-gradio-"))
    settings = zerogpu.start(settings)  # first to touch the GPU: on ZeroGPU, `spaces` before any CUDA use
    if settings.output_dir is None:
        settings = replace(settings, output_dir=private_output_dir())
    # `docker stop` and service managers send SIGTERM: end as on Ctrl+C, so the server closes and the private
    # output folder is removed at exit.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from svd_demo.web.ui import launch_kwargs

    create_app(settings).launch(**launch_kwargs(settings))
    return 0
