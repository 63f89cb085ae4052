"""Sweeps on Ray: `python -m svd_demo sweep ... --ray [ADDRESS]` runs the same grid on a Ray cluster.

The driver (the machine that runs the command) expands the grid, skips the items whose outputs already exist (as the
local sweep does) and hands the rest, one at a time, to a pool of Ray actors. Each actor builds a `Studio` from the
driver's settings, so it loads the pipelines once, with the app's own loading code and memory profiles, and keeps
them for every item it runs. One actor per GPU by default (Ray sets CUDA_VISIBLE_DEVICES, so the actor's GPU is its
`cuda`); on a cluster without GPUs (or with --device cpu), one CPU actor unless --ray-actors says more.

Storage: nothing on the workers' side needs the driver's disk, and the driver needs nothing of theirs. The driver
sends each item's image bytes with the item; the actor writes the outputs in a scratch folder of its own node, sends
the bytes back (MP4, sidecar, extra formats, a prompt item's still; 10-20 ms per item in BENCHMARKS.md, next to a
minute or more of GPU work per full-size clip) and deletes them. The driver writes each file under a temporary name
and renames it into `videos/`, the sidecar last, then adds the row: a worker that dies mid-item leaves nothing in
the out folder, and a driver killed mid-write leaves an MP4 without a sidecar, which a rerun runs again. A shared
file system would only save that copy.

Failures: an item that fails inside the actor (an unreadable image, out of memory even after the memory retries, any
other exception) comes back as an error row and the sweep goes on; a rerun retries it. A worker process that dies
(killed, segfault, the node lost) costs the item one attempt: it goes back to the queue, to another actor when one is
alive, at most `retries` more times, then becomes an error row. Ray restarts a dead actor (rebuilding its studio) up
to ACTOR_MAX_RESTARTS times; past that the actor leaves the pool, so one bad GPU cannot eat the whole grid.

Progress: a line per finished item with the counts done / failed / remaining and an ETA; results.csv is rewritten
after every item with a row for every item of the grid, the unfinished ones as `pending` or `running`, so the CSV
alone says how far a sweep is. index.html lists the finished ones.

Ray is an optional extra (`pip install '.[ray]'` in the repository: ray==2.60.0), imported only when a sweep runs
on it; the studio (torch, diffusers) is imported where an actor builds one, so a driver without them can run a
sweep on a cluster that has them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import svd_demo
from svd_demo.batch.sweep import (
    CSV_NAME,
    SHEET_NAME,
    LineFn,
    SweepItem,
    SweepReport,
    SweepRow,
    _check_text_to_video,
    _describe,
    _finished_row,
    _paths,
    _row_from_record,
    outcome_text,
    planned_row,
    run_item,
    write_contact_sheet,
    write_results_csv,
)
from svd_demo.core.errors import InputError, UserFacingError
from svd_demo.core.settings import Settings, settings_from_args

INSTALL_HINT = "pip install ray==2.60.0 (the extra: pip install '.[ray]' in the repository)"
DEFAULT_RETRIES = 2  # a worker crash costs an item one attempt; a 3rd crash makes it an error row
ACTOR_MAX_RESTARTS = 3  # an actor that died 4 times leaves the pool (a bad GPU or node)
RESTART_POLL_S = 1.0  # a call to a restarting actor fails at once: ask again this often whether it is back
# Without an address (and no RAY_ADDRESS), a throwaway Ray instance is started for this sweep. On Linux Ray binds its
# ports to the network address; turning "cluster mode" off (the switch Ray uses on macOS and Windows) keeps every
# port on loopback. Read by Ray when it is imported.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

StudioFactory = Callable[["Settings"], Any]


def import_ray() -> Any:
    """The ray module, or a UserFacingError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserFacingError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}.") from None
    return ray


# ---------------------------------------------------------------------------------------------------------------
# The worker (a Ray actor)


@dataclass
class ItemOutcome:
    """What an actor sends back for one item: the row, the output files' bytes, and where it ran."""

    row: SweepRow  # its paths are the worker's scratch paths; the driver replaces them
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> content
    worker: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    trace: str = ""  # an unexpected exception's traceback (a bug or a broken device, not the user's input)


