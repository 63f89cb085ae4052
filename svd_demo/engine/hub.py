"""Every download from the Hugging Face hub goes through `fetch`: pipelines, the SDXL VAE, LoRAs, upscalers and the
AnimateLCM file. One path gives them all the same progress events, disk check, offline behaviour and errors.

`fetch(repo_id, ...)` takes a repo id that is already decided (checks on which ids are allowed happen before it) and
returns the local snapshot folder:

1. Everything already in the cache: the folder is returned with no request to the hub.
2. Otherwise the hub lists the repo's files and their sizes (`model_info(files_metadata=True)`); the files the app
   loads are picked (a pipeline's components, the fp16 variant when asked); what the cache lacks is measured, and
   the run stops at once if the cache's disk has less room than that plus `MARGIN_BYTES`.
3. Each missing file is streamed into the cache's `blobs/<etag>.incomplete` with HTTP range requests: progress is
   reported per file and in total, cancel is checked on every read, and a stopped download resumes from the bytes
   already on disk. (huggingface_hub 2.4 deletes its own partial files on any error, so its downloader alone would
   start a 3 GB UNet over after a cancel.) Finished files are moved to `blobs/<etag>`; `snapshot_download` then
   links them into the snapshot and writes the tree listing step 1 reads (downloading nothing), and `refs/` points
   the revision at that commit.

Importing this module imports neither torch nor diffusers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from svd_demo.core.errors import GenerationCancelled, ModelLoadError
from svd_demo.engine.load_errors import is_network_error

log = logging.getLogger("svd_demo")

MARGIN_BYTES = 1 << 30  # left free after a download: the cache's metadata, outputs, and the OS itself
EVENT_INTERVAL_S = 0.5  # progress events at most this often while bytes arrive (and at each file's end)
RETRIES = 5  # tries in a row that bring no byte before a download gives up (as huggingface_hub's own)
SPEED_WINDOW_S = 5.0  # speed over the last few seconds: steady enough to read, quick to show a stall
WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")  # diffusers' and transformers' weight files
CONFIG_SUFFIXES = (".json", ".txt", ".model")  # configs, tokenizers (vocab/merges), sentencepiece models


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands: bytes done of bytes to fetch (files already cached count as done), in total and
    for the file being fetched, and the recent speed."""

    repo_id: str
    done: int
    total: int
    file: str  # the file being fetched; "" once all are there
    file_done: int
    file_total: int
    files_done: int
    files_total: int
    bytes_per_s: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def seconds_left(self) -> float | None:
        """Time left at the recent speed (None while the speed is not known)."""
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.bytes_per_s if self.bytes_per_s > 0 else None

    def describe(self) -> str:
        """One line for a progress bar or a terminal."""
        if self.done >= self.total and not self.file:
            return f"Downloaded {self.repo_id} ({human_size(self.total)})"
        left = self.seconds_left
        eta = f", about {human_duration(left)} left" if left else ""
        speed = f" at {human_size(self.bytes_per_s)}/s" if self.bytes_per_s > 0 else ""
        line = f"Downloading {self.repo_id}: {_of(self.done, self.total)}{speed}{eta}"
        if self.file:
            file_done = _of(self.file_done, self.file_total)
            line += f" (file {self.files_done + 1}/{self.files_total} {self.file}: {file_done})"
        return line


ProgressCallback = Callable[[DownloadProgress], None]


