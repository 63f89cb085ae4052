"""Parameters (one declaration read by UI, CLI and API), settings with environment variables, memory profiles."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from svd_demo.core.errors import InputError
from svd_demo.core.params import (
    ALL_SPECS,
    IMAGE_SPECS,
    INTERPOLATION_SPECS,
    QUICK_DEFAULTS,
    SPECS,
    ImageParams,
    VideoParams,
)
from svd_demo.core.settings import Settings, parse_settings
from svd_demo.engine.memory import GIB, PLANS, choose_profile, decode_chunk, step_down


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


# --- one declaration per parameter: the UI's components, the API's info and the CLI's flags read the specs --------

# Defaults that follow the chosen model (a spec's None, or the model's own steps and guidance for SDXL).
MODEL_DEFAULTS = {"num_frames", "fps", "sdxl_steps", "sdxl_guidance_scale"}


@pytest.fixture(scope="module")
def api_info(tmp_path_factory):
    from svd_demo.web.ui import build_demo

    demo = build_demo(Settings(output_dir=tmp_path_factory.mktemp("outputs"), device="cpu"))
    return demo, demo.get_api_info()["named_endpoints"]


def test_every_api_parameter_has_its_specs_default_range_and_choices(api_info):
    _, endpoints = api_info
    checked = set()
    for endpoint, info in endpoints.items():
        for param in info["parameters"]:
            spec = ALL_SPECS.get(param["parameter_name"])
            if spec is None:
                continue
            where = f"{endpoint} {spec.name}"
            checked.add(spec.name)
            if spec.name not in MODEL_DEFAULTS:  # on this CPU the page starts from the quick settings
                assert param["parameter_default"] == QUICK_DEFAULTS.get(spec.name, spec.default), where
            if spec.minimum is not None and spec.name != "seed":  # a Number box: its range is not in the API info
                described = param["type"]["description"]
                low, high = re.fullmatch(r"numeric value between (\S+) and (\S+)", described).groups()
                assert (float(low), float(high)) == (spec.minimum, spec.maximum), where
            if spec.choices:
                assert param["type"]["enum"] == list(spec.choices), where
    assert checked == set(ALL_SPECS)  # every spec reaches the API somewhere


def test_every_ui_component_has_its_specs_label_help_and_step(api_info):
    demo, _ = api_info
    for fn in demo.fns.values():
        for component, name in zip(fn.inputs, fn.input_parameter_names or [], strict=False):
            spec = ALL_SPECS.get(name)
            if spec is None:
                continue
            # A slider's help ends with its range (its number box clamps what is typed without a word).
            assert component.label == spec.label, (fn.api_name, name)
            ranged = spec.minimum is not None and spec.kind is not bool and spec.name != "seed"
            wanted = f"{spec.help} ({spec.minimum:g}-{spec.maximum:g})" if ranged else spec.help
            assert component.info == wanted, (fn.api_name, name)
            if spec.step is not None and hasattr(component, "step"):
                assert component.step == spec.step, (fn.api_name, name)


def test_the_interpolation_engine_reads_the_interpolation_specs():
    from svd_demo.engine import interpolation

    assert sorted(interpolation.BACKENDS) == list(INTERPOLATION_SPECS["backend"].choices)
    factor, target = INTERPOLATION_SPECS["factor"], INTERPOLATION_SPECS["target_fps"]
    assert (interpolation.MIN_FACTOR, interpolation.MAX_FACTOR) == (factor.minimum, factor.maximum)
    assert interpolation.MAX_TARGET_FPS == target.maximum
    with pytest.raises(InputError, match=f"from {factor.minimum} to {factor.maximum}"):
        interpolation.output_timestamps(4, 7.0, factor=factor.maximum + 1)
    assert interpolation.output_timestamps(2, 1.0, target_fps=target.maximum)[1] == target.maximum


def _subcommand(parser, name):
    import argparse

    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


@pytest.mark.parametrize("command", ["generate", "extend", "text-to-image", "text-to-video"])
def test_every_cli_flag_has_its_specs_help_range_choices_and_default(command):
    from svd_demo.cli.commands import _given, build_parser

    parser = _subcommand(build_parser(command), command)
    flags = {a.dest: a for a in parser._actions}
    for name, spec in ALL_SPECS.items():
        if name not in flags:
            continue
        action = flags[name]
        assert action.help.startswith(spec.help), name
        if spec.minimum is not None:
            low, high = (f"{v:g}" if isinstance(v, float) else str(v) for v in (spec.minimum, spec.maximum))
            assert f"Range {low}-{high}." in action.help and "e+" not in action.help, name
        assert action.choices == spec.choices, name
    required = {"generate": ["--image", "x.png"], "extend": ["--video", "x.mp4"]}.get(command, ["--prompt", "a"])
    args = parser.parse_args([*required, "--out", "x.mp4"])
    if command in ("generate", "extend"):
        assert VideoParams.from_raw(_given(args, [*SPECS, "extra_formats"])) == VideoParams()
    else:
        assert ImageParams.from_raw({"prompt": "a", **_given(args, [*IMAGE_SPECS, "seed", "randomize_seed",
                                                                   "resolution"])}) == ImageParams(prompt="a")


def test_the_interpolate_cli_has_the_specs_default_and_choices():
    from svd_demo.cli.commands import build_parser

    parser = _subcommand(build_parser("interpolate"), "interpolate")
    backend = next(a for a in parser._actions if a.dest == "backend")
    assert (backend.default, list(backend.choices)) == (INTERPOLATION_SPECS["backend"].default,
                                                        list(INTERPOLATION_SPECS["backend"].choices))
    factor = next(a for a in parser._actions if a.dest == "factor")
    spec = INTERPOLATION_SPECS["factor"]
    assert f"({spec.minimum}-{spec.maximum})" in factor.help


def test_the_web_layer_does_not_import_the_batch_tool():
    import ast

    import svd_demo.web

    for path in Path(svd_demo.web.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not {"svd_demo.batch", "svd_demo.batch.sweep"} & imported, path.name


@pytest.mark.parametrize("value", [300, 1020.0 + 0.0, 60, 2056])
def test_the_resolution_range_is_one_rule_for_slider_validation_and_framing(value):
    """One range: what the slider offers (SPECS), what a request may send, and what framing accepts agree."""
    from svd_demo.files.images import MAX_RESOLUTION, MIN_RESOLUTION

    spec = SPECS["resolution"]
    assert (MIN_RESOLUTION, MAX_RESOLUTION, spec.step) == (spec.minimum, spec.maximum, 8)
    with pytest.raises(InputError, match=r"^`resolution` must be (a multiple of 8 )?between 64 and 2048"):
        VideoParams.from_raw({"resolution": value})
    assert VideoParams.from_raw({"resolution": 304}).resolution == 304  # what framing takes, the request takes


@pytest.mark.parametrize("what, example", [("video model", "stabilityai/stable-video-diffusion-img2vid-xt"),
                                           ("image model", "stabilityai/stable-diffusion-xl-base-1.0"),
                                           ("upscale model", "realesr-animevideov3")])
def test_a_refused_model_name_suggests_one_of_its_own_kind(studio, what, example):
    from svd_demo.core.models import check_upscaler_ref

    check = {"video model": lambda v: studio.image_to_video(None, VideoParams(), model_ref=v),
             "image model": lambda v: studio.text_to_image(ImageParams(prompt="a cat"), model_ref=v),
             "upscale model": check_upscaler_ref}[what]
    with pytest.raises(InputError, match=rf"^The {what} name is not valid: use a hub id like {example} or a local"):
        check("x" * 300)
