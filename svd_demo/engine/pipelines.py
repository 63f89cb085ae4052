"""The pipeline cache: each pipeline is loaded lazily, once, behind one lock, and switched or freed on demand.

Pipelines are not thread-safe (shared between threads, a tiny SVD failed 19-29 of 45 calls), so the same lock that
guards loading also guards every generation: `with cache.gpu_lock:` around a whole run.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from svd_demo.core import waiting
from svd_demo.core.errors import ModelLoadError, UserFacingError
from svd_demo.core.models import (
    SDXL_PRESETS,
    SVD_PRESETS,
    is_animatelcm,
    is_tiny_model,
)
from svd_demo.core.settings import Settings
from svd_demo.engine.allocator import release_free_memory
from svd_demo.engine.animatelcm import load_pipeline as load_animatelcm
from svd_demo.engine.hub import ProgressCallback, local_path
from svd_demo.engine.load_errors import explain_load_error
from svd_demo.engine.memory import (
    PLANS,
    MemoryPlan,
    apply_plan,
    choose_profile,
    gpu_memory,
    keep_other_on_gpu,
    quantization_config,
    remove_offloading,
    resolve_device,
    resolve_dtype,
)

log = logging.getLogger("svd_demo")
T = TypeVar("T")


@dataclass
class LoadedPipeline:
    """A loaded pipeline and how it was set up."""

    kind: str  # "svd" | "sdxl"
    model_ref: str
    pipe: Any
    device: str
    dtype: Any
    profile: str  # the profile chosen at load; `current_profile` may be lower after an out-of-memory retry
    load_seconds: float
    revision: str | None
    random_weights: bool
    current_profile: str = ""
    quantize: str = "none"  # `--quantize`: int8 UNet weights, fixed at load
    resident: bool = True  # weights where the profile puts them; False while moved out to make room for the other
    lora_adapters: dict[str, str] = field(default_factory=dict)  # LoRA reference -> its adapter on `pipe` (lora.py)

    @property
    def plan(self) -> MemoryPlan:
        return PLANS[self.current_profile]


def _revision(pipe: Any) -> str | None:
    """The hub commit a pipeline came from (its snapshot folder's name), or None for local folders."""
    path = str(getattr(pipe, "name_or_path", "") or pipe.config.get("_name_or_path", ""))
    match = re.search(r"snapshots/([0-9a-f]{40})", path)
    return match.group(1) if match else None


class PipelineCache:
    """Holds at most one pipeline per kind; a different model replaces the previous one once it has been read."""

    def __init__(self, settings: Settings, device: str | None = None) -> None:
        self.settings = settings
        self._device = device  # None: resolve the setting (a single device)
        self.gpu_lock = threading.RLock()
        # All model work on one device runs on one thread. Run from whichever of the web server's 40 threads took
        # the request, each thread's allocations grew its own malloc arena, and the process's memory kept growing
        # (RSS 0.8 -> 2.0 GB over 56 tiny requests under load; flat in a single thread).
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gpu-{device or 'default'}")
        self._loaded: dict[str, LoadedPipeline] = {}
        self.loads = 0  # how many times a pipeline was read from disk (tests and the benchmark read it)

    @property
    def device(self) -> str:
        return self._device or resolve_device(self.settings.device)

    def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on this device's worker thread, under the lock, and return its result (or raise its error).

        The caller's context variables travel with it: Gradio finds a request's progress bar through them.
        """
        context = contextvars.copy_context()

        def locked() -> T:
            with self.gpu_lock:
                try:
                    return context.run(fn)
                finally:
                    release_free_memory()  # the job's tensors, freed: back to the system (see allocator.py)

        return waiting.result(self._worker.submit(locked))

    def loaded(self, kind: str) -> LoadedPipeline | None:
        return self._loaded.get(kind)

    def get(self, kind: str, model_ref: str, *, download: ProgressCallback | None = None,
            cancel: threading.Event | None = None) -> LoadedPipeline:
        """The pipeline for `model_ref`, loading it on first use. Call with `gpu_lock` held (it is re-entrant).

        A hub model not yet in the cache is downloaded first (engine/hub.py): `download` gets its progress, and
        `cancel` stops it (the bytes so far stay in the cache for the next try).
        """
        with self.gpu_lock:
            device = self.device
            dtype = resolve_dtype(self.settings.dtype, device)
            current = self._loaded.get(kind)
            if current and (current.model_ref, current.device, current.dtype) == (model_ref, device, dtype):
                return current
            # drops `current` once the new one is read
            loaded = self._load(kind, model_ref, device, dtype, download, cancel)
            self._loaded[kind] = loaded
            return loaded

    def _load(self, kind: str, model_ref: str, device: str, dtype: Any, download: ProgressCallback | None = None,
              cancel: threading.Event | None = None) -> LoadedPipeline:
        start = time.perf_counter()  # the first load also imports diffusers: that is part of what it costs
        import torch

        if kind == "svd":
            from diffusers import StableVideoDiffusionPipeline as cls
        elif kind == "sdxl":
            from diffusers import StableDiffusionXLPipeline as cls
        else:
            raise ValueError(f"Unknown pipeline kind {kind!r}.")
        kwargs: dict[str, Any] = {"dtype": dtype}
        # The official repos ship fp16 weight files: half the download. Local folders and other ids may not.
        if dtype == torch.float16 and model_ref in {p.model_id for p in (*SVD_PRESETS, *SDXL_PRESETS)}:
            kwargs["variant"] = "fp16"
        try:
            quantized = quantization_config(self.settings.quantize)
        except ImportError as exc:
            raise ModelLoadError(str(exc)) from exc
        if quantized is not None:
            kwargs["quantization_config"] = quantized
        vae_ref = self.settings.sdxl_vae if kind == "sdxl" else ""
        try:
            if vae_ref:
                from diffusers import AutoencoderKL

                kwargs["vae"] = AutoencoderKL.from_pretrained(
                    local_path(vae_ref, progress=download, cancel=cancel), dtype=dtype)
        except UserFacingError:
            raise  # cancelled, or no room on the disk: already says what to do
        except Exception as exc:
            raise explain_load_error(kind, vae_ref, exc) from exc
        try:
            if kind == "svd" and is_animatelcm(model_ref):  # the 4-step lane: SVD-XT with a distilled UNet
                pipe = load_animatelcm(cls, model_ref, download=download, cancel=cancel, **kwargs)
            else:
                folder = local_path(model_ref, variant=kwargs.get("variant"), progress=download, cancel=cancel)
                pipe = cls.from_pretrained(folder, **kwargs)
        except UserFacingError:
            raise  # already says what to do (a load error, a cancel, no room on the disk)
        except Exception as exc:  # from_pretrained raises many types; each is explained, none is swallowed
            raise explain_load_error(kind, model_ref, exc) from exc
        pipe.set_progress_bar_config(disable=True)
        # Only now, with the new model read (into CPU memory), is the previous one dropped and its device memory
        # freed for the new one: a model that fails to load leaves the loaded one serving everybody else.
        self.unload(kind)
        # Read only when `auto` needs it: ZeroGPU's main process (fixed `high`) may not touch CUDA at all.
        memory = gpu_memory(device) if self.settings.memory_profile == "auto" else None
        profile = choose_profile(self.settings.memory_profile, device, memory, kind)
        apply_plan(pipe, PLANS[profile], device)
        seconds = time.perf_counter() - start
        self.loads += 1
        log.info("Loaded %s pipeline from %s in %.2f s", kind, model_ref, seconds)
        if memory is not None:
            log.info("GPU memory: %.1f GiB usable of %.1f GiB; memory profile %s", memory[1] / 2**30,
                     memory[0] / 2**30, profile)
        return LoadedPipeline(kind=kind, model_ref=model_ref, pipe=pipe, device=device, dtype=dtype, profile=profile,
                              load_seconds=seconds, revision=_revision(pipe),
                              random_weights=is_tiny_model(model_ref), current_profile=profile,
                              quantize=self.settings.quantize)

    def make_resident(self, kind: str) -> None:
        """Before running `kind`: if the two pipelines do not fit the GPU together, move the other one out first."""
        with self.gpu_lock:
            loaded = self._loaded[kind]
            if not loaded.device.startswith("cuda"):
                return
            other = self._loaded.get("sdxl" if kind == "svd" else "svd")
            if other is not None and other.resident:
                total = gpu_memory(loaded.device)[0]  # type: ignore[index]
                if not keep_other_on_gpu(total, (kind, loaded.current_profile), (other.kind, other.current_profile),
                                         loaded.dtype.itemsize):
                    other.pipe.to("cpu")
                    other.resident = False
                    free_memory(loaded.device)
                    log.info("Moved the %s pipeline to the CPU to make room for %s", other.kind, kind)
            if not loaded.resident:
                apply_plan(loaded.pipe, loaded.plan, loaded.device)
                loaded.resident = True

    def use_profile(self, loaded: LoadedPipeline, profile: str) -> None:
        """Switch a loaded pipeline to another memory profile in place (no reload)."""
        with self.gpu_lock:
            if loaded.current_profile != profile:
                apply_plan(loaded.pipe, PLANS[profile], loaded.device)
                loaded.current_profile = profile
                loaded.resident = True
                free_memory(loaded.device)

    def unload(self, kind: str) -> None:
        """Drop a pipeline and give its memory back."""
        with self.gpu_lock:
            loaded = self._loaded.pop(kind, None)
            if loaded is not None:
                remove_offloading(loaded.pipe)
                device = loaded.device
                del loaded
                free_memory(device)


def free_memory(device: str) -> None:
    """Return cached GPU blocks to the driver so another model (or another process) can use them."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        with torch.cuda.device(torch.device(device)):
            torch.cuda.empty_cache()
