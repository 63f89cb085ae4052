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
# `fast` is `high` plus regional torch.compile (opt-in: the first run at each size compiles). It needs what `high`
# needs, so an out-of-memory retry steps down from it to `balanced`; `auto` never picks it: compiling costs minutes.
SPEED_PROFILES = ("fast",)

GIB = 1024**3
# What each profile needs, in GiB of GPU memory this process can use, for SVD-XT in fp16 at 1024x576 and 25 frames
# (weights 4.2 GiB: UNet 1.52 B, VAE 98 M and image encoder 632 M parameters) and for SDXL at 1024x576 (weights
# 6.5 GiB). `high` counts every weight plus the working memory; the offloading profiles count the largest model and
# the working memory that their chunking leaves. ESTIMATES, read from the model sizes and published figures (diffusers
# documents SVD under 8 GB with offload + forward chunking + decode chunk 2); `python -m benchmarks.gpu` on a GPU
# measures each profile's peak (BENCHMARKS.md) and these values should follow those measurements.
NEED_GIB = {
    "svd": {"high": 18.0, "balanced": 10.0, "low": 6.0, "minimal": 2.5},
    "sdxl": {"high": 11.0, "balanced": 7.0, "low": 4.5, "minimal": 2.0},
}
# fp16 weights (GiB): what a resident pipeline keeps on the GPU while the other one runs.
WEIGHTS_GIB = {"svd": 4.2, "sdxl": 6.5}
# The CUDA context (and the allocator's slack) takes this much of a card's total before anything is loaded. A card
# sold as "24 GB" reports about 23.6 GiB in total, of which about 23 are free with no display attached.
CUDA_CONTEXT_GIB = 0.6


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
    compile: bool = False  # torch.compile of the UNet's repeated blocks (regional: compiles in ~1/10 the time)


PLANS: dict[str, MemoryPlan] = {
    "fast": MemoryPlan("fast", "none", False, 8, None, False, False, compile=True),
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
    """(total, usable) bytes of the CUDA device `device`, or None where it cannot be read (CPU, MPS).

    Usable is the free memory plus what this process's allocator already holds there: our own pipelines count as
    room, since each is judged as if alone (`keep_other_on_gpu` arbitrates between the two). Every call names the
    device: without it CUDA reads the current one, cuda:0, whatever GPU the pipeline is on.
    """
    if not device.startswith("cuda"):
        return None
    import torch

    index = torch.device(device)
    free, total = torch.cuda.mem_get_info(index)
    return total, free + torch.cuda.memory_reserved(index)


def need_gib(kind: str, profile: str) -> float:
    """The GPU memory a profile needs (`fast` is `high` plus compilation)."""
    return NEED_GIB[kind]["high" if profile in SPEED_PROFILES else profile]


def choose_profile(setting: str, device: str, memory: tuple[int, int] | None, kind: str = "svd") -> str:
    """The profile to use: the setting itself, or for `auto` the fastest one whose need fits the GPU.

    `memory` is (total, usable) bytes from `gpu_memory`. Usable memory is capped by the total less the CUDA context,
    so a figure read before the context existed does not overstate the room.
    """
    if setting != "auto":
        if setting not in PLANS:
            raise ValueError(f"Unknown memory profile {setting!r}: choose auto or one of {', '.join(PLANS)}.")
        return setting
    if memory is None:  # CPU and MPS share system memory: offloading would only add copies
        return "high"
    total, usable = memory
    usable = min(usable, total - CUDA_CONTEXT_GIB * GIB)
    return next((p for p in PROFILE_ORDER[:-1] if usable >= need_gib(kind, p) * GIB), PROFILE_ORDER[-1])


def keep_other_on_gpu(total_bytes: int, running: tuple[str, str], other: tuple[str, str],
                      dtype_bytes: int = 2) -> bool:
    """Whether the idle pipeline `other` may keep its weights on the GPU while `running` runs (both `(kind,
    profile)`) on a card of `total_bytes`.

    An offloading `other` keeps its weights in CPU memory between runs anyway. A fully resident one (`high`, `fast`)
    stays only if its weights, the running profile's whole need and the CUDA context fit the card together;
    otherwise it moves to the CPU first (and comes back when it is needed).
    """
    other_kind, other_profile = other
    if PLANS[other_profile].offload != "none":
        return True
    scale = dtype_bytes / 2  # the figures are for 16-bit weights
    need = (WEIGHTS_GIB[other_kind] + need_gib(*running)) * scale + CUDA_CONTEXT_GIB
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
    set_compiled_blocks(pipe.unet, plan.compile)
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


def set_compiled_blocks(unet: Any, enabled: bool) -> None:
    """Regional compilation of the UNet's repeated blocks, on or off (idempotent).

    Every instance of a block class shares one compiled-code cache (dynamo keys it by the class's `forward`), and
    SVD's instances differ in channels and branches: each distinct one is a recompile. dynamo gives up after 8 per
    cache and silently runs the rest eager, so the limit is raised to cover each instance once, plus once more when
    a new size turns the spatial dimensions dynamic (later sizes then reuse that graph). Channels-last is not used:
    it added stride recompiles and, on CPU, made each step several times slower.
    """
    import torch

    blocks = [m for m in unet.modules() if type(m).__name__ in _REPEATED_BLOCKS]
    if enabled:
        most = max((sum(type(b) is type(m) for b in blocks) for m in blocks), default=0)
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, 2 * most)
        config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 2 * len(blocks))
    for module in blocks:
        if enabled and getattr(module, "_compiled_call_impl", None) is None:
            module.compile()
        elif not enabled:
            module._compiled_call_impl = None  # back to eager
