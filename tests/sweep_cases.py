"""What the sweep tests share (local and on Ray): a tiny grid, the results CSV as rows, the command's parser."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from helpers import FAST

from svd_demo.cli.sweep import add_sweep_parser

TINY = {k: v for k, v in FAST.items() if k != "randomize_seed"}  # a sweep never randomizes
# 2 seeds x 2 motion buckets of one image: four tiny clips.
GRID = {**{k: [v] for k, v in TINY.items()}, "seed": [0, 1], "motion_bucket_id": [40, 200]}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m svd_demo")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    return parser
