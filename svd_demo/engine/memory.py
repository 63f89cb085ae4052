"""Device, precision and GPU memory profiles: what each profile turns on, and which one `auto` picks.

SVD's temporal VAE has no slicing (`AutoencoderKLTemporalDecoder.enable_slicing` raises), so its memory knobs are
model CPU offload, group offloading (block or leaf level, with a CUDA stream that copies the next group while the
current one computes), fp8 storage of the UNet's weights, UNet forward chunking and the decode chunk size. SDXL also
gets VAE slicing/tiling. int8 weights (torchao) are a load-time setting (`--quantize int8`), not a profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from svd_demo.core.settings import QUANTIZE

if TYPE_CHECKING:
    import torch

PROFILE_ORDER = ("high", "balanced", "low", "minimal")  # each step trades speed for memory
# `fast` is `high` plus regional torch.compile (opt-in: the first run at each size compiles). It needs what `high`
# needs, so an out-of-memory retry steps down from it to `balanced`; `auto` never picks it: compiling costs minutes.
SPEED_PROFILES = ("fast",)

GIB = 1024**3
# What each profile needs, in GiB of GPU memory this process can use, for SVD-XT in fp16 at 1024x576 and 25 frames
# (weights 4.2 GiB: UNet 1.52 B, VAE 98 M and image encoder 632 M parameters) and for SDXL at 1024x576 (weights
# 6.5 GiB). `high` counts every weight plus the working memory; `balanced` (model offload) the largest model and the
# working memory; `low` (block-level group offload) the UNet parts outside its down/up blocks plus two blocks in fp8
# (the one computing and the one the stream prefetches: 0.87 GiB, counted in BENCHMARKS.md) and the working memory
# that forward chunking and a decode chunk of 2 leave (about 4 GiB: diffusers documents SVD under 8 GB with model
# offload, chunking and decode chunk 2, of which 3 GiB are the fp16 UNet); `minimal` (leaf level) one layer's
# weights and the working memory of a 1-frame decode. ESTIMATES until measured: `python -m benchmarks.gpu` on a GPU
# measures each profile's peak (BENCHMARKS.md lists the rows still unmeasured) and these values should follow them.
NEED_GIB = {
    "svd": {"high": 18.0, "balanced": 10.0, "low": 5.0, "minimal": 3.0},
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
    offload: str  # "none" | "model" | "group_block" | "group_leaf"
    forward_chunking: bool
    decode_chunk_size: int  # frames decoded at once when the user leaves it at 0 (auto)
    max_decode_chunk: int | None  # a cap on what the user may ask for, so a profile keeps its promise
    vae_slicing: bool  # SDXL only
    vae_tiling: bool  # SDXL only
    compile: bool = False  # torch.compile of the UNet's repeated blocks (regional: compiles in ~1/10 the time)
    # UNet weights stored in float8_e4m3fn, cast up layer by layer: lossy (docs/memory-and-speed.md)
    fp8_storage: bool = False


PLANS: dict[str, MemoryPlan] = {
    "fast": MemoryPlan("fast", "none", False, 8, None, False, False, compile=True),
    "high": MemoryPlan("high", "none", False, 8, None, False, False),
    "balanced": MemoryPlan("balanced", "model", False, 4, None, True, False),
    "low": MemoryPlan("low", "group_block", True, 2, 2, True, True, fp8_storage=True),
    "minimal": MemoryPlan("minimal", "group_leaf", True, 1, 1, True, True, fp8_storage=True),
}


TORCHAO_PIN = "torchao==0.18.0"  # checked with torch 2.13 on CPU; the optional extra for --quantize int8


def unet_weights(profile: str, quantize: str) -> str | None:
    """How the UNet's weights are stored when they are not at the pipeline's dtype: "int8", "fp8" or None."""
    if quantize == "int8":
        return "int8"
    return "fp8" if PLANS[profile].fp8_storage else None


def pixel_note(profile: str, quantize: str) -> str | None:
    """What the user is told when a run's weights make its frames differ from the `high` profile's, or None."""
    weights = unet_weights(profile, quantize)
    if weights is None:
        return None
    how = "loaded in int8 (--quantize int8)" if weights == "int8" else f"stored in fp8 by the '{profile}' profile"
    return (f"The model's weights were {how} to save GPU memory: the result differs slightly from the 'high' "
            "profile's for the same seed (see docs/memory-and-speed.md, Memory profiles).")


def quantization_config(quantize: str) -> Any:
    """diffusers' `quantization_config` for `from_pretrained`: the UNet in int8 weight-only (torchao), or None.

    torchao takes a config object (a string is deprecated); it is optional, so its absence is a clear error.
    """
    if quantize == "none":
        return None
    if quantize not in QUANTIZE:
        raise ValueError(f"Unknown --quantize {quantize!r}: choose one of {', '.join(QUANTIZE)}.")
    try:
        from torchao.quantization import Int8WeightOnlyConfig
    except ImportError as exc:
        raise ImportError(f"--quantize int8 needs torchao: pip install {TORCHAO_PIN} (or start without "
                          "--quantize).") from exc
    from diffusers import PipelineQuantizationConfig, TorchAoConfig

    return PipelineQuantizationConfig(quant_mapping={"unet": TorchAoConfig(Int8WeightOnlyConfig())})


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
    # Offload hooks from a previous profile must go first: model offload, group offload and `.to(device)` do not mix
    # (diffusers refuses to add one kind of offload hook while the other is there).
    remove_offloading(pipe)
    if plan.offload != "none":
        pipe.to("cpu")  # before fp8 is switched on or off: its full-precision copy is kept in CPU memory
    set_fp8_storage(pipe.unet, plan.fp8_storage and not is_quantized(pipe.unet))
    if device == "cpu" or plan.offload == "none":
        pipe.to(device)
    elif plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        enable_group_offload(pipe, device, leaf=plan.offload == "group_leaf")
    set_forward_chunking(pipe.unet, plan.forward_chunking)
    set_compiled_blocks(pipe.unet, plan.compile)
    vae = pipe.vae
    if hasattr(vae, "enable_tiling") and type(vae).__name__ == "AutoencoderKL":  # SDXL's VAE, not SVD's
        vae.enable_slicing() if plan.vae_slicing else vae.disable_slicing()
        vae.enable_tiling() if plan.vae_tiling else vae.disable_tiling()


def _modules(pipe: Any) -> dict[str, Any]:
    import torch

    return {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}


def enable_group_offload(pipe: Any, device: str, *, leaf: bool) -> None:
    """Group offloading of every model of the pipeline: weights live in CPU memory and come to `device` one block
    (or, `leaf`, one layer) at a time.

    On CUDA the UNet's groups travel on a side stream, the next one while the current one computes, which is what
    makes block level nearly as fast as model offload. The VAE and image encoder run once per clip: they copy
    synchronously (with the stream, a group the prefetch order does not reach, such as the VAE's decoder, which
    the pipeline calls through `vae.decode`, not `forward`, would be used before its copy ends).
    """
    import torch
    from diffusers.hooks import apply_group_offloading

    onload = torch.device(device)
    for name, module in _modules(pipe).items():
        kwargs: dict[str, Any] = {"offload_type": "leaf_level"} if leaf else {
            "offload_type": "block_level", "num_blocks_per_group": 1,
            # The hooks sit on `forward`. A VAE is called through `encode`/`decode`, which call its children: each
            # child gets its own groups, or its weights would never reach the GPU. SDXL's VAE declares its own list.
            "block_modules": (getattr(module, "_group_offload_block_modules", None)
                              or [child for child, _ in module.named_children()]) if name == "vae" else None}
        apply_group_offloading(module, onload_device=onload, offload_device=torch.device("cpu"),
                               use_stream=onload.type == "cuda" and name == "unet", **kwargs)


def remove_offloading(pipe: Any) -> None:
    """Remove model offload hooks (accelerate's) and group offload hooks (diffusers'), leaving a plain pipeline.

    diffusers has no public way to disable group offloading; its own `_maybe_remove_and_reapply_group_offloading`
    removes these three hooks, and so do we. After a completed run every group is back in CPU memory; after a failed
    one some may still be on the GPU, which the caller's next `.to()` handles.
    """
    from diffusers.hooks import HookRegistry
    from diffusers.hooks.group_offloading import (
        _GROUP_OFFLOADING,
        _LAYER_EXECUTION_TRACKER,
        _LAZY_PREFETCH_GROUP_OFFLOADING,
        _is_group_offload_enabled,
    )

    pipe.remove_all_hooks()
    for module in _modules(pipe).values():
        if _is_group_offload_enabled(module):
            registry = HookRegistry.check_if_exists_or_initialize(module)
            for hook in (_GROUP_OFFLOADING, _LAYER_EXECUTION_TRACKER, _LAZY_PREFETCH_GROUP_OFFLOADING):
                registry.remove_hook(hook, recurse=True)


_FULL_PRECISION = "_svd_demo_full_precision"  # the UNet's own tensors while fp8 storage is on
_CASTING_HOOK = "layerwise_casting"  # diffusers.hooks.layerwise_casting._LAYERWISE_CASTING_HOOK


def is_quantized(model: Any) -> bool:
    """Whether a model's weights are quantized (int8 through torchao, at load or in place): they stay as they are."""
    return bool(getattr(model, "is_quantized", False)) or any(
        type(p).__module__.startswith("torchao") for p in model.parameters())


