"""A strict stand-in for Hugging Face's `spaces` package as it behaves on ZeroGPU, for tests.

It enforces ZeroGPU's rules rather than merely allowing our calls:
- before `import spaces`, the main process has no CUDA (`torch.cuda.is_available()` is False, as on the CPU build);
- importing it patches torch as the real package does: CUDA reports available, `.to("cuda")` keeps weights on the
  CPU (the real package records them and places them on the lent GPU per call), and every other CUDA call raises
  in the main process;
- a `GPU`-decorated call runs on another thread (the real one runs in a forked worker) with CUDA allowed, and its
  arguments and result are pickled on the way, as they cross a process boundary there.
`restore()` undoes the patches (the real package never does; tests must).
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections.abc import Callable
from typing import Any

import torch

GIB = 1024**3
_gpu_calls = 0  # GPU-decorated calls in progress: the whole worker process may use CUDA then
_lock = threading.Lock()
durations: list[int] = []  # what each call asked for


class ZeroGPUError(RuntimeError):
    pass


def _in_gpu_call(name: str) -> None:
    if not _gpu_calls:
        raise ZeroGPUError(f"torch.cuda.{name}() in the main process: on ZeroGPU, CUDA may only be used inside a "
                           "function decorated with @spaces.GPU")


def _guarded(name: str, value: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        _in_gpu_call(name)
        return value(*args, **kwargs)

    return call


def _on_cpu(device: Any) -> Any:
    text = str(device) if isinstance(device, (str, torch.device)) else ""
    return "cpu" if text.startswith("cuda") else device


_real_module_to = torch.nn.Module.to


def _module_to(self: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
    args = tuple(_on_cpu(a) for a in args)
    if "device" in kwargs:
        kwargs["device"] = _on_cpu(kwargs["device"])
    return _real_module_to(self, *args, **kwargs)


_PATCHES: dict[tuple[Any, str], Any] = {
    (torch.cuda, "is_available"): lambda: True,
    (torch.cuda, "device_count"): lambda: 1,
    (torch.cuda, "mem_get_info"): _guarded("mem_get_info", lambda device=None: (60 * GIB, 70 * GIB)),
    (torch.cuda, "memory_allocated"): _guarded("memory_allocated", lambda device=None: 0),
    (torch.cuda, "memory_reserved"): _guarded("memory_reserved", lambda device=None: 0),
    (torch.cuda, "max_memory_allocated"): _guarded("max_memory_allocated", lambda device=None: 0),
    (torch.cuda, "reset_peak_memory_stats"): _guarded("reset_peak_memory_stats", lambda device=None: None),
    (torch.cuda, "empty_cache"): _guarded("empty_cache", lambda: None),
    (torch.cuda, "synchronize"): _guarded("synchronize", lambda device=None: None),
    (torch.cuda, "set_device"): _guarded("set_device", lambda device: None),
    (torch.cuda, "device"): _guarded("device", lambda device: contextlib.nullcontext()),
    (torch.cuda, "get_device_properties"): _guarded("get_device_properties", lambda device=None: None),
    (torch.nn.Module, "to"): _module_to,
}
_ORIGINALS = {key: getattr(*key) for key in _PATCHES}
for (owner, name), patched in _PATCHES.items():
    setattr(owner, name, patched)


def restore() -> None:
    for (owner, name), original in _ORIGINALS.items():
        setattr(owner, name, original)


def GPU(fn: Callable[..., Any] | None = None, *, duration: Any = 60) -> Any:  # noqa: N802 - the real name
    """`@spaces.GPU`, `@spaces.GPU(duration=N)` or `spaces.GPU(duration=callable)(fn)`."""

    def decorate(task: Callable[..., Any]) -> Callable[..., Any]:
        def handler(*args: Any, **kwargs: Any) -> Any:
            global _gpu_calls
            asked = duration(*args, **kwargs) if callable(duration) else duration  # in the main process
            durations.append(int(asked))
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            outcome: dict[str, Any] = {}

            def worker() -> None:
                global _gpu_calls
                try:
                    outcome["value"] = pickle.dumps(task(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - handed back to the caller, as the real one does
                    outcome["error"] = exc

            with _lock:
                _gpu_calls += 1
            try:
                thread = threading.Thread(target=worker, name="zerogpu-worker")
                thread.start()
                thread.join()
            finally:
                with _lock:
                    _gpu_calls -= 1
            if "error" in outcome:
                raise outcome["error"]
            return pickle.loads(outcome["value"])

        return handler

    return decorate(fn) if fn is not None else decorate
