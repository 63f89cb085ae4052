"""Parameter sweeps on tiny models, end to end: a real 2x2 sweep's videos, CSV and contact sheet (conftest.py's
done_sweep), a second run that skips everything, cancel, an interrupted item run again through the command line,
and sweeps through text to video and keyframes to video."""

from __future__ import annotations

import csv
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from sweep_cases import GRID, TINY, read_csv, sweep_parser

from svd_demo.batch.sweep import (
    expand_grid,
    run_sweep,
)
from svd_demo.core.errors import GenerationCancelled

ATTRIBUTE = re.compile(r'\b(src|href)="([^"]*)"')


def snapshot(directory: Path) -> dict[str, float]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in sorted(directory.rglob("*")) if p.is_file()}


class NeverRuns:
    """A studio that fails the test if anything is generated."""

    def image_to_video(self, *args, **kwargs):
        raise AssertionError("a finished item was generated again")

    def text_to_video(self, *args, **kwargs):
        raise AssertionError("a finished item was generated again")


def test_sweep_writes_videos_csv_and_contact_sheet(done_sweep):
    out, items, report, lines, seconds = done_sweep
    print(f"\n2x2 sweep: {seconds:.1f} s", *lines, sep="\n")  # shown with -s
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(
        f"{item.id}{suffix}" for item in items for suffix in (".mp4", ".json"))
    assert [row.status for row in report.rows] == ["ok"] * 4
    assert len(lines) == 4 and lines[0].startswith(f"[1/4] {items[0].id} photo.png motion_bucket_id=40 seed=0: ok")
    assert "4 ran, 0 skipped" in report.summary

    rows = read_csv(out / "results.csv")
    assert len(rows) == 4
    assert list(rows[0])[:3] == ["id", "image", "seed"] and "prompt" not in rows[0]
    for column in ["resolution", "aspect_mode", "num_frames", "num_inference_steps", "motion_bucket_id", "fps",
                   "noise_aug_strength", "min_guidance_scale", "max_guidance_scale", "decode_chunk_size",
                   "playback_fps", "loop", "model", "total_s", "denoise_s", "decode_s", "encode_s",
                   "peak_memory_mb", "memory_kind", "status", "video"]:
        assert column in rows[0], column
    assert [(r["seed"], r["motion_bucket_id"]) for r in rows] == [("0", "40"), ("1", "40"), ("0", "200"),
                                                                    ("1", "200")]
    for row, item in zip(rows, items, strict=True):
        assert row["id"] == item.id and row["image"] == "photo.png" and row["status"] == "ok"
        assert row["num_frames"] == "4" and row["fps"] == "7"  # resolved from the model, not blank
        assert float(row["total_s"]) > 0 and float(row["denoise_s"]) > 0 and float(row["encode_s"]) > 0
        assert row["memory_kind"] == "process_peak_rss" and float(row["peak_memory_mb"]) > 50
        assert row["video"] == f"videos/{item.id}.mp4"

    sheet = (out / "index.html").read_text()
    assert sheet.count("<video ") == 4
    sources = [value for name, value in ATTRIBUTE.findall(sheet) if name == "src"]
    assert sources == [f"videos/{item.id}.mp4" for item in items]
    assert all((out / src).is_file() for src in sources)
    for name, value in ATTRIBUTE.findall(sheet):  # self-contained: every link is relative, inside the folder
        assert "//" not in value and not value.startswith("/") and ":" not in value, (name, value)
    assert "http" not in sheet and "@import" not in sheet
    for tag in ["controls", "loop", "muted", "autoplay", "playsinline"]:
        assert all(tag in video for video in re.findall(r"<video [^>]*>", sheet))
    assert "<b>motion_bucket_id</b> 200" in sheet and "<b>seed</b> 1" in sheet
    assert "<b>num_frames</b>" not in sheet and "num_frames=4" in sheet  # fixed values are listed once


def test_a_second_run_skips_everything(done_sweep, tmp_path):
    out, items, first, _, _ = done_sweep
    again = tmp_path / "again"
    shutil.copytree(out, again)
    before = snapshot(again)
    started = time.perf_counter()
    lines: list[str] = []
    report = run_sweep(NeverRuns(), items, again, progress=lines.append)
    assert time.perf_counter() - started < 5  # about 0.2 s; generous for a busy machine
    assert [row.status for row in report.rows] == ["skipped"] * 4
    assert all(line.endswith("skipped (already done)") for line in lines)
    after = snapshot(again)
    assert after.keys() == before.keys()  # no new files
    assert {k: v for k, v in after.items() if k.startswith("videos")} == {
        k: v for k, v in before.items() if k.startswith("videos")}  # nothing rewritten
    rows, original = read_csv(again / "results.csv"), read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["skipped"] * 4
    strip = ("status",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in original]  # still complete, from the sidecars
    assert (again / "index.html").read_text().count("<video ") == 4


