"""Sweeps on Ray: a local Ray instance (2 CPUs, loopback, no dashboard) running the tiny models in two actors.

One Ray sweep (a 2 seeds x 2 motion buckets grid plus an unreadable image) is compared with the local sweep of the
same grid, row by row and pixel by pixel; a second one resumes it with a worker that dies mid-item. In CI (CI=true)
a missing Ray fails these tests instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from optional_deps import require
from PIL import Image
from sweep_cases import GRID, read_csv

from svd_demo.batch.ray import LOOPBACK_ENV, run_sweep_ray
from svd_demo.batch.sweep import expand_grid

# Ray reads this when it is first imported (by any test here): a local instance then binds every port to 127.0.0.1.
os.environ.setdefault(LOOPBACK_ENV, "0")

RUN_DEPENDENT = {"total_s", "load_s", "denoise_s", "decode_s", "encode_s", "peak_memory_mb"}  # per process


def decoded(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


@pytest.fixture(scope="module")
def ray_session():
    """A Ray instance for this module: 2 CPUs, every port on loopback, no dashboard."""
    ray = require("ray", 'pip install ray==2.60.0, or pip install -e ".[tests]"')
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ray_in")
    photo = folder / "photo.png"
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(photo)
    broken = folder / "broken.png"
    broken.write_bytes(b"not an image")
    return photo, broken


@pytest.fixture(scope="module")
def ray_sweep(ray_session, tiny_settings, inputs, tmp_path_factory):
    """The grid plus an unreadable image on two actors; the CSV is read when the first item finishes."""
    photo, broken = inputs
    items = [*expand_grid([photo], GRID, model=tiny_settings.svd_model),
             *expand_grid([broken], {**GRID, "seed": [0], "motion_bucket_id": [40]}, model=tiny_settings.svd_model)]
    out = tmp_path_factory.mktemp("ray_sweep")
    lines: list[str] = []
    early: list[list[str]] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("[") and not early:
            early.append([row["status"] for row in read_csv(out / "results.csv")])

    started = time.perf_counter()
    report = run_sweep_ray(items, out, tiny_settings, actors=2, progress=progress)
    return out, items, report, lines, early[0], time.perf_counter() - started


@pytest.fixture(scope="module")
def local_sweep(ray_sweep, tiny_settings, inputs, tmp_path_factory):
    """The same grid through the local sweep's command, in a fresh process with the actors' torch thread count: CPU
    numerics depend on it, and a process whose pipeline already ran with other threads does not match either."""
    out, items, _, _, _, _ = ray_sweep
    threads = json.loads((out / "videos" / f"{items[0].id}.json").read_text())["sweep"]["worker"]["torch_threads"]
    local = tmp_path_factory.mktemp("local_sweep")
    grid = [f"--{name.replace('_', '-')}={','.join(map(str, values))}" for name, values in GRID.items()]
    result = subprocess.run([sys.executable, "-m", "svd_demo", "sweep", "--images", str(inputs[0]), *grid,
                             "--svd-model", tiny_settings.svd_model, "--device", "cpu", "--out", str(local)],
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return local


def test_ray_sweep_gives_the_local_rows_and_frames(ray_sweep, local_sweep):
    out, items, report, lines, _, seconds = ray_sweep
    print(f"\nRay sweep of {len(items)} items: {seconds:.1f} s", *lines, sep="\n")  # shown with -s
    assert [row.status for row in report.rows] == ["ok"] * 4 + ["error"]
    ray_rows, local_rows = read_csv(out / "results.csv"), read_csv(local_sweep / "results.csv")
    assert list(ray_rows[0]) == list(local_rows[0])  # the same columns
    for ours, theirs in zip(ray_rows[:4], local_rows, strict=True):
        assert {k: v for k, v in ours.items() if k not in RUN_DEPENDENT} == {
            k: v for k, v in theirs.items() if k not in RUN_DEPENDENT}
        assert float(ours["total_s"]) > 0 and float(ours["peak_memory_mb"]) > 50
    for item in items[:4]:  # same seed, same frames: decoded MP4s equal pixel for pixel
        ray_video, local_video = out / "videos" / f"{item.id}.mp4", local_sweep / "videos" / f"{item.id}.mp4"
        assert np.array_equal(decoded(ray_video), decoded(local_video)), item.id
        ours = json.loads(ray_video.with_suffix(".json").read_text())
        theirs = json.loads(local_video.with_suffix(".json").read_text())
        assert ours["parameters"] == theirs["parameters"] and ours["video"] == theirs["video"]
        assert ours["sweep"]["attempt"] == 1 and ours["sweep"]["worker"]["node"] == "127.0.0.1"
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(
        f"{item.id}{suffix}" for item in items[:4] for suffix in (".mp4", ".json"))  # no temporary file left
    sheet = (out / "index.html").read_text()
    assert sheet.count("<video ") == 4 and "broken.png" in sheet
    assert "4 ran, 0 skipped (already done), 1 failed" in report.summary


def test_a_failed_item_is_recorded_and_progress_is_counted(ray_sweep, inputs):
    out, items, report, lines, early, _ = ray_sweep
    error = report.rows[4]
    assert error.item.image == inputs[1] and "could not be read as an image" in error.error
    row = read_csv(out / "results.csv")[4]
    assert row["status"].startswith("error: ") and row["image"] == "broken.png" and row["seed"] == "0"
    assert row["total_s"] == "" and row["video"] == ""
    finished = [line for line in lines if line.startswith("[")]
    assert len(finished) == 5 and all(" | done " in line for line in finished)
    assert finished[-1].endswith("| done 4, failed 1, remaining 0")
    assert all(", ETA " in line for line in finished[:-1])
    assert sum(line.startswith("Worker ") and " ready on 127.0.0.1" in line for line in lines) == 2
    # While it ran, the CSV held every item: the one finished, the rest pending or running.
    finished_then = [status for status in early if status == "ok" or status.startswith("error: ")]
    assert len(early) == 5 and len(finished_then) == 1
    assert set(early) - set(finished_then) <= {"pending", "running"}


def test_a_resumed_run_skips_finished_items_and_retries_a_killed_worker(ray_sweep, tiny_settings, tmp_path):
    out, items, _, _, _, _ = ray_sweep
    again = tmp_path / "again"
    shutil.copytree(out, again)
    killed, redone = items[1], items[3]  # seed 1 / bucket 40 (its worker dies mid-item), seed 1 / bucket 200
    for item in (killed, redone):
        (again / "videos" / f"{item.id}.json").unlink()  # as if the first run died before writing it
    kept = {p.name: p.stat().st_mtime_ns for p in (again / "videos").iterdir()}
    marker = tmp_path / "crashed"
    target = (killed.params.seed, killed.params.motion_bucket_id)

    def crash_once(settings):
        """The app's Studio, except that the worker process dies at the first denoising step of `target`, once."""
        from svd_demo.studio.studio import Studio

        class CrashOnce(Studio):
            def image_to_video(self, source, params, **kwargs):
                if (params.seed, params.motion_bucket_id) == target and not marker.exists():
                    def die(fraction, text):
                        if text.startswith("Denoising step"):
                            marker.write_text(str(os.getpid()))
                            os._exit(1)  # no cleanup, no exception: as a segfault or the OOM killer would

                    kwargs["progress"] = die
                return super().image_to_video(source, params, **kwargs)

        return CrashOnce(settings)

    lines: list[str] = []
    report = run_sweep_ray(items, again, tiny_settings, actors=2, progress=lines.append, studio_factory=crash_once)
    print(*lines, sep="\n")
    assert [row.status for row in report.rows] == ["skipped", "ok", "skipped", "ok", "error"]
    assert sum(line.endswith("skipped (already done)") for line in lines) == 2
    crashed_pid = int(marker.read_text())
    retried = [line for line in lines if "died" in line and "retrying (1/3 attempts used)" in line]
    assert len(retried) == 1 and killed.id in retried[0]
    record = json.loads((again / "videos" / f"{killed.id}.json").read_text())
    starters = {int(line.split("(pid ")[1].split(",")[0]) for line in lines if " ready on " in line}
    assert len(starters) == 2
    assert record["sweep"]["attempt"] == 2
    ran_on = record["sweep"]["worker"]["pid"]
    assert ran_on != crashed_pid and ran_on in starters  # the other actor, not the crashed one restarted
    rows = read_csv(again / "results.csv")
    assert [row["id"] for row in rows] == [item.id for item in items]  # counted once
    assert [row["status"] for row in rows][:4] == ["skipped", "ok", "skipped", "ok"]
    assert rows[4]["status"].startswith("error: ")  # an error is not "done": a rerun tries it again
    assert [line for line in lines if line.startswith("[")][-1].endswith("| done 4, failed 1, remaining 0")
    # The videos that were done are untouched, the two redone are back with their sidecars, and the pixels of the
    # killed item are those of the first run.
    after = {p.name: p.stat().st_mtime_ns for p in (again / "videos").iterdir()}
    assert {k: v for k, v in after.items() if k in kept and not k.startswith((killed.id, redone.id))} == {
        k: v for k, v in kept.items() if not k.startswith((killed.id, redone.id))}
    assert set(after) == set(kept) | {f"{killed.id}.json", f"{redone.id}.json"}
    assert np.array_equal(decoded(again / "videos" / f"{killed.id}.mp4"), decoded(out / "videos" / f"{killed.id}.mp4"))


