"""The studio: one object the UI, the CLI and scripts call to turn inputs into files.

Order of work in a request: everything cheap and fallible first (parameters, the image), then the GPU section under
the cache's lock (load once, generate), then encoding outside the lock so the next person's job can start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from svd_demo.image_to_video import ProgressFn, generate_frames
from svd_demo.images import LoadedImage, PreparedImage, load_image, prepare_image
from svd_demo.models import svd_defaults
from svd_demo.outputs import OutputFiles, apply_loop, library_versions, output_stem, remove_old_outputs, write_outputs
from svd_demo.params import VideoParams
from svd_demo.pipelines import PipelineCache
from svd_demo.settings import Settings


@dataclass
class VideoResult:
    """One finished image-to-video run."""

    files: OutputFiles
    seed: int
    prepared: Image.Image
    notices: list[str]  # what was changed on the way (image conversions, crops, memory retries), for the user
    record: dict[str, Any]  # the sidecar's content


@dataclass
class CancelTokens:
    """One cancel flag per session, so a Cancel button stops that person's run and nobody else's."""

    _events: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def token(self, session: str) -> Iterator[threading.Event]:
        event = threading.Event()
        with self._lock:
            self._events[session] = event
        try:
            yield event
        finally:
            with self._lock:
                if self._events.get(session) is event:
                    del self._events[session]

    def cancel(self, session: str) -> bool:
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()
        return event is not None


class Studio:
    """Holds the settings, the pipeline cache and the cancel flags; safe to call from many threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = PipelineCache(settings)
        self.cancels = CancelTokens()
        settings.output_dir.mkdir(parents=True, exist_ok=True)

    def prepare(self, source: Any, resolution: int, aspect_mode: str) -> tuple[PreparedImage, LoadedImage]:
        """The image exactly as the model will see it (CPU only, fast): for the preview and for generation."""
        loaded = load_image(source, max_pixels=self.settings.max_image_pixels, min_side=int(resolution))
        return prepare_image(loaded.image, resolution, aspect_mode), loaded

    def image_to_video(self, source: Any, params: VideoParams, *, model_ref: str | None = None,
                       progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                       out_stem: Path | None = None) -> VideoResult:
        """Generate a video from an image and write it (MP4 + requested formats + sidecar).

        Files go to the output folder under a unique name, or to `out_stem` + suffix when given (the CLI's --out).
        """
        started = time.perf_counter()
        timings: dict[str, float] = {}
        model_ref = model_ref or self.settings.svd_model
        num_frames, fps = svd_defaults(model_ref)
        params = params.resolved(num_frames=num_frames, fps=fps)
        prepared, original = self.prepare(source, params.resolution, params.aspect_mode)
        timings["prepare_s"] = time.perf_counter() - started

        report = progress or (lambda fraction, text: None)
        with self.cache.gpu_lock:
            waited = time.perf_counter()
            report(0.0, "Loading the video model (the first run downloads it)")
            loads_before = self.cache.loads
            loaded = self.cache.get("svd", model_ref)
            if self.cache.loads != loads_before:
                timings["load_s"] = loaded.load_seconds
            result = generate_frames(self.cache, loaded, prepared.image, params, progress=progress, cancel=cancel)
            timings["gpu_section_s"] = time.perf_counter() - waited
        timings.update(result.timings)

        report(0.95, "Encoding")
        record = {
            "kind": "image_to_video",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "parameters": {**params.to_dict(), "model": model_ref},
            "model": {"id": model_ref, "revision": loaded.revision, "random_weights": loaded.random_weights},
            "runtime": {"device": loaded.device, "dtype": str(loaded.dtype).removeprefix("torch."),
                        "memory_profile": result.memory_profile, "decode_chunk_size": result.decode_chunk_size},
            "input": {"original_size": list(original.original_size), "size": list(prepared.image.size),
                      "notices": [*original.notices, *prepared.notices]},
            "memory_changes": result.memory_changes,
            "versions": library_versions(),
            "timings": {k: round(v, 3) for k, v in timings.items()},
        }
        stem = out_stem or output_stem(self.settings.output_dir, "video", params.seed)
        files = write_outputs(apply_loop(result.frames, params.loop), stem, params.effective_playback_fps, record,
                              extra_formats=params.extra_formats, started=started)
        if out_stem is None:  # only our own folder is swept: never delete files next to a user's --out
            remove_old_outputs(self.settings.output_dir, self.settings.output_ttl)
        notices = [*original.notices, *prepared.notices, *result.memory_changes]
        return VideoResult(files=files, seed=params.seed, prepared=prepared.image, notices=notices, record=record)


def output_path_is_ours(studio: Studio, path: str | Path) -> bool:
    """True if `path` is inside the studio's output folder (never hand back a path a user sent us)."""
    try:
        return Path(path).resolve().is_relative_to(studio.settings.output_dir.resolve())
    except OSError:
        return False