def test_cancel_stops_before_the_next_item_and_keeps_the_sheet(done_sweep, tmp_path):
    out, items, _, _, _ = done_sweep
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "results.csv").unlink()
    extra = expand_grid([items[0].image], {**GRID, "seed": [9]})  # 2 more items, never started
    stop = threading.Event()
    stop.set()
    with pytest.raises(GenerationCancelled, match="after 4 of 6 items"):
        run_sweep(NeverRuns(), [*items, *extra], again, cancel=stop)
    assert [r["status"] for r in read_csv(again / "results.csv")] == ["skipped"] * 4 + ["pending"] * 2


def test_an_interrupted_item_runs_again_through_the_cli(done_sweep, studio, tmp_path, capsys, monkeypatch):
    out, items, _, _, _ = done_sweep
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "videos" / f"{items[3].id}.json").unlink()  # killed between the MP4 and its sidecar
    photo = resumed / "photo.png"
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(photo)
    argv = ["sweep", "--images", str(photo), "--out", str(resumed), "--seeds", "0,1", "--motion-bucket-id", "40",
            "--motion-bucket-id", "200", "--resolution", "256", "--num-frames", "4", "--num-inference-steps", "2",
            "--svd-model", studio.settings.svd_model, "--device", "cpu"]
    made = []  # reuse the session's studio (its pipeline is loaded), but check what the command built it from
    monkeypatch.setattr("svd_demo.studio.studio.Studio", lambda settings: made.append(settings) or studio)
    args = sweep_parser().parse_args(argv)
    assert args.func(args) == 0
    assert made[0].svd_model == studio.settings.svd_model and made[0].device == "cpu"
    printed = capsys.readouterr().out
    assert "Sweep: 4 items (1 images, 0 prompts, 2 motion_bucket_id x 2 seed)" in printed
    lines = printed.splitlines()
    assert [line.endswith("skipped (already done)") for line in lines[1:4]] == [True] * 3
    assert lines[4].startswith(f"[4/4] {items[3].id}") and ": ok in" in lines[4]
    assert "1 ran, 3 skipped" in printed
    assert (resumed / "videos" / f"{items[3].id}.json").is_file()
    assert [r["status"] for r in read_csv(resumed / "results.csv")] == ["skipped"] * 3 + ["ok"]


def test_prompt_items_go_through_text_to_video(studio, tiny_models_dir, tmp_path):
    if not callable(getattr(studio, "text_to_video", None)):
        pytest.skip("this Studio has no text_to_video yet")
    sdxl = str(tiny_models_dir / "sdxl")
    items = expand_grid([], {**{k: [v] for k, v in TINY.items()}, "seed": [3], "sdxl_steps": [2]},
                        prompts=["a lighthouse <b>at</b> dusk"], model=studio.settings.svd_model, sdxl_model=sdxl)
    report = run_sweep(studio, items, tmp_path, sdxl_model=sdxl)
    assert [row.status for row in report.rows] == ["ok"], report.rows[0].error
    item = items[0]
    assert {p.name for p in (tmp_path / "videos").iterdir()} == {
        f"{item.id}.mp4", f"{item.id}.json", f"{item.id}-still.png", f"{item.id}-still.json"}
    (row,) = read_csv(tmp_path / "results.csv")
    assert row["prompt"] == "a lighthouse <b>at</b> dusk" and row["sdxl_steps"] == "2" and row["seed"] == "3"
    assert row["sdxl_model"] == sdxl and float(row["sdxl_s"]) > 0
    sheet = (tmp_path / "index.html").read_text()
    assert "Prompt: a lighthouse &lt;b&gt;at&lt;/b&gt; dusk" in sheet and sheet.count("<video ") == 1
    assert [r.status for r in run_sweep(NeverRuns(), items, tmp_path).rows] == ["skipped"]


def test_a_keyframes_sweep_runs_through_the_studio(studio, tmp_path):
    import json

    start, end = tmp_path / "start.png", tmp_path / "end.png"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(start)
    Image.new("RGB", (400, 300), (30, 30, 200)).save(end)
    items = expand_grid([start], {"seed": [1], "num_frames": [4], "num_inference_steps": [2], "resolution": [256]},
                        end_image=end, keyframe_guidance=["1", "2"], model=studio.settings.svd_model)
    report = run_sweep(studio, items, tmp_path / "out")
    assert [row.status for row in report.rows] == ["ok", "ok"]
    records = [json.loads(row.sidecar.read_text()) for row in report.rows]
    assert [r["kind"] for r in records] == ["keyframes_to_video"] * 2
    assert [r["parameters"]["keyframe_guidance"] for r in records] == [1.0, 2.0]
    with report.csv.open() as file:
        table = list(csv.DictReader(file))
    assert [(r["end_image"], r["keyframe_guidance"], r["loop_to_start"]) for r in table] == [
        ("end.png", "1.0", "False"), ("end.png", "2.0", "False")]
