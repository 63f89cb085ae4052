"""Upscaling in the app: the `upscale` option of the video tabs, the Upscale tab's handler, `/upscale`'s
parameters, and `python -m svd_demo upscale`, on the tiny pipelines and tiny upscalers (real loading code)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers import FAST

from svd_demo.cli import commands as cli
from svd_demo.core.errors import InputError
from svd_demo.core.params import UPSCALE_SPECS, VideoParams
from svd_demo.files.media import probe_video, read_metadata
from svd_demo.studio.sidecar import Sidecar
from svd_demo.web import handlers, runs, ui
from svd_demo_testing.tiny_models import save_tiny_upscalers


@pytest.fixture(scope="module")
def tiny_upscalers(tmp_path_factory):
    return save_tiny_upscalers(tmp_path_factory.mktemp("upscalers"))


@pytest.fixture(scope="module")
def upscaling_studio(tiny_settings, tiny_upscalers, tmp_path_factory):
    from svd_demo.studio.studio import Studio

    return Studio(replace(tiny_settings, upscale_model=str(tiny_upscalers["srvgg"]),
                          output_dir=tmp_path_factory.mktemp("upscaled")))


def test_upscale_is_a_checked_video_parameter():
    assert VideoParams().upscale == "none" and VideoParams.from_raw({"upscale": "4x"}).upscale == "4x"
    with pytest.raises(InputError, match=r"`upscale` must be one of none, 2x, 4x; got '3x'"):
        VideoParams.from_raw({"upscale": "3x"})


def test_a_generated_clip_is_upscaled_as_it_is_encoded(upscaling_studio, photo):
    result = upscaling_studio.image_to_video(photo, VideoParams.from_raw({**FAST, "upscale": "2x",
                                                                          "extra_formats": "gif"}))
    info = result.files.info
    assert (info.width, info.height, info.num_frames) == (512, 288, 4)
    assert probe_video(result.files.extras["gif"]).width == 512
    record = Sidecar.read(result.files.sidecar)
    assert record.parameters["upscale"] == "2x"
    written = json.loads(result.files.sidecar.read_text())
    assert written["upscale"]["architecture"] == "SRVGGNetCompact" and written["upscale"]["factor"] == 2
    assert json.loads(read_metadata(info.path)["comment"])["upscale"] == "2x"


def test_a_too_large_upscale_is_refused_before_generating(upscaling_studio, photo):
    loads = upscaling_studio.cache.loads
    with pytest.raises(InputError, match=r"`upscale` 4x would make 4096x2304"):
        upscaling_studio.image_to_video(photo, VideoParams.from_raw({**FAST, "resolution": 1024, "upscale": "4x"}))
    assert upscaling_studio.cache.loads == loads  # refused from the prepared image's size, before any model


def test_the_upscale_tab_handles_videos_and_stills(upscaling_studio, photo, tiny_upscalers):
    (clip, *_), = handlers.image_to_video(upscaling_studio, {"image": str(photo), **FAST})  # one update: no preview
    video, still, notes, files = handlers.upscale(upscaling_studio, {"media": clip, "upscale_factor": "4x",
                                                               "upscale_tile": 128})
    info = probe_video(video)
    assert (still, info.width, info.height, info.num_frames) == (None, 1024, 576, 4)
    assert "4 frames: 256x144 became 1024x576" in notes
    record = json.loads(open(files[-1]).read())
    assert (record["kind"], record["output"]["width"], record["upscale"]["tile"]) == ("upscale", 1024, 128)
    assert Sidecar.read(files[-1]).kind == "upscale"
    video, still, notes, files = handlers.upscale(upscaling_studio, {"media": str(photo),
                                                               "upscale_model": str(tiny_upscalers["rrdb"])})
    assert video is None and still.endswith(".png") and "400x300 became 800x600" in notes
    assert json.loads(open(files[-1]).read())["upscale"]["architecture"] == "RRDBNet"


def test_the_upscale_tab_names_a_bad_parameter(upscaling_studio, photo):
    import gradio as gr

    with pytest.raises(gr.Error, match="`upscale_tile` must be"):
        handlers.upscale(upscaling_studio, {"media": str(photo), "upscale_tile": 5000})
    with pytest.raises(gr.Error, match="`upscale_factor` must be one of 2x, 4x"):
        handlers.upscale(upscaling_studio, {"media": str(photo), "upscale_factor": "8x"})


def test_the_upscale_endpoint_takes_its_parameters_by_name(upscaling_studio, tiny_settings):
    demo = ui.build_demo(tiny_settings, upscaling_studio)
    fn = next(fn for fn in demo.fns.values() if fn.api_name == "upscale")
    assert list(fn.input_parameter_names) == ["media", *UPSCALE_SPECS, "upscale_model"]
    assert fn.concurrency_id == runs.GPU_QUEUE


def test_the_cli_upscales_a_file(tmp_path, tiny_upscalers, photo):
    out = tmp_path / "big.png"
    code = cli.main(["upscale", str(photo), "--out", str(out), "--upscale-model", str(tiny_upscalers["rrdb"]),
                     "--upscale-factor", "4x", "--upscale-tile", "128", "--device", "cpu"])
    assert code == 0 and out.exists() and (tmp_path / "big.json").exists()
    assert json.loads((tmp_path / "big.json").read_text())["output"]["width"] == 1600


def test_the_cli_refuses_a_bad_model_with_a_message(tmp_path, photo, capsys):
    code = cli.main(["upscale", str(photo), "--out", str(tmp_path / "x.png"), "--upscale-model", "nothing-here"])
    assert code == 2 and "upscale model 'nothing-here'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_bad_upload_is_refused_before_the_upscaler_loads(tmp_path, tiny_settings):
    """With a preset that is not in the offline cache, the input's own problem is what the person reads."""
    from svd_demo.studio.studio import Studio

    studio = Studio(replace(tiny_settings, output_dir=tmp_path / "out"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty \(0 bytes\)"):
        studio.upscale(empty)
    big = tmp_path / "big.png"
    from PIL import Image

    Image.new("RGB", (1920, 1080)).save(big)
    with pytest.raises(InputError, match=r"`upscale_factor` 4x would make 7680x4320"):
        studio.upscale(big, upscale_factor="4x")


def test_an_upscaler_that_cannot_load_costs_no_generation(tmp_path, tiny_settings, photo):
    from svd_demo.core.errors import ModelLoadError
    from svd_demo.studio.studio import Studio

    studio = Studio(replace(tiny_settings, output_dir=tmp_path / "out"))  # the preset: not in the offline cache
    with pytest.raises(ModelLoadError, match="realesr-animevideov3"):
        studio.image_to_video(photo, VideoParams.from_raw({**FAST, "upscale": "2x"}))
    assert studio.cache.loads == 0 and list((tmp_path / "out").iterdir()) == []


def test_upscale_through_the_api(upscaling_studio, tmp_path, photo):
    from gradio_client import Client, handle_file
    from helpers import launched
    from PIL import Image

    with launched(upscaling_studio.settings, upscaling_studio, tmp_path / "gradio") as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        video, still, notes, files = client.predict(media=handle_file(str(photo)), upscale_factor="2x",
                                                    upscale_tile=128, api_name="/upscale")
    with Image.open(still) as image:
        assert video is None and image.size == (800, 600) and "400x300 became 800x600" in notes
    assert json.loads(open(files[-1]).read())["kind"] == "upscale"
