"""Parameters (one declaration read by UI, CLI and API), settings with environment variables, memory profiles."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from svd_demo.errors import InputError
from svd_demo.memory import GIB, PLANS, choose_profile, decode_chunk, step_down
from svd_demo.params import SPECS, VideoParams
from svd_demo.settings import Settings, parse_settings


def test_defaults_are_the_specs():
    params = VideoParams()
    for name, spec in SPECS.items():
        assert getattr(params, name) == spec.default


@pytest.mark.parametrize(("name", "value"), [
    ("num_frames", 0), ("num_frames", 10000), ("num_inference_steps", -1), ("fps", 0), ("fps", math.nan),
    ("motion_bucket_id", math.inf), ("seed", -5), ("seed", 2**40), ("noise_aug_strength", "lots"),
    ("resolution", 100000), ("num_frames", 2.5), ("aspect_mode", "stretch"), ("loop", 3), ("randomize_seed", "maybe"),
    ("decode_chunk_size", None), ("min_guidance_scale", True),
])
def test_out_of_range_values_name_the_parameter(name, value):
    with pytest.raises(InputError, match=f"`{name}`"):
        VideoParams.from_raw({name: value})


def test_numbers_from_sliders_and_strings_are_coerced():
    params = VideoParams.from_raw({"num_frames": 14.0, "seed": "7", "randomize_seed": "false", "fps": None})
    assert (params.num_frames, params.seed, params.randomize_seed, params.fps) == (14, 7, False, None)


def test_guidance_order_and_unknown_names():
    with pytest.raises(InputError, match="min_guidance_scale"):
        VideoParams.from_raw({"min_guidance_scale": 5, "max_guidance_scale": 2})
    with pytest.raises(InputError, match="Unknown parameter"):
        VideoParams.from_raw({"num_frame": 14})
    with pytest.raises(InputError, match="Unknown output format"):
        VideoParams.from_raw({"extra_formats": ["avi"]})


def test_resolved_fills_model_defaults_and_draws_a_seed():
    params = VideoParams(randomize_seed=True).resolved(num_frames=25, fps=6)
    assert (params.num_frames, params.fps, params.randomize_seed) == (25, 6, False)
    assert 0 <= params.seed < 2**32
    assert params.effective_playback_fps == 6
    assert VideoParams(playback_fps=24).resolved(num_frames=14, fps=7).effective_playback_fps == 24


def test_settings_from_environment_and_command_line():
    env = {"SVD_DEMO_SVD_MODEL": "/models/svd", "GRADIO_SERVER_NAME": "0.0.0.0", "SVD_DEMO_SHARE": "true",
           "SVD_DEMO_OUTPUT_TTL": "60"}
    settings = parse_settings([], env)
    assert (settings.svd_model, settings.host, settings.share, settings.output_ttl) == ("/models/svd", "0.0.0.0",
                                                                                        True, 60)
    assert parse_settings(["--svd-model", "other", "--memory-profile", "low"], env).svd_model == "other"
    assert parse_settings([], {}).host == "127.0.0.1"  # private unless the environment says otherwise
    assert parse_settings([], {"SVD_DEMO_OUTPUT_DIR": "/tmp/x"}).output_dir == Path("/tmp/x")
    assert isinstance(parse_settings(["--output-dir", "out"], {}).output_dir, Path)


def test_bad_environment_value_is_a_clear_error():
    with pytest.raises(SystemExit):
        parse_settings([], {"GRADIO_SERVER_PORT": "eighty"})


def test_app_help_documents_every_option_with_its_variable():
    out = subprocess.run([sys.executable, "app.py", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    for field in Settings.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in flat
    for env in ["SVD_DEMO_SVD_MODEL", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SVD_DEMO_MEMORY_PROFILE"]:
        assert env in flat


def test_explicit_profile_and_cpu():
    assert choose_profile("low", "cuda", (80 * GIB, 80 * GIB)) == "low"
    assert choose_profile("auto", "cpu", None) == "high"
    assert [step_down(p) for p in PLANS] == ["balanced", "balanced", "low", "minimal", None]  # fast, high, ...


def test_decode_chunk_follows_and_caps_by_profile():
    assert decode_chunk(0, PLANS["high"], 25) == 8
    assert decode_chunk(0, PLANS["high"], 4) == 4
    assert decode_chunk(8, PLANS["low"], 25) == 2
    assert decode_chunk(0, PLANS["minimal"], 25) == 1
    assert decode_chunk(14, PLANS["balanced"], 25) == 14