class SweepWorker:
    """Runs items on one Ray actor with a Studio of its own (wrapped by `ray.remote` when a sweep starts)."""

    def __init__(self, settings: Settings, studio_factory: StudioFactory | None = None) -> None:
        import ray

        gpu_ids = ray.get_gpu_ids()
        # Ray has set CUDA_VISIBLE_DEVICES to this actor's GPU: it is `cuda` (cuda:0) here, whatever the driver's
        # --device listed for its own machine.
        device = "cuda" if gpu_ids else settings.device
        self.scratch = Path(tempfile.mkdtemp(prefix="svd-demo-ray-"))
        self.settings = replace(settings, device=device, output_dir=self.scratch / "outputs", preload=False,
                                auth="")
        if studio_factory is None:
            from svd_demo.studio.studio import Studio

            studio_factory = Studio
        self.studio = studio_factory(self.settings)
        import torch

        # Ray sets OMP_NUM_THREADS to the actor's CPUs. On CPU the thread count changes the numerics (the pixels of
        # a CPU run differ between 1 and 2 threads), so it is recorded with each item.
        self.info = {"node": ray.util.get_node_ip_address(), "pid": os.getpid(), "device": device,
                     "gpus": [str(gpu) for gpu in gpu_ids], "torch_threads": torch.get_num_threads()}

    def describe(self) -> dict[str, Any]:
        return self.info

    def run(self, item: SweepItem, image: bytes | None, attempt: int, model_ref: str | None,
            sdxl_model: str | None) -> ItemOutcome:
        """Run one item in a scratch folder and return its files; never raises for an item's failure."""
        work = self.scratch / uuid.uuid4().hex[:12]
        videos = work / "videos"
        videos.mkdir(parents=True)
        started = time.perf_counter()
        trace = ""
        try:
            if item.image is not None and image is not None:
                local = work / "input" / item.image.name  # same file name: same label, same decoding path
                local.parent.mkdir()
                local.write_bytes(image)
                item = replace(item, image=local)
            try:
                row = run_item(self.studio, item, videos, model_ref=model_ref, sdxl_model=sdxl_model,
                               sweep_info={"attempt": attempt, "worker": self.info})
            except Exception as exc:  # on a cluster one broken item or device must not stop the grid
                trace = traceback.format_exc()
                row = planned_row(item, "error", error=f"{type(exc).__name__}: {exc}",
                                  svd_model=model_ref or self.settings.svd_model,
                                  sdxl_model=sdxl_model or self.settings.sdxl_model)
            files = {}
            if row.status == "ok":
                files = {path.name: path.read_bytes() for path in sorted(videos.iterdir())
                         if path.is_file() and path.name.startswith(item.id)}
            return ItemOutcome(row=row, files=files, worker=self.info, seconds=time.perf_counter() - started,
                               trace=trace)
        finally:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# The driver


def connect(address: str | None) -> bool:
    """Attach to the cluster at `address` (or RAY_ADDRESS), or start a local Ray instance on loopback.

    Returns True when this call initialised Ray (the caller shuts it down), False when this process was already
    connected (a script or a test called `ray.init` itself: its cluster is used as it is). Attaching to a cluster
    ships this `svd_demo` package to the workers (runtime_env py_modules), so they run the driver's code; the
    dependencies (torch, diffusers, ...) must be installed on the nodes.
    """
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    if target == "local" and ray is None:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    ray = import_ray()
    if target == "local":
        ray.init(address="local", include_dashboard=False)
    else:
        ray.init(address=target, runtime_env={"py_modules": [svd_demo]})
    return True


@dataclass(frozen=True)
class ActorPlan:
    count: int
    gpus: float
    cpus: float


