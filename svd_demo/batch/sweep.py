"""Parameter sweeps: run a grid of images x parameter values once each, then compare the videos side by side.

`python -m svd_demo sweep --images DIR --seeds 0,1,2 --motion-bucket-id 40,127,200 --out DIR` writes into the out
folder:

- `videos/<id>.mp4` and `videos/<id>.json` (the sidecar) per item; `<id>` is a short hash of the image's file name
  (or the prompt), the parameters and the model, so the same item always gets the same name;
- `results.csv`: one row per item with every parameter, the timings, the peak memory and the status;
- `index.html`: a self-contained contact sheet (inline CSS, no external URL) that plays the videos side by side,
  each captioned with the parameters that differ between them.

Every value of every list is validated (`VideoParams.from_raw`) before anything runs. The sweep is resumable: an
item whose MP4 and sidecar both exist is skipped and listed from its sidecar; the CSV and the sheet are rewritten
after every item, so an interrupted sweep still has both. An item that fails with a `UserFacingError` (an unreadable
image, say) becomes an error row and the sweep goes on; a rerun retries it.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` since the start of the item (memory_kind
`cuda_max_allocated`); elsewhere the process's peak RSS since it started (`process_peak_rss`), which never goes down
between items: a growing value shows which item raised it.

Nothing here imports torch or gradio at import time: the CLI builds this parser on every start.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from svd_demo.core.errors import GenerationCancelled, InputError, UserFacingError
from svd_demo.core.params import (
    IMAGE_SPECS,
    KEYFRAME_SPECS,
    SPECS,
    ImageParams,
    VideoParams,
    checked,
    clean_prompt,
    parse_formats,
)
from svd_demo.studio.sidecar import Sidecar

if TYPE_CHECKING:
    from svd_demo.engine.image_to_video import ProgressFn

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
SWEPT = tuple(name for name in SPECS if name != "randomize_seed")  # seeds are explicit in a sweep, never drawn
IMAGE_SWEPT = tuple(IMAGE_SPECS)  # the SDXL stage's own parameters: only prompt items use them
# Grid order: images outermost, then the parameters in SPECS order, seeds innermost, so neighbours differ by seed.
GRID_ORDER = (*(name for name in SWEPT if name != "seed"), *IMAGE_SWEPT, "seed")
PARAM_COLUMNS = (*SWEPT, "model")
TEXT_COLUMNS = ("prompt", "negative_prompt", *IMAGE_SWEPT, "sdxl_model")  # only when the sweep has prompts
KEYFRAME_COLUMNS = ("end_image", "keyframe_guidance", "loop_to_start")  # only when the sweep has keyframes items
TIMING_COLUMNS = ("total_s", "load_s", "denoise_s", "decode_s", "encode_s")
CSV_NAME = "results.csv"
SHEET_NAME = "index.html"

LineFn = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------------------
# The grid


@dataclass(frozen=True)
class Keyframing:
    """What makes an image item a keyframes one (`--end-image` or `--loop-to-start`): its end photo and the method's
    settings."""

    end_image: Path | None  # None with loop_to_start
    keyframe_guidance: float
    loop_to_start: bool

    def key(self) -> dict[str, Any]:
        """What decides the video, for the item's id (the end photo by name, as the start one is)."""
        return {"end_image": self.end_image.name if self.end_image else None,
                "keyframe_guidance": self.keyframe_guidance, "loop_to_start": self.loop_to_start}


@dataclass(frozen=True)
class SweepItem:
    """One video of the grid: an image (or a prompt) and fully validated parameters."""

    id: str  # stable: the same image name, parameters and model always give the same id (and file names)
    params: VideoParams
    image: Path | None = None
    prompt: str | None = None
    image_params: ImageParams | None = None  # the SDXL stage of a prompt item
    varying: dict[str, Any] = field(default_factory=dict, compare=False)  # values that differ across the grid
    keyframes: Keyframing | None = None  # a keyframes item: the image is the start photo

    @property
    def label(self) -> str:
        """The image's file name, or the prompt (shortened), for progress lines and captions."""
        if self.image is not None:
            return self.image.name
        text = " ".join((self.prompt or "").split())
        return text if len(text) <= 60 else text[:57] + "..."


