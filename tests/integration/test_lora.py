"""SDXL LoRAs on the image stage: parsing and checks, adapters switched on the cached pipeline without reloading it,
weights that change (or do not change) the still, and the record of what was used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from svd_demo.core.errors import InputError, ModelLoadError
from svd_demo.core.lora_refs import MAX_LORAS, LoraSpec, parse_loras
from svd_demo.core.params import ImageParams, VideoParams
from svd_demo.files.media import read_metadata

STILL = {"prompt": "a lighthouse at dusk", "resolution": 256, "sdxl_steps": 2, "randomize_seed": False, "seed": 3}


@pytest.fixture(scope="module")
def lora_studio(tiny_settings):
    """A studio of its own: these tests count its loads and leave adapters on its pipeline."""
    from svd_demo.studio.studio import Studio

    return Studio(tiny_settings)


def pixels(studio, **overrides) -> np.ndarray:
    return np.asarray(studio.text_to_image(ImageParams.from_raw({**STILL, **overrides})).image, dtype=np.int16)


# ------------------------------------------------------------------------------------------------- input checks


def test_parse_reference_and_weight(tiny_loras):
    one, two = tiny_loras
    assert parse_loras(None) == parse_loras("") == ()
    assert parse_loras([f"{one}:0.5", f"{two}"]) == (LoraSpec(str(one), 0.5), LoraSpec(str(two), 1.0))
    assert parse_loras(f"{one}:-1\n\n{two}:1.5\n") == (LoraSpec(str(one), -1.0), LoraSpec(str(two), 1.5))
    assert parse_loras("nerijs/pixel-art-xl:0.8") == (LoraSpec("nerijs/pixel-art-xl", 0.8),)
    # what a sidecar holds reads back as the same list (a sweep that resumes)
    assert parse_loras([{"ref": str(one), "weight": 0.25}]) == (LoraSpec(str(one), 0.25),)


@pytest.mark.parametrize(("text", "message"), [
    ("./missing.safetensors", r"`loras`.*missing\.safetensors.*does not exist"),
    ("nerijs/pixel-art-xl:5", r"`loras`.*weight.*between -2 and 2.*5"),
    ("nerijs/pixel-art-xl:nan", r"`loras`.*weight.*finite"),
    ("not a hub id!", r"`loras`.*hub id.*\.safetensors"),
    ("a" * 2001, r"`loras`: the list of loras is 2001 characters long; the limit is 2000"),
])
def test_bad_references_and_weights_name_the_parameter(text, message):
    with pytest.raises(InputError, match=message):
        parse_loras(text)


def test_only_safetensors_files(tmp_path, tiny_loras):
    pickle = tmp_path / "style.ckpt"
    pickle.write_bytes(b"\x80\x04not really")
    with pytest.raises(InputError, match=r"`loras`.*style\.ckpt.*\.safetensors"):
        parse_loras(str(pickle))
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"this is not a safetensors file")
    with pytest.raises(InputError, match=r"`loras`.*fake\.safetensors.*not a valid safetensors"):
        parse_loras(str(fake))
    with pytest.raises(InputError, match=r"`loras`.*folder"):
        parse_loras(str(tmp_path))  # a folder without pytorch_lora_weights.safetensors
    assert parse_loras(str(tiny_loras[0].parent)) == (LoraSpec(str(tiny_loras[0].parent), 1.0),)


def test_duplicates_and_too_many(tiny_loras):
    one, _ = tiny_loras
    with pytest.raises(InputError, match=r"`loras`.*more than once"):
        parse_loras([f"{one}:0.5", f"{one}:1"])
    with pytest.raises(InputError, match=rf"`loras`.*at most {MAX_LORAS}"):
        parse_loras([f"owner/lora-{i}" for i in range(MAX_LORAS + 1)])


def test_image_params_take_loras(tiny_loras):
    params = ImageParams.from_raw({**STILL, "loras": f"{tiny_loras[0]}:0.5"})
    assert params.loras == (LoraSpec(str(tiny_loras[0]), 0.5),)
    assert params.to_dict()["loras"] == [{"ref": str(tiny_loras[0]), "weight": 0.5}]


# ---------------------------------------------------------------------------------------------- on the pipeline


def base_weights(pipe) -> dict[str, torch.Tensor]:
    """The base model's weights, by their names before peft wrapped the layers (LoRA matrices left out)."""
    return {f"{part}.{name.replace('.base_layer', '')}": tensor.detach().clone()
            for part in ("unet", "text_encoder", "text_encoder_2")
            for name, tensor in getattr(pipe, part).state_dict().items() if "lora_" not in name}


