"""Waits that Ctrl-C can end: for a worker's result, or for the next item a worker thread produces.

The kernel gives a process's SIGINT to any of its threads, and CPython runs the Python handler (KeyboardInterrupt)
on the main thread only, when it next runs Python code. A main thread asleep in a plain wait (`Future.result()`,
`Queue.get()`) is not woken when the signal lands on a busy worker, so Ctrl-C took effect only when the worker's
job ended: a whole download and generation later. These waits wake every `POLL_S` seconds to let the handler run.
"""

from __future__ import annotations

import queue
from concurrent.futures import Future, wait
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.2
"""How long Ctrl-C may wait to be noticed."""


def result(future: Future[T]) -> T:
    """`future.result()`, interruptible by Ctrl-C whichever thread the signal lands on."""
    while not future.done():
        wait([future], timeout=POLL_S)
    return future.result()


def next_item(items: queue.Queue[T]) -> T:
    """`items.get()`, interruptible by Ctrl-C whichever thread the signal lands on."""
    while True:
        try:
            return items.get(timeout=POLL_S)
        except queue.Empty:
            continue