def quiet_http_logs() -> None:
    """The hub client's HTTP library logs each request at INFO: a model download is dozens of lines between the
    progress updates (CLI, server log). Its warnings still show."""
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def log_progress(every_s: float = 10.0) -> ProgressCallback:
    """Events as log lines, one every `every_s` seconds and the last: for downloads nobody watches in a page (the
    server's start-up preload)."""
    last = [0.0]

    def report(event: DownloadProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or (event.done >= event.total and not event.file):
            last[0] = now
            log.info("%s", event.describe())

    return report


_UNITS = (("GB", 1e9, 2), ("MB", 1e6, 1), ("kB", 1e3, 0), ("B", 1, 0))


def _unit(count: float) -> tuple[str, float, int]:
    return next(unit for unit in _UNITS if count >= unit[1] or unit[0] == "B")


def human_size(count: float) -> str:
    """Bytes as the hub shows them (decimal units): 950 kB, 12.3 MB, 4.52 GB."""
    name, scale, digits = _unit(count)
    return f"{count / scale:.{digits}f} {name}"


def _of(done: float, total: float) -> str:
    """"1.23 of 4.52 GB": both in the total's unit."""
    name, scale, digits = _unit(total)
    return f"{done / scale:.{digits}f} of {total / scale:.{digits}f} {name}"


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{max(seconds, 1)} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# --------------------------------------------------------------------------------------------- which files


def _variant(name: str) -> str | None:
    """A weight file's variant ("" for none), or None when `name` is not one of diffusers' or transformers' weight
    files (`model.safetensors`, `diffusion_pytorch_model.fp16.safetensors`, `model.fp16-00001-of-00002.bin`)."""
    parts = name.rsplit("/", 1)[-1].split(".")
    stem = re.sub(r"-\d+-of-\d+$", "", parts[0])
    if stem not in WEIGHT_STEMS or parts[-1] not in ("safetensors", "bin") or len(parts) > 3:
        return None
    return re.sub(r"-\d+-of-\d+$", "", parts[1]) if len(parts) == 3 else ""


def pipeline_files(names: Iterable[str], model_index: dict[str, Any] | None, variant: str | None) -> list[str]:
    """The files `from_pretrained` loads: for a pipeline (`model_index` read from its model_index.json), that file
    and each component folder's configs and weights; for a single model (e.g. a VAE), the top-level ones.

    Weights: safetensors (pickle .bin only where a folder has no safetensors), the `variant` where a folder has it,
    else the plain files, as diffusers falls back. Checkpoints outside the diffusers layout (the 9.5 GB
    `svd_xt.safetensors`, ONNX, Flax, OpenVINO files) are left out.
    """
    names = sorted(set(names))
    if model_index is None:
        folders, chosen = [""], []
    else:
        folders = [key for key, value in model_index.items() if not key.startswith("_") and isinstance(value, list)
                   and len(value) == 2 and value[0] is not None]
        chosen = ["model_index.json"]
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        inside = [n for n in names if n.startswith(prefix) and "/" not in n[len(prefix):]]
        chosen += [n for n in inside if n.endswith(CONFIG_SUFFIXES) and (folder or n != "model_index.json")]
        for extension in ("safetensors", "bin"):
            weights = [n for n in inside if n.endswith(f".{extension}") and _variant(n) is not None]
            if weights:
                wanted = variant if variant and any(_variant(n) == variant for n in weights) else ""
                chosen += [n for n in weights if _variant(n) == wanted]
                break
    return chosen


def lora_file(names: Iterable[str]) -> list[str]:
    """The one LoRA file of a repo, picked as diffusers' `load_lora_weights` picks it: safetensors files that are not
    schedulers, optimizers or training checkpoints; `pytorch_lora_weights.safetensors` first; else the first."""
    found = sorted(n for n in names if n.endswith(".safetensors")
                   and not any(word in n for word in ("scheduler", "optimizer", "checkpoint")))
    preferred = [n for n in found if n.endswith("pytorch_lora_weights.safetensors")]
    return (preferred or found)[:1]


Selector = Sequence[str] | Callable[[list[str]], list[str]]


# ------------------------------------------------------------------------------------------------- the cache


def cache_folder() -> Path:
    """The hub cache in use (HF_HUB_CACHE, by default HF_HOME/hub), read at call time."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def free_bytes(folder: Path) -> int:
    """Free space on the disk that holds `folder` (or would hold it: the nearest existing parent)."""
    for path in (folder, *folder.parents):
        if path.exists():
            return shutil.disk_usage(path).free
    return shutil.disk_usage(Path.cwd()).free


def check_room(repo_id: str, to_fetch: int, folder: Path | None = None) -> None:
    """Stop before the first byte when the cache's disk cannot take `to_fetch` bytes plus `MARGIN_BYTES`."""
    from huggingface_hub import constants

    folder = folder or cache_folder()
    free = free_bytes(folder)
    if to_fetch and free < to_fetch + MARGIN_BYTES:
        raise NotEnoughDiskSpace(
            f"Not enough disk space to download {repo_id}: it needs {human_size(to_fetch)} (plus "
            f"{human_size(MARGIN_BYTES)} to spare) and the disk of the model cache {folder} has {human_size(free)} "
            f"free. Free some space there, or set HF_HOME (now {constants.HF_HOME}) to a folder on a larger disk "
            "and start again.")


class NotEnoughDiskSpace(ModelLoadError):
    """The cache's disk has no room for a download; raised before any byte is fetched."""


def _storage(repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache_folder() / repo_folder_name(repo_id=repo_id, repo_type="model")


def _selected(repo_id: str, names: list[str], files: Selector | None, variant: str | None,
              read: Callable[[str], bytes]) -> list[str]:
    """The files of `names` that `files` (or, if None, the diffusers layout) asks for; `read` gives a file's bytes."""
    if files is None:
        index = json.loads(read("model_index.json")) if "model_index.json" in names else None
        return pipeline_files(names, index, variant)
    chosen = files(names) if callable(files) else list(files)
    missing = [name for name in chosen if name not in names]
    if missing or not chosen:
        from huggingface_hub.errors import EntryNotFoundError

        raise EntryNotFoundError(f"{', '.join(missing) or 'The file wanted'} is not in the hub repository "
                                 f"{repo_id} ({len(names)} files).")
    return chosen


def cached_snapshot(repo_id: str, *, files: Selector | None = None, variant: str | None = None,
                    revision: str | None = None) -> tuple[Path, list[str]] | None:
    """The snapshot folder and the files `fetch` would fetch, if the folder already holds them all; None if not.
    No request to the hub: it reads `refs/` and the tree listing that a finished `fetch` leaves in the cache."""
    from huggingface_hub import get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError, EntryNotFoundError

    revision = revision or "main"
    try:
        names = [entry.path for entry in get_cached_repo_tree(repo_id, revision=revision, cache_dir=cache_folder())]
    except (CachedRepoTreeNotFoundError, OSError, ValueError):
        return None
    folder = _snapshot(repo_id, revision)
    try:
        wanted = _selected(repo_id, names, files, variant, lambda name: (folder / name).read_bytes())
    except (OSError, ValueError, EntryNotFoundError):
        return None
    return (folder, wanted) if all((folder / name).is_file() for name in wanted) else None


def _snapshot(repo_id: str, revision: str) -> Path:
    """The snapshot folder `revision` (a branch or tag recorded in `refs/`, or a commit) points to."""
    ref = _storage(repo_id) / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    return _storage(repo_id) / "snapshots" / commit


# ------------------------------------------------------------------------------------------------ the fetch


@dataclass
class _File:
    name: str
    size: int
    etag: str
    url: str
    blob: Path
    done: int  # bytes already on disk (the whole file when cached)


class _Tracker:
    """Adds up bytes and hands `DownloadProgress` events to the callback, at most every EVENT_INTERVAL_S."""

    def __init__(self, repo_id: str, files: list[_File], callback: ProgressCallback | None) -> None:
        self.repo_id, self.files, self.callback = repo_id, files, callback
        self.total = sum(f.size for f in files)
        self.done = sum(f.done for f in files)
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), self.done)])
        self.last_event = 0.0
        self.current: _File | None = None
        self.files_done = sum(f.done >= f.size for f in files)

    def speed(self, now: float) -> float:
        while len(self.samples) > 1 and now - self.samples[0][0] > SPEED_WINDOW_S:
            self.samples.popleft()
        then, done_then = self.samples[0]
        return (self.done - done_then) / (now - then) if now - then >= 0.2 else 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if self.current is not None:
            self.current.done += count
        self.emit()

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        self.samples.append((now, self.done))
        if self.callback is None or (not force and now - self.last_event < EVENT_INTERVAL_S):
            return
        self.last_event = now
        file = self.current
        self.callback(DownloadProgress(
            repo_id=self.repo_id, done=self.done, total=self.total, file=file.name if file else "",
            file_done=file.done if file else 0, file_total=file.size if file else 0, files_done=self.files_done,
            files_total=len(self.files), bytes_per_s=self.speed(now)))


