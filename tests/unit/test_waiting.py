"""Ctrl-C ends a wait for a worker thread at once, whichever thread the kernel gives the signal to."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import queue, signal, sys, threading
from concurrent.futures import ThreadPoolExecutor
from svd_demo.core import waiting

stop, finished = threading.Event(), threading.Event()

def work():
    stop.wait(1)  # the main thread is asleep in its wait by now
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # the signal lands on this worker, as it may
    stop.wait(10)
    finished.set()

pool = ThreadPoolExecutor(1)
try:
    if sys.argv[1] == "result":
        waiting.result(pool.submit(work))
    else:
        items = queue.Queue()
        pool.submit(lambda: items.put(work()))
        waiting.next_item(items)
    print("no interrupt")
except KeyboardInterrupt:
    print("interrupted after the job ended" if finished.is_set() else "interrupted while the job ran")
finally:
    stop.set()
"""


@pytest.mark.parametrize("wait", ["result", "next_item"])
def test_ctrl_c_ends_the_wait_while_the_worker_still_runs(wait):
    done = subprocess.run([sys.executable, "-c", SCRIPT, wait], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted while the job ran", done.stdout + done.stderr[-2000:]