def item_id(image_name: str | None, params: VideoParams, model: str | None = None, *,
            image_params: ImageParams | None = None, sdxl_model: str | None = None,
            keyframes: Keyframing | None = None) -> str:
    """12 hex digits of a hash over what decides the video (not the output formats, not where the image lies)."""
    decisive = {k: v for k, v in params.to_dict().items() if k not in ("extra_formats", "randomize_seed")}
    key: dict[str, Any] = {"image": image_name, "params": decisive}
    if model is not None:
        key["model"] = model
    if image_params is not None:
        key["text"] = {k: v for k, v in image_params.to_dict().items() if k != "randomize_seed"}
        key["sdxl_model"] = sdxl_model
    if keyframes is not None:
        key["keyframes"] = keyframes.key()
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def parse_list(flag: str, texts: str | Sequence[str]) -> list[str]:
    """'40,127,200' (or several such, from a repeated flag) to ['40', '127', '200']; empty entries are an error."""
    out: list[str] = []
    for text in [texts] if isinstance(texts, str) else texts:
        parts = [part.strip() for part in str(text).split(",")]
        if not all(parts):
            raise InputError(f"{flag} has an empty value in {text!r}: separate values with commas, e.g. 0,1,2.")
        out.extend(parts)
    return out


def collect_images(entries: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Folders (their images, sorted by name, not recursive) and files, in the order given, each once."""
    images: list[Path] = []
    seen: set[Path] = set()
    for entry in entries:
        path = Path(entry)
        if not path.exists():
            raise InputError(f"'{path}' does not exist. --images takes image files and/or folders of images.")
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
            if not found:
                raise InputError(f"The folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        else:
            found = [path]
        for image in found:
            if image.resolve() not in seen:
                seen.add(image.resolve())
                images.append(image)
    return images


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the prompts file '{path}': {exc}") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise InputError(f"The prompts file '{path}' holds no prompts (one per line; # starts a comment).")
    return prompts


def _validate_values(values: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Each value on its own, so the message names the parameter and the bad value; duplicates dropped."""
    if "randomize_seed" in values:
        raise InputError("A sweep never draws random seeds: list them instead, e.g. --seeds 0,1,2.")
    unknown = sorted(set(values) - set(SWEPT) - set(IMAGE_SWEPT))
    if unknown:
        raise InputError(f"Unknown sweep parameter(s): {', '.join(unknown)}. Known: "
                         f"{', '.join((*SWEPT, *IMAGE_SWEPT))}.")
    clean: dict[str, list[Any]] = {}
    for name, raw in values.items():
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raw = [raw]
        if not raw:
            raise InputError(f"`{name}` was given no values.")
        checked: list[Any] = []
        for value in raw:
            if name in IMAGE_SWEPT:
                number = getattr(ImageParams.from_raw({"prompt": "-", name: value}), name)
            else:
                number = getattr(VideoParams.from_raw({name: value}), name)
            if number not in checked:
                checked.append(number)
        clean[name] = checked
    return clean


def expand_grid(images: Sequence[Path], values: Mapping[str, Sequence[Any]], *, prompts: Sequence[str] = (),
                negative_prompt: str = "", model: str | None = None, sdxl_model: str | None = None,
                extra_formats: Any = (), end_image: Path | None = None, loop_to_start: bool = False,
                keyframe_guidance: Sequence[Any] = ()) -> list[SweepItem]:
    """The cartesian product of images (then prompts) and every parameter's values, each validated.

    `values` maps parameter names to lists of raw values (strings from the command line are fine); parameters not
    named keep their defaults. Raises InputError, naming the parameter, before anything runs. Identical items
    (a value listed twice) appear once. Prompt items (text to video) also take the SDXL stage's parameters
    (sdxl_steps, sdxl_guidance_scale, orientation) and ignore aspect_mode (the still is made at the video's size).

    With `end_image` or `loop_to_start`, every image item is a keyframes one (its image the start photo), once per
    value of `keyframe_guidance`.
    """
    clean = _validate_values(values)
    guidances = _keyframe_guidances(keyframe_guidance, end_image, loop_to_start, prompts)
    formats = parse_formats(extra_formats)
    if not prompts and any(name in clean for name in IMAGE_SWEPT):
        raise InputError(f"{', '.join(n for n in IMAGE_SWEPT if n in clean)} only apply to text-to-video items: "
                         "give --prompts FILE too.")
    negative = clean_prompt(negative_prompt, "negative_prompt", required=False)
    by_name: dict[str, Path] = {}
    for image in map(Path, images):
        if by_name.setdefault(image.name, image) != image:
            raise InputError(f"Two images are named '{image.name}' ({by_name[image.name]} and {image}); their "
                             "videos would share names. Rename one.")
    items: list[SweepItem] = []
    seen: set[str] = set()

    def add(image: Path | None, prompt: str | None, names: list[str]) -> None:
        varying = {name for name in names if len(clean[name]) > 1}
        for guidance, combo in itertools.product(guidances, itertools.product(*(clean[name] for name in names))):
            chosen = dict(zip(names, combo, strict=True))
            keyframes = None
            if guidance is not None and prompt is None:
                keyframes = Keyframing(None if loop_to_start else end_image, guidance, loop_to_start)
            video = {k: v for k, v in chosen.items() if k not in IMAGE_SWEPT}
            params = replace(VideoParams.from_raw({**video, "randomize_seed": False}), extra_formats=formats)
            still = None
            if prompt is not None:
                still = ImageParams.from_raw({**{k: v for k, v in chosen.items() if k in IMAGE_SWEPT},
                                              "prompt": prompt, "negative_prompt": negative, "seed": params.seed,
                                              "randomize_seed": False, "resolution": params.resolution})
            ident = item_id(image.name if image is not None else None, params, model, image_params=still,
                            sdxl_model=sdxl_model, keyframes=keyframes)
            shown = {k: v for k, v in chosen.items() if k in varying}
            if keyframes is not None and len(guidances) > 1:
                shown["keyframe_guidance"] = guidance
            if ident not in seen:
                seen.add(ident)
                items.append(SweepItem(id=ident, params=params, image=image, prompt=prompt, image_params=still,
                                       varying=shown, keyframes=keyframes))

    video_names = [name for name in GRID_ORDER if name in clean and name not in IMAGE_SWEPT]
    for image in by_name.values():
        add(image, None, video_names)
    text_names = [name for name in GRID_ORDER if name in clean and name != "aspect_mode"]
    for prompt in prompts:
        add(None, ImageParams.from_raw({"prompt": prompt}).prompt, text_names)
    return items


def _keyframe_guidances(values: Sequence[Any], end_image: Path | None, loop_to_start: bool,
                        prompts: Sequence[str]) -> list[float | None]:
    """The keyframe guidance values, each checked ([None]: not a keyframes sweep)."""

    if end_image is None and not loop_to_start:
        if values:
            raise InputError("--keyframe-guidance applies to keyframes sweeps: give --end-image FILE or "
                             "--loop-to-start too.")
        return [None]
    if prompts:
        raise InputError("--end-image and --loop-to-start make keyframes items from --images; leave out --prompts.")
    if end_image is not None and loop_to_start:
        raise InputError("Give either --end-image (every clip ends on that photo) or --loop-to-start (every clip "
                         "ends on its own start photo), not both.")
    if end_image is not None and not Path(end_image).is_file():
        raise InputError(f"The end photo '{end_image}' (--end-image) does not exist or is not a file.")
    out: list[float | None] = []
    for value in values or [KEYFRAME_SPECS["keyframe_guidance"].default]:
        number = checked("keyframe_guidance", value)
        if number not in out:
            out.append(number)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Running


@dataclass
class SweepRow:
    """The outcome of one item: what the CSV and the contact sheet show."""

    item: SweepItem
    status: str  # ok, skipped or error; pending, running or interrupted for an item not done (in the CSV)
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # resolved (frames, fps filled) when it ran
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float | None = None
    memory_kind: str = ""
    video: Path | None = None
    sidecar: Path | None = None

    @property
    def status_text(self) -> str:
        return f"error: {self.error}" if self.status == "error" else self.status

    def csv_row(self, out_dir: Path) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.item.id, "image": self.item.image.name if self.item.image else "",
                               "status": self.status_text, "memory_kind": self.memory_kind,
                               "peak_memory_mb": "" if self.peak_memory_mb is None else f"{self.peak_memory_mb:.1f}",
                               "video": _relative(self.video, out_dir) if self.video else ""}
        for name in (*TEXT_COLUMNS, *PARAM_COLUMNS):
            value = self.parameters.get(name) if self.item.prompt is not None or name not in TEXT_COLUMNS else None
            row[name] = "" if value is None else value
        for name in (*TIMING_COLUMNS, "sdxl_s"):
            row[name] = self.timings.get(name, "")
        if self.item.keyframes is not None:
            row.update({k: "" if v is None else v for k, v in self.item.keyframes.key().items()})
        return row


