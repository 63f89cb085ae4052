"""`python -m benchmarks.gpu`: the time-boxed profiles run on CPU (tiny models), its budget, and its GPU branch
(any `cuda`/`cuda:N` device, every CUDA call given the device), checked with mocks where no GPU is present."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import gpu
from benchmarks.gpu.cli import build_parser
from benchmarks.gpu.config import (
    CACHE_ROWS,
    DEFAULT_CAPS_GB,
    FAST_MIN_S,
    LANE_STEPS,
    PART_MIN_S,
    SVD_ROWS,
    BenchConfig,
    bench_config,
    row_parts,
)
from benchmarks.gpu.device import DeviceOps, is_gpu, run_capped
from benchmarks.gpu.models import build_full_size_sdxl, build_full_size_svd
from benchmarks.gpu.parts import PART_ORDER, run_part
from benchmarks.gpu.report import Report, speed_options_markdown
from benchmarks.gpu.runner import Runner

STAMP = re.compile(r"^\[\d{2}:\d{2}:\d{2} \+\d+\.\ds\] ")
REPO = Path(__file__).resolve().parents[2]


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_help_documents_the_time_budget_and_svd_demo_bench_says_where_it_is(capsys):
    from benchmarks.gpu.cli import main as gpu_main
    from svd_demo.cli.commands import main

    assert main(["bench", "--help"]) == 2  # the app does not reach into the repository for it
    assert "python -m benchmarks.gpu" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        gpu_main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "python -m benchmarks.gpu" in text
    assert "--budget-s" in text and "[default 530" in text and "watchdog" in text
    assert "results.json" in text and "summary.md" in text and "--fast-cap-s" in text


def test_cpu_run_writes_every_row_with_timestamps(tmp_path):
    out = tmp_path / "bench"
    result = run_bench("--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    summary = (out / "summary.md").read_text()
    rows = data["rows"]
    assert list(rows) == list(row_parts(DEFAULT_CAPS_GB))
    for name, row in rows.items():
        assert row["status"] == "ok" or (row["status"] in ("skipped", "failed") and row["reason"]), (name, row)
    for name in ("warmup", "baseline", "high", "cache", "lane", "balanced", "low", "minimal", "sdxl", "switch",
                 "cap-8GB", "cap-24GB", "preview", "keyframes"):
        assert rows[name]["status"] == "ok", (name, rows[name])
    assert rows["keyframes"]["step_ratio_vs_high"] > 0 and "peak_alloc_gib" not in rows["keyframes"]  # a CPU
    assert rows["fast"]["status"] == "skipped" and "GPU" in rows["fast"]["reason"]
    assert rows["fast"]["child_exit"] == "0"  # it came back from the child process
    assert (out / "fast-child" / "results.json").exists()
    assert rows["minimal"]["steps_run"] == 2 and "extrapolated" not in rows["high"]
    assert "ran 2 of 3 steps" in rows["minimal"]["extrapolated"] and "ran 2 of 3 steps" in summary
    assert rows["cap-8GB"]["auto"] in SVD_ROWS and rows["cap-8GB"]["ran"] == rows["cap-8GB"]["auto"]
    # fp8 (low) and int8 change the pixels: measured against high's frames when both ran every step.
    assert rows["low"]["steps_run"] == 3 and 0 < rows["low"]["psnr_vs_high_db"] < float("inf")
    if importlib.util.find_spec("torchao") or os.environ.get("CI") == "true":  # CI installs it
        assert rows["int8"]["status"] == "ok" and rows["int8"]["psnr_vs_high_db"] is not None
    else:
        assert rows["int8"]["status"] == "skipped" and "pip install torchao" in rows["int8"]["reason"]
    assert rows["minimal"]["psnr_vs_high_db"] is None  # 2 of 3 steps: not comparable
    assert data["meta"]["done"] and data["meta"]["stopped"] is None and data["headline"]
    assert list(data["parts"]) == list(PART_ORDER)
    assert rows["lane"]["steps_run"] == LANE_STEPS and rows["cache"]["app_timings"]["denoise_s"] > 0
    for row, (interval, branch) in CACHE_ROWS.items():  # a row per feature cache setting
        assert 0 < rows[row]["ssim_vs_high"] <= 1 and rows[row]["speedup_vs_high"] > 0
        assert (rows[row]["interval"], rows[row]["branch"]) == (interval, branch), row
    assert list(CACHE_ROWS.values()) == [(3, 0), (2, 1)]
    for label in ("## Headline", "diffusers recipe", "| minimal |", "| cap-16GB |", "## SDXL still", "## Parts",
                  "## Speed options", "| feature cache", "## Keyframes to video", "| keyframes | ok |",
                  "live preview (latents -> RGB every 3 steps): ok"):
        assert label in summary
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(lines) > 10 and all(STAMP.match(line) for line in lines)
    assert any("[fast child]" in line for line in lines)
    logged = (out / "progress.log").read_text().splitlines()
    assert logged and all(STAMP.match(line) for line in logged)


def test_a_saved_model_and_a_subset_of_parts(tiny_models_dir, tmp_path):
    result = run_bench("--out", str(tmp_path), "--svd-model", str(tiny_models_dir / "svd"), "--parts", "warmup",
                       "--caps-gb", "12")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["model"] == str(tiny_models_dir / "svd")
    assert [name for name, row in data["rows"].items() if row["status"] == "ok"] == ["warmup"]
    others = [row for name, row in data["rows"].items() if name != "warmup"]
    assert others and all(row["reason"] == "not in --parts" for row in others)
    assert set(data["rows"]) >= {"cap-12GB", "cap-12GB-high"} and list(data["parts"]) == ["warmup"]


def test_a_spent_budget_stops_the_run_with_exit_3_and_writes_both_files_with_reasons(tmp_path):
    """The budget counts from --t0: one that ran out before the command started leaves the watchdog no time, so it
    stops the run at once, whatever part is running, and exits 3 with every row saying why it was not measured."""
    out = tmp_path / "bench"
    result = run_bench("--out", str(out), "--budget-s", "1", "--t0", str(time.time() - 60), timeout=120)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert "time budget (1 s) ran out" in data["meta"]["stopped"] and not data["meta"]["done"], data["meta"]
    assert "STOPPED" in (out / "summary.md").read_text()
    for name, row in data["rows"].items():
        assert row["status"] != "ok" and row["reason"], (name, row)


def test_every_part_has_a_time_budget_and_a_line_in_the_help_in_run_order():
    assert set(PART_MIN_S) == set(PART_ORDER)  # reserve() keeps time back for every later part
    assert re.findall(r"^  (\w+) ", gpu.__doc__, flags=re.MULTILINE) == list(PART_ORDER)


def test_parts_that_do_not_fit_are_skipped_with_the_reason(tmp_path):
    """In process, without models: with no time left every part skips before building anything."""
    config = BenchConfig(device="cpu", dtype="auto", width=256, height=144, frames=2, steps=3, few_steps=2,
                               sdxl_steps=3, caps_gb=(8, 24), svd_model="random", fast_cap_s=60)
    report = Report(tmp_path, t0=time.time(), budget_s=0.0)
    runner = Runner(config, report, list(PART_ORDER))
    for part in PART_ORDER:
        run_part(runner, part)
    assert runner.pipe is None
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert set(rows) == set(row_parts((8, 24)))
    for name, row in rows.items():
        assert row["status"] == "skipped", (name, row)
        assert any(why in row["reason"] for why in ("not enough time", "could be given", "already picks high"))
    assert "not enough time" in (tmp_path / "summary.md").read_text()


def test_a_fast_child_killed_at_its_cap_leaves_a_failed_row_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(FAST_MIN_S, False, 0.0)
    config = BenchConfig(device="cpu", dtype="auto", width=256, height=144, frames=2, steps=3, few_steps=2,
                               sdxl_steps=3, caps_gb=(8,), svd_model="random", fast_cap_s=0.3)
    report = Report(tmp_path, t0=time.time(), budget_s=100.0)
    runner = Runner(config, report, ["fast"])
    run_part(runner, "fast")  # the child cannot even import torch in 0.3 s
    row = json.loads((tmp_path / "results.json").read_text())["rows"]["fast"]
    assert row["status"] == "failed" and row["child_exit"] == "killed at the cap", row
    assert "left no results" in row["reason"] and runner.child_proc is None


def test_a_part_keeps_time_for_the_later_parts_and_shrinks_its_steps(tmp_path):
    config = BenchConfig(device="cuda:0", dtype="auto", width=1024, height=576, frames=25, steps=25,
                               few_steps=3, sdxl_steps=30, caps_gb=(8,), svd_model="random", fast_cap_s=170)
    report = Report(tmp_path, t0=time.time(), budget_s=300.0)
    runner = Runner(config, report, list(PART_ORDER))
    runner.part = "balanced"
    assert runner.reserve() == sum(PART_MIN_S[p] for p in ("low", "caps", "sdxl", "minimal", "switch",
                                                                 "upscale", "keyframes", "int8"))
    room = report.left() - runner.reserve()
    assert runner.steps_that_fit(lambda n: n * room / 12, 3, 25) == 10  # 15 steps would not fit, 10 do
    assert runner.steps_that_fit(lambda n: room + 1, 3, 25) == 0
    runner.parts = ["balanced"]
    assert runner.reserve() == 0


def test_the_full_size_architectures_match_the_published_ones():
    """Built on the meta device (no memory, no weights): the parameter counts of SVD-XT and SDXL base 1.0."""
    def millions(model: torch.nn.Module) -> int:
        return round(sum(p.numel() for p in model.parameters()) / 1e6)

    svd = build_full_size_svd("meta", torch.float16)
    assert [millions(svd.unet), millions(svd.vae), millions(svd.image_encoder)] == [1525, 98, 632]
    sdxl = build_full_size_sdxl("meta", torch.float16)
    assert [millions(m) for m in (sdxl.unet, sdxl.text_encoder, sdxl.text_encoder_2, sdxl.vae)] == [2567, 123, 695, 84]
    # Every weight where it was built: `torch.Tensor([x])` (the temporal blocks' mix_factor) ignores the device
    # context, and a CPU weight in a GPU model fails the first forward.
    elsewhere = {name for pipe in (svd, sdxl) for name, part in pipe.components.items()
                 if isinstance(part, torch.nn.Module) and any(w.device.type != "meta" for w in part.parameters())}
    assert not elsewhere


def _patch_cuda(monkeypatch) -> list[tuple[str, tuple]]:
    """Fake torch.cuda memory/sync calls that record their arguments."""
    calls: list[tuple[str, tuple]] = []

    class Props:
        total_memory, major, minor, multi_processor_count = 141 * 2**30, 9, 0, 132

    def fake(name, result=None):
        def record(*args, **kwargs):
            calls.append((name, args + tuple(kwargs.values())))
            return result
        monkeypatch.setattr(torch.cuda, name, record)

    for name in ("synchronize", "reset_peak_memory_stats", "empty_cache", "set_per_process_memory_fraction"):
        fake(name)
    for name in ("max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved"):
        fake(name, 2**30)
    fake("mem_get_info", (100 * 2**30, 141 * 2**30))
    fake("get_device_properties", Props())
    fake("get_device_name", "Fake H200")

    class Device:
        def __init__(self, device):
            calls.append(("device", (device,)))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "device", Device)
    return calls


def test_any_cuda_device_takes_the_gpu_branch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    parser = build_parser()
    for setting, device in (("cuda:0", "cuda:0"), ("cuda:1", "cuda:1"), ("cuda", "cuda:1")):
        config = bench_config(parser.parse_args(["--device", setting]))
        assert config.device == device and config.gpu
        assert (config.width, config.height, config.frames, config.steps) == (1024, 576, 25, 25)
        assert config.part_min_s is PART_MIN_S
    cpu = bench_config(parser.parse_args(["--device", "cpu"]))
    assert not cpu.gpu and (cpu.width, cpu.height, cpu.frames) == (256, 144, 2)
    assert is_gpu("cuda:3") and not is_gpu("cpu") and not is_gpu("mps")


def test_every_cuda_call_is_given_the_device(monkeypatch):
    calls = _patch_cuda(monkeypatch)
    ops = DeviceOps("cuda:1")
    ops.sync()
    ops.reset_peaks()
    assert ops.peaks() == {"peak_alloc_gib": 1.0, "peak_reserved_gib": 1.0}
    assert ops.allocated_gib() == 1.0
    assert ops.context_bytes() == 40 * 2**30
    assert ops.describe()["gpu"] == "Fake H200"
    with ops.memory_cap(14 * 2**30):
        pass
    names = {name for name, _ in calls}
    assert {"synchronize", "reset_peak_memory_stats", "max_memory_allocated", "mem_get_info", "device",
            "set_per_process_memory_fraction", "get_device_properties", "get_device_name"} <= names
    for name, args in calls:
        if name != "empty_cache":  # takes no device: it runs inside `torch.cuda.device(...)`, recorded as "device"
            assert "cuda:1" in [str(a) for a in args], (name, args)
    fractions = [args[0] for name, args in calls if name == "set_per_process_memory_fraction"]
    assert fractions == [pytest.approx(14 / 141), 1.0]  # capped, then lifted

    calls.clear()
    cpu = DeviceOps("cpu")
    cpu.sync()
    cpu.reset_peaks()
    with cpu.memory_cap(2**30):
        assert cpu.peaks() == {} and cpu.context_bytes() == 0
    assert calls == []


# torch.cuda functions that read the *current* device unless given one, and how many arguments make them explicit.
_NEEDS_DEVICE = {"synchronize": 1, "reset_peak_memory_stats": 1, "max_memory_allocated": 1,
                 "max_memory_reserved": 1, "memory_allocated": 1, "memory_reserved": 1, "mem_get_info": 1,
                 "get_device_properties": 1, "get_device_name": 1, "set_per_process_memory_fraction": 2}


def test_bench_source_passes_the_device_to_every_cuda_memory_call():
    seen = 0
    files = sorted((REPO / "benchmarks" / "gpu").glob("*.py"))
    assert len(files) >= 10
    for node in (n for path in files for n in ast.walk(ast.parse(path.read_text()))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in _NEEDS_DEVICE and ast.unparse(node.func.value) == "torch.cuda"):
            seen += 1
            assert len(node.args) + len(node.keywords) >= _NEEDS_DEVICE[node.func.attr], ast.unparse(node)
    assert seen >= 10


def test_run_capped_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    rc = run_capped(["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], cap_s=1.5)
    assert rc is None and time.monotonic() - start < 10
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # gone, or a zombie waiting for init to reap it
        stat = Path(f"/proc/{grandchild}/stat")
        if not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the grandchild {grandchild} outlived the cap")
    assert run_capped(["true"], cap_s=30) == 0


def test_the_speed_options_table_reads_the_cache_lane_and_compiled_lane_rows():
    rows = {"cache": {"status": "ok", "steps_run": 25, "app_timings": {"denoise_s": 15.0}, "total_s": 19.0,
                      "denoise_speedup": 1.6, "speedup_vs_high": 1.4, "psnr_vs_high_db": 31.25,
                      "ssim_vs_high": 0.9512},
            "lane": {"status": "ok", "steps_run": 4, "app_timings": {"denoise_s": 2.0}, "total_s": 5.5,
                     "denoise_speedup": 12.0, "speedup_vs_high": 4.8},
            "fast": {"status": "ok", "lane_total_s": 4.25, "lane_note": "compile warm-up 40.0 s"}}
    text = "\n".join(speed_options_markdown(rows, {"frames": 25, "size": "1024x576", "steps": 25}))
    assert ("| feature cache (interval 3, branch 0: DeepCache's SVD setting, the default) | ok | 25 | 15.00 | 19.0 | "
            "1.60 / 1.40 | 31.2 | 0.951 |") in text
    assert "| feature cache (interval 2, branch 1: the earlier default) | None |" in text  # a row per setting
    assert "| AnimateLCM lane (4 steps, guidance 1) vs 25-step high | ok | 4 | 2.00 | 5.5 | 12.00 / 4.80 |" in text
    assert "| AnimateLCM lane on 'fast' (compiled) | ok | 4 | | 4.2 |" in text and "compile warm-up 40.0 s" in text
    assert "not run" in "\n".join(speed_options_markdown({}, {}))