def same_still(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one 8-bit level. The same weights on the same input need not give the same bits: oneDNN/MKL pick
    their blocking (so their summation order) by memory alignment and CPU, so a layer peft wraps can round its last
    float bit differently (seen on AMD EPYC: 3 pixels one level apart). What the LoRA code promises is the weights,
    checked bit for bit beside this."""
    return a.shape == b.shape and np.abs(a - b).max() <= 1


def test_weights_switching_and_combining_without_reloading(lora_studio, tiny_loras):
    one, two = tiny_loras
    base = pixels(lora_studio)
    loads, pipe = lora_studio.cache.loads, lora_studio.cache.loaded("sdxl").pipe
    weights = base_weights(pipe)

    assert same_still(pixels(lora_studio, loras=f"{one}:0"), base)  # weight 0: the base model
    with_one = pixels(lora_studio, loras=f"{one}:1")
    assert np.abs(with_one - base).max() > 2
    with_two = pixels(lora_studio, loras=f"{two}:1")  # switched: one is unloaded, two loaded
    assert np.abs(with_two - with_one).max() > 2
    both = pixels(lora_studio, loras=[f"{one}:1", f"{two}:1"])
    assert np.abs(both - with_one).max() > 2 and np.abs(both - with_two).max() > 2
    assert same_still(pixels(lora_studio, loras=f"{one}:1"), with_one)  # back to one alone: same still
    assert same_still(pixels(lora_studio), base)  # none: the base model again

    loaded = lora_studio.cache.loaded("sdxl")
    assert lora_studio.cache.loads == loads and loaded.pipe is pipe  # the base model was never reloaded
    assert loaded.lora_adapters == {}
    after = base_weights(pipe)
    assert after.keys() == weights.keys()
    assert all(torch.equal(after[name], weights[name]) for name in weights)  # restored bit for bit


def test_loras_are_recorded_in_the_sidecar_png_and_mp4(lora_studio, tiny_loras):
    one, _ = tiny_loras
    still, video = lora_studio.text_to_video(ImageParams.from_raw({**STILL, "loras": f"{one}:0.7"}),
                                             VideoParams.from_raw({"num_frames": 2, "num_inference_steps": 1}))
    wanted = [{"ref": str(one), "weight": 0.7}]
    assert json.loads(still.sidecar.read_text())["parameters"]["loras"] == wanted
    assert json.loads(video.files.sidecar.read_text())["parameters"]["loras"] == wanted
    assert json.loads(read_metadata(video.files.video)["comment"])["loras"] == wanted
    from PIL import Image

    assert json.loads(Image.open(still.path).text["parameters"])["loras"] == wanted


def test_a_lora_that_cannot_be_loaded_names_its_page_and_leaves_the_base_clean(lora_studio, tiny_loras):
    base = pixels(lora_studio)
    with pytest.raises(ModelLoadError, match=r"https://huggingface.co/someone/no-such-lora"):
        pixels(lora_studio, loras=[f"{tiny_loras[0]}:1", "someone/no-such-lora"])
    assert lora_studio.cache.loaded("sdxl").lora_adapters == {}
    assert same_still(pixels(lora_studio), base)


def test_cli_lora_flag(tiny_settings, tiny_loras, tmp_path):
    from svd_demo.cli.commands import main

    out = tmp_path / "still.png"
    code = main(["text-to-image", "--prompt", "a boat", "--out", str(out), "--resolution", "256", "--sdxl-steps",
                 "2", "--seed", "1", "--sdxl-model", tiny_settings.sdxl_model, "--device", "cpu",
                 "--lora", f"{tiny_loras[0]}:0.5", "--lora", str(tiny_loras[1])])
    assert code == 0
    assert json.loads(out.with_suffix(".json").read_text())["parameters"]["loras"] == [
        {"ref": str(tiny_loras[0]), "weight": 0.5}, {"ref": str(tiny_loras[1]), "weight": 1.0}]
    assert main(["text-to-image", "--prompt", "a boat", "--out", str(out), "--lora", "x/y:9"]) == 2


def test_ui_handler_takes_loras_as_text(studio, tiny_loras):
    from svd_demo.web import handlers

    still, seed, notes, files, result = handlers.text_to_image(studio, {**STILL, "loras": f"{tiny_loras[0]}:0.5"})
    assert result.params.loras == (LoraSpec(str(tiny_loras[0]), 0.5),)
    assert handlers.text_problems({"prompt": "a boat", "loras": "x/y:9"}) == {
        "loras": "`loras`: the weight of 'x/y' must be between -2 and 2; got '9'."}


@pytest.mark.parametrize("offline", [True, False])
def test_the_offline_message_names_hf_hub_offline_only_when_it_is_set(monkeypatch, offline):
    from huggingface_hub import constants

    from svd_demo.engine.lora import explain_lora_error

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    message = str(explain_lora_error("someone/style", ConnectionError("Name or service not known")))
    assert ("HF_HUB_OFFLINE" in message) is offline
    assert "https://huggingface.co/someone/style" in message


def test_inline_messages_have_no_markdown_backticks():
    from svd_demo.web.handlers import input_validator, text_problems

    checks = input_validator(text_problems, ["prompt", "loras"])("a boat", "not a hub id!")
    assert "loras" in checks[1]["message"] and "`" not in checks[1]["message"]