def csv_columns(rows: Sequence[SweepRow]) -> tuple[str, ...]:
    """The CSV's header; the SDXL stage's columns only appear when the sweep has prompts, the keyframes ones
    when it has keyframes items."""
    text = any(row.item.prompt is not None for row in rows)
    keyframes = KEYFRAME_COLUMNS if any(row.item.keyframes is not None for row in rows) else ()
    return ("id", "image", *(TEXT_COLUMNS if text else ()), *PARAM_COLUMNS, *keyframes, *TIMING_COLUMNS,
            *(("sdxl_s",) if text else ()), "peak_memory_mb", "memory_kind", "status", "video")


@dataclass
class SweepReport:
    rows: list[SweepRow]
    csv: Path
    sheet: Path
    elapsed_s: float

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    @property
    def summary(self) -> str:
        return (f"Sweep done in {self.elapsed_s:.1f} s: {self.count('ok')} ran, {self.count('skipped')} skipped "
                f"(already done), {self.count('error')} failed. Results: {self.csv}; contact sheet: {self.sheet}")


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _reset_cuda_peak() -> None:
    torch = sys.modules.get("torch")  # not imported yet: nothing has run on CUDA in this process
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)


def _peak_memory(record: Mapping[str, Any]) -> tuple[float | None, str]:
    runtime = Sidecar.from_record(record).runtime
    device = runtime.device if runtime is not None else ""
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    peak = _peak_rss_mb()
    return peak, "process_peak_rss" if peak is not None else "unavailable"


