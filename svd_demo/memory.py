"""Device, precision and GPU memory profiles: what each profile turns on, and which one `auto` picks.

SVD's temporal VAE has no slicing (`AutoencoderKLTemporalDecoder.enable_slicing` raises), so its memory knobs are
model / sequential CPU offload, UNet forward chunking and the decode chunk size. SDXL also gets VAE slicing/tiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PROFILE_ORDER = ("high", "balanced", "low", "minimal")  # each step trades speed for memory
# `fast` is `high` plus the opt-in speed options (channels-last, regional torch.compile). It needs what `high` needs,
# so an out-of-memory retry steps down from it to `balanced`; `auto` never picks it: compiling costs minutes first.
SPEED_PROFILES = ("fast",)

GIB = 1024**3
# `auto` picks the first profile whose need fits the GPU's free memory (GiB). SVD: estimates for SVD-XT in fp16 at
# 1024x576, 25 frames (weights 4.5 GB): high keeps everything on the GPU and decodes 8 frames at once; balanced
# offloads idle models to the CPU; low adds forward chunking and decodes 2 frames at once; minimal streams layer by
# layer. SDXL at 1024x576 (weights 7 GB in fp16) needs far less working memory than a 25-frame clip.
AUTO_THRESHOLDS_GIB = {
    "svd": {"high": 24.0, "balanced": 14.0, "low": 7.0},
    "sdxl": {"high": 12.0, "balanced": 8.0, "low": 5.0},
}
# fp16 weights (GiB) and the working memory a `high` run needs on top of them, for the residency policy.
WEIGHTS_GIB = {"svd": 4.5, "sdxl": 7.0}
WORKING_GIB = {"svd": 13.0, "sdxl": 3.0}
MARGIN_GIB = 1.5  # CUDA context, allocator fragmentation


@dataclass(frozen=True)
class MemoryPlan:
    """What a profile does to a pipeline."""

    profile: str
    offload: str  # "none" | "model" | "sequential"
    forward_chunking: bool
    decode_chunk_size: int  # frames decoded at once when the user leaves it at 0 (auto)
    max_decode_chunk: int | None  # a cap on what the user may ask for, so a profile keeps its promise
    vae_slicing: bool  # SDXL only
    vae_tiling: bool  # SDXL only
    channels_last: bool = False  # UNet convolutions in NHWC, which GPU convolution kernels prefer
    compile: bool = False  # torch.compile of the UNet's repeated blocks (regional: compiles in ~1/10 the time)


PLANS: dict[str, MemoryPlan] = {
    "fast": MemoryPlan("fast", "none", False, 8, None, False, False, channels_last=True, compile=True),
    "high": MemoryPlan("high", "none", False, 8, None, False, False),
    "balanced": MemoryPlan("balanced", "model", False, 4, None, True, False),
    "low": MemoryPlan("low", "model", True, 2, 2, True, True),
    "minimal": MemoryPlan("minimal", "sequential", True, 1, 1, True, True),
}


def resolve_device(setting: str) -> str:
    """auto -> cuda, then mps, then cpu; `cuda:N` names one GPU; a device that is not there is a clear error."""
    import torch

    setting = setting.strip()
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if setting == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    kind, _, index = setting.partition(":")
    if kind not in available or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"Unknown device {setting!r}: choose auto, cuda, cuda:N, mps or cpu.")
    if not available[kind] or (index and int(index) >= torch.cuda.device_count()):
        raise ValueError(f"Device {setting!r} was asked for but is not available on this machine "
                         f"(torch {torch.__version__}). Use --device auto.")
    return setting


def resolve_devices(setting: str) -> list[str]:
    """A comma-separated device setting (e.g. `cuda:0,cuda:1`): one pipeline set and one job at a time on each."""
    return [resolve_device(part) for part in setting.split(",") if part.strip()] or [resolve_device("auto")]


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    """fp16 on GPUs (half the memory, full speed), fp32 on CPU (fp16 matmuls are slow or missing there)."""
    import torch

    if setting == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[setting]


def gpu_memory(device: str) -> tuple[int, int] | None:
    """(total, free) bytes of the CUDA device, or None where it cannot be read (CPU, MPS)."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, total = torch.cuda.mem_get_info(torch.device(device))
    return total, free


def choose_profile(setting: str, device: str, memory: tuple[int, int] | None, kind: str = "svd") -> str:
    """The profile to use: the setting itself, or for `auto` the fastest one the free GPU memory allows."""
    if setting != "auto":
        if setting not in PLANS:
            raise ValueError(f"Unknown memory profile {setting!r}: choose auto or one of {', '.join(PLANS)}.")
        return setting
    if memory is None:  # CPU and MPS share system memory: offloading would only add copies
        return "high"
    _, free = memory
    for profile, need in AUTO_THRESHOLDS_GIB[kind].items():
        if free >= need * GIB:
            return profile
    return "minimal"


