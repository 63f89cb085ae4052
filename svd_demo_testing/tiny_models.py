"""Tiny random-weight pipelines (SVD and SDXL) for tests, smoke runs and demos without downloads.

The models are built from small configs under ``torch.manual_seed(0)`` and saved with ``save_pretrained``, so the
app loads them with the same ``from_pretrained`` code as the real hub checkpoints. The VAEs keep the real 8x
downsampling (``vae_scale_factor == 8``), so every size rule of the app behaves as with the real models.

Nothing here touches the network: the CLIP tokenizers are written offline from a byte-level alphabet.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import uuid

import torch

from svd_demo.core.models import TINY_MARKER

KINDS = ("svd", "sdxl")

_NOTE = "random weights for tests and smoke runs (svd_demo_testing.tiny_models); the output is noise, not a real model"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode table (transformers 5 no longer exports it)."""
    bs = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def offline_clip_tokenizer(workdir: pathlib.Path):
    """A byte-level ``CLIPTokenizer`` with no merges: 514 ids (256 bytes, 256 bytes + ``</w>``, bos, eos)."""
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [ch + "</w>" for ch in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    workdir.mkdir(parents=True, exist_ok=True)
    vocab_file = workdir / "vocab.json"
    merges_file = workdir / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def build_tiny_svd():
    """A tiny fp32 ``StableVideoDiffusionPipeline`` (random weights, seed 0, 8x VAE, default 14 frames)."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNetSpatioTemporalConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=8,
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            cross_attention_dim=32,
            num_attention_heads=8,
            projection_class_embeddings_input_dim=96,
            addition_time_embed_dim=32,
            num_frames=14,
        )
        scheduler = EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            interpolation_type="linear",
            num_train_timesteps=1000,
            prediction_type="v_prediction",
            sigma_max=700.0,
            sigma_min=0.002,
            steps_offset=1,
            timestep_spacing="leading",
            timestep_type="continuous",
            trained_betas=None,
            use_karras_sigmas=True,
        )
        torch.manual_seed(0)
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=[32, 32, 32, 32],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            layers_per_block=1,
            latent_channels=4,
        )
        torch.manual_seed(0)
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                projection_dim=32,
                num_hidden_layers=5,
                num_attention_heads=4,
                intermediate_size=37,
                image_size=224,
                patch_size=32,
            )
        )
        feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    pipe = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=feature_extractor,
    )
    return pipe


def build_tiny_sdxl():
    """A tiny fp32 ``StableDiffusionXLPipeline`` (random weights, seed 0, 8x VAE, offline tokenizers)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            block_out_channels=(2, 4),
            layers_per_block=2,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,  # 6 time ids x 8 + 32 (text_encoder_2 projection_dim)
            cross_attention_dim=64,  # 32 + 32 (both text encoders' hidden states, concatenated)
            norm_num_groups=1,
        )
        scheduler = EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            interpolation_type="linear",
            num_train_timesteps=1000,
            prediction_type="epsilon",
            steps_offset=1,
            timestep_spacing="leading",
            use_karras_sigmas=False,
        )
        torch.manual_seed(0)
        vae = AutoencoderKL(
            block_out_channels=[32, 32, 32, 32],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=1,
            latent_channels=4,
            sample_size=128,
            force_upcast=True,
        )
        text_config = CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            pad_token_id=1,
            vocab_size=1000,
            hidden_act="gelu",
            projection_dim=32,
        )
        torch.manual_seed(0)
        text_encoder = CLIPTextModel(text_config)
        torch.manual_seed(0)
        text_encoder_2 = CLIPTextModelWithProjection(text_config)
    with tempfile.TemporaryDirectory(prefix="svd_demo_tok_") as tmp:
        tokenizer = offline_clip_tokenizer(pathlib.Path(tmp) / "tokenizer")
        tokenizer_2 = offline_clip_tokenizer(pathlib.Path(tmp) / "tokenizer_2")
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    # ``requires_aesthetics_score`` is not a config key of the text-to-image pipeline (registering it breaks
    # ``pipe.components``); the img2img/inpaint pipelines built from this one with ``from_pipe`` default it to False.
    return pipe


