"""The device the benchmark measures: every CUDA call given that device (DeviceOps), and child processes run under
a hard cap (run_capped) with the repository importable."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GIB = 2**30

def env_with_repo() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH: a child `-m benchmarks.gpu` runs from any folder."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def is_gpu(device: str) -> bool:
    """Any CUDA device (`cuda`, `cuda:0`, `cuda:1`, ...) is a GPU: full-size models and CUDA statistics."""
    return device == "cuda" or device.startswith("cuda:")


class DeviceOps:
    """The CUDA calls the bench makes, each given the device (without one torch reads the *current* device, which
    need not be the benchmarked one); no-ops on other devices."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = is_gpu(device)

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def empty_cache(self) -> None:
        gc.collect()
        if self.cuda:
            import torch

            with torch.cuda.device(self.device):  # empty_cache takes no device: it frees the current one's
                torch.cuda.empty_cache()

    def reset_peaks(self) -> None:
        self.empty_cache()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)

    def peaks(self) -> dict[str, float]:
        if not self.cuda:
            return {}
        import torch

        return {"peak_alloc_gib": torch.cuda.max_memory_allocated(self.device) / GIB,
                "peak_reserved_gib": torch.cuda.max_memory_reserved(self.device) / GIB}

    def allocated_gib(self) -> float:
        if not self.cuda:
            return 0.0
        import torch

        return torch.cuda.memory_allocated(self.device) / GIB

    def context_bytes(self) -> int:
        """Device memory in use outside this process's allocator: the CUDA context, library workspaces."""
        if not self.cuda:
            return 0
        import torch

        free, total = torch.cuda.mem_get_info(self.device)
        return max(0, total - free - torch.cuda.memory_reserved(self.device))

    def total_bytes(self) -> int:
        import torch

        return torch.cuda.get_device_properties(self.device).total_memory

    def describe(self) -> dict[str, object]:
        if not self.cuda:
            return {"gpu": "CPU: tiny models, control flow only (no GPU figures)"}
        import torch

        props = torch.cuda.get_device_properties(self.device)
        return {"gpu": torch.cuda.get_device_name(self.device), "total_gib": props.total_memory / GIB,
                "capability": f"{props.major}.{props.minor}", "sms": props.multi_processor_count}

    @contextlib.contextmanager
    def memory_cap(self, nbytes: int) -> Iterator[None]:
        """At most `nbytes` for this process's allocator on the device (a smaller card), lifted afterwards."""
        if not self.cuda:
            yield
            return
        import torch

        torch.cuda.set_per_process_memory_fraction(min(1.0, nbytes / self.total_bytes()), self.device)
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, self.device)



def run_capped(cmd: list[str], cap_s: float, started: Callable[[subprocess.Popen], None] | None = None,
               env: dict[str, str] | None = None) -> int | None:
    """Run `cmd` in its own process group; at `cap_s` kill the whole group (compile workers included).

    Returns the exit code, or None when it was killed at the cap.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, env=env)
    if started is not None:
        started(proc)
    try:
        return proc.wait(timeout=cap_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None