def keep_both_on_gpu(total_bytes: int, svd_profile: str, sdxl_profile: str, dtype_bytes: int = 2) -> bool:
    """Whether the SVD and SDXL pipelines can both stay resident on a GPU of `total_bytes`.

    Offloading profiles keep idle models in CPU memory anyway, so only two `high` pipelines compete for the GPU:
    they stay together when both sets of weights plus the larger working memory fit; otherwise the idle one
    leaves the GPU before the other runs (and comes back when it is needed).
    """
    if svd_profile != "high" or sdxl_profile != "high":
        return True
    scale = dtype_bytes / 2  # the estimates are for 16-bit weights
    need = (WEIGHTS_GIB["svd"] + WEIGHTS_GIB["sdxl"]) * scale + max(WORKING_GIB.values()) + MARGIN_GIB
    return total_bytes >= need * GIB


def step_down(profile: str) -> str | None:
    """The next profile that needs less memory, or None at the bottom."""
    if profile in SPEED_PROFILES:
        return "balanced"
    index = PROFILE_ORDER.index(profile)
    return PROFILE_ORDER[index + 1] if index + 1 < len(PROFILE_ORDER) else None


def decode_chunk(requested: int, plan: MemoryPlan, num_frames: int) -> int:
    """Frames to decode at once: the user's choice (0 = the profile's), capped by the profile and the clip."""
    chunk = requested or plan.decode_chunk_size
    if plan.max_decode_chunk is not None:
        chunk = min(chunk, plan.max_decode_chunk)
    return max(1, min(chunk, num_frames))


def apply_plan(pipe: Any, plan: MemoryPlan, device: str) -> None:
    """Put a loaded pipeline into the state a profile describes; safe to call again to switch profiles."""
    # Offload hooks from a previous profile must go first: model offload and `.to(device)` do not mix.
    pipe.remove_all_hooks()
    if device == "cpu" or plan.offload == "none":
        pipe.to(device)
    elif plan.offload == "model":
        pipe.to("cpu")
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to("cpu")
        pipe.enable_sequential_cpu_offload(device=device)
    set_forward_chunking(pipe.unet, plan.forward_chunking)
    set_speed_options(pipe.unet, channels_last=plan.channels_last, compile_blocks=plan.compile)
    vae = pipe.vae
    if hasattr(vae, "enable_tiling") and type(vae).__name__ == "AutoencoderKL":  # SDXL's VAE, not SVD's
        vae.enable_slicing() if plan.vae_slicing else vae.disable_slicing()
        vae.enable_tiling() if plan.vae_tiling else vae.disable_tiling()


def set_forward_chunking(unet: Any, enabled: bool) -> None:
    """Feed-forward layers one chunk at a time (less activation memory), or all at once.

    The SVD UNet has `enable_forward_chunking` but no `disable_...`, so switching off goes through the blocks' own
    setter, the same one `enable_forward_chunking` uses.
    """
    if enabled:
        unet.enable_forward_chunking()
        return
    for module in unet.modules():
        if hasattr(module, "set_chunk_feed_forward"):
            module.set_chunk_feed_forward(chunk_size=None, dim=0)  # keywords: the temporal block takes **kwargs


# The UNet blocks that repeat (SVD's spatio-temporal ones and SDXL's 2D ones): compiling these, not the whole UNet,
# gives nearly the same speed-up with a fraction of the compile time, and survives other inputs without recompiling
# the whole graph (a whole-UNet compile broke on a second, different input: diffusers issue 10317).
_REPEATED_BLOCKS = ("SpatioTemporalResBlock", "TransformerSpatioTemporalModel", "ResnetBlock2D",
                    "Transformer2DModel")


def set_speed_options(unet: Any, *, channels_last: bool, compile_blocks: bool) -> None:
    """Channels-last memory format and regional compilation, on or off (idempotent)."""
    import torch

    layout = torch.channels_last if channels_last else torch.contiguous_format
    for module in unet.modules():
        if isinstance(module, torch.nn.Conv2d):  # per layer: SVD's temporal layers hold 5-D weights
            module.to(memory_format=layout)
        if type(module).__name__ in _REPEATED_BLOCKS:
            if compile_blocks and getattr(module, "_compiled_call_impl", None) is None:
                module.compile()  # shapes differ per resolution: dynamo marks them dynamic instead of recompiling
            elif not compile_blocks:
                module._compiled_call_impl = None  # back to eager
