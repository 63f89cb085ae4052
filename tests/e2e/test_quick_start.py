"""Sized to the machine: on a CPU, or with random-weight models, the page and the CLI start from settings that
finish in seconds, say so, and keep every control free to raise; on a GPU with real models nothing changes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from svd_demo.core.models import SVD_PRESETS, svd_defaults
from svd_demo.core.params import IMAGE_SPECS, QUICK_DEFAULTS, SPECS, quick_defaults


def test_quick_defaults_apply_on_a_cpu_or_random_weights_only():
    assert quick_defaults("cpu", random_weights=False) == QUICK_DEFAULTS
    assert quick_defaults("cuda", random_weights=True) == QUICK_DEFAULTS
    assert quick_defaults("cuda:1", random_weights=False) == {}
    assert quick_defaults("mps", random_weights=False) == {}
    # A parameter without a default of its own follows the model: a preset's value, or the fallback for any other
    # model (a folder that is no preset and has no UNet config to read).
    follows_the_model = {"num_frames": [p.num_frames for p in SVD_PRESETS] + [svd_defaults("/no/such/model")[0]]}
    for name, value in QUICK_DEFAULTS.items():  # each is a legal value, below every GPU default, and raisable
        spec = SPECS.get(name) or IMAGE_SPECS[name]
        assert spec.minimum <= value < spec.maximum
        gpu_defaults = follows_the_model[name] if spec.default is None else [spec.default]
        assert all(value < default for default in gpu_defaults), (name, value, gpu_defaults)


def _values(demo) -> dict[str, object]:
    """Initial values of the page's labelled inputs, by label."""
    return {block.label: block.value for block in demo.blocks.values()
            if getattr(block, "label", None) and hasattr(block, "value")}


def _markdown(demo) -> str:
    import gradio as gr

    return "\n".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown))


def test_page_starts_quick_on_random_weights_and_says_so(tiny_settings, studio):
    from svd_demo.web.ui import build_demo

    demo = build_demo(tiny_settings, studio)
    values = _values(demo)
    assert values[SPECS["resolution"].label] == 256
    assert values[SPECS["num_frames"].label] == 6
    assert values[SPECS["num_inference_steps"].label] == 4
    assert values[IMAGE_SPECS["sdxl_steps"].label] == 2
    text = _markdown(demo)
    assert "**Quick settings:**" in text and "resolution 256, 6 frames, 4 steps" in text


def test_page_keeps_the_full_defaults_on_a_gpu_with_real_models(tiny_settings, monkeypatch):
    from svd_demo.studio.studio import Studio
    from svd_demo.web.ui import build_demo

    settings = dataclasses.replace(tiny_settings, svd_model="stabilityai/stable-video-diffusion-img2vid-xt",
                                   sdxl_model="stabilityai/stable-diffusion-xl-base-1.0")
    studio = Studio(settings)
    monkeypatch.setattr(studio.cache, "_device", "cuda")  # what a GPU machine resolves; nothing is loaded here
    demo = build_demo(settings, studio)
    values = _values(demo)
    assert values[SPECS["resolution"].label] == 1024 and values[SPECS["num_frames"].label] == 25
    assert values[SPECS["num_inference_steps"].label] == 25 and values[IMAGE_SPECS["sdxl_steps"].label] == 30
    assert "Quick settings" not in _markdown(demo)


def test_cli_starts_quick_on_random_weights_and_a_typed_value_wins(tiny_models_dir, photo, tmp_path):
    def generate(*extra: str) -> dict:
        out = tmp_path / f"clip{len(extra)}.mp4"
        done = subprocess.run([sys.executable, "-m", "svd_demo", "generate", "--image", str(photo), "--out", str(out),
                               "--svd-model", str(tiny_models_dir / "svd"), "--seed", "1", *extra],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return {"stderr": done.stderr, **json.loads(out.with_suffix(".json").read_text())["parameters"]}

    quick = generate()
    assert (quick["resolution"], quick["num_frames"], quick["num_inference_steps"]) == (256, 6, 4)
    assert "quick settings" in quick["stderr"]
    raised = generate("--num-frames", "3", "--resolution", "320")
    assert (raised["resolution"], raised["num_frames"], raised["num_inference_steps"]) == (320, 3, 4)
