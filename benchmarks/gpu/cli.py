"""The GPU benchmark's command line, `python -m benchmarks.gpu` (also what `svd_demo bench` forwards to): the
parser, whose help is the package's docstring, and the run it starts."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import gpu  # the package's docstring is the help
from benchmarks.gpu.config import DEFAULT_BUDGET_S, DEFAULT_CAPS_GB, FAST_CAP_S, bench_config
from benchmarks.gpu.parts import PART_ORDER, run
from benchmarks.gpu.report import Report
from benchmarks.gpu.runner import Runner


def run_profiles(args: argparse.Namespace, t0: float) -> int:
    """The requested parts, in their run order, against the budget; 2 when the command line cannot start."""
    asked = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(asked) - set(PART_ORDER))
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; choose from {','.join(PART_ORDER)}", file=sys.stderr)
        return 2
    parts = [p for p in PART_ORDER if p in asked]
    report = Report(Path(args.out), args.t0 or t0, args.budget_s, tag="[fast child] " if args.child else "")
    try:
        config = bench_config(args)
    except ValueError as exc:
        report.data["meta"]["stopped"] = str(exc)
        report.save()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(Runner(config, report, parts, child=args.child, compare_frames=args.compare_frames))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=gpu.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="Time budget in seconds for the whole run, counted from --t0. Parts are run in order "
                             "of importance, each keeping back the least time the later ones need; a part that "
                             "does not fit shrinks its step count (extrapolated, said so) or is skipped with the "
                             "reason; at the budget a watchdog writes the results and exits with code 3. "
                             f"[default {DEFAULT_BUDGET_S:.0f}: a 9-minute device command with its start-up]")
    parser.add_argument("--t0", type=float, default=None,
                        help="Epoch seconds the budget counts from [default: the start of this command]; a "
                             "wrapper script passes its own start so that its set-up counts too.")
    parser.add_argument("--out", default="outputs/bench",
                        help="Folder for results.json, summary.md and progress.log, rewritten after every part "
                             "[default outputs/bench]")
    parser.add_argument("--parts", default=",".join(PART_ORDER),
                        help=f"Comma-separated subset of the parts, run in their fixed order [default "
                             f"{','.join(PART_ORDER)}]")
    parser.add_argument("--fast-cap-s", type=float, default=FAST_CAP_S,
                        help="Hard cap in seconds for the `fast` child process (build, compile warm-up, timed "
                             f"run); it is killed with its process group at the cap [default {FAST_CAP_S:.0f}]")
    parser.add_argument("--caps-gb", type=lambda t: [int(x) for x in t.split(",") if x],
                        default=list(DEFAULT_CAPS_GB), help="Card sizes (GB) to simulate with a per-process "
                        "memory cap [default 8,12,16,24]")
    parser.add_argument("--width", type=int, default=None, help="default 1024 on a GPU, 256 elsewhere")
    parser.add_argument("--height", type=int, default=None, help="default 576 on a GPU, 144 elsewhere")
    parser.add_argument("--frames", type=int, default=None, help="default 25 on a GPU, 2 elsewhere")
    parser.add_argument("--steps", type=int, default=None, help="default 25 on a GPU, 3 elsewhere")
    parser.add_argument("--sdxl-steps", type=int, default=None, help="default 30 on a GPU, 3 elsewhere")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the `fast` child process
    parser.add_argument("--compare-frames", default=None, help=argparse.SUPPRESS)  # the parent's `high` frames
    parser.add_argument("--svd-model", default="random",
                        help="'random' (SVD-XT's architecture built on a GPU, tiny models elsewhere) or a model "
                             "folder/id.")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu: any CUDA device is a GPU")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.gpu [options]`: the exit code (0 done, 3 stopped at the budget, 2 could not start)."""
    t0 = time.time()
    return run_profiles(build_parser().parse_args(argv), t0)
