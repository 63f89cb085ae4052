"""The models the GPU benchmark runs: SVD-XT's and SDXL base 1.0's published architectures with random weights,
built directly on the device (seconds instead of minutes, nothing downloaded), or a named SVD model."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.gpu.config import BenchConfig

# The published SVD-XT architecture (FACTS.md): UNet 1.52 B, VAE 98 M, CLIP ViT-H/14 632 M parameters.
SVD_XT_VAE = {"block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
              "layers_per_block": 2, "latent_channels": 4, "sample_size": 768, "scaling_factor": 0.18215,
              "force_upcast": True}
SVD_XT_CLIP = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
               "image_size": 224, "patch_size": 14, "projection_dim": 1024, "hidden_act": "gelu"}
SVD_SCHEDULER = {"prediction_type": "v_prediction", "use_karras_sigmas": True, "sigma_min": 0.002,
                 "sigma_max": 700.0, "timestep_type": "continuous", "beta_schedule": "scaled_linear",
                 "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "timestep_spacing": "leading",
                 "interpolation_type": "linear"}


def build_full_size_svd(device: str, dtype: object) -> object:
    """SVD-XT's architecture with random weights, built directly on `device` (seconds instead of minutes)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    with torch.device(device):  # `.to(device)` too: the temporal blocks' `torch.Tensor([x])` ignores the context
        unet = UNetSpatioTemporalConditionModel(sample_size=96, num_frames=25).to(device, dtype)
        vae = AutoencoderKLTemporalDecoder(**SVD_XT_VAE).to(device, dtype)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_CLIP)).to(device, dtype)
    processor = CLIPImageProcessor(crop_size=224, size=224, image_mean=[0.48145466, 0.4578275, 0.40821073],
                                   image_std=[0.26862954, 0.26130258, 0.27577711])
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet,
                                        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
                                        feature_extractor=processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_full_size_sdxl(device: str, dtype: object) -> object:
    """SDXL base 1.0's published architecture with random weights, built on `device` (UNet 2.57 B, text encoders
    123 M + 695 M, VAE 84 M)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from svd_demo_testing.tiny_models import offline_clip_tokenizer

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            transformer_layers_per_block=(1, 2, 10), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816).to(dtype)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                            sample_size=1024, scaling_factor=0.13025, force_upcast=True).to(dtype)
        # eos_token_id 2: the pooled output is taken at the argmax id's position (the offline tokenizer's eos is the
        # largest id it produces)
        common = {"vocab_size": 49408, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 2,
                  "pad_token_id": 1}
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                    num_attention_heads=12, hidden_act="quick_gelu",
                                                    projection_dim=768, **common)).to(dtype)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
            hidden_act="gelu", projection_dim=1280, **common)).to(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = offline_clip_tokenizer(Path(tmp) / "t1")
        tokenizer_2 = offline_clip_tokenizer(Path(tmp) / "t2")
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       interpolation_type="linear", num_train_timesteps=1000,
                                       prediction_type="epsilon", steps_offset=1, timestep_spacing="leading",
                                       use_karras_sigmas=False)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
                                     force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe



def load_svd(config: BenchConfig, dtype: object, note: Callable[[str], None]) -> Any:
    """The SVD pipeline the bench measures: `config.svd_model` when it names one, else SVD-XT's architecture on a GPU
    or the tests' tiny model elsewhere; `note` records a worked-around CLIP image processor."""
    import torch

    if config.svd_model not in ("", "random"):
        from diffusers import StableVideoDiffusionPipeline

        pipe = StableVideoDiffusionPipeline.from_pretrained(config.svd_model, dtype=dtype)
    elif config.gpu:
        pipe = build_full_size_svd(config.device, dtype)
    else:
        from svd_demo_testing.tiny_models import build_tiny_svd

        pipe = build_tiny_svd().to(dtype)
    pipe.set_progress_bar_config(disable=True)
    # The device image's transformers may pick another CLIPImageProcessor backend (torchvision) than the dev
    # machines (PIL): call it exactly as the SVD pipeline does, and fall back to the PIL one if that fails.
    try:
        pipe.feature_extractor(images=torch.rand(1, 3, 224, 224), do_normalize=True, do_center_crop=False,
                               do_resize=False, do_rescale=False, return_tensors="pt")
    except Exception as exc:  # noqa: BLE001  (any failure here is reported and worked around)
        note(f"the CLIP image processor failed as the SVD pipeline calls it ({type(exc).__name__}: {exc}); using "
             "CLIPImageProcessorPil instead")
        from transformers import CLIPImageProcessorPil

        pipe.feature_extractor = CLIPImageProcessorPil(**pipe.feature_extractor.to_dict())
    return pipe
