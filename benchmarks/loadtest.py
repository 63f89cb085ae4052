"""Load test: many concurrent API clients against the real app, on loopback only, bounded, and it stops by itself.

    python -m benchmarks.loadtest --models DIR [--clients 8] [--requests-per-client 7] [--out notes.md]

DIR holds tiny (or real) pipelines as written by ``python -m svd_demo tiny-models DIR`` (DIR/svd, DIR/sdxl). The
script starts ``python app.py`` itself in a subprocess on 127.0.0.1 and a free port, with its own output folder,
Gradio temp folder, ``--queue-size`` and a short ``--output-ttl``; warms it up with one request per endpoint; then
runs N client threads (one ``gradio_client.Client`` each) that send requests across the endpoints
(/image_to_video, /text_to_image, /text_to_video, and /interpolate when the app has it) with distinct explicit seeds
and parameters, at tiny sizes. The server is always stopped at the end (also on Ctrl-C, SIGTERM or an error).

Checks (all must pass for exit code 0):

* every request completes or gets the queue-full answer; none is lost, fails otherwise, or hangs (each has a
  timeout, ``--timeout``);
* each output is its own request's: the returned sidecar JSON holds the request's seed and parameters, the input's
  size / name, and the returned video has the frame count those parameters give;
* the GPU section never runs twice at once: each run's server-side GPU interval is rebuilt from its sidecar
  (``timings.gpu_section_s`` and ``encode_s``) and the file's modification time in the server's output folder (a
  watcher records it before the time-to-live sweep removes the file); no two intervals may overlap;
* the server's RSS (VmRSS of the app process) does not keep growing: sampled after warm-up and every
  ``--rss-every`` finished requests, the last third's maximum stays within ``--max-rss-growth`` of the first
  third's;
* the output folder stays bounded: no file outlives the time-to-live by more than the longest pause between two
  finished requests (the sweep runs at the end of each request).

The report (markdown) gives requests per minute, latency p50/p90/p99 per endpoint, the RSS series and peak, and the
file counts; ``--out`` writes it to a file.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._net import free_port

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
ENDPOINTS = ("/image_to_video", "/text_to_image", "/text_to_video", "/interpolate")
OVERLAP_TOLERANCE_S = 0.02  # file modification times are coarse (a few ms); real overlaps would be seconds
ASPECTS = ("crop", "pad", "native")
ORIENTATIONS = ("landscape", "portrait", "square")


# ------------------------------------------------------------------------------------------------------- server


def read_status_kb(pid: int, key: str) -> int | None:
    """A `/proc/PID/status` field in kB (VmRSS, VmHWM), or None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class AppServer:
    """`python app.py ...` in its own process group on 127.0.0.1; `stop()` ends that group (and only it)."""

    def __init__(self, models: Path, workdir: Path, *, queue_size: int, output_ttl: int, port: int = 0,
                 python: str = sys.executable) -> None:
        self.models = Path(models)
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.output_dir = self.workdir / "outputs"
        self.gradio_dir = self.workdir / "gradio"
        self.log_path = self.workdir / "server.log"
        self.command = [python, str(APP), "--svd-model", str(self.models / "svd"), "--sdxl-model",
                        str(self.models / "sdxl"), "--host", "127.0.0.1", "--port", str(self.port), "--output-dir",
                        str(self.output_dir), "--queue-size", str(queue_size), "--output-ttl", str(output_ttl)]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 240.0) -> None:
        for folder in (self.output_dir, self.gradio_dir):
            folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.gradio_dir), "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "PYTHONUNBUFFERED": "1"}
        env.pop("GRADIO_SERVER_NAME", None)  # loopback only, whatever the calling shell says
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.proc.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(self.url + "gradio_api/info", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the app did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float | None:
        kb = read_status_kb(self.pid, "VmRSS") if self.proc else None
        return None if kb is None else kb / 1024

    def peak_rss_mb(self) -> float | None:
        kb = read_status_kb(self.pid, "VmHWM") if self.proc else None
        return None if kb is None else kb / 1024

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to the app's process group (the app and its ffmpeg children), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class FolderWatcher(threading.Thread):
    """Polls the output folder: first-seen modification time of every file (the sweep deletes them later), file
    counts, the oldest file's age, and the server's RSS for the peak."""

    def __init__(self, server: AppServer, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="loadtest-watcher")
        self.server = server
        self.interval = interval
        self.mtimes: dict[str, float] = {}
        self.removed: set[str] = set()
        self.max_count = 0
        self.max_gradio_files = 0
        self.max_oldest_age = 0.0
        self.counts: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        last_gradio = 0.0
        while not self._halt.is_set():
            self.poll()
            if time.monotonic() - last_gradio > 2.0:
                last_gradio = time.monotonic()
                self.max_gradio_files = max(self.max_gradio_files, count_files(self.server.gradio_dir))
            self._halt.wait(self.interval)

    def poll(self) -> None:
        now = time.time()
        present: dict[str, float] = {}
        try:
            entries = list(os.scandir(self.server.output_dir))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.is_file():
                    present[entry.name] = entry.stat().st_mtime
            except OSError:
                continue  # swept between listing and stat
        for name, mtime in present.items():
            self.mtimes.setdefault(name, mtime)
        self.removed.update(set(self.mtimes) - set(present))
        self.max_count = max(self.max_count, len(present))
        if present:
            self.max_oldest_age = max(self.max_oldest_age, now - min(present.values()))
        self.counts.append((now, len(present)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.poll()


def count_files(folder: Path) -> int:
    total = 0
    for _, _, names in os.walk(folder):
        total += len(names)
    return total


# ----------------------------------------------------------------------------------------------------- requests


@dataclass
class Request:
    """One API call: what is sent, and what its outputs must show."""

    client: int
    index: int
    endpoint: str
    kwargs: dict[str, Any]
    expect: dict[str, Any] = field(default_factory=dict)  # parameters the sidecar must hold
    input_size: tuple[int, int] | None = None  # image_to_video: the original image size in the sidecar
    input_name: str | None = None  # interpolate: the source file name in the sidecar
    input_frames: int | None = None


@dataclass
class Outcome:
    request: Request
    status: str  # ok | queue_full | error | timeout
    latency_s: float
    finished: float  # time.time()
    message: str = ""
    problems: list[str] = field(default_factory=list)
    sidecars: list[dict[str, Any]] = field(default_factory=list)  # (sidecar content + its file name)


def _seed(client: int, index: int) -> int:
    return 1_000_003 * (client + 1) + 7919 * index  # distinct for every request, far from the default 42


def _video_kwargs(client: int, index: int) -> dict[str, Any]:
    k = client + 2 * index
    return {"seed": _seed(client, index), "randomize_seed": False, "resolution": 256,
            "aspect_mode": ASPECTS[k % 3], "num_frames": 2 + k % 3, "num_inference_steps": 1 + index % 2,
            "motion_bucket_id": 1 + (37 * client + 11 * index) % 255, "fps": 2 + (client + 3 * index) % 29,
            "noise_aug_strength": round(0.01 * (k % 10), 2), "min_guidance_scale": 1.0,
            "max_guidance_scale": 1.0 + index % 3, "decode_chunk_size": (client % 2) * 2,
            "playback_fps": 0 if k % 2 else 8, "loop": "ping-pong" if client % 2 else "none",
            "extra_formats": ["gif"] if k % 5 == 0 else []}


def _image_kwargs(client: int, index: int) -> dict[str, Any]:
    return {"prompt": f"load test client {client} request {index}: a lighthouse at dusk",
            "negative_prompt": f"blurry {client}-{index}", "sdxl_steps": 1 + (client + index) % 2,
            "sdxl_guidance_scale": 1.0 + 0.5 * (client % 3), "orientation": ORIENTATIONS[(client + index) % 3],
            "seed": _seed(client, index), "randomize_seed": False, "resolution": 256}


def plan_requests(client: int, count: int, endpoints: Sequence[str], inputs: Path) -> list[Request]:
    """`count` requests for one client, cycling through the endpoints (each client starts at a different one)."""
    from gradio_client import handle_file

    requests = []
    for index in range(count):
        endpoint = endpoints[(client + index) % len(endpoints)]
        if endpoint == "/image_to_video":
            size = (200 + 8 * client, 150 + 4 * index)
            path = inputs / f"image-c{client}-r{index}.png"
            _write_image(path, size, client, index)
            video = _video_kwargs(client, index)
            requests.append(Request(client, index, endpoint, {"image": handle_file(str(path)), **video},
                                    expect=video, input_size=size))
        elif endpoint == "/text_to_image":
            image = _image_kwargs(client, index)
            requests.append(Request(client, index, endpoint, image, expect=image))
        elif endpoint == "/text_to_video":
            video = {k: v for k, v in _video_kwargs(client, index).items() if k not in ("aspect_mode", "resolution")}
            both = {**_image_kwargs(client, index), **video}
            requests.append(Request(client, index, endpoint, both, expect=both))
        else:
            frames = 5 + (client + index) % 4
            path = inputs / f"clip-c{client}-r{index}.mp4"
            _write_clip(path, frames, client, index)
            factor = 2 + (client + index) % 3
            requests.append(Request(client, index, endpoint,
                                    {"video": handle_file(str(path)), "factor": factor, "target_fps": 0,
                                     "slow_motion": False},
                                    expect={"factor": factor}, input_name=path.name, input_frames=frames))
    return requests


def _write_image(path: Path, size: tuple[int, int], client: int, index: int) -> None:
    import numpy as np
    from PIL import Image

    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 255 // w + 20 * client) % 256, (y * 255 // h + 30 * index) % 256,
                    np.full_like(x, 40 * client % 256)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def _write_clip(path: Path, frames: int, client: int, index: int) -> None:
    import numpy as np

    from svd_demo.files.media import write_video

    base = np.zeros((frames, 48, 64, 3), dtype=np.uint8)
    for i in range(frames):  # a square moving right: real motion for the flow backend
        base[i, 16:32, 4 + 4 * i:20 + 4 * i] = (200, 40 + 20 * client % 200, 30 * index % 256)
    write_video(base, path, 8)


# -------------------------------------------------------------------------------------------------------- checks


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _sidecars(files: Any) -> list[dict[str, Any]]:
    out = []
    for path in files or []:
        path = path if isinstance(path, str) else (path or {}).get("path", "")
        if str(path).endswith(".json"):
            record = json.loads(Path(path).read_text())
            record["_file"] = Path(path).name
            out.append(record)
    return out


def _compare(record: dict[str, Any], expect: dict[str, Any], keys: Sequence[str] | None = None) -> list[str]:
    params = record.get("parameters", {})
    problems = []
    for key in keys or expect:
        if key in ("image", "video"):
            continue
        if key not in params or not _same(params[key], expect[key]):
            problems.append(f"sidecar {record.get('_file')}: {key}={params.get(key)!r}, sent {expect[key]!r}")
    return problems


def _expected_frames(num_frames: int, loop: str) -> int:
    return num_frames + num_frames - 2 if loop == "ping-pong" and num_frames > 2 else num_frames


def check_output(request: Request, result: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Problems (empty when the outputs are this request's own) and the sidecars that were read."""
    from svd_demo.files.media import probe_video

    problems: list[str] = []
    expect = request.expect
    if request.endpoint == "/image_to_video":
        video, seed, _prepared, _notes, files, _preview = result  # the live preview: None (off for API calls)
        records = _sidecars(files)
        kinds = {r.get("kind"): r for r in records}
        record = kinds.get("image_to_video")
        if seed != expect["seed"]:
            problems.append(f"returned seed {seed}, sent {expect['seed']}")
        if record is None:
            return problems + [f"no image_to_video sidecar among {files}"], records
        problems += _compare(record, expect)
        if record["input"]["original_size"] != list(request.input_size or ()):
            problems.append(f"sidecar input size {record['input']['original_size']}, sent {request.input_size}")
        if expect["extra_formats"] and not any(str(f).endswith(".gif") for f in files):
            problems.append("a GIF was asked for and not returned")
        frames = probe_video(video).num_frames
        if frames != _expected_frames(expect["num_frames"], expect["loop"]):
            want = _expected_frames(expect["num_frames"], expect["loop"])
            problems.append(f"video has {frames} frames, expected {want}")
    elif request.endpoint == "/text_to_image":
        _still, seed, _notes, files = result
        records = _sidecars(files)
        record = next((r for r in records if r.get("kind") == "text_to_image"), None)
        if seed != expect["seed"]:
            problems.append(f"returned seed {seed}, sent {expect['seed']}")
        if record is None:
            return problems + [f"no text_to_image sidecar among {files}"], records
        problems += _compare(record, expect)
    elif request.endpoint == "/text_to_video":
        _still, video, still_seed, video_seed, _notes, files, _preview = result
        records = _sidecars(files)
        kinds = {r.get("kind"): r for r in records}
        if (still_seed, video_seed) != (expect["seed"], expect["seed"]):
            problems.append(f"returned seeds {still_seed}/{video_seed}, sent {expect['seed']}")
        if "text_to_video" not in kinds or "text_to_image" not in kinds:
            return problems + [f"missing sidecars: got kinds {sorted(map(str, kinds))}"], records
        # The video stage runs on the still as is: aspect "native" and the still's long side (192 for square).
        problems += _compare(kinds["text_to_video"], expect, [k for k in expect if k != "resolution"])
        problems += _compare(kinds["text_to_image"], expect, ["prompt", "negative_prompt", "sdxl_steps",
                                                              "sdxl_guidance_scale", "orientation", "seed",
                                                              "resolution"])
        frames = probe_video(video).num_frames
        if frames != _expected_frames(expect["num_frames"], expect["loop"]):
            want = _expected_frames(expect["num_frames"], expect["loop"])
            problems.append(f"video has {frames} frames, expected {want}")
    else:  # /interpolate
        video, _notes, files = result
        records = _sidecars(files)
        record = next((r for r in records if r.get("kind") == "interpolate"), None)
        if record is None:
            return [f"no interpolate sidecar among {files}"], records
        problems += _compare(record, expect)
        if record.get("source", {}).get("name") != request.input_name:
            problems.append(f"sidecar source {record.get('source')}, sent {request.input_name}")
        want = (request.input_frames - 1) * expect["factor"] + 1
        frames = probe_video(video).num_frames
        if frames != want:
            problems.append(f"interpolated video has {frames} frames, expected {want}")
    return problems, records


def gpu_intervals(outcome: Outcome, mtimes: dict[str, float]) -> tuple[list[tuple[float, float, str]], list[str]]:
    """Server-side [start, end] of each GPU section of a finished run, from its sidecars and file times.

    Video: the sidecar is written when encoding ends, so the GPU section ended at mtime - encode_s (- the optional
    interpolation); still: the PNG is written right after the GPU section. Both estimates lie between the true end
    and the end of the request, so they never make serial runs look overlapping.
    """
    intervals, problems = [], []
    for record in outcome.sidecars:
        kind, timings = record.get("kind"), record.get("timings", {})
        if kind not in ("image_to_video", "text_to_video", "text_to_image") or "gpu_section_s" not in timings:
            continue
        if kind == "text_to_image":
            name = record.get("files", {}).get("png", "")
            if name not in mtimes:
                problems.append(f"{name} was never seen in the output folder")
                continue
            end = mtimes[name]
        else:
            name = record["_file"]
            if name not in mtimes:
                problems.append(f"{name} was never seen in the output folder")
                continue
            end = mtimes[name] - timings.get("encode_s", 0.0) - timings.get("interpolate_s", 0.0)
        intervals.append((end - timings["gpu_section_s"], end, f"{outcome.request.endpoint} {name}"))
    return intervals, problems


def check_gpu_overlaps(intervals: Sequence[tuple[float, float, str]]) -> tuple[list[str], float, float | None]:
    """(failures, largest overlap, smallest gap) of GPU intervals (start, end, what): each one must start after
    every earlier one ended; overlaps above the file-time resolution are failures."""
    failures, max_overlap, min_gap = [], 0.0, None
    latest_end, latest = -math.inf, ""
    for start, end, what in sorted(intervals):
        if latest:
            gap = start - latest_end
            min_gap = gap if min_gap is None else min(min_gap, gap)
            max_overlap = max(max_overlap, -gap)
            if gap < -OVERLAP_TOLERANCE_S:
                failures.append(f"GPU sections overlap by {-gap:.3f} s: {latest} and {what}")
        if end > latest_end:
            latest_end, latest = end, what
    return failures, max_overlap, min_gap


def check_rss_growth(series: Sequence[tuple[int, float]], max_growth: float) -> tuple[str | None, str | None]:
    """(failure, note): the samples after the first (taken right after warm-up) are cut in thirds; the last third's
    maximum may exceed the first third's by at most `max_growth`."""
    after_warmup = [mb for _, mb in series[1:]]
    third = len(after_warmup) // 3
    if third < 1:
        return None, f"Only {len(after_warmup)} RSS samples after warm-up: too few to judge growth."
    first, last = max(after_warmup[:third]), max(after_warmup[-third:])
    if last > first * (1 + max_growth):
        return (f"server RSS grew from {first:.0f} MB (first third) to {last:.0f} MB (last third), more than "
                f"{max_growth:.0%}"), None
    return None, None


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ------------------------------------------------------------------------------------------------------- the run


@dataclass
class LoadReport:
    command: str
    clients: int
    requests_per_client: int
    endpoints: list[str]
    duration_s: float
    outcomes: list[Outcome]
    rss_series: list[tuple[int, float]]  # (finished requests, MB)
    peak_rss_mb: float | None
    max_output_files: int
    max_gradio_files: int
    files_swept: int
    max_file_age_s: float
    output_ttl: int
    max_overlap_s: float
    min_gpu_gap_s: float | None
    gpu_sections: int
    failures: list[str]
    notes: list[str]
    server_pid: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def markdown(self) -> str:
        done = [o for o in self.outcomes if o.status == "ok"]
        lines = [f"Command: `{self.command}`", "",
                 f"{self.clients} clients x {self.requests_per_client} requests = {len(self.outcomes)} requests "
                 f"over {', '.join(self.endpoints)}; {len(done)} completed, "
                 f"{sum(o.status == 'queue_full' for o in self.outcomes)} got queue-full, "
                 f"{sum(o.status in ('error', 'timeout') for o in self.outcomes)} failed, in "
                 f"{self.duration_s:.1f} s: **{60 * len(done) / self.duration_s:.1f} requests/minute**.", "",
                 "| endpoint | completed | queue full | p50 s | p90 s | p99 s | max s |",
                 "|---|---|---|---|---|---|---|"]
        for endpoint in self.endpoints:
            mine = [o for o in self.outcomes if o.request.endpoint == endpoint]
            lat = [o.latency_s for o in mine if o.status == "ok"]
            lines.append(f"| {endpoint} | {len(lat)} | {sum(o.status == 'queue_full' for o in mine)} | "
                         + " | ".join(f"{percentile(lat, q):.2f}" for q in (50, 90, 99))
                         + f" | {max(lat) if lat else float('nan'):.2f} |")
        lat = [o.latency_s for o in done]
        lines.append(f"| all | {len(lat)} | {sum(o.status == 'queue_full' for o in self.outcomes)} | "
                     + " | ".join(f"{percentile(lat, q):.2f}" for q in (50, 90, 99))
                     + f" | {max(lat) if lat else float('nan'):.2f} |")
        series = ", ".join(f"{n}: {mb:.0f}" for n, mb in self.rss_series)
        lines += ["",
                  "| check | result |", "|---|---|",
                  f"| server RSS (MB) after N finished requests | {series} |",
                  f"| peak RSS (VmHWM) | {self.peak_rss_mb:.0f} MB |" if self.peak_rss_mb else "| peak RSS | n/a |",
                  f"| GPU sections checked / largest overlap / smallest gap | {self.gpu_sections} / "
                  f"{self.max_overlap_s * 1000:.0f} ms / "
                  + (f"{self.min_gpu_gap_s * 1000:.0f} ms |" if self.min_gpu_gap_s is not None else "n/a |"),
                  f"| output folder: most files at once / files swept | {self.max_output_files} / "
                  f"{self.files_swept} |",
                  f"| oldest file seen (TTL {self.output_ttl} s) | {self.max_file_age_s:.1f} s |",
                  f"| Gradio temp folder: most files | {self.max_gradio_files} |",
                  f"| checks | {'all passed' if self.ok else f'{len(self.failures)} FAILED'} |"]
        if self.failures:
            lines += ["", "Failures:", *(f"- {f}" for f in self.failures[:50])]
        if self.notes:
            lines += ["", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"


def _submit(client: Any, request: Request, timeout: float) -> Outcome:
    from gradio_client.exceptions import AppError, ValidationError
    from gradio_client.utils import QueueError

    started = time.monotonic()
    job = None
    try:
        job = client.submit(**request.kwargs, api_name=request.endpoint)
        result = job.result(timeout=timeout)
    except QueueError as exc:
        return Outcome(request, "queue_full", time.monotonic() - started, time.time(), str(exc))
    except concurrent.futures.TimeoutError:
        if job is not None:
            job.cancel()
        return Outcome(request, "timeout", time.monotonic() - started, time.time(), f"no answer in {timeout:.0f} s")
    except (AppError, ValidationError) as exc:
        message = str(exc)
        status = "queue_full" if "queue is full" in message.lower() else "error"
        return Outcome(request, status, time.monotonic() - started, time.time(), message)
    except Exception as exc:  # connection refused, a crashed server, ...: a failure, never a hang
        return Outcome(request, "error", time.monotonic() - started, time.time(), f"{type(exc).__name__}: {exc}")
    outcome = Outcome(request, "ok", time.monotonic() - started, time.time())
    try:
        outcome.problems, outcome.sidecars = check_output(request, result)
    except Exception as exc:
        outcome.problems = [f"could not check the output ({type(exc).__name__}: {exc}); got {result!r}"[:500]]
    return outcome


def run_load(models: Path, *, clients: int = 8, requests_per_client: int = 7, queue_size: int = 20,
             output_ttl: int = 20, timeout: float = 300.0, rss_every: int = 10, max_rss_growth: float = 0.15,
             workdir: Path | None = None, command: str = "", log: Callable[[str], None] = print,
             on_start: Callable[[AppServer], None] | None = None) -> LoadReport:
    """Start the app, warm it up, run the clients, check everything, stop the app. See the module docstring.

    `on_start` is called with the server once it answers (the tests use it to check that it is stopped)."""
    from gradio_client import Client

    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="svd-loadtest-")) if workdir is None else Path(workdir)
    server = AppServer(models, workdir, queue_size=queue_size, output_ttl=output_ttl)
    watcher = FolderWatcher(server)
    failures: list[str] = []
    notes: list[str] = []
    passed = False
    try:
        log(f"starting {' '.join(server.command)}")
        server.start()
        if on_start is not None:
            on_start(server)
        watcher.start()
        inputs = workdir / "inputs"
        inputs.mkdir(exist_ok=True)
        warm_client = Client(server.url, verbose=False, download_files=str(workdir / "downloads" / "warm-up"))
        api = warm_client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        endpoints = [e for e in ENDPOINTS if e in api]
        if "/interpolate" not in endpoints:
            notes.append("The app has no /interpolate endpoint; it was not exercised.")
        log(f"warming up {', '.join(endpoints)} (loads the models)")
        sweeps = [time.time()]  # when the app swept its output folder: at the end of every finished request
        for endpoint in endpoints:  # in this order: each model loads in a request of its own
            request = plan_requests(clients + 1, 1, [endpoint], inputs)[0]
            outcome = _submit(warm_client, request, timeout)
            if outcome.status != "ok" or outcome.problems:
                raise RuntimeError(f"warm-up {request.endpoint} failed: {outcome.message} {outcome.problems}")
            sweeps.append(outcome.finished)
        rss_series = [(0, server.rss_mb() or 0.0)]
        outcomes: list[Outcome] = []
        lock = threading.Lock()

        def finished(outcome: Outcome) -> None:
            with lock:
                outcomes.append(outcome)
                count = len(outcomes)
                if count % rss_every == 0 and server.alive():
                    rss_series.append((count, server.rss_mb() or 0.0))
            log(f"[{count:3d}] client {outcome.request.client} {outcome.request.endpoint:<16} {outcome.status:<10} "
                f"{outcome.latency_s:6.2f} s {outcome.message[:80]}{' PROBLEMS' if outcome.problems else ''}")

        def client_loop(number: int, requests: list[Request]) -> None:
            try:
                client = Client(server.url, verbose=False, download_files=str(workdir / "downloads" / f"c{number}"))
            except Exception as exc:
                for request in requests:
                    finished(Outcome(request, "error", 0.0, time.time(), f"client did not connect: {exc}"))
                return
            for request in requests:
                finished(_submit(client, request, timeout))

        plans = [plan_requests(c, requests_per_client, endpoints, inputs) for c in range(clients)]
        log(f"running {clients} clients x {requests_per_client} requests")
        started = time.monotonic()
        threads = [threading.Thread(target=client_loop, args=(c, plans[c]), daemon=True, name=f"loadtest-client-{c}")
                   for c in range(clients)]
        for thread in threads:
            thread.start()
        deadline = started + timeout * requests_per_client + 60
        for thread in threads:
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(timeout=0.5)
        duration = time.monotonic() - started
        if any(t.is_alive() for t in threads):
            failures.append(f"client threads still running after {deadline - started:.0f} s")
        with lock:
            outcomes = list(outcomes)
        if server.alive() and (not rss_series or rss_series[-1][0] != len(outcomes)):
            rss_series.append((len(outcomes), server.rss_mb() or 0.0))
        peak = server.peak_rss_mb()
        if not server.alive():
            failures.append(f"the server died (exit code {server.proc.returncode}):\n{server.log_tail()}")
        watcher.stop()
        sweeps.append(time.time())

        # -- checks
        total = clients * requests_per_client
        if len(outcomes) != total:
            failures.append(f"{total - len(outcomes)} of {total} requests never finished (lost or hung)")
        for o in outcomes:
            where = f"client {o.request.client} request {o.request.index} {o.request.endpoint}"
            if o.status in ("error", "timeout"):
                failures.append(f"{where}: {o.status}: {o.message[:300]}")
            failures.extend(f"{where}: {p}" for p in o.problems)
        intervals = []
        for o in outcomes:
            if o.status == "ok":
                found, problems = gpu_intervals(o, watcher.mtimes)
                intervals += found
                failures.extend(problems)
        overlap_failures, max_overlap, min_gap = check_gpu_overlaps(intervals)
        failures += overlap_failures
        growth, note = check_rss_growth(rss_series, max_rss_growth)
        failures += [growth] if growth else []
        notes += [note] if note else []
        sweeps = sorted(sweeps + [o.finished for o in outcomes if o.status == "ok"])
        longest_pause = max((b - a for a, b in zip(sweeps, sweeps[1:], strict=False)), default=0.0)
        if output_ttl > 0 and watcher.max_oldest_age > output_ttl + longest_pause + 5:
            failures.append(f"a file stayed {watcher.max_oldest_age:.0f} s in the output folder; the TTL is "
                            f"{output_ttl} s and the longest pause between requests {longest_pause:.0f} s")
        if output_ttl > 0 and duration > 2 * output_ttl and not watcher.removed:
            failures.append(f"the run took {duration:.0f} s with a {output_ttl} s TTL, yet no file was swept")
        passed = not failures
        return LoadReport(command=command, clients=clients, requests_per_client=requests_per_client,
                          endpoints=endpoints, duration_s=duration, outcomes=outcomes, rss_series=rss_series,
                          peak_rss_mb=peak, max_output_files=watcher.max_count,
                          max_gradio_files=watcher.max_gradio_files, files_swept=len(watcher.removed),
                          max_file_age_s=watcher.max_oldest_age, output_ttl=output_ttl, max_overlap_s=max_overlap,
                          min_gpu_gap_s=min_gap, gpu_sections=len(intervals), failures=failures, notes=notes,
                          server_pid=server.pid)
    finally:
        server.stop()
        if watcher.is_alive():
            watcher.stop()
        if own_workdir and passed:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"the server's folders (server.log, outputs) are in {workdir}")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="folder with svd/ and sdxl/ pipelines")
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients (threads)")
    parser.add_argument("--requests-per-client", type=int, default=7, help="requests each client sends in turn")
    parser.add_argument("--queue-size", type=int, default=20, help="the app's --queue-size")
    parser.add_argument("--output-ttl", type=int, default=20, help="the app's --output-ttl, short to show the sweep")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take before it "
                        "counts as hung")
    parser.add_argument("--rss-every", type=int, default=10, help="sample the server's RSS every N requests")
    parser.add_argument("--max-rss-growth", type=float, default=0.15,
                        help="allowed growth of the last third's RSS maximum over the first third's")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the server's folders here (default: a "
                        "temporary folder, removed when all checks pass)")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here too")
    args = parser.parse_args(argv)
    if not (args.models / "svd").is_dir() or not (args.models / "sdxl").is_dir():
        parser.error(f"{args.models} must hold svd/ and sdxl/ (python -m svd_demo tiny-models {args.models})")
    if args.clients < 1 or args.requests_per_client < 1 or args.rss_every < 1:
        parser.error("--clients, --requests-per-client and --rss-every must be at least 1")
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # so `finally` stops the app on kill too
    command = "python -m benchmarks.loadtest " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        report = run_load(args.models, clients=args.clients, requests_per_client=args.requests_per_client,
                          queue_size=args.queue_size, output_ttl=args.output_ttl, timeout=args.timeout,
                          rss_every=args.rss_every, max_rss_growth=args.max_rss_growth, workdir=args.workdir,
                          command=command, log=lambda text: print(text, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("interrupted: the app was stopped", file=sys.stderr)
        return 130
    text = report.markdown()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