def fetch(repo_id: str, *, files: Selector | None = None, variant: str | None = None, revision: str | None = None,
          progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> Path:
    """The local snapshot folder of `repo_id` holding `files` (a list of names, or a function picking them from the
    repo's file names; None: the diffusers pipeline or model files, `variant` where there is one).

    `repo_id` must already be resolved and allowed: this is the only place the app downloads from the hub.
    Raises the hub's own errors (offline, gated, not found, unreachable) for the caller to explain,
    `NotEnoughDiskSpace` before any byte, and `GenerationCancelled` when `cancel` is set (the bytes so far stay
    in the cache and the next call continues from them).
    """
    return _fetch(repo_id, files, variant, revision, progress, cancel)[0]


def fetch_file(repo_id: str, files: Selector, *, revision: str | None = None, progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None) -> Path:
    """The one file `files` picks from `repo_id` (e.g. `lora_file`), fetched as `fetch` does; its local path."""
    folder, wanted = _fetch(repo_id, files, None, revision, progress, cancel)
    return folder / wanted[0]


def _fetch(repo_id: str, files: Selector | None, variant: str | None, revision: str | None,
           progress: ProgressCallback | None, cancel: threading.Event | None) -> tuple[Path, list[str]]:
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    revision = revision or "main"
    local = cached_snapshot(repo_id, files=files, variant=variant, revision=revision)
    if local is not None:
        return local
    endpoint = constants.ENDPOINT
    try:
        if not constants.HF_HUB_OFFLINE and not hub_reachable(endpoint):
            # The hub library retries an unreachable hub for about half a minute before it gives up.
            raise LocalEntryNotFoundError(f"the Hugging Face hub ({endpoint}) could not be reached")
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as exc:
        older = _older_download(repo_id, files, revision, exc)
        if older is None:
            raise
        return older
    sizes = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}
    commit = info.sha or revision

    def read(name: str) -> bytes:  # model_index.json, before the plan: it says which folders to fetch
        return Path(hf_hub_download(repo_id, name, revision=commit, endpoint=endpoint)).read_bytes()

    wanted = _selected(repo_id, sorted(sizes), files, variant, read)
    plan = [_planned(repo_id, name, commit, sizes[name], endpoint) for name in wanted]
    tracker = _Tracker(repo_id, plan, progress)
    check_room(repo_id, tracker.total - tracker.done)
    if tracker.done < tracker.total:
        tracker.emit(force=True)
    for file in plan:
        if file.done < file.size or not file.blob.is_file():
            _stop_if_cancelled(cancel)
            tracker.current = file
            _download(repo_id, file, tracker, cancel)
            tracker.files_done += 1
            tracker.current = None
            tracker.emit(force=True)
    # At the commit listed above (were `main` to move meanwhile, a newer commit's files would download unseen):
    # links the blobs into the snapshot and writes the tree listing; `refs/` then points the revision at it.
    folder = snapshot_download(repo_id, revision=commit, allow_patterns=wanted, endpoint=endpoint,
                               tqdm_class=_silent_tqdm())
    if commit != revision:
        ref = _storage(repo_id) / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        temporary = ref.with_name(f".{ref.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.write_text(commit)
        os.replace(temporary, ref)  # readers never see a half-written ref
    return Path(folder), wanted


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether the hub's endpoint (HF_ENDPOINT) accepts a connection within `timeout` seconds."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _older_download(repo_id: str, files: Selector | None, revision: str,
                    exc: BaseException) -> tuple[Path, list[str]] | None:
    """Offline or unreachable hub: a snapshot another download left (e.g. diffusers' own, before this app used
    `fetch`) when it has the files asked for by name, or a model_index.json; `from_pretrained` then says what
    is missing, if anything. None when there is none, or when the error is not about reaching the hub."""
    from huggingface_hub.errors import OfflineModeIsEnabled


    if not (isinstance(exc, OfflineModeIsEnabled) or is_network_error(exc)):
        return None
    folder = _snapshot(repo_id, revision)
    wanted = ["model_index.json"] if files is None else list(files) if not callable(files) else []
    if files is None and not (folder / wanted[0]).is_file():
        wanted = ["config.json"]
    if callable(files) and folder.is_dir():
        wanted = files(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()))
    return (folder, wanted) if wanted and all((folder / name).is_file() for name in wanted) else None


