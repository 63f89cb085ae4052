"""glibc malloc policy: give freed memory back between server requests; keep it in a one-shot command.

glibc serves a large allocation with its own ``mmap`` at first, but every such block freed raises the threshold (up
to 32 MiB), so after the first requests the frames, images and tensors of a few MiB each come from malloc's heaps
instead; freed there, the memory stays with the process. With Gradio's worker threads, the encoder and the GPU thread
all allocating, the server grew in steps that never came back: 729 -> 1332 MB over the 56 requests of the load test.
Trimming the heaps after each model job and at the start of each request keeps it at 655-734 MB (BENCHMARKS.md,
"Load"). Pinning the threshold instead (``MALLOC_MMAP_THRESHOLD_=131072`` in the environment) keeps it flatter still
(617-658 MB, peak 842 instead of 1158) but cost a fifth to a third of the load test's throughput.

A short command that allocates the same few sizes over and over (``python -m svd_demo interpolate``: full-size
maps, warps and frames for every output frame) wants the opposite: each block handed back to the system costs page
faults when it is mapped again: 0.13-0.2 s of system time per 1024x576 clip of 29 frames (BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import os


def _glibc() -> ctypes.CDLL | None:
    try:
        is_glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a glibc system (macOS, musl, Windows)
        return None
    return ctypes.CDLL(None) if is_glibc else None


_LIBC = _glibc()
_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger values on 64-bit


def release_free_memory() -> None:
    """Return the malloc heaps' free pages to the system (``malloc_trim``); a no-op off glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def keep_freed_memory() -> None:
    """For a one-shot command: blocks up to 32 MiB come from the heap and freed ones stay there for reuse (no
    ``mmap``/``munmap`` and page faults for every big array). The memory goes back when the process exits."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