_BUILDERS = {"svd": build_tiny_svd, "sdxl": build_tiny_sdxl}


def save_tiny_models(directory: str | os.PathLike, *, which: tuple[str, ...] = KINDS) -> dict[str, pathlib.Path]:
    """Build and save the tiny pipelines as ``DIRECTORY/svd`` and ``DIRECTORY/sdxl``; return ``{kind: path}``.

    Each dir gets ``TINY_MARKER``. Idempotent: every model is built in a temporary sibling dir and renamed into
    place, replacing any previous copy, so an interrupted run never leaves a half-written model dir.
    """
    if isinstance(which, str):
        which = (which,)
    unknown = [kind for kind in which if kind not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown tiny model kind(s) {unknown}; choose from {list(KINDS)}")
    root = pathlib.Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, pathlib.Path] = {}
    for kind in dict.fromkeys(which):
        final = root / kind
        tmp = root / f".{kind}.tmp-{uuid.uuid4().hex}"  # not mkdtemp: its 0700 mode would stick to the final dir
        tmp.mkdir()
        try:
            pipe = _BUILDERS[kind]()
            pipe.save_pretrained(tmp, safe_serialization=True)
            (tmp / TINY_MARKER).write_text(
                json.dumps({"kind": kind, "note": _NOTE}, indent=2) + "\n", encoding="utf-8"
            )
            old = None
            if final.exists() or final.is_symlink():
                old = root / f".{kind}.old-{uuid.uuid4().hex}"
                final.rename(old)
            tmp.rename(final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        paths[kind] = final
    return paths



UPSCALER_KINDS = ("srvgg", "rrdb")


def save_tiny_upscalers(directory: str | os.PathLike) -> dict[str, pathlib.Path]:
    """Tiny random-weight upscalers of the two real classes, saved as the official checkpoints are (BasicSR's
    {"params": ...} for SRVGGNetCompact, {"params_ema": ...} for RRDBNet), so the app's loader reads them as it
    reads the real files: DIR/tiny-srvgg-x4.pth and DIR/tiny-rrdb-x4.pth."""
    root = pathlib.Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    return {kind: save_tiny_upscaler(root / f"tiny-{kind}-x4.pth", kind) for kind in UPSCALER_KINDS}


def save_tiny_upscaler(path: str | os.PathLike, kind: str = "srvgg") -> pathlib.Path:
    """One tiny random-weight x4 upscaler of class `kind` (see save_tiny_upscalers), written whole or not at all."""
    from svd_demo.engine.upscale.networks import RRDBNet, SRVGGNetCompact

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # Few, narrow layers: a small receptive field (tiles with 16 px of context match the whole frame exactly) and
    # milliseconds per frame. The real sizes are the classes' defaults (benchmarks build those).
    # Random weights, brought into the 0-1 range of real outputs so that the values tests compare are not all
    # clipped: SRVGG adds its (halved) residual to a nearest-neighbour upscale; RRDB's last layer is centred.
    with torch.no_grad():
        if kind == "srvgg":
            key, network = "params", SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
            for param in network.parameters():
                param.mul_(0.5)
        else:
            key, network = "params_ema", RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4)
            network.conv_last.weight.mul_(10.0)
            network.conv_last.bias.fill_(0.5)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as tmp:
        torch.save({key: network.state_dict()}, tmp.name)
    os.replace(tmp.name, path)
    return path


def save_tiny_lora(sdxl_dir: str | os.PathLike, directory: str | os.PathLike, *, seed: int = 0) -> pathlib.Path:
    """A tiny random LoRA for the tiny SDXL's UNet (needs `peft`), saved as diffusers' `save_lora_weights` writes
    it; returns the .safetensors file. Its B matrices are random, not zero as in training's start, so that weight 1
    changes the image and weight 0 does not."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(pathlib.Path(sdxl_dir) / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionXLPipeline.save_lora_weights(str(directory), unet_lora_layers=state, safe_serialization=True)
    return pathlib.Path(directory) / "pytorch_lora_weights.safetensors"
