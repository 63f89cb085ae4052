"""`python -m benchmarks.app`: the start-up, overhead and requests benchmarks run and print their tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks import app

REPO = Path(__file__).resolve().parents[2]


def test_overhead_prints_every_stage(capsys):
    assert app.main(["overhead", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for stage in ("load + frame the photo", "NaN check + 8-bit", "encode + probe + sidecar", "total"):
        assert f"| {stage} |" in out



def test_the_second_request_loads_nothing(tiny_models_dir, capsys):
    assert app.main(["requests", "--svd-model", str(tiny_models_dir / "svd")]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 ")
            or line.startswith("| 2 ")]
    assert [[cell.strip() for cell in row[:2]] for row in rows] == [["1", "1"], ["2", "1"]]


def test_startup_times_both_apps(tiny_models_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # run elsewhere: an app may write caches into its folder
    result = subprocess.run([sys.executable, "-m", "benchmarks.app", "startup", "--repeats", "1", "--svd-model",
                             str(tiny_models_dir / "svd")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| bare gradio + torch |" in result.stdout and "| svd-demo app.py |" in result.stdout
    assert "ratio app / bare:" in result.stdout