def test_a_finished_sweep_needs_no_cluster(ray_sweep, tiny_settings, tmp_path, monkeypatch):
    out, items, _, _, _, _ = ray_sweep
    done = tmp_path / "done"
    shutil.copytree(out, done)
    monkeypatch.setattr("svd_demo.batch.ray.connect", lambda address: pytest.fail("Ray was contacted"))
    report = run_sweep_ray(items[:4], done, tiny_settings, address="ray://nowhere:1")
    assert [row.status for row in report.rows] == ["skipped"] * 4
    assert [row["status"] for row in read_csv(done / "results.csv")] == ["skipped"] * 4


def test_when_no_worker_can_start_the_items_say_why(ray_session, tiny_settings, inputs, tmp_path):
    def broken_studio(settings):
        raise RuntimeError("no such device on this node")

    items = expand_grid([inputs[0]], {**GRID, "motion_bucket_id": [40]}, model=tiny_settings.svd_model)
    lines: list[str] = []
    started = time.perf_counter()
    report = run_sweep_ray(items, tmp_path, tiny_settings, actors=2, progress=lines.append,
                           studio_factory=broken_studio)
    assert time.perf_counter() - started < 60  # no endless restarts of an actor that cannot be built
    assert [row.status for row in report.rows] == ["error", "error"]
    assert all("no Ray worker left" in row.error and "no such device on this node" in row.error
               for row in report.rows), report.rows[0].error
    assert sum(line.startswith("Worker ") and " is gone: " in line for line in lines) == 2
    assert [row["status"][:6] for row in read_csv(tmp_path / "results.csv")] == ["error:"] * 2
