"""Freed memory goes back to the system between requests, so the server does not keep what a burst needed."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 127 MiB freed in the middle of glibc's heap (one block stays above it, so glibc keeps the space), then trimmed.
PROBE = textwrap.dedent("""
    import ctypes
    from svd_demo.allocator import release_free_memory
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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_freed_heap_memory_is_returned():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    before, after = map(int, out.stdout.split())
    assert before - after >= 100, (before, after)