def _paths(out_dir: Path, item: SweepItem) -> tuple[Path, Path]:
    stem = out_dir / "videos" / item.id
    return stem.with_suffix(".mp4"), stem.with_suffix(".json")


def _finished_row(item: SweepItem, out_dir: Path) -> SweepRow | None:
    """The row of an item done by an earlier run (MP4 and a readable sidecar), else None."""
    video, sidecar = _paths(out_dir, item)
    if not (video.is_file() and sidecar.is_file()):
        return None
    try:
        done = Sidecar.read(sidecar)
    except (OSError, ValueError):
        return None  # a damaged sidecar: run the item again
    return _row(item, "skipped", done, video, sidecar)


def _row_from_record(item: SweepItem, status: str, record: Mapping[str, Any], video: Path, sidecar: Path) -> SweepRow:
    return _row(item, status, Sidecar.from_record(record), video, sidecar)


def _row(item: SweepItem, status: str, done: Sidecar, video: Path, sidecar: Path) -> SweepRow:
    return SweepRow(item=item, status=status, parameters=done.parameters, timings=done.timings,
                    peak_memory_mb=done.sweep.peak_memory_mb if done.sweep else None,
                    memory_kind=done.sweep.memory_kind if done.sweep else "", video=video, sidecar=sidecar)


def _check_text_to_video(target: Any, items: Sequence[SweepItem]) -> None:
    if any(item.prompt is not None for item in items) and not callable(getattr(target, "text_to_video", None)):
        raise UserFacingError("--prompts needs text to video (the SDXL stage), which this version of svd-demo does "
                              "not have yet. Sweep images with --images instead.")