def plan_actors(cluster: Mapping[str, float], device: str, todo: int, *, actors: int | None = None,
                gpus_per_actor: float | None = None, cpus_per_actor: float = 1.0) -> ActorPlan:
    """How many actors, with which resources: one per GPU of the cluster unless told otherwise, never more actors
    than items to run. --device cpu (or mps) never asks for GPUs."""
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if cluster.get("GPU", 0) >= 1 and device.split(":")[0] not in ("cpu", "mps") else 0.0
    if not 0 <= gpus_per_actor <= 1:
        raise InputError(f"--ray-gpus-per-actor must be between 0 and 1 (got {gpus_per_actor:g}): one item runs on "
                         "one GPU; a fraction shares a GPU between actors.")
    if cpus_per_actor <= 0:
        raise InputError(f"--ray-cpus-per-actor must be positive (got {cpus_per_actor:g}).")
    if actors is None:
        actors = int(cluster.get("GPU", 0) // gpus_per_actor) if gpus_per_actor else 1
    if actors < 1:
        raise InputError(f"--ray-actors must be at least 1 (got {actors}).")
    return ActorPlan(count=max(1, min(actors, todo)), gpus=gpus_per_actor, cpus=cpus_per_actor)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    from svd_demo.files.media import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def store_outcome(item: SweepItem, outcome: ItemOutcome, out_dir: Path) -> SweepRow:
    """Write an actor's files into out_dir/videos (each atomically, the sidecar last) and return the driver's row."""
    if outcome.row.status != "ok":
        return replace(outcome.row, item=item)
    video, sidecar = _paths(out_dir, item)
    names = sorted(outcome.files, key=lambda name: name == sidecar.name)  # the sidecar last: it marks "done"
    for name in names:
        if Path(name).name != name or not name.startswith(item.id):
            raise RuntimeError(f"a worker sent an unexpected file name {name!r} for item {item.id}")
    if video.name not in outcome.files or sidecar.name not in outcome.files:
        return replace(outcome.row, item=item, status="error", video=None, sidecar=None,
                       error=f"the worker sent no {video.name} or {sidecar.name} (got {', '.join(names)})")
    video.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        _write_bytes_atomic(video.parent / name, outcome.files[name])
    record = json.loads(outcome.files[sidecar.name])
    return _row_from_record(item, "ok", record, video, sidecar)


def run_sweep_ray(items: Sequence[SweepItem], out_dir: str | os.PathLike[str], settings: Settings, *,
                  address: str | None = None, actors: int | None = None, gpus_per_actor: float | None = None,
                  cpus_per_actor: float = 1.0, retries: int = DEFAULT_RETRIES, model_ref: str | None = None,
                  sdxl_model: str | None = None, progress: LineFn | None = None,
                  studio_factory: StudioFactory | None = None) -> SweepReport:
    """Run every item not already done on Ray actors; the same files, CSV and contact sheet as `run_sweep`.

    `settings` are the driver's (what `--svd-model`, `--device`, `--memory-profile`... gave); each actor builds its
    studio from them with `studio_factory` (default `Studio`; tests pass a stand-in). See the module docstring for
    storage, failures and progress. Ray is started (or attached to, with `address`) unless this process is already
    connected, and shut down at the end if it was started here. Nothing contacts Ray when every item is done.
    """
    if retries < 0:
        raise InputError(f"--ray-retries must be 0 or more (got {retries}).")
    if any(item.prompt is not None for item in items):
        if studio_factory is None:
            from svd_demo.studio.studio import Studio

            studio_factory = Studio
        _check_text_to_video(studio_factory, items)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    driver = _Driver(items, out_dir, retries=retries, model_ref=model_ref, sdxl_model=sdxl_model,
                     svd_name=model_ref or settings.svd_model, sdxl_name=sdxl_model or settings.sdxl_model,
                     report=progress or (lambda line: None))
    todo = driver.skip_finished()
    if todo:
        owns_ray = connect(address)
        ray = import_ray()
        try:
            plan = plan_actors(ray.cluster_resources(), settings.device, todo, actors=actors,
                               gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor)
            if plan.gpus and not ray.cluster_resources().get("GPU"):
                driver.report("The cluster has no GPU now: the actors wait until one joins (Ctrl-C to stop).")
            worker_class = ray.remote(SweepWorker).options(num_cpus=plan.cpus, num_gpus=plan.gpus,
                                                           max_restarts=ACTOR_MAX_RESTARTS, max_task_retries=0)
            driver.handles = [worker_class.remote(settings, studio_factory) for _ in range(plan.count)]
            what = f"{plan.gpus:g} GPU + {plan.cpus:g} CPU" if plan.gpus else f"{plan.cpus:g} CPU"
            driver.report(f"Ray: {todo} items to run on {plan.count} actor(s) of {what} each "
                          f"({len(items) - todo} already done).")
            driver.run(ray)
        finally:  # also on Ctrl-C: the CSV keeps every finished row and lists the rest as pending
            driver.running.clear()
            driver.flush()
            for handle in driver.handles:
                ray.kill(handle)
            if owns_ray:
                ray.shutdown()
    else:
        driver.flush()
    return SweepReport(rows=list(driver.rows), csv=out_dir / CSV_NAME, sheet=out_dir / SHEET_NAME,
                       elapsed_s=time.perf_counter() - started)


class _Driver:
    """The driver's side of a Ray sweep: one item in flight per actor, results written as they come back."""

    def __init__(self, items: Sequence[SweepItem], out_dir: Path, *, retries: int, model_ref: str | None,
                 sdxl_model: str | None, svd_name: str | None, sdxl_name: str | None, report: LineFn) -> None:
        self.items, self.out_dir, self.retries, self.report = items, out_dir, retries, report
        self.model_ref, self.sdxl_model, self.svd_name, self.sdxl_name = model_ref, sdxl_model, svd_name, sdxl_name
        self.rows: list[SweepRow | None] = [None] * len(items)
        self.todo: deque[int] = deque()  # items to run, in grid order (a retried one goes first)
        self.running: set[int] = set()
        self.handles: list[Any] = []
        self.attempts: dict[int, int] = {}
        self.avoid: dict[int, int] = {}  # item -> the actor that died running it: the retry goes elsewhere if it can
        self.ran = 0  # items finished by this run (ok or error), for the ETA
        self.first_submit: float | None = None

    def head(self, index: int) -> str:
        return f"[{index + 1}/{len(self.items)}] {_describe(self.items[index])}"

    def planned(self, index: int, status: str, error: str = "") -> SweepRow:
        return planned_row(self.items[index], status, error=error, svd_model=self.svd_name,
                           sdxl_model=self.sdxl_name)

    def flush(self) -> None:
        """results.csv with a row for every item (pending and running ones too); index.html with the finished."""
        table = [row if row is not None else self.planned(i, "running" if i in self.running else "pending")
                 for i, row in enumerate(self.rows)]
        write_results_csv(table, self.out_dir)
        write_contact_sheet([row for row in self.rows if row is not None], self.out_dir)

    def skip_finished(self) -> int:
        """Rows for the items an earlier run finished; returns how many are left to run."""
        for index, item in enumerate(self.items):
            self.rows[index] = _finished_row(item, self.out_dir)
            if self.rows[index] is not None:
                self.report(f"{self.head(index)}: skipped (already done)")
            else:
                self.todo.append(index)
        self.flush()
        return len(self.todo)

    def finish(self, index: int, row: SweepRow, text: str) -> None:
        self.rows[index] = row
        self.running.discard(index)
        self.ran += 1
        done = sum(r is not None and r.status != "error" for r in self.rows)
        failed = sum(r is not None and r.status == "error" for r in self.rows)
        remaining = len(self.rows) - done - failed
        elapsed = time.perf_counter() - (self.first_submit or time.perf_counter())
        eta = f", ETA {_duration(elapsed / self.ran * remaining)}" if remaining else ""
        self.flush()  # first: when the line shows, the CSV says the same
        self.report(f"{self.head(index)}: {text} | done {done}, failed {failed}, remaining {remaining}{eta}")

    def run(self, ray: Any) -> None:
        """Until every item has a row, or no actor is left (the rest become error rows)."""
        from ray.exceptions import ActorUnavailableError, RayError, RayTaskError

        pings = {handle.describe.remote(): number for number, handle in enumerate(self.handles)}
        restarting: dict[int, float] = {}  # actor -> when to ask again whether it is back
        known: set[int] = set()
        free: deque[int] = deque()
        alive = set(range(len(self.handles)))
        crashes = [0] * len(self.handles)
        in_flight: dict[Any, tuple[int, int]] = {}
        last_error = "every actor died"

        while self.todo or in_flight:
            now = time.monotonic()
            for number in [n for n, due in restarting.items() if due <= now]:
                del restarting[number]
                pings[self.handles[number].describe.remote()] = number
            for number in list(free):
                index = self._pick(number, alive - {number})
                if index is not None:
                    free.remove(number)
                    ref = self._submit(number, index)
                    if ref is None:  # refused before it left (an unreadable file): the actor is still free
                        free.append(number)
                    else:
                        in_flight[ref] = (number, index)
            if not (in_flight or pings or restarting):
                if alive and free and self.todo:
                    continue  # only possible after a refused submission: assign again
                break
            waiting = [*in_flight, *pings]
            timeout = max(0.0, min(restarting.values()) - time.monotonic()) if restarting else None
            ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout) if waiting else ([], None)
            if not waiting:
                time.sleep(timeout or 0.0)
            for ref in ready:
                if ref in pings:
                    number = pings.pop(ref)
                    try:
                        info = ray.get(ref)
                    except ActorUnavailableError:  # still restarting: ask again shortly
                        restarting[number] = time.monotonic() + RESTART_POLL_S
                        continue
                    except RayError as exc:
                        alive.discard(number)
                        last_error = _first_line(exc)
                        self.report(f"Worker {number} is gone: {last_error}")
                        continue
                    what = "restarted" if number in known else "ready"
                    known.add(number)
                    self.report(f"Worker {number} {what} on {info['node']} (pid {info['pid']}, device "
                                f"{info['device']}, {info['torch_threads']} torch threads).")
                    free.append(number)
                    continue
                number, index = in_flight.pop(ref)
                try:
                    outcome: ItemOutcome = ray.get(ref)
                except RayTaskError as exc:  # the call itself failed (an argument that cannot be unpickled...)
                    free.append(number)
                    self.finish(index, self.planned(index, "error", _first_line(exc)), f"error: {_first_line(exc)}")
                except RayError as exc:  # the worker process died (or its node): retry the item elsewhere
                    crashes[number] += 1
                    last_error = _first_line(exc)
                    if crashes[number] > ACTOR_MAX_RESTARTS:
                        alive.discard(number)
                        self.report(f"Worker {number} died {crashes[number]} times: out of the pool.")
                    else:
                        restarting[number] = time.monotonic()  # Ray restarts it; it takes work once it answers
                    self._crashed(index, number, last_error)
                else:
                    free.append(number)
                    row = store_outcome(self.items[index], outcome, self.out_dir)
                    if outcome.trace:
                        self.report(f"Worker {number} ({outcome.worker.get('node')}): unexpected error on "
                                    f"{self.items[index].id}:\n{outcome.trace.rstrip()}")
                    self.finish(index, row, f"{outcome_text(row, outcome.seconds)} (worker {number})")
        while self.todo:  # every actor is gone
            index = self.todo.popleft()
            message = f"no Ray worker left to run it ({last_error})"
            self.finish(index, self.planned(index, "error", message), f"error: {message}")

    def _pick(self, number: int, others: set[int]) -> int | None:
        """The first item for this actor; an item whose worker died goes to another actor while one is alive."""
        return next((i for i in self.todo if self.avoid.get(i) != number or not others), None)

    def _submit(self, number: int, index: int) -> Any:
        """Send the item (with its image's bytes) to the actor; None when the image cannot be read here."""
        self.todo.remove(index)
        item = self.items[index]
        image = None
        if item.image is not None:
            try:
                image = item.image.read_bytes()
            except OSError as exc:
                message = f"Cannot read the image '{item.image}': {exc}"
                self.finish(index, self.planned(index, "error", message), f"error: {message}")
                return None
        self.attempts[index] = self.attempts.get(index, 0) + 1
        self.first_submit = self.first_submit or time.perf_counter()
        self.running.add(index)
        return self.handles[number].run.remote(item, image, self.attempts[index], self.model_ref, self.sdxl_model)

    def _crashed(self, index: int, number: int, error: str) -> None:
        """The worker died running this item: back to the queue (first), or an error row past the retries."""
        attempts = self.attempts[index]
        if attempts > self.retries:
            message = f"the worker died {attempts} times while running this item (last: {error})"
            self.finish(index, self.planned(index, "error", message), f"error: {message}")
            return
        self.running.discard(index)
        self.avoid[index] = number
        self.todo.appendleft(index)
        self.report(f"{self.head(index)}: worker {number} died ({error}); retrying "
                    f"({attempts}/{self.retries + 1} attempts used)")


