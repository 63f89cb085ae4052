"""One resolver for a run's starting values (`svd_demo.core.defaults`), and the page, the API and the CLI going
through it: spec < model < quick settings < restored < given."""

from __future__ import annotations

import pytest

from svd_demo.core.defaults import model_start, not_defaults, resolve_video
from svd_demo.core.models import DEFAULT_SVD_MODEL, HUB_ID
from svd_demo.core.params import QUICK_DEFAULTS, SPECS, VideoParams

ANIMATELCM = HUB_ID


def test_the_layers_in_order():
    plain = resolve_video(DEFAULT_SVD_MODEL)
    assert plain["num_inference_steps"] == SPECS["num_inference_steps"].default == 25
    lcm = resolve_video(ANIMATELCM)
    assert (lcm["num_inference_steps"], lcm["min_guidance_scale"], lcm["max_guidance_scale"]) == (4, 1.0, 1.0)
    assert lcm["num_frames"] == 25 and lcm["motion_bucket_id"] == 80
    quick = resolve_video(DEFAULT_SVD_MODEL, quick=QUICK_DEFAULTS)
    assert (quick["resolution"], quick["num_frames"], quick["num_inference_steps"]) == (256, 6, 4)
    assert resolve_video(ANIMATELCM, quick={**QUICK_DEFAULTS, "num_inference_steps": 8})["num_inference_steps"] == 4
    restored = resolve_video(ANIMATELCM, quick=QUICK_DEFAULTS, restored={"num_inference_steps": 6, "seed": 9})
    assert (restored["num_inference_steps"], restored["seed"]) == (6, 9)
    given = resolve_video(ANIMATELCM, restored={"num_inference_steps": 6}, given={"num_inference_steps": 8,
                                                                                  "fps": None})
    assert given["num_inference_steps"] == 8 and given["fps"] == model_start(ANIMATELCM, {})["fps"]


def test_an_api_call_naming_animatelcm_with_steps_left_out_runs_its_4_steps_at_guidance_1():
    """Gradio's clients send the endpoint's defaults (the page's starting values, for SVD-XT: 25 steps, guidance up
    to 3) for what the caller leaves out; those are read as left out, and the named model's own values apply."""
    sent = {**resolve_video(DEFAULT_SVD_MODEL), "seed": 3}  # what the client sends: only the seed was given
    typed = not_defaults(sent, resolve_video(DEFAULT_SVD_MODEL))
    assert typed == {"seed": 3}
    params = VideoParams.from_raw(resolve_video(ANIMATELCM, given=typed))
    assert (params.num_inference_steps, params.min_guidance_scale, params.max_guidance_scale, params.seed) == \
        (4, 1.0, 1.0, 3)
    explicit = resolve_video(ANIMATELCM, given=not_defaults({**sent, "num_inference_steps": 8},
                                                            resolve_video(DEFAULT_SVD_MODEL)))
    assert explicit["num_inference_steps"] == 8  # what a caller sets is kept


@pytest.fixture
def captured(studio, monkeypatch):
    """The VideoParams each front end hands the studio; the run stops there (the page shows it as an error)."""
    calls = []

    def capture(source, params, **kwargs):
        calls.append(params)
        raise RuntimeError("captured")

    monkeypatch.setattr(studio, "image_to_video", capture)
    return calls


def test_page_api_and_cli_resolve_the_same_request_alike(studio, photo, captured, tmp_path):
    from svd_demo.cli import commands
    from svd_demo.web import handlers

    calls = captured
    # A client's call: the model only.
    api = {**handlers.api_defaults(studio), "svd_model": ANIMATELCM, "extra_formats": []}
    with pytest.raises(Exception):  # noqa: B017 (the page's wrapper of the stop)
        list(handlers.image_to_video(studio, {"image": str(photo), **api}))
    # The page: picking the model set its values in the controls, which the page sends as shown.
    shown = {**handlers.api_defaults(studio), **model_start(ANIMATELCM, studio.quick_defaults()),
             "svd_model": ANIMATELCM,
             "extra_formats": [], handlers.PAGE: True}
    with pytest.raises(Exception):  # noqa: B017 (the page's wrapper of the stop)
        list(handlers.image_to_video(studio, {"image": str(photo), **shown}))
    args = commands.build_parser().parse_args(["generate", "--image", str(photo), "--svd-model", ANIMATELCM,
                                               "--device", "cpu", "--out", str(tmp_path / "a.mp4")])
    calls.append(VideoParams.from_raw(commands._video_values(args, studio, [*SPECS, "extra_formats"], say=False)))
    api_params, page_params, cli_params = calls
    assert api_params.num_inference_steps == 4 and api_params.max_guidance_scale == 1.0
    # seeds differ only where each front end randomizes: compare everything else
    strip = lambda p: {k: v for k, v in vars(p).items() if k not in ("seed", "randomize_seed")}  # noqa: E731
    assert strip(api_params) == strip(page_params) == strip(cli_params)