def _describe(item: SweepItem) -> str:
    values = " ".join(f"{k}={_fmt(v)}" for k, v in item.varying.items())
    return f"{item.id} {item.label}" + (f" {values}" if values else "")


def run_item(studio: Any, item: SweepItem, videos_dir: str | os.PathLike[str], *,
             model_ref: str | None = None, sdxl_model: str | None = None,
             step_progress: ProgressFn | None = None, cancel: threading.Event | None = None,
             sweep_info: Mapping[str, Any] | None = None) -> SweepRow:
    """Run one item into `videos_dir`/<id>.mp4 and .json (prompt items also keep <id>-still.png).

    An ok row, or an error row when the item fails with a UserFacingError (an unreadable image, out of memory);
    GenerationCancelled and any other exception propagate. `sweep_info` joins the sidecar's "sweep" section (the Ray
    path records its attempt and worker there).
    """
    from svd_demo.files.outputs import write_json_atomic  # numpy and PIL: only once a run has files to write

    stem = Path(videos_dir) / item.id
    _reset_cuda_peak()
    try:
        if item.image_params is not None:
            _, result = studio.text_to_video(item.image_params, item.params, sdxl_model=sdxl_model,
                                             svd_model=model_ref, progress=step_progress, cancel=cancel,
                                             out_stem=stem, still_path=stem.with_name(f"{item.id}-still.png"))
        elif item.keyframes is not None:
            result = studio.keyframes_to_video(item.image, item.keyframes.end_image, item.params,
                                               keyframe_guidance=item.keyframes.keyframe_guidance,
                                               loop_to_start=item.keyframes.loop_to_start, model_ref=model_ref,
                                               progress=step_progress, cancel=cancel, out_stem=stem)
        else:
            result = studio.image_to_video(item.image, item.params, model_ref=model_ref,
                                           progress=step_progress, cancel=cancel, out_stem=stem)
    except GenerationCancelled:
        raise
    except UserFacingError as exc:
        settings = getattr(studio, "settings", None)  # for the error row's model columns
        return planned_row(item, "error", error=str(exc), svd_model=model_ref or getattr(settings, "svd_model", None),
                           sdxl_model=sdxl_model or getattr(settings, "sdxl_model", None))
    peak, kind = _peak_memory(result.record)
    result.record["sweep"] = {"id": item.id, "image": item.image.name if item.image else None,
                              "prompt": item.prompt, "memory_kind": kind,
                              "peak_memory_mb": None if peak is None else round(peak, 1), **(sweep_info or {})}
    write_json_atomic(result.files.sidecar, result.record)
    return _row_from_record(item, "ok", result.record, result.files.video, result.files.sidecar)


def planned_row(item: SweepItem, status: str, *, svd_model: str | None, sdxl_model: str | None,
                error: str = "") -> SweepRow:
    """A row holding the item's own parameters (not resolved by a run): error rows, and the Ray path's pending ones."""
    text = {**item.image_params.to_dict(), "sdxl_model": sdxl_model} if item.image_params else {}
    return SweepRow(item=item, status=status, error=error,
                    parameters={**text, **item.params.to_dict(), "model": svd_model})


def outcome_text(row: SweepRow, seconds: float) -> str:
    """What a progress line says about a finished item: 'ok in 3.1 s, peak 812 MB (...)' or 'error: ...'."""
    if row.status == "error":
        return f"error: {row.error}"
    memory = f", peak {row.peak_memory_mb:.0f} MB ({row.memory_kind})" if row.peak_memory_mb is not None else ""
    return f"ok in {seconds:.1f} s{memory}"