def _first_line(exc: BaseException) -> str:
    """A Ray error in one line: its type, then the exception it carries (the last line of a traceback it quotes, as
    when an actor's constructor raised) or else its first line, cut at 200 characters."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    quoted = len(lines) > 1 and re.match(r"[\w.]+(Error|Exception|Exit|Interrupt)\b", lines[-1])
    text = lines[-1] if quoted else lines[0]
    where = " in the actor's constructor" if getattr(exc, "actor_init_failed", False) else ""
    return f"{type(exc).__name__}{where}: {text[:200]}{'...' if len(text) > 200 else ''}"


# ---------------------------------------------------------------------------------------------------------------
# Command line (the flags are added to `sweep` by sweep.py; nothing here imports Ray until a sweep runs on it)


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS] and the actor sizing options of the `sweep` subcommand."""
    group = parser.add_argument_group("Ray (optional: pip install ray==2.60.0)")
    group.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="Run the grid on Ray: one actor per GPU, each loading the models once; results written "
                            "here by this machine. Without ADDRESS: the cluster in RAY_ADDRESS, else a local Ray "
                            "instance (loopback only). ADDRESS: auto (a cluster started with `ray start` on this "
                            "machine), HOST:6379, or ray://HOST:10001.")
    group.add_argument("--ray-actors", type=int, default=None, metavar="N",
                       help="Actors to start [default: one per GPU of the cluster; 1 on CPU].")
    group.add_argument("--ray-gpus-per-actor", type=_non_negative, default=None, metavar="G",
                       help="GPUs per actor, 0-1; 0.5 puts two actors on each GPU [default: 1 when the cluster has "
                            "GPUs and --device is not cpu, else 0].")
    group.add_argument("--ray-cpus-per-actor", type=_non_negative, default=1.0, metavar="C",
                       help="CPUs per actor (Ray also sets its torch threads to this) [default: 1].")
    group.add_argument("--ray-retries", type=int, default=DEFAULT_RETRIES, metavar="R",
                       help=f"Times an item is retried after its worker process died [default: {DEFAULT_RETRIES}].")


def ray_requested(args: argparse.Namespace) -> bool:
    """True with --ray; an error when a --ray-* option comes without it."""
    if getattr(args, "ray", None) is not None:
        return True
    given = [flag for flag, name, default in (("--ray-actors", "ray_actors", None),
                                              ("--ray-gpus-per-actor", "ray_gpus_per_actor", None),
                                              ("--ray-cpus-per-actor", "ray_cpus_per_actor", 1.0),
                                              ("--ray-retries", "ray_retries", DEFAULT_RETRIES))
             if getattr(args, name, default) != default]
    if given:
        raise InputError(f"{', '.join(given)} only apply with --ray.")
    return False


def run_ray_command(args: argparse.Namespace, items: Sequence[SweepItem], sdxl_model: str | None) -> int:
    """`sweep ... --ray`: 0 when every item ran or was done already, 1 when some failed."""
    report = run_sweep_ray(items, args.out, settings_from_args(args), address=args.ray or None,
                           actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor,
                           cpus_per_actor=args.ray_cpus_per_actor, retries=args.ray_retries,
                           model_ref=args.svd_model, sdxl_model=sdxl_model,
                           progress=lambda line: print(line, flush=True))
    print(report.summary)
    return 1 if report.count("error") else 0