def _planned(repo_id: str, name: str, commit: str, size: int, endpoint: str) -> _File:
    """A file to fetch: its etag and address from a HEAD request (as hf_hub_download gets them, so that it finds
    the blob afterwards), and the bytes already on disk."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    storage = _storage(repo_id)
    pointer = storage / "snapshots" / commit / name
    if pointer.is_file():
        return _File(name, size, "", "", pointer, size)
    meta = get_hf_file_metadata(hf_hub_url(repo_id, name, revision=commit, endpoint=endpoint))
    size = meta.size if meta.size is not None else size
    blob = storage / "blobs" / str(meta.etag)
    partial = blob.with_name(blob.name + ".incomplete")
    done = size if blob.is_file() else min(partial.stat().st_size, size) if partial.is_file() else 0
    return _File(name, size, str(meta.etag), meta.location, blob, done)


def _download(repo_id: str, file: _File, tracker: _Tracker, cancel: threading.Event | None) -> None:
    """Stream `file` into `<blob>.incomplete` from where it stopped, then move it to the blob. The lock is the one
    hf_hub_download takes for this blob, so two processes never write it at once. A dropped or stalled connection
    (no byte for HF_HUB_DOWNLOAD_TIMEOUT seconds) is resumed; RETRIES tries in a row without a byte give up."""
    import httpx2
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import WeakFileLock

    lock = cache_folder() / ".locks" / repo_folder_name(repo_id=repo_id, repo_type="model") / f"{file.etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    file.blob.parent.mkdir(parents=True, exist_ok=True)
    partial = file.blob.with_name(file.blob.name + ".incomplete")
    with WeakFileLock(str(lock)):
        if file.blob.is_file():  # another process finished it meanwhile
            tracker.advance(file.size - file.done)
            return
        partial.touch()
        have = partial.stat().st_size
        if have > file.size:  # not a prefix of this file: start over
            partial.write_bytes(b"")
            have = 0
        if have != file.done:  # another process added bytes meanwhile
            tracker.advance(have - file.done)
        failures, error = 0, None
        while have < file.size and failures < RETRIES:
            try:
                _stream(file, partial, have, tracker, cancel)
            except (httpx2.ConnectError, httpx2.TimeoutException, httpx2.RemoteProtocolError) as exc:
                error = exc
                log.warning("Download of %s from %s interrupted (%s): resuming", file.name, repo_id, exc)
                time.sleep(1)
            now = partial.stat().st_size
            failures = 0 if now > have else failures + 1
            have = now
        if have != file.size:
            if error is not None:
                raise error
            raise OSError(f"{file.name} from {repo_id} arrived with {have} bytes instead of {file.size}; run again "
                          "to fetch the rest.")
        os.replace(partial, file.blob)


def _stream(file: _File, partial: Path, have: int, tracker: _Tracker, cancel: threading.Event | None) -> None:
    """One GET of `file` from byte `have` on, appended to `partial`."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # ranges count bytes of the file itself
    if have:
        headers["Range"] = f"bytes={have}-"
    if file.url.split("/")[2:3] != constants.ENDPOINT.split("/")[2:3]:
        headers.pop("authorization", None)  # a CDN address already carries its own signature
    with get_session().stream("GET", file.url, headers=headers, follow_redirects=True,
                              timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
        hf_raise_for_status(response)
        mode = "ab"
        if have and response.status_code == 200:  # the server ignored the range: start over
            tracker.advance(-have)
            mode = "wb"
        with partial.open(mode) as out:
            for chunk in response.iter_bytes():
                _stop_if_cancelled(cancel)
                out.write(chunk)
                tracker.advance(len(chunk))


def _stop_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("Cancelled: the download stopped; what was fetched stays in the model cache and "
                                  "the next run continues from there.")


def _silent_tqdm() -> type:
    """A tqdm that prints nothing: snapshot_download only links files here, and our own events report the bytes."""
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def is_hub_id(ref: str) -> bool:
    """True when `ref` names a hub repository rather than something on this machine."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if Path(ref).expanduser().exists():
            return False
        validate_repo_id(ref)
        return True
    except (HFValidationError, OSError, ValueError):
        return False


def local_path(ref: str, *, variant: str | None = None, progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None) -> str:
    """What `from_pretrained` should read for `ref`: a hub id's snapshot folder (fetched first if need be), or
    `ref` itself for a folder on this machine."""
    return str(fetch(ref, variant=variant, progress=progress, cancel=cancel)) if is_hub_id(ref) else ref
