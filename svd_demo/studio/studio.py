"""The studio: one object the UI, the CLI and scripts call to turn inputs into files.

Order of work in a request: everything cheap and fallible first (parameters, the image), then the GPU section under
the cache's lock (load once, generate), then encoding outside the lock so the next person's job can start.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from svd_demo.core.access import Access
from svd_demo.core.errors import GenerationCancelled, InputError, UserFacingError
from svd_demo.core.models import is_tiny_model, svd_defaults
from svd_demo.core.params import (
    INTERPOLATION_SPECS,
    KEYFRAME_SPECS,
    MAX_COMPARE_SEEDS,
    UPSCALE_SPECS,
    ImageParams,
    VideoParams,
    checked,
    quick_defaults,
)
from svd_demo.core.settings import Settings
from svd_demo.engine.allocator import release_free_memory
from svd_demo.engine.hub import DownloadProgress, ProgressCallback
from svd_demo.engine.image_to_video import ProgressFn, generate_frames
from svd_demo.engine.interpolation import interpolate_frames
from svd_demo.engine.keyframes import METHOD, Keyframes, denoise_keyframes, source_sha256
from svd_demo.engine.lora import apply_loras
from svd_demo.engine.memory import resolve_devices, resolve_dtype
from svd_demo.engine.pipelines import PipelineCache
from svd_demo.engine.preview import PreviewSink
from svd_demo.engine.text_to_image import generate_still
from svd_demo.engine.upscale import DEFAULT_TILE, UpscalerCache, check_output_size, check_upscaler_ref, factor_of
from svd_demo.engine.upscale.files import STILL_SUFFIXES, check_input, upscale_file, upscaled_frames
from svd_demo.files.images import LoadedImage, PreparedImage, frame_to_size, load_image, prepare_image
from svd_demo.files.outputs import (
    OutputFiles,
    apply_loop,
    output_stem,
    private_output_dir,
    remove_old_outputs,
    write_json_atomic,
    write_outputs,
    write_png,
)
from svd_demo.files.video_input import frames_of
from svd_demo.studio import sidecar
from svd_demo.studio.budgets import budgets, check_extend_rate, check_upscale_tile
from svd_demo.studio.interpolating import interpolate_with_record

T = TypeVar("T")


@dataclass
class VideoResult:
    """One finished image-to-video run."""

    files: OutputFiles
    seed: int
    prepared: Image.Image
    notices: list[str]  # what was changed on the way (image conversions, crops, memory retries), for the user
    record: dict[str, Any]  # the sidecar's content
    memory_changes: list[str] = field(default_factory=list)  # what the out-of-memory recovery changed (in notices)


@dataclass
class StillResult:
    """One finished text-to-image run: the PNG, its sidecar, and what the video stage needs to know."""

    path: Path
    sidecar: Path
    image: Image.Image
    seed: int
    notices: list[str]
    record: dict[str, Any]  # the sidecar's content (written again if the still is swept before it is animated)
    params: ImageParams  # resolved: the seed used
    model_ref: str
    sdxl_s: float  # the SDXL call's seconds


@dataclass
class PreparedKeyframes:
    """The two photos of a keyframes run as the model will see them (the end framed to the start's size)."""

    start: PreparedImage
    start_original: LoadedImage
    end: PreparedImage
    start_notices: list[str]
    end_notices: list[str]  # each says it is about the end photo


def _scaled(progress: ProgressFn | None, start: float, end: float) -> ProgressFn | None:
    """Map a stage's 0-1 progress into its share of a two-stage run."""
    if progress is None:
        return None
    return lambda fraction, text: progress(start + (end - start) * fraction, text)


class CancelFlag(threading.Event):
    """One run's cancel flag, and the files the run has published so far.

    A run can be dropped after it wrote its files (the client cancels or goes away during the last step or the
    encoding): `discard` then removes them, as nobody will fetch them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.files: list[Path] = []

    def discard(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files.clear()


def _with_sidecar(path: Path, record: dict[str, Any], cancel: threading.Event | None) -> Path:
    """Write `path`'s sidecar beside it (a file without its sidecar is removed too) and publish both."""
    record_path = path.with_suffix(".json")
    try:
        write_json_atomic(record_path, record)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    _published(cancel, path, record_path)
    return record_path


def _published(cancel: threading.Event | None, *paths: Path) -> None:
    """Files a run has just written: removed at once if it was cancelled meanwhile, else noted on its flag."""
    if cancel is None:
        return
    if cancel.is_set():
        for path in paths:
            path.unlink(missing_ok=True)
        raise GenerationCancelled("Cancelled.")
    if isinstance(cancel, CancelFlag):
        cancel.files.extend(paths)


@dataclass
class CancelTokens:
    """The cancel flags of the runs in progress, by session: a Cancel button stops that person's runs and nobody
    else's, and the end of a session stops all of its runs. One flag per run (per Gradio event), each of a `kind`
    (e.g. GPU work or interpolation), so one tab's Cancel leaves the other kind of run alone."""

    _flags: dict[str, dict[threading.Event, str]] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def token(self, session: str, flag: threading.Event | None = None, kind: str = "") -> Iterator[threading.Event]:
        """Register `flag` (a new CancelFlag if None) under `session` for the duration of the run."""
        flag = CancelFlag() if flag is None else flag
        with self._changed:
            self._flags.setdefault(session, {})[flag] = kind
        try:
            yield flag
        finally:
            with self._changed:
                flags = self._flags.get(session, {})
                flags.pop(flag, None)
                if not flags:
                    self._flags.pop(session, None)
                self._changed.notify_all()

    def _running(self, session: str, kind: str | None) -> list[threading.Event]:
        return [flag for flag, k in self._flags.get(session, {}).items() if kind is None or k == kind]

    def cancel(self, session: str, kind: str | None = None) -> bool:
        """Set the flags of `session`'s runs (of `kind`, or all); False if it has none."""
        with self._changed:
            flags = self._running(session, kind)
        for flag in flags:
            flag.set()
        return bool(flags)

    def wait_stopped(self, session: str, timeout: float, kind: str | None = None) -> bool:
        """Wait until `session` has no run (of `kind`) left; False if `timeout` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._running(session, kind), timeout)


def _names_models(method: Callable[..., T]) -> Callable[..., T]:
    """A studio method whose errors name models and LoRAs as callers know them: in public mode by name, never by
    where the server keeps them (a load error quotes the folder it read)."""

    @functools.wraps(method)
    def named(self: Studio, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except UserFacingError as exc:
            text = self.access.scrub(str(exc))
            if text == str(exc):
                raise
            raise type(exc)(text) from exc

    return named


MAX_EXTEND_FRAMES = 400
"""Longest clip `extend_video` takes (the whole result is held in memory while it is encoded)."""


class Studio:
    """Holds the settings, the pipeline cache and the cancel flags; safe to call from many threads."""

    def __init__(self, settings: Settings) -> None:

        if settings.output_dir is None:
            settings = replace(settings, output_dir=private_output_dir())
        self.settings = settings
        self.access = Access.from_settings(settings)  # the models and LoRAs on offer (all of them in private mode)
        # One cache (pipelines + lock) per device; a request borrows whichever is free. With one device, as usual,
        # requests simply take turns on it.
        self.caches = [PipelineCache(settings, device) for device in resolve_devices(settings.device)]
        self.cache = self.caches[0]
        self._free: queue.SimpleQueue[PipelineCache] = queue.SimpleQueue()
        for cache in self.caches:
            self._free.put(cache)
        self.cancels = CancelTokens()
        self._upscalers: dict[int, Any] = {}  # one UpscalerCache per device cache, made on first use
        self.budgets = budgets(self.access.public, settings.budgets)  # the stricter set where strangers can call
        settings.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def output_dir(self) -> Path:
        """This studio's output folder (a private one when the settings name none)."""
        return self.settings.output_dir  # type: ignore[return-value]  # set in __init__

    def _sweep(self) -> None:
        """Remove expired outputs. Only at the start of a request, before it writes anything, and only in our own
        folder: a sweep at the end deleted a text-to-video request's own still when the video outlasted the TTL."""
        remove_old_outputs(self.settings.output_dir, self.settings.output_ttl)
        release_free_memory()  # what the last requests' encoding and post-processing freed (see allocator.py)

    @contextmanager
    def gpu(self) -> Iterator[PipelineCache]:
        """A device's cache, held for one job (waits while every device is busy); run the job with `cache.run`."""
        cache = self._free.get()
        try:
            yield cache
        finally:
            self._free.put(cache)

    def quick_defaults(self, *model_refs: str | None) -> dict[str, int]:
        """The starting values that replace the defaults here (params.QUICK_DEFAULTS), or none: on a CPU, or when
        one of `model_refs` (by default the settings' models) has random weights."""
        refs = [ref for ref in model_refs or (self.settings.svd_model, self.settings.sdxl_model) if ref]
        return quick_defaults(self.cache.device, random_weights=any(map(is_tiny_model, refs)))

    def prepare(self, source: Any, resolution: int, aspect_mode: str) -> tuple[PreparedImage, LoadedImage]:
        """The image exactly as the model will see it (CPU only, fast): for the preview and for generation."""
        loaded = load_image(source, max_pixels=self.settings.max_image_pixels, min_side=int(resolution))
        return prepare_image(loaded.image, resolution, aspect_mode), loaded

    @_names_models
    def image_to_video(self, source: Any, params: VideoParams, *, model_ref: str | None = None,
                       progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                       out_stem: Path | None = None, still: StillResult | None = None,
                       preview: PreviewSink | None = None) -> VideoResult:
        """Generate a video from an image and write it (MP4 + requested formats + sidecar).

        `preview` receives a rough picture of the frames every few denoising steps (svd_demo/engine/preview.py).

        Files go to the output folder under a unique name, or to `out_stem` + suffix when given (the CLI's --out).
        With `still`, the text-to-image stage that made the image is recorded with the video's parameters.
        """
        started = time.perf_counter()
        timings: dict[str, float] = {}
        if out_stem is None and still is None:
            self._sweep()
        model_ref, model_source = self.access.model("svd", model_ref)  # its name, and what is loaded
        num_frames, fps = svd_defaults(model_source)
        params = params.resolved(num_frames=num_frames, fps=fps)
        prepared, original = self.prepare(source, params.resolution, params.aspect_mode)
        upscale = _upscale_factor(params, prepared.image.size)  # a too-large result is refused before the GPU
        if upscale:

            check_upscaler_ref(self.access.model("upscale", None)[1])
        timings["prepare_s"] = time.perf_counter() - started

        report = progress or (lambda fraction, text: None)

        loaded, result = self._clip_on_device(
            model_source, upscale, timings, progress, cancel,
            lambda cache, loaded: generate_frames(cache, loaded, prepared.image, params, progress=progress,
                                                  cancel=cancel, preview=preview,
                                                  cache_interval=self.settings.feature_cache_interval,
                                                  cache_branch=self.settings.feature_cache_branch))

        report(0.95, "Encoding")

        def interpolated(count: int, seconds: float) -> None:
            record["interpolation"]["frames"] = count
            record["timings"]["interpolate_s"] = round(seconds, 3)

        frames, fps, interpolation = clip_as_written(result.frames, params, report, cancel, interpolated)
        video = {"model_ref": model_ref, "loaded": loaded, "frames": result, "original": original,
                 "prepared": prepared, "timings": timings, "interpolation": interpolation}
        if still is None:
            record = sidecar.image_to_video(params, **video)
        else:
            record = sidecar.text_to_video(still.params, still.model_ref, still.path.name, still.sdxl_s, params=params,
                                           **video)
        stem = out_stem or output_stem(self.settings.output_dir, "video", params.seed)
        files = self._write_clip(frames, upscale, stem, fps, record, params, started, progress, cancel)
        notices = [*(still.notices if still else []), *original.notices, *prepared.notices, *result.memory_changes,
                   *result.notes]
        return VideoResult(files=files, seed=params.seed, prepared=prepared.image, notices=notices, record=record,
                           memory_changes=result.memory_changes)

    def compare_seeds(self, image: Any, params: VideoParams, seeds: Iterable[Any], *, model_ref: str | None = None,
                      progress: ProgressFn | None = None,
                      cancel: threading.Event | None = None) -> list[VideoResult]:
        """The same image and parameters with each seed (the "compare seeds" gallery), in the seeds' order.

        Seeds are validated first (at most MAX_COMPARE_SEEDS, duplicates dropped); each run is an `image_to_video`
        into the output folder. `progress` sees the whole batch as 0..1; `cancel` stops the current seed
        (GenerationCancelled propagates, the seeds already done are lost to the caller).
        """
        chosen: list[int] = []
        for seed in seeds:
            value = VideoParams.from_raw({"seed": seed}).seed
            if value not in chosen:
                chosen.append(value)
        if not chosen:
            raise InputError("Give at least one seed to compare.")
        if len(chosen) > MAX_COMPARE_SEEDS:
            raise InputError(f"Compare at most {MAX_COMPARE_SEEDS} seeds at once (got {len(chosen)}).")
        results = []
        for index, seed in enumerate(chosen):
            def step(fraction: float, text: str, index: int = index, seed: int = seed) -> None:
                if progress is not None:
                    progress((index + fraction) / len(chosen), f"Seed {seed} ({index + 1}/{len(chosen)}): {text}")

            results.append(self.image_to_video(image, replace(params, seed=seed, randomize_seed=False),
                                               model_ref=model_ref, progress=step, cancel=cancel))
        return results

    def interpolate(self, video: str | Path, *, factor: int | None = None, target_fps: float | None = None,
                    slow_motion: bool = False, backend: str = INTERPOLATION_SPECS["backend"].default,
                    progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> Any:
        """Frame interpolation of an uploaded or generated video into a new MP4 + sidecar (CPU: no GPU lock).

        `cancel` stops it at the next frame, leaving no file.
        """
        self._sweep()

        def frames_done(done: int, total: int | None) -> None:
            if progress is not None:
                progress(done / total if total else 0.0, f"Interpolating: frame {done}/{total or '?'}")

        path = output_stem(self.settings.output_dir, "interpolated").with_suffix(".mp4")
        result, _ = interpolate_with_record(video, path, factor=factor, target_fps=target_fps,
                                            slow_motion=slow_motion, backend=backend, progress=frames_done,
                                            cancel=cancel)
        _published(cancel, path, path.with_suffix(".json"))
        return result

    def _clip_on_device(self, model_source: str, upscale: int | None, timings: dict[str, float],
                        progress: ProgressFn | None, cancel: threading.Event | None,
                        generate: Callable[[PipelineCache, Any], Any]) -> tuple[Any, Any]:
        """(the loaded SVD pipeline, `generate(cache, loaded)`'s frames), run on a free device with the upscaler
        loaded first when one is asked for: an upscaler that cannot load must not cost a clip."""

        def on_device(cache: PipelineCache) -> tuple[Any, Any]:
            if upscale:
                self._upscaler(cache, self.access.model("upscale", None)[1], progress, cancel)
            loaded = _ready(cache, "svd", model_source, timings, progress, cancel)
            return loaded, generate(cache, loaded)

        with self.gpu() as cache:
            waited = time.perf_counter()
            loaded, result = cache.run(lambda: on_device(cache))
            timings["gpu_section_s"] = time.perf_counter() - waited
        timings.update(result.timings)
        return loaded, result

    def _write_clip(self, frames: Any, upscale: int | None, stem: Path, fps: float, record: dict[str, Any],
                    params: VideoParams, started: float, progress: ProgressFn | None,
                    cancel: threading.Event | None) -> Any:
        """A generated clip's files (upscaled frame by frame as they are encoded, when asked), published whole."""
        if upscale:
            if progress is not None:
                progress(0.97, f"Upscaling {upscale}x and encoding")
            files = self._write_upscaled(frames, upscale, stem, fps, record, params, started, progress, cancel)
        else:
            files = write_outputs(frames, stem, fps, record, extra_formats=params.extra_formats, started=started,
                                  cancel=cancel)
        _published(cancel, files.video, *files.extras.values(), files.sidecar)
        return files

    def _upscaler(self, cache: PipelineCache, model_ref: str, progress: ProgressFn | None,
                  cancel: threading.Event | None = None) -> Any:
        """The upscaler `model_ref` on `cache`'s device, loaded (and downloaded) once; run on the device's worker,
        under its lock."""

        if progress is not None:
            progress(0.0, f"Loading the upscaler {Path(model_ref).name}")
        upscalers = self._upscalers.setdefault(id(cache), UpscalerCache())
        return upscalers.get(model_ref, cache.device, resolve_dtype(self.settings.dtype, cache.device),
                             download=download_progress(progress), cancel=cancel)

    def _write_upscaled(self, frames: Any, factor: int, stem: Path, fps: float, record: dict[str, Any],
                        params: VideoParams, started: float, progress: ProgressFn | None,
                        cancel: threading.Event | None) -> OutputFiles:
        """A generated clip upscaled frame by frame as it is encoded: each frame once, handed to every format's
        encoder, so the upscaled clip is never held whole. Runs on the GPU's worker, so it takes its turn with the
        generations."""

        name, model_ref = self.access.model("upscale", None)
        model_ref = check_upscaler_ref(model_ref)

        def on_device(cache: PipelineCache) -> OutputFiles:
            upscaler = self._upscaler(cache, model_ref, None)
            record["upscale"] = {**sidecar.upscaling(upscaler, factor, DEFAULT_TILE), "model": name}
            clip = upscaled_frames(frames, upscaler, factor, tile=DEFAULT_TILE, cancel=cancel)
            return write_outputs(clip, stem, fps, record, extra_formats=params.extra_formats, started=started,
                                 cancel=cancel)

        with self.gpu() as cache:
            return cache.run(lambda: on_device(cache))

    @_names_models
    def upscale(self, source: str | Path, *, upscale_factor: Any = UPSCALE_SPECS["upscale_factor"].default,
                model_ref: str | None = None, tile: Any = UPSCALE_SPECS["upscale_tile"].default,
                progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                out_path: Path | None = None) -> tuple[Any, Path]:
        """Upscale an uploaded or generated video (streamed frame by frame into an MP4) or a still (into a PNG).

        Returns the result and its sidecar. `cancel` stops it at the next frame, leaving no file.
        """

        started = time.perf_counter()
        if out_path is None:
            self._sweep()
        factor = factor_of(upscale_factor, "upscale_factor")
        tile = check_upscale_tile(checked("upscale_tile", tile))
        name, model_ref = self.access.model("upscale", model_ref)
        model_ref = check_upscaler_ref(model_ref)
        check_input(source, factor, "upscale_factor")  # a bad upload is refused before the upscaler loads
        still = Path(str(source)).suffix.lower() in STILL_SUFFIXES
        path = out_path or output_stem(self.settings.output_dir, "upscaled").with_suffix(".png" if still else ".mp4")
        settings = {"upscale_factor": f"{factor}x", "upscale_model": name, "upscale_tile": tile}

        def frames_done(done: int, total: int | None) -> None:
            if progress is not None:
                progress(done / total if total else 0.0, f"Upscaling: frame {done}/{total or '?'}")

        def on_device(cache: PipelineCache) -> tuple[Any, Any]:
            upscaler = self._upscaler(cache, model_ref, progress, cancel)
            return upscaler, upscale_file(source, path, upscaler, factor, tile=tile, progress=frames_done,
                                          cancel=cancel, parameters=settings,
                                          max_image_pixels=self.settings.max_image_pixels)

        with self.gpu() as cache:
            upscaler, result = cache.run(lambda: on_device(cache))
        record = sidecar.upscale(settings, source_name=Path(str(source)).name, result=result, upscaler=upscaler,
                                 timings={"total_s": time.perf_counter() - started})
        record["upscale"]["model"] = name
        record_path = _with_sidecar(path, record, cancel)
        return result, record_path

    @_names_models
    def text_to_image(self, params: ImageParams, *, model_ref: str | None = None,
                      progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                      out_path: Path | None = None) -> StillResult:
        """Render an SDXL still at the video size for the chosen orientation; writes a PNG and its sidecar."""

        started = time.perf_counter()
        if out_path is None:
            self._sweep()
        model_ref, model_source = self.access.model("sdxl", model_ref)
        for lora in params.loras:  # parsed by the caller; public mode takes listed names only
            self.access.lora_ref(lora.ref)
        params = params.resolved()
        timings: dict[str, float] = {}

        def on_device(cache: PipelineCache) -> tuple[Any, Any]:
            loaded = _ready(cache, "sdxl", model_source, timings, progress, cancel)
            if params.loras and progress is not None:
                progress(0.0, f"Loading {len(params.loras)} LoRA(s)")
            # Also with none: removes the previous request's adapters.
            apply_loras(loaded, params.loras, self.access.lora_source, download=download_progress(progress),
                        cancel=cancel)
            return loaded, generate_still(loaded, params, progress=progress, cancel=cancel)

        with self.gpu() as cache:
            waited = time.perf_counter()
            loaded, still = cache.run(lambda: on_device(cache))
            timings["gpu_section_s"] = time.perf_counter() - waited
        timings["sdxl_s"] = still.seconds
        path = out_path or output_stem(self.settings.output_dir, "still", params.seed).with_suffix(".png")
        write_png(still.image, path, sidecar.still_parameters(params, model_ref))
        timings["total_s"] = time.perf_counter() - started
        record = sidecar.text_to_image(params, model_ref=model_ref, loaded=loaded, notices=still.notices,
                                       timings=timings, png=path, size=still.image.size)
        record_path = _with_sidecar(path, record, cancel)
        return StillResult(path=path, sidecar=record_path, image=still.image, seed=params.seed, notices=still.notices,
                           record=record, params=params, model_ref=model_ref, sdxl_s=round(still.seconds, 3))

    def animate_still(self, still: StillResult, params: VideoParams, *, model_ref: str | None = None,
                      progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                      out_stem: Path | None = None, preview: PreviewSink | None = None) -> VideoResult:
        """The video stage of text to video: the still is already at the video size, so it is used as is."""
        if not still.path.exists():  # swept by the time-to-live while it waited: put it back, it is handed out again
            write_png(still.image, still.path, sidecar.still_parameters(still.params, still.model_ref))
            write_json_atomic(still.sidecar, still.record)
        params = replace(params, aspect_mode="native", resolution=max(still.image.size),
                         seed=still.seed if params.randomize_seed else params.seed, randomize_seed=False)
        return self.image_to_video(still.image, params, model_ref=model_ref, progress=progress, cancel=cancel,
                                   out_stem=out_stem, still=still, preview=preview)

    @_names_models
    def extend_video(self, video: str | Path, params: VideoParams, *, model_ref: str | None = None,
                     progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                     out_stem: Path | None = None) -> VideoResult:
        """A longer clip: SVD continues the video from its last frame and the new frames are appended.

        The new part has the source's size and frame rate (interpolated up to it when the source plays faster, e.g.
        after interpolation), so the motion does not change speed at the seam; its first frame, a copy of the last
        one, is dropped. The whole result is re-encoded, so `loop` and `extra_formats` apply to all of it.
        """

        started = time.perf_counter()
        if out_stem is None:
            self._sweep()
        source, fps = frames_of(video, MAX_EXTEND_FRAMES, "Extending")
        height, width = source[-1].shape[:2]
        last = Image.fromarray(source[-1])
        model_ref, model_source = self.access.model("svd", model_ref)
        # Native aspect at the chosen resolution keeps the source's shape; playback at the conditioning fps, then
        # interpolated up to the source's rate if that is faster.
        segment_params = replace(params, aspect_mode="native", loop="none", extra_formats=(), playback_fps=0,
                                 interpolate_fps=0, upscale="none")
        plays_at = params.fps or svd_defaults(model_source)[1]
        if fps > plays_at:
            check_extend_rate(fps, Path(video).name)  # refused now, not after generating the new part
            segment_params = replace(segment_params, interpolate_fps=fps)
        tmp = output_stem(self.settings.output_dir, "segment")
        try:
            segment = self.image_to_video(last, segment_params, model_ref=model_ref,
                                          progress=_scaled(progress, 0.0, 0.9), cancel=cancel, out_stem=tmp)
            new, _ = frames_of(segment.files.video, MAX_EXTEND_FRAMES, "The new part")
        finally:
            for suffix in (".mp4", ".json"):
                tmp.with_suffix(suffix).unlink(missing_ok=True)
        if progress is not None:
            progress(0.92, "Joining the clips")
        if new[0].shape[:2] != (height, width):
            import cv2

            new = [cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in new]
        added = len(new) - 1
        record = sidecar.extend_video(segment.record, params, source_name=Path(video).name, source_frames=len(source),
                                      fps=fps, width=width, height=height, added_frames=added)
        notices = [*segment.notices, f"Added {added} frames to the {len(source)} of {Path(video).name}."]
        if params.upscale != "none":  # the new part matches the clip's size; upscaling is a separate step here
            notices.append(f"Extend keeps the clip's size ({width}x{height}), so `upscale` {params.upscale} was not "
                           "applied: upscale the result in the Upscale tab.")
        # One list of the frames already decoded (no copy), looped by reference and streamed to the encoders.
        frames = apply_loop([*source, *new[1:]], params.loop)
        del source, new
        stem = out_stem or output_stem(self.settings.output_dir, "extended", segment.seed)
        files = write_outputs(frames, stem, fps, record, extra_formats=params.extra_formats, started=started,
                              cancel=cancel)
        _published(cancel, files.video, *files.extras.values(), files.sidecar)
        return VideoResult(files=files, seed=segment.seed, prepared=segment.prepared, notices=notices, record=record,
                           memory_changes=segment.memory_changes)

    def text_to_video(self, image_params: ImageParams, video_params: VideoParams, *, sdxl_model: str | None = None,
                      svd_model: str | None = None, progress: ProgressFn | None = None,
                      cancel: threading.Event | None = None, out_stem: Path | None = None,
                      still_path: Path | None = None) -> tuple[StillResult, VideoResult]:
        """Prompt -> SDXL still -> SVD video. The video uses the still's seed unless it has a fixed seed of its own."""
        still = self.text_to_image(image_params, model_ref=sdxl_model, progress=_scaled(progress, 0.0, 0.3),
                                   cancel=cancel, out_path=still_path)
        video = self.animate_still(still, video_params, model_ref=svd_model, progress=_scaled(progress, 0.3, 1.0),
                                   cancel=cancel, out_stem=out_stem)
        return still, video

    def prepare_keyframes(self, start: Any, end: Any, resolution: int, aspect_mode: str, *,
                          loop_to_start: bool = False) -> PreparedKeyframes:
        """Both photos exactly as the model will see them (CPU only, fast), and what was done to them.

        The start photo decides the video's size; the end photo is framed to that size with the same aspect mode,
        so two photos of different shapes line up. With `loop_to_start` the start photo is the end photo too.
        """

        prepared, original = self.prepare(start, resolution, aspect_mode)
        start_notices = [*original.notices, *prepared.notices]
        if loop_to_start:
            return PreparedKeyframes(prepared, original, prepared, start_notices,
                                     ["Loop: the clip ends on the start photo."])
        if end is None or (isinstance(end, str) and not end):
            raise InputError("Please upload an image as the end photo (`end_image`), or switch on `loop_to_start` "
                             "to end on the start photo.")
        end_loaded = load_image(end, max_pixels=self.settings.max_image_pixels, min_side=int(resolution))
        framed = frame_to_size(end_loaded.image, prepared.image.size, aspect_mode)
        end_notices = [f"End photo: {text}" for text in (*end_loaded.notices, *framed.notices)]
        (sw, sh), (ew, eh) = original.original_size, end_loaded.original_size
        if abs(sw / sh - ew / eh) > 0.01 * sw / sh:
            w, h = prepared.image.size
            end_notices.append(f"The photos differ in shape ({sw}x{sh} and {ew}x{eh}): the end photo was framed to "
                               f"the start photo's {w}x{h} with the same aspect mode ({aspect_mode}).")
        return PreparedKeyframes(prepared, original, framed, start_notices, end_notices)

    def keyframes_to_video(self, start: Any, end: Any, params: VideoParams, *,
                           keyframe_guidance: Any = KEYFRAME_SPECS["keyframe_guidance"].default,
                           loop_to_start: Any = False, model_ref: str | None = None,
                           progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                           out_stem: Path | None = None, preview: PreviewSink | None = None) -> VideoResult:
        """A clip that starts on `start` and ends on `end` (ViBiDSampler on SVD: svd_demo/engine/keyframes.py), written
        like image to video (MP4 + requested formats + sidecar); a step is a forward and a backward half."""

        started = time.perf_counter()
        timings: dict[str, float] = {}
        if out_stem is None:
            self._sweep()
        guidance, loop_to_start = checked("keyframe_guidance", keyframe_guidance), checked("loop_to_start",
                                                                                            loop_to_start)
        model_ref, model_source = self.access.model("svd", model_ref)  # its name, and what is loaded
        num_frames, fps = svd_defaults(model_source)
        params = params.resolved(num_frames=num_frames, fps=fps)
        photos = self.prepare_keyframes(start, end, params.resolution, params.aspect_mode,
                                        loop_to_start=loop_to_start)
        notices = [*photos.start_notices, *photos.end_notices]
        upscale = _upscale_factor(params, photos.start.image.size)
        if upscale:

            check_upscaler_ref(self.access.model("upscale", None)[1])
        if params.feature_cache:  # and the record says it was off
            notices.append("`feature_cache` does not apply to keyframes: every step ran in full.")
            params = replace(params, feature_cache=False)
        keyframes = Keyframes(photos.start.image, photos.end.image, guidance)
        hashes = (source_sha256(start), source_sha256(start if loop_to_start else end))
        timings["prepare_s"] = time.perf_counter() - started
        report = progress or (lambda fraction, text: None)

        loaded, result = self._clip_on_device(
            model_source, upscale, timings, progress, cancel,
            lambda cache, loaded: generate_frames(cache, loaded, keyframes, params, progress=progress, cancel=cancel,
                                                  preview=preview, sampler=denoise_keyframes))

        report(0.95, "Encoding")

        def interpolated(count: int, seconds: float) -> None:
            record["interpolation"]["frames"] = count
            record["timings"]["interpolate_s"] = round(seconds, 3)

        frames, fps, interpolation = clip_as_written(result.frames, params, report, cancel, interpolated)
        method = {"method": METHOD, "keyframe_guidance": guidance, "loop_to_start": loop_to_start}
        record = sidecar.keyframes_to_video(
            method, start={"sha256": hashes[0], "original_size": list(photos.start_original.original_size),
                           "size": list(photos.start.image.size), "notices": photos.start_notices},
            end={"sha256": hashes[1], "size": list(photos.end.image.size), "notices": photos.end_notices},
            params=params, model_ref=model_ref, loaded=loaded, frames=result, original=photos.start_original,
            prepared=photos.start, timings=timings, interpolation=interpolation)
        stem = out_stem or output_stem(self.settings.output_dir, "keyframes", params.seed)
        files = self._write_clip(frames, upscale, stem, fps, record, params, started, progress, cancel)
        notices += [*result.memory_changes, *result.notes]
        return VideoResult(files=files, seed=params.seed, prepared=photos.start.image, notices=notices,
                           record=record, memory_changes=result.memory_changes)


def download_progress(progress: ProgressFn | None) -> ProgressCallback | None:
    """A download's events (svd_demo/engine/hub.py) as a run's progress: the share of bytes done, and a line with the
    sizes, speed and time left."""
    if progress is None:
        return None

    def report(event: DownloadProgress) -> None:
        done = event.done >= event.total and not event.file
        progress(event.fraction, event.describe() + ("; loading it" if done else ""))

    return report


def _ready(cache: PipelineCache, kind: str, model_ref: str, timings: dict[str, float],
           progress: ProgressFn | None, cancel: threading.Event | None = None) -> Any:
    """The pipeline loaded (once, downloaded first if need be) and on the device; `load_s` is recorded only when
    this call loaded it."""
    if progress is not None:
        what = "video" if kind == "svd" else "image"
        source = "from its folder" if Path(model_ref).expanduser().is_dir() else "(the first run downloads it)"
        progress(0.0, f"Loading the {what} model {source}")
    loads_before = cache.loads
    loaded = cache.get(kind, model_ref, download=download_progress(progress), cancel=cancel)
    cache.make_resident(kind)
    if cache.loads != loads_before:
        timings["load_s"] = loaded.load_seconds
    return loaded


def _upscale_factor(params: VideoParams, size: tuple[int, int]) -> int:
    """The factor of the `upscale` option (0 for none), checked against the output cap for frames of `size`."""
    if params.upscale == "none":
        return 0

    factor = factor_of(params.upscale)
    check_output_size(*size, factor)
    return factor


def clip_as_written(frames: Any, params: VideoParams, report: ProgressFn | None = None,
                    cancel: threading.Event | None = None, done: Callable[[int, float], None] | None = None
                    ) -> tuple[Iterable[Any], float, dict[str, Any] | None]:
    """A generated clip as it is written: (frames, playback fps, what the sidecar says of its interpolation).

    The frames stream: looped by reference and interpolated as the encoders take them, so nothing here grows with
    the clip. `done(frames, seconds)` is called once an interpolation's last frame has been taken."""
    looped: Iterable[Any] = apply_loop(frames, params.loop)
    fps = params.effective_playback_fps
    if not (params.interpolate_fps and params.interpolate_fps > fps):
        return looped, fps, None
    smooth, interpolation = _smooth(looped, fps, params.interpolate_fps, report or (lambda f, t: None), cancel,
                                    done or (lambda count, seconds: None))
    return smooth, float(params.interpolate_fps), interpolation


def _smooth(frames: Any, fps: float, target_fps: float, report: ProgressFn, cancel: threading.Event | None,
            done: Callable[[int, float], None]) -> tuple[Iterator[Any], dict[str, Any]]:
    """In-between frames up to `target_fps` at the same duration, with the interpolation tab's own engine, made as
    they are asked for (the encoders pull them: the smoothed clip is never held whole), and what the sidecar says
    of it. `done(frames, seconds spent interpolating)` is called once the last frame has been taken."""

    backend = INTERPOLATION_SPECS["backend"].default
    report(0.96, f"Interpolating to {target_fps:g} fps")
    engine = interpolate_frames(iter(frames), fps, target_fps=target_fps, num_frames=len(frames), backend=backend,
                                cancel=cancel)  # options checked here, before the first frame

    def stream() -> Iterator[Any]:
        count, seconds = 0, 0.0
        while True:
            start = time.perf_counter()
            frame = next(engine, None)
            seconds += time.perf_counter() - start
            if frame is None:
                break
            count += 1
            yield frame
        done(count, seconds)

    return stream(), {"source_fps": fps, "target_fps": target_fps, "backend": backend,
                      "frames": getattr(engine, "total", None)}
