"""The parts of the GPU benchmark in one ordered table (PARTS: run order is the order of importance, each part
keeps back time for the ones after it), and the loop that runs them under the budget's watchdog."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable

from benchmarks.gpu.config import NOT_RUN
from benchmarks.gpu.parts_other import part_caps, part_keyframes, part_sdxl, part_switch, part_upscale
from benchmarks.gpu.parts_profiles import (
    part_balanced,
    part_baseline,
    part_high,
    part_int8,
    part_low,
    part_minimal,
    part_warmup,
)
from benchmarks.gpu.parts_speed import part_cache, part_fast, part_lane
from benchmarks.gpu.runner import Runner

PARTS: dict[str, Callable[[Runner], None]] = {
    "warmup": part_warmup, "baseline": part_baseline, "high": part_high, "cache": part_cache, "lane": part_lane,
    "fast": part_fast, "balanced": part_balanced, "low": part_low, "caps": part_caps, "sdxl": part_sdxl,
    "minimal": part_minimal, "switch": part_switch, "upscale": part_upscale, "keyframes": part_keyframes,
    "int8": part_int8,  # last: quantizing the shared pipeline cannot be undone
}
PART_ORDER = tuple(PARTS)


def stop(bench: Runner, why: str) -> None:
    """The budget ran out (or a signal came): every row not measured says so, results written, exit 3."""
    stopped = f"{why} during part '{bench.part}', {time.time() - bench.part_since:.0f} s into it"
    bench.report.data["meta"]["stopped"] = stopped
    for row in bench.rows.values():
        if row["status"] == NOT_RUN:
            row["reason"] = stopped
    if bench.child_proc is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bench.child_proc.pid, signal.SIGKILL)
    bench.report.log(f"STOP: {stopped}; results written to {bench.report.out}")
    try:
        bench.report.save()
    finally:
        os._exit(3)


def run_part(bench: Runner, name: str) -> None:
    """One requested part: a failure is recorded for its rows and the run goes on; the results are written after."""
    if name not in bench.parts:
        return
    bench.part, bench.part_since = name, time.time()
    start = bench.report.elapsed()
    bench.report.log(f"--- part {name}: {max(0.0, bench.report.left()):.0f} s left, {bench.reserve():.0f} s kept for "
                     "later parts")
    status = "done"
    try:
        PARTS[name](bench)
    except Exception as exc:  # noqa: BLE001  one failed part must not cost the others their results
        bench.report.data["errors"][name] = traceback.format_exc()[-4000:]
        status = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        bench.report.log(f"part {name} {status}")
        bench.broken = True
    for row in bench.rows.values():
        if row["part"] == name and row["status"] == NOT_RUN:
            row.update(status="failed" if status != "done" else "skipped",
                       reason=status if status != "done" else "the part ended without measuring it")
    note = "; ".join(f"{k}: {v['status']}" for k, v in bench.rows.items() if v["part"] == name)
    bench.report.data["parts"][name] = {"status": status, "start_s": start, "took_s": bench.report.elapsed() - start,
                                        "note": note}
    bench.report.save()


def run(bench: Runner) -> int:
    """Set-up, then every part in PARTS' order, under a watchdog that stops the run at the budget (exit 3)."""
    timer = threading.Timer(max(0.0, bench.report.left()), stop, args=(
        bench, f"the time budget ({bench.report.budget_s:g} s) ran out"))
    timer.daemon = True
    timer.start()
    with contextlib.suppress(ValueError):  # only the main thread may set signal handlers
        signal.signal(signal.SIGTERM, lambda *_: stop(bench, "terminated by SIGTERM"))
    bench.report.save()
    bench.setup()
    bench.report.save()
    for name in PARTS:
        run_part(bench, name)
    bench.part = "end"
    bench.report.data["meta"]["done"] = True
    bench.report.save()
    timer.cancel()
    if bench.report.data.get("headline"):
        bench.report.log("HEADLINE " + bench.report.data["headline"])
    bench.report.log(f"done: results in {bench.report.out / 'results.json'} and {bench.report.out / 'summary.md'}")
    return 0
