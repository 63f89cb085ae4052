"""The live preview's benchmark command runs and prints the figures BENCHMARKS.md records."""

from __future__ import annotations

import re


def test_preview_benchmark_prints_its_cost_per_step(tiny_models_dir, capsys):
    from benchmarks.preview import main

    assert main(["--svd-model", str(tiny_models_dir / "svd"), "--width", "256", "--height", "144", "--frames", "2",
                 "--steps", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"preview \(latents -> RGB.*\): \d+\.\d+ ms per preview, every 3 steps", out), out
    assert re.search(r"step without preview: \d+\.\d+ s \(median\); with: \d+\.\d+ s", out), out
    assert re.search(r"\d+\.\d+ % averaged over steps \(limit 5 %\)", out), out
