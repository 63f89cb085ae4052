"""The 4-step lane: AnimateLCM-SVD-xt, SVD-XT's UNet distilled with consistency learning (Wang et al. 2024).

Its hub repo (wangfuyun/AnimateLCM-SVD-xt) holds distilled UNets as single safetensors files in diffusers' key layout,
not a whole pipeline: the image encoder, the VAE and the configs are SVD-XT's. The authors publish two (their
G-U-N/AnimateLCM README and animatelcm_svd/safetensors/): AnimateLCM-SVD-xt.safetensors, tuned from SVD-XT, and
AnimateLCM-SVD-xt-1.1.safetensors, tuned from SVD-XT 1.1, which their demo loads by default. Their demo loads either
into SVD-XT's pipeline (stabilityai/stable-video-diffusion-img2vid-xt), and so does this module: the pipeline is
SVD-XT's, loaded with the same `from_pretrained` as every other model, with the consistency sampler
(svd_demo/engine/schedulers.py) and the distilled weights loaded into its UNet, strictly: a file of another shape is an
error, never a half-loaded UNet.

A model reference is the hub repo (the first file), the repo and a file name
(`HUB_ID/AnimateLCM-SVD-xt-1.1.safetensors`), or, for offline use, a local folder in either layout: the hub repo's
(a file alone; SVD-XT then comes from the Hugging Face cache), or a local SVD-XT pipeline folder with a file copied
into it (everything in one folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svd_demo.core.errors import ModelLoadError, UserFacingError
from svd_demo.core.models import (
    BASE_MODEL,
    HUB_ID,
    WEIGHTS_FILE,
    animatelcm_folder,
    animatelcm_hub_file,
    animatelcm_local_file,
)
from svd_demo.engine.hub import fetch, local_path
from svd_demo.engine.load_errors import explain_load_error


def _weights_path(model_ref: str, download: Any = None, cancel: Any = None) -> Path:
    folder = animatelcm_folder(model_ref)
    if folder is not None:
        return animatelcm_local_file(folder) or folder / WEIGHTS_FILE
    # The hub's cache, through the app's one download path (progress, cancel, disk check, HF_HUB_OFFLINE, HF_TOKEN)
    name = animatelcm_hub_file(model_ref) or WEIGHTS_FILE
    return fetch(HUB_ID, files=[name], progress=download, cancel=cancel) / name


def _base(model_ref: str) -> str:
    """SVD-XT from the same folder when the file was copied into a pipeline folder, else SVD-XT's hub id."""
    folder = animatelcm_folder(model_ref)
    return str(folder) if folder is not None and (folder / "model_index.json").is_file() else BASE_MODEL


def load_pipeline(cls: Any, model_ref: str, *, download: Any = None, cancel: Any = None, **kwargs: Any) -> Any:
    """SVD-XT's pipeline (`cls.from_pretrained(..., **kwargs)`) with the AnimateLCM UNet and sampler; `download`
    and `cancel` as in `svd_demo.engine.hub.fetch`, for the files not yet in the cache."""
    from safetensors.torch import load_file

    from svd_demo.engine.schedulers import AnimateLCMScheduler  # torch and diffusers: only when the lane loads

    base = _base(model_ref)
    try:
        folder = local_path(base, variant=kwargs.get("variant"), progress=download, cancel=cancel)
        pipe = cls.from_pretrained(folder, scheduler=AnimateLCMScheduler(), **kwargs)
    except UserFacingError:
        raise  # cancelled, or no room on the disk
    except Exception as exc:
        raise ModelLoadError(f"AnimateLCM-SVD-xt runs on SVD-XT's image encoder and VAE, which could not be "
                             f"loaded. {explain_load_error('svd', base, exc)}") from exc
    path = _weights_path(model_ref, download, cancel)
    state = load_file(str(path))
    _check_shapes(pipe.unet.state_dict(), state, path)
    pipe.unet.load_state_dict(state, strict=True)  # copies (and casts to the pipeline's dtype) into the UNet
    return pipe


def _check_shapes(expected: dict[str, Any], found: dict[str, Any], path: Path) -> None:
    """The file must hold exactly SVD-XT's UNet: say what differs, with an example, instead of torch's full list."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    if missing or unexpected or wrong:
        problems = [f"{len(keys)} {what} (e.g. {keys[0]})" for keys, what in
                    ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of another shape")) if keys]
        raise ModelLoadError(f"{path.name} does not fit this pipeline's UNet: tensors {', '.join(problems)}. Use the "
                             f"file from {HUB_ID} with SVD-XT (25 frames).")