def run_sweep(studio: Any, items: Sequence[SweepItem], out_dir: str | os.PathLike[str], *,
              progress: LineFn | None = None, step_progress: ProgressFn | None = None,
              model_ref: str | None = None, sdxl_model: str | None = None,
              cancel: threading.Event | None = None) -> SweepReport:
    """Run every item not already done, writing results.csv and index.html after each one.

    `progress` gets one line per item; `step_progress` is handed to the studio (denoising steps of the current
    item). Prompt items go through `studio.text_to_video` (their still is kept as videos/<id>-still.png).
    `model_ref`/`sdxl_model` default to the studio's settings. Setting `cancel` stops the sweep: the current item
    is dropped, GenerationCancelled propagates, and the CSV and sheet keep what was done.
    """
    _check_text_to_video(studio, items)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    report = progress or (lambda line: None)
    stop = cancel if cancel is not None else threading.Event()
    settings = getattr(studio, "settings", None)
    models = {"svd_model": model_ref or getattr(settings, "svd_model", None),
              "sdxl_model": sdxl_model or getattr(settings, "sdxl_model", None)}
    rows: list[SweepRow] = []

    def flush(next_status: str = "pending") -> None:
        """The CSV holds a row for every item of the grid (those not done: the next one `next_status`, the rest
        pending), so it says how far the sweep got, also after Ctrl-C; the sheet shows what is done."""
        waiting = [planned_row(item, next_status if i == 0 else "pending", **models)
                   for i, item in enumerate(items[len(rows):])]
        write_results_csv([*rows, *waiting], out_dir)
        write_contact_sheet(rows, out_dir)

    total = len(items)
    running = False
    try:
        for index, item in enumerate(items, 1):
            head = f"[{index}/{total}] {_describe(item)}"
            row = _finished_row(item, out_dir)
            if row is not None:
                rows.append(row)
                report(f"{head}: skipped (already done)")
                continue
            if stop.is_set():
                raise GenerationCancelled(f"Sweep cancelled after {index - 1} of {total} items.")
            flush("running")
            running, item_start = True, time.perf_counter()
            # GenerationCancelled propagates: the CSV and the sheet already hold every finished item
            row = run_item(studio, item, out_dir / "videos", model_ref=model_ref, sdxl_model=sdxl_model,
                           step_progress=step_progress, cancel=stop)
            running = False
            rows.append(row)
            report(f"{head}: {outcome_text(row, time.perf_counter() - item_start)}")
            flush()
    except KeyboardInterrupt:
        # Ctrl-C reaches this thread while the device's worker thread computes the item: told to stop, it does at
        # its next step (removing what the item wrote), instead of keeping the process alive until the item is done.
        stop.set()
        raise
    finally:  # also when interrupted: every item has its row, the sheet every item finished so far
        flush("interrupted" if running else "pending")
    return SweepReport(rows=rows, csv=out_dir / CSV_NAME, sheet=out_dir / SHEET_NAME,
                       elapsed_s=time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------------------
# Writing the results


def _write_atomic(path: Path, text: str) -> None:
    from svd_demo.files.media import atomic_write  # numpy: only once a report is written

    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def _relative(path: Path, out_dir: Path) -> str:
    try:
        return Path(os.path.relpath(path, out_dir)).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).as_posix()


