"""Give freed memory back to the system between requests (glibc malloc).

glibc serves a large allocation with its own ``mmap`` at first, but every such block freed raises the threshold (up
to 32 MiB), so after the first requests the frames, images and tensors of a few MiB each come from malloc's heaps
instead; freed there, the memory stays with the process. With Gradio's worker threads, the encoder and the GPU thread
all allocating, the server grew in steps that never came back: 729 -> 1332 MB over the 56 requests of the load test.
Trimming the heaps after each model job and at the start of each request keeps it at 655-734 MB (BENCHMARKS.md,
"Load"). Pinning the threshold instead (``MALLOC_MMAP_THRESHOLD_=131072`` in the environment) keeps it flatter still
(617-658 MB, peak 842 instead of 1158) but cost a fifth to a third of the load test's throughput.
"""

from __future__ import annotations

import ctypes
import platform

_LIBC = ctypes.CDLL(None) if platform.libc_ver()[0] == "glibc" else None


def release_free_memory() -> None:
    """Return the malloc heaps' free pages to the system (``malloc_trim``); a no-op off glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
