"""Sweeps on Ray without a Ray instance: the command line, the actor sizing, the optional extra, one worker's run,
and the driver's scheduling against a stand-in for Ray. The sweeps on a local Ray instance are end to end
(tests/e2e/test_sweep_ray_cluster.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from optional_deps import require
from sweep_cases import TINY, read_csv, sweep_parser

from svd_demo.batch.ray import LOOPBACK_ENV, plan_actors, run_sweep_ray
from svd_demo.batch.sweep import expand_grid
from svd_demo.core.errors import InputError

# Ray reads this when it is first imported (by any test here): a local instance then binds every port to 127.0.0.1.
os.environ.setdefault(LOOPBACK_ENV, "0")

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

