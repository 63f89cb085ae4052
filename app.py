"""svd-demo web app: `python app.py --help` lists every option and its environment variable."""

import logging
from dataclasses import replace

from svd_demo.settings import parse_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = parse_settings()
    from svd_demo import zerogpu

    if zerogpu.on_zerogpu():
        # ZeroGPU lends a GPU per call: weights load on the CPU at start-up and move over whole, so no offloading
        # (its hooks would fight the per-call hand-over) and no torch.compile (unsupported there).
        settings = replace(settings, preload=True, memory_profile="high", device="cuda")
    from svd_demo.studio import Studio
    from svd_demo.ui import build_demo, launch_kwargs  # after --help, which should not wait for gradio

    studio = Studio(settings)
    if settings.preload:  # load before serving, e.g. where the first visitor should not wait for a download
        studio.cache.get("svd", settings.svd_model)
    zerogpu.install(studio, settings.zerogpu_seconds)
    demo = build_demo(settings, studio)
    demo.queue(max_size=settings.queue_size)
    demo.launch(**launch_kwargs(settings))


if __name__ == "__main__":
    main()
