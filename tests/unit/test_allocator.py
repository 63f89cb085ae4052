"""Freed memory goes back to the system between requests, so the server does not keep what a burst needed; a
one-shot command keeps it for reuse instead."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from svd_demo.engine import allocator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# 127 MiB freed in the middle of glibc's heap (one block stays above it, so glibc keeps the space), then trimmed.
PROBE = textwrap.dedent("""
    import ctypes
    from svd_demo.engine.allocator import release_free_memory
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def rss_mb():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
    libc.free(libc.malloc(16 << 20))  # as after a first request: glibc now serves blocks below 16 MiB from its heap
    blocks = [libc.malloc(1 << 20) for _ in range(128)]
    for block in blocks:
        ctypes.memset(block, 1, 1 << 20)
    for block in blocks[:-1]:
        libc.free(block)
    print(rss_mb())
    release_free_memory()
    print(rss_mb())
""")


GLIBC_ONLY = pytest.mark.skipif(allocator._LIBC is None, reason="glibc malloc only")


@GLIBC_ONLY
def test_freed_heap_memory_is_returned():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    before, after = map(int, out.stdout.split())
    assert before - after >= 100, (before, after)


# A fresh process frees a 64 MiB block and an 8 MiB one: by default both go straight back to the system (each was its
# own mmap); after keep_freed_memory() the 8 MiB block stays in the heap for the next array of that size.
KEEP = textwrap.dedent("""
    import ctypes, sys
    from svd_demo.engine.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        keep_freed_memory()
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def rss_mb():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
    start = rss_mb()
    for size in (64 << 20, 8 << 20):
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
    print(rss_mb() - start)
""")


@GLIBC_ONLY
@pytest.mark.parametrize("mode, kept_mb", [("default", (0, 1)), ("keep", (7, 9))])
def test_a_one_shot_command_keeps_freed_blocks_for_reuse(mode, kept_mb):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", KEEP, mode], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env)
    assert kept_mb[0] <= int(out.stdout) <= kept_mb[1], out.stdout
