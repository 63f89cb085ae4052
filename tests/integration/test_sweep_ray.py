"""Sweeps on Ray: a local Ray instance (2 CPUs, loopback, no dashboard) running the tiny models in two actors.

One Ray sweep (a 2 seeds x 2 motion buckets grid plus an unreadable image) is compared with the local sweep of the
same grid, row by row and pixel by pixel; a second one resumes it with a worker that dies mid-item. The command line
and the actor sizing are checked without Ray; in CI (CI=true) a missing Ray fails these tests instead of skipping.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST
from optional_deps import require
from PIL import Image

from svd_demo.batch.ray import LOOPBACK_ENV, plan_actors, run_sweep_ray
from svd_demo.batch.sweep import expand_grid
from svd_demo.cli.sweep import add_sweep_parser
from svd_demo.core.errors import InputError

# Ray reads this when it is first imported (by any test here): a local instance then binds every port to 127.0.0.1.
os.environ.setdefault(LOOPBACK_ENV, "0")

TINY = {k: v for k, v in FAST.items() if k != "randomize_seed"}
GRID = {**{k: [v] for k, v in TINY.items()}, "seed": [0, 1], "motion_bucket_id": [40, 200]}
RUN_DEPENDENT = {"total_s", "load_s", "denoise_s", "decode_s", "encode_s", "peak_memory_mb"}  # per process


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def decoded(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


def sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m svd_demo")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    return parser


# ---------------------------------------------------------------------------------------------------------------
# Without Ray: flags, sizing, the optional extra


def test_actor_sizing():
    gpus = {"CPU": 64.0, "GPU": 8.0}
    assert plan_actors(gpus, "auto", 100) == plan_actors(gpus, "cuda:0,cuda:1", 100)
    assert (plan_actors(gpus, "auto", 100).count, plan_actors(gpus, "auto", 100).gpus) == (8, 1.0)  # one per GPU
    assert plan_actors(gpus, "auto", 3).count == 3  # never more actors than items
    assert plan_actors(gpus, "auto", 100, gpus_per_actor=0.5).count == 16  # two per GPU
    assert (plan_actors(gpus, "cpu", 100).count, plan_actors(gpus, "cpu", 100).gpus) == (1, 0.0)  # --device cpu
    cpu_only = {"CPU": 2.0}
    assert plan_actors(cpu_only, "auto", 16, actors=2, cpus_per_actor=1) == plan_actors(cpu_only, "cpu", 16, actors=2)
    with pytest.raises(InputError, match="between 0 and 1"):
        plan_actors(gpus, "auto", 10, gpus_per_actor=2)
    with pytest.raises(InputError, match="at least 1"):
        plan_actors(gpus, "auto", 10, actors=0)


def test_ray_flags_and_dispatch(photo, tmp_path, monkeypatch, capsys):
    calls = []

    def fake(items, out_dir, settings, **kwargs):
        calls.append((items, out_dir, settings, kwargs))
        from svd_demo.batch.sweep import SweepReport

        return SweepReport(rows=[], csv=Path(out_dir) / "results.csv", sheet=Path(out_dir) / "index.html",
                           elapsed_s=0.0)

    monkeypatch.setattr("svd_demo.batch.ray.run_sweep_ray", fake)
    monkeypatch.setattr("svd_demo.studio.studio.Studio", lambda settings: pytest.fail("the driver built a studio"))
    base = ["sweep", "--images", str(photo), "--out", str(tmp_path / "out"), "--seeds", "0,1", "--device", "cpu"]
    args = sweep_parser().parse_args([*base, "--ray"])
    assert args.ray == "" and args.func(args) == 0
    items, out_dir, settings, kwargs = calls[-1]
    assert len(items) == 2 and out_dir == str(tmp_path / "out") and settings.device == "cpu"
    assert kwargs["address"] is None and kwargs["retries"] == 2 and kwargs["actors"] is None
    args = sweep_parser().parse_args([*base, "--ray", "ray://head:10001", "--ray-actors", "3",
                                      "--ray-gpus-per-actor", "0.5", "--ray-retries", "1"])
    assert args.func(args) == 0
    kwargs = calls[-1][3]
    assert (kwargs["address"], kwargs["actors"], kwargs["gpus_per_actor"], kwargs["retries"]) == (
        "ray://head:10001", 3, 0.5, 1)
    args = sweep_parser().parse_args([*base, "--ray-actors", "3"])
    with pytest.raises(InputError, match="--ray-actors only apply with --ray"):
        args.func(args)
    assert len(calls) == 2


def test_without_ray_the_sweep_works_and_ray_says_how_to_install(photo, tmp_path):
    """Ray hidden from the interpreter: the parser builds, the default path is untouched, --ray names the extra."""
    code = ("import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError
            "from svd_demo.cli.commands import main\n"
            f"argv = ['sweep', '--images', {str(photo)!r}, '--out', {str(tmp_path / 'out')!r}, '--seeds', '0']\n"
            "assert main([*argv, '--dry-run']) == 0\n"
            "assert main([*argv, '--ray']) == 2\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--ray needs Ray, which is not installed: pip install ray==2.60.0" in result.stderr
    probe = ("import sys, argparse, svd_demo.cli.sweep as s; p = argparse.ArgumentParser(); "
             "s.add_sweep_parser(p.add_subparsers()); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # building the parser never imports Ray


def test_optional_dependency_helper(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI installs every test dependency"):
        require("svd_demo_no_such_module", "pip install nothing")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require("svd_demo_no_such_module", "pip install nothing")


def test_the_worker_sends_its_files_back_and_turns_any_exception_into_a_row(studio, photo, tmp_path):
    """SweepWorker.run in this process (no Ray): what an actor does with one item."""
    from svd_demo.batch.ray import SweepWorker, store_outcome

    worker = object.__new__(SweepWorker)  # its __init__ asks Ray for the actor's GPUs
    worker.scratch, worker.settings, worker.studio = tmp_path / "scratch", studio.settings, studio
    worker.info = {"node": "here", "pid": os.getpid()}
    (item,) = expand_grid([photo], {**{k: [v] for k, v in TINY.items()}, "seed": [5]}, model=studio.settings.svd_model)
    outcome = worker.run(replace(item, image=Path("/nowhere") / photo.name), photo.read_bytes(), 2, None, None)
    assert outcome.row.status == "ok" and outcome.trace == ""
    assert sorted(outcome.files) == [f"{item.id}.json", f"{item.id}.mp4"]
    assert not any((tmp_path / "scratch").iterdir())  # the scratch copies are gone once sent
    row = store_outcome(item, outcome, tmp_path / "out")
    record = json.loads((tmp_path / "out" / "videos" / f"{item.id}.json").read_text())
    assert row.video == tmp_path / "out" / "videos" / f"{item.id}.mp4" and row.item is item
    assert record["sweep"]["attempt"] == 2 and record["sweep"]["worker"]["node"] == "here"
    assert record["sweep"]["image"] == photo.name and record["parameters"]["seed"] == 5

    class Broken:
        settings = studio.settings

        def image_to_video(self, *args, **kwargs):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    worker.studio = Broken()
    outcome = worker.run(item, photo.read_bytes(), 1, None, None)
    assert outcome.row.status == "error" and outcome.files == {}
    assert outcome.row.error == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "Traceback" in outcome.trace and outcome.row.parameters["seed"] == 5
    assert not any((tmp_path / "scratch").iterdir())


# ---------------------------------------------------------------------------------------------------------------
# The driver's scheduling, against a stand-in for Ray (no processes: every call resolves at once)


class FakeRay:
    """Just enough of the ray module for `run_sweep_ray`; `script(actor, item, attempt)` says "ok" or "crash"."""

    def __init__(self, script, actors: int = 2) -> None:
        self.script, self.actors = script, actors
        self.calls: list[tuple[int, str, int]] = []  # (actor, item id, attempt)
        self.restarting: set[int] = set()
        self.handles: list[FakeHandle] = []
        self.killed: list[int] = []

    def cluster_resources(self):
        return {"CPU": float(self.actors)}

    def remote(self, cls):  # ray.remote(SweepWorker).options(...).remote(settings, factory) -> a handle
        return _FakeActorClass(self)

    def wait(self, refs, num_returns=1, timeout=None):  # calls finish in the order they were made
        first = min(refs, key=lambda ref: ref.number)
        return [first], [ref for ref in refs if ref is not first]

    def get(self, ref):
        if isinstance(ref.value, BaseException):
            raise ref.value
        return ref.value

    def kill(self, handle):
        self.killed.append(handle.number)

    def shutdown(self):
        pytest.fail("the driver shut down a Ray it did not start")


class _FakeActorClass:
    def __init__(self, fake: FakeRay) -> None:
        self.fake = fake

    def options(self, **kwargs):
        return self

    def remote(self, settings, factory):
        self.fake.handles.append(FakeHandle(self.fake, len(self.fake.handles)))
        return self.fake.handles[-1]


class _Ref:  # an ObjectRef: hashable, one per call, numbered in the order of the calls
    made = 0

    def __init__(self, value) -> None:
        self.value, self.number = value, _Ref.made
        _Ref.made += 1


class _Method:
    def __init__(self, function) -> None:
        self.remote = lambda *args: _Ref(function(*args))


class FakeHandle:
    """An actor whose calls resolve at once: `describe` answers "restarting" once after each crash."""

    def __init__(self, fake: FakeRay, number: int) -> None:
        self.fake, self.number = fake, number
        self.describe, self.run = _Method(self._describe), _Method(self._run)

    def _describe(self):
        from ray.exceptions import ActorUnavailableError

        if self.number in self.fake.restarting:
            self.fake.restarting.discard(self.number)
            return ActorUnavailableError("The actor is restarting", None)
        return {"node": "fake", "pid": self.number, "device": "cpu", "gpus": [], "torch_threads": 1}

    def _run(self, item, image, attempt, model_ref, sdxl_model):
        from ray.exceptions import ActorDiedError

        from svd_demo.batch.ray import ItemOutcome
        from svd_demo.batch.sweep import SweepRow

        assert image is not None and image[:4] == b"\x89PNG"  # the image's bytes travel with the item
        self.fake.calls.append((self.number, item.id, attempt))
        if self.fake.script(self.number, item, attempt) == "crash":
            self.fake.restarting.add(self.number)
            return ActorDiedError()
        record = {"kind": "image_to_video", "parameters": {**item.params.to_dict(), "model": model_ref},
                  "timings": {"total_s": 0.1},
                  "sweep": {"id": item.id, "attempt": attempt, "worker": {"pid": self.number}}}
        return ItemOutcome(row=SweepRow(item=item, status="ok"), worker={"pid": self.number}, seconds=0.1,
                           files={f"{item.id}.mp4": b"mp4", f"{item.id}.json": json.dumps(record).encode()})


@pytest.fixture
def fake_ray(monkeypatch):
    """A function that installs a FakeRay (given its script) for the next run_sweep_ray call."""
    require("ray.exceptions", "pip install ray==2.60.0")  # the real exception classes (nothing is started)
    monkeypatch.setattr("svd_demo.batch.ray.RESTART_POLL_S", 0)  # a restarting actor is asked again at once

    def install(script, actors: int = 2) -> FakeRay:
        fake = FakeRay(script, actors)
        monkeypatch.setattr("svd_demo.batch.ray.connect", lambda address: False)
        monkeypatch.setattr("svd_demo.batch.ray.import_ray", lambda: fake)
        return fake

    return install


def test_a_crashing_item_is_retried_on_the_other_actor_then_recorded(fake_ray, tiny_settings, photo, tmp_path):
    items = expand_grid([photo], {"seed": [0, 1, 2, 3]}, model=tiny_settings.svd_model)
    fake = fake_ray(lambda actor, item, attempt: "crash" if item.id == items[1].id else "ok")
    lines: list[str] = []
    report = run_sweep_ray(items, tmp_path, tiny_settings, actors=2, progress=lines.append)
    assert [row.status for row in report.rows] == ["ok", "error", "ok", "ok"]
    assert "the worker died 3 times while running this item (last: ActorDiedError" in report.rows[1].error
    tries = [(actor, attempt) for actor, ident, attempt in fake.calls if ident == items[1].id]
    assert [attempt for _, attempt in tries] == [1, 2, 3]  # --ray-retries 2: three attempts in all
    assert all(a != b for (a, _), (b, _) in zip(tries, tries[1:], strict=False)), tries  # each on the other actor
    assert sum("retrying (" in line for line in lines) == 2 and sum(" restarted on " in line for line in lines) >= 1
    assert [row["status"][:6] for row in read_csv(tmp_path / "results.csv")] == ["ok", "error:", "ok", "ok"]
    assert sorted(fake.killed) == [0, 1]  # the actors are released at the end
    assert not [p for p in (tmp_path / "videos").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_worker_that_keeps_dying_leaves_the_pool(fake_ray, tiny_settings, photo, tmp_path):
    items = expand_grid([photo], {"seed": list(range(12))}, model=tiny_settings.svd_model)
    fake = fake_ray(lambda actor, item, attempt: "crash" if actor == 0 else "ok")
    lines: list[str] = []
    report = run_sweep_ray(items, tmp_path, tiny_settings, actors=2, progress=lines.append)
    assert [row.status for row in report.rows] == ["ok"] * 12  # every item retried on the healthy actor
    assert "Worker 0 died 4 times: out of the pool." in lines
    assert sum(actor == 0 for actor, _, _ in fake.calls) == 4  # ACTOR_MAX_RESTARTS + 1, then never again
    assert max(attempt for _, _, attempt in fake.calls) == 2
    assert all(json.loads((tmp_path / "videos" / f"{item.id}.json").read_text())["sweep"]["worker"]["pid"] == 1
               for item in items)


def test_ctrl_c_keeps_the_finished_rows_and_lists_the_rest_as_pending(fake_ray, tiny_settings, photo, tmp_path):
    items = expand_grid([photo], {"seed": [0, 1, 2]}, model=tiny_settings.svd_model)
    fake = fake_ray(lambda actor, item, attempt: "ok", actors=1)

    def progress(line: str) -> None:
        if line.startswith("[1/3]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep_ray(items, tmp_path, tiny_settings, progress=progress)
    assert [row["status"] for row in read_csv(tmp_path / "results.csv")] == ["ok", "pending", "pending"]
    assert fake.killed == [0]
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [f"{items[0].id}.json", f"{items[0].id}.mp4"]


# ---------------------------------------------------------------------------------------------------------------
# On a local Ray


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


@pytest.mark.slow  # a real local Ray instance
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


@pytest.mark.slow  # a real local Ray instance
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


@pytest.mark.slow  # a real local Ray instance
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


@pytest.mark.slow  # a real local Ray instance
def test_a_finished_sweep_needs_no_cluster(ray_sweep, tiny_settings, tmp_path, monkeypatch):
    out, items, _, _, _, _ = ray_sweep
    done = tmp_path / "done"
    shutil.copytree(out, done)
    monkeypatch.setattr("svd_demo.batch.ray.connect", lambda address: pytest.fail("Ray was contacted"))
    report = run_sweep_ray(items[:4], done, tiny_settings, address="ray://nowhere:1")
    assert [row.status for row in report.rows] == ["skipped"] * 4
    assert [row["status"] for row in read_csv(done / "results.csv")] == ["skipped"] * 4


@pytest.mark.slow  # a real local Ray instance
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