def fp8_storage_enabled(unet: Any) -> bool:
    return getattr(unet, _FULL_PRECISION, None) is not None


def set_fp8_storage(unet: Any, enabled: bool) -> None:
    """Store the UNet's weights in float8_e4m3fn (half of fp16) and cast each layer up to the UNet's dtype for its
    forward, or go back to the full-precision weights (idempotent).

    diffusers' default skip patterns keep the normalisation layers, embeddings and `proj_in`/`proj_out` at full
    precision. The cast is lossy and diffusers refuses to undo it; the original tensors are therefore kept in CPU
    memory (the UNet's size: 3 GiB for SVD-XT in fp16) while fp8 is on, and put back when a profile without fp8
    follows, so a profile switch never degrades the weights. Call with the weights in CPU memory.
    """
    import torch

    if enabled == fp8_storage_enabled(unet):
        return
    tensors = dict(unet.named_parameters()) | dict(unet.named_buffers())
    if enabled:
        full = {name: tensor.data.to("cpu") for name, tensor in tensors.items()}  # no copy when already there
        unet.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=unet.dtype)
        setattr(unet, _FULL_PRECISION, full)
        return
    for module in unet.modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook(_CASTING_HOOK) if registry is not None else None
        if hook is not None:
            hook.deinitalize_hook = lambda module: module  # its refusal guards the lossy cast, undone just below
            registry.remove_hook(_CASTING_HOOK, recurse=False)
    for name, tensor in getattr(unet, _FULL_PRECISION).items():
        tensors[name].data = tensor
    setattr(unet, _FULL_PRECISION, None)


def set_forward_chunking(unet: Any, enabled: bool) -> None:
    """Feed-forward layers one batch item at a time (less activation memory), or all at once.

    Through the blocks' own setter, the one SVD's `enable_forward_chunking()` calls with its defaults (chunk 1 over
    dim 0): SVD's UNet has no `disable_...`, and SDXL's `UNet2DConditionModel` has neither.
    """
    for module in unet.modules():
        if hasattr(module, "set_chunk_feed_forward"):  # keywords: the temporal block takes **kwargs
            module.set_chunk_feed_forward(chunk_size=1 if enabled else None, dim=0)


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