def write_results_csv(rows: Sequence[SweepRow], out_dir: str | os.PathLike[str]) -> Path:
    out_dir = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(rows), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.csv_row(out_dir))
    path = out_dir / CSV_NAME
    _write_atomic(path, buffer.getvalue())
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}
a{color:#8cf}a:visited{color:#c9f}
h1{font-size:1.3rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.6rem 0 .5rem;word-break:break-all}
.fixed,.meta{color:#aaa;font-size:12px}.fixed code{color:#ddd}
.grid{display:grid;gap:12px;grid-template-columns:repeat(auto-fill,minmax(260px,1fr))}
figure{margin:0;background:#1c1c1c;border-radius:6px;overflow:hidden}
video{display:block;width:100%;background:#000}
figcaption{padding:6px 8px}.params span{display:inline-block;margin-right:10px}
.params b{color:#8cf;font-weight:600}.error .missing{padding:2rem 1rem;color:#f88;word-break:break-word}
button{margin:.4rem 0;background:#333;color:#eee;border:1px solid #555;border-radius:4px;padding:4px 10px}
"""

_SCRIPT = ("function restartAll(){document.querySelectorAll('video').forEach(function(v){v.currentTime=0;"
           "v.play();});}")


def _sheet_params(row: SweepRow) -> dict[str, str]:
    names = (*TEXT_COLUMNS[1:], *PARAM_COLUMNS) if row.item.prompt is not None else PARAM_COLUMNS
    return {name: _fmt(row.parameters.get(name)) for name in names}


def write_contact_sheet(rows: Sequence[SweepRow], out_dir: str | os.PathLike[str]) -> Path:
    """index.html: one section per image (or prompt), a grid of looping videos captioned with what varies there.

    Self-contained: inline CSS and script, video sources relative to `out_dir`, every value HTML-escaped.
    """
    out_dir = Path(out_dir)
    esc = html.escape
    params = [_sheet_params(row) for row in rows]
    groups: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(("prompt" if row.item.prompt is not None else "image", row.item.label), []).append(index)

    def varying_in(indices: list[int]) -> list[str]:
        ran = [params[i] for i in indices if rows[i].status != "error"]  # error rows lack the resolved values
        names = list(params[indices[0]])
        return [name for name in names if any(name in rows[i].item.varying for i in indices)
                or len({p.get(name) for p in ran}) > 1]

    group_varying = {key: varying_in(indices) for key, indices in groups.items()}
    everywhere = [p for p, row in zip(params, rows, strict=True) if row.status != "error"]
    shown = {name for names in group_varying.values() for name in names}
    fixed = {name: next(iter(values)) for name in PARAM_COLUMNS if name not in shown
             for values in [{p[name] for p in everywhere if p.get(name)}] if len(values) == 1}
    counts = {status: sum(row.status == status for row in rows) for status in ("ok", "skipped", "error")}

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width,initial-scale=1">',
             f"<title>svd-demo sweep: {len(rows)} videos</title><style>{_CSS}</style>",
             f"<script>{_SCRIPT}</script></head><body>",
             f"<h1>Sweep: {len(rows)} videos</h1>",
             f'<p class="meta">{counts["ok"]} ran, {counts["skipped"]} from an earlier run, {counts["error"]} failed. '
             f'Every value is in <a href="{CSV_NAME}">{CSV_NAME}</a>.</p>']
    if fixed:
        parts.append('<p class="fixed">Same for all: ' + " ".join(
            f"<code>{esc(name)}={esc(value)}</code>" for name, value in fixed.items()) + "</p>")
    parts.append('<button type="button" onclick="restartAll()">Restart all together</button>')
    for (kind, label), indices in groups.items():
        varying = group_varying[(kind, label)]
        seeds = {params[i]["seed"] for i in indices}
        style = (f' style="grid-template-columns:repeat({len(seeds)},minmax(220px,1fr))"'
                 if "seed" in varying and len(seeds) <= 6 else "")
        heading = f"Prompt: {label}" if kind == "prompt" else label
        parts.append(f"<h2>{esc(heading)}</h2>")
        parts.append(f'<div class="grid"{style}>')
        for index in indices:
            row = rows[index]
            caption = "".join(f"<span><b>{esc(name)}</b> {esc(params[index][name])}</span>" for name in varying)
            if row.status != "error" and row.video is not None:
                src = esc(quote(_relative(row.video, out_dir)), quote=True)
                media = f'<video src="{src}" controls loop muted autoplay playsinline preload="auto"></video>'
                total = row.timings.get("total_s")
                what = "GPU peak" if row.memory_kind == "cuda_max_allocated" else "peak RSS"
                peak = f" · {what} {row.peak_memory_mb:.0f} MB" if row.peak_memory_mb is not None else ""
                meta = f"{esc(row.item.id)} · {esc(row.status)}" + (f" · {total:.1f} s" if total else "") + peak
                parts.append(f'<figure>{media}<figcaption><div class="params">{caption}</div>'
                             f'<div class="meta">{meta}</div></figcaption></figure>')
            else:
                parts.append(f'<figure class="error"><div class="missing">{esc(row.status_text)}</div><figcaption>'
                             f'<div class="params">{caption}</div><div class="meta">{esc(row.item.id)}</div>'
                             "</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    path = out_dir / SHEET_NAME
    _write_atomic(path, "\n".join(parts))
    return path
