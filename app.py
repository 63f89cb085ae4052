"""svd-demo web app: `python app.py --help` lists every option and its environment variable."""

import logging

from svd_demo import zerogpu
from svd_demo.settings import Settings, parse_settings


def create_app(settings: Settings):  # -> gr.Blocks; gradio is imported after --help, which should not wait for it
    """The app, ready to launch: the studio (models preloaded if asked) behind the interface."""
    from svd_demo.studio import Studio
    from svd_demo.ui import build_demo

    studio = Studio(settings)
    if settings.preload:  # load before serving, e.g. where the first visitor should not wait for a download
        studio.cache.get("svd", settings.svd_model)
    zerogpu.install(studio, settings.zerogpu_seconds)
    demo = build_demo(settings, studio)
    demo.queue(max_size=settings.queue_size)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = zerogpu.start(parse_settings())  # first: on ZeroGPU, `spaces` must come before anything uses CUDA
    from svd_demo.ui import launch_kwargs

    create_app(settings).launch(**launch_kwargs(settings))


if __name__ == "__main__":
    main()
