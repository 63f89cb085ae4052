"""The JSON sidecar written beside every output: one builder per kind of run, and a typed reader.

A builder returns the record as it is written; `outputs.write_outputs` adds `files`, `video` and the encoding times
when it writes a video. Code that needs a value from a record, just written or read back from disk (a sweep that
resumes), reads it through `Sidecar`, not by string keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svd_demo.engine.memory import unet_weights

if TYPE_CHECKING:
    from svd_demo.core.params import ImageParams, VideoParams
    from svd_demo.engine.image_to_video import Frames
    from svd_demo.engine.interpolation import InterpolationResult
    from svd_demo.engine.pipelines import LoadedPipeline
    from svd_demo.engine.upscale import LoadedUpscaler
    from svd_demo.engine.upscale.files import UpscaleResult
    from svd_demo.files.images import LoadedImage, PreparedImage

KINDS = ("image_to_video", "text_to_video", "extend_video", "text_to_image", "interpolate", "upscale",
         "keyframes_to_video")


# ------------------------------------------------------------------------------------------------------- builders


def _created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _versions() -> dict[str, str]:
    from svd_demo.files.outputs import library_versions  # here: a reader (the sweep's CLI) imports no numpy

    return library_versions()


def _rounded(timings: Mapping[str, float]) -> dict[str, float]:
    return {name: round(seconds, 3) for name, seconds in timings.items()}


def _model(model_ref: str, loaded: LoadedPipeline) -> dict[str, Any]:
    return {"id": model_ref, "revision": loaded.revision, "random_weights": loaded.random_weights}


def _dtype(loaded: LoadedPipeline) -> str:
    return str(loaded.dtype).removeprefix("torch.")


def _runtime(loaded: LoadedPipeline, memory_profile: str) -> dict[str, Any]:
    return {"device": loaded.device, "dtype": _dtype(loaded),
            "memory_profile": memory_profile}


def still_parameters(params: ImageParams, model_ref: str) -> dict[str, Any]:
    """What decides a still (its parameters and model): the sidecar's `parameters` and the PNG's text chunk."""
    return {**params.to_dict(), "sdxl_model": model_ref}


def image_to_video(params: VideoParams, *, model_ref: str, loaded: LoadedPipeline, frames: Frames,
                   original: LoadedImage, prepared: PreparedImage, timings: Mapping[str, float],
                   interpolation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A generated clip: the resolved parameters, the model, how it ran, the input image and, if the clip was
    smoothed afterwards (`interpolate_fps`), that interpolation."""
    record = {
        "kind": "image_to_video",
        "created": _created(),
        "parameters": {**params.to_dict(), "model": model_ref},
        "model": _model(model_ref, loaded),
        "runtime": {**_runtime(loaded, frames.memory_profile), "decode_chunk_size": frames.decode_chunk_size,
                    "unet_weights": unet_weights(frames.memory_profile, loaded.quantize) or _dtype(loaded)},
        "input": {"original_size": list(original.original_size), "size": list(prepared.image.size),
                  "notices": [*original.notices, *prepared.notices]},
        "memory_changes": frames.memory_changes,
        "versions": _versions(),
        "timings": _rounded(timings),
    }
    if frames.feature_cache is not None:
        record["feature_cache"] = dict(frames.feature_cache)  # steps run in full and steps that reused them
    if interpolation is not None:
        record["interpolation"] = dict(interpolation)
    return record


def text_to_video(still_params: ImageParams, still_model: str, still_name: str, sdxl_s: float,
                  **video: Any) -> dict[str, Any]:
    """A clip animated from a generated still: `image_to_video`'s record (from `video`), with the text stage that
    made the still (its parameters, model and file name, and its `sdxl_s`)."""
    record = image_to_video(**video)
    record["kind"] = "text_to_video"
    record["parameters"] = {**still_parameters(still_params, still_model), "still": still_name,
                            **record["parameters"]}
    record["timings"]["sdxl_s"] = sdxl_s
    return record


def keyframes_to_video(method: Mapping[str, Any], *, start: Mapping[str, Any], end: Mapping[str, Any],
                       **video: Any) -> dict[str, Any]:
    """A clip between two photos: `image_to_video`'s record (from `video`, with the start photo as its input), the
    method's settings among the parameters (so the MP4's metadata carries them too, with both photos' hashes), and
    both photos under `input`: each one's hash, sizes and what was done to frame it."""
    record = image_to_video(**video)
    record["kind"] = "keyframes_to_video"
    record["parameters"] = {**record["parameters"], **method, "start_sha256": start["sha256"],
                            "end_sha256": end["sha256"]}
    record["input"] = {"size": record["input"]["size"], "start": dict(start), "end": dict(end),
                       "notices": [*start["notices"], *end["notices"]]}
    return record


def extend_video(segment: Mapping[str, Any], params: VideoParams, *, source_name: str, source_frames: int,
                 fps: float, width: int, height: int, added_frames: int) -> dict[str, Any]:
    """A clip continued from its last frame: the new segment's record, with the source clip, the frames added,
    and the loop and formats of the whole result."""
    return {**segment, "kind": "extend_video",
            "parameters": {**segment["parameters"], "loop": params.loop, "extra_formats": list(params.extra_formats)},
            "source": {"name": source_name, "frames": source_frames, "fps": fps, "width": width, "height": height},
            "added_frames": added_frames}


def text_to_image(params: ImageParams, *, model_ref: str, loaded: LoadedPipeline, notices: list[str],
                  timings: Mapping[str, float], png: Path, size: tuple[int, int]) -> dict[str, Any]:
    """A still: its parameters, the model, how it ran, and the PNG it was written to."""
    return {
        "kind": "text_to_image",
        "created": _created(),
        "parameters": still_parameters(params, model_ref),
        "model": _model(model_ref, loaded),
        "runtime": _runtime(loaded, loaded.current_profile),
        "notices": notices,
        "versions": _versions(),
        "timings": _rounded(timings),
        "files": {"png": png.name},
        "image": {"width": size[0], "height": size[1]},
    }


def interpolate(settings: Mapping[str, Any], *, source_name: str, result: InterpolationResult) -> dict[str, Any]:
    """A frame interpolation of an uploaded or generated clip."""
    return {"kind": "interpolate", "created": _created(), "parameters": dict(settings),
            "source": {"name": source_name, "frames": result.input_frames, "fps": result.source_fps},
            "output": {"frames": result.output_frames, "fps": result.output_fps, "width": result.width,
                       "height": result.height, "cut_pairs": result.cut_pairs, "copied_pairs": result.copied_pairs},
            "notes": list(result.notes), "timings": {"total_s": round(result.seconds, 3)},
            "versions": _versions()}


def upscaling(upscaler: LoadedUpscaler, factor: int, tile: int) -> dict[str, Any]:
    """How frames were upscaled: the network (its reference, class, own scale, size) and how it was run."""
    return {"model": upscaler.ref, "architecture": upscaler.architecture.name, "network_scale": upscaler.scale,
            "parameters": upscaler.parameters, "factor": factor, "tile": tile, "device": upscaler.device,
            "dtype": str(upscaler.dtype).removeprefix("torch.")}


def upscale(settings: Mapping[str, Any], *, source_name: str, result: UpscaleResult, upscaler: LoadedUpscaler,
            timings: Mapping[str, float]) -> dict[str, Any]:
    """An upscaled video or still (the Upscale tab, `/upscale`, `python -m svd_demo upscale`)."""
    return {"kind": "upscale", "created": _created(), "parameters": dict(settings),
            "source": {"name": source_name, "frames": result.frames, "fps": result.fps, "width": result.width,
                       "height": result.height},
            "output": {"kind": result.kind, "file": result.output_path.name, "width": result.out_width,
                       "height": result.out_height, "frames": result.frames},
            "upscale": upscaling(upscaler, result.factor, int(settings.get("upscale_tile", 0))),
            "notes": list(result.notes), "timings": _rounded(timings), "versions": _versions()}


# --------------------------------------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class ModelUsed:
    id: str
    revision: str | None = None
    random_weights: bool = False


@dataclass(frozen=True)
class Runtime:
    device: str
    dtype: str
    memory_profile: str | None = None
    decode_chunk_size: int | None = None  # videos only
    unet_weights: str | None = None  # videos: "fp8"/"int8" when the weights change the pixels, else the dtype


@dataclass(frozen=True)
class SweepEntry:
    """What `python -m svd_demo sweep` adds to an item's sidecar."""

    id: str
    image: str | None = None
    prompt: str | None = None
    memory_kind: str = ""
    peak_memory_mb: float | None = None


@dataclass(frozen=True)
class Sidecar:
    """A sidecar as code reads it. `parameters` and `timings` are tables by name (a parameter's or a stage's)."""

    kind: str
    parameters: dict[str, Any]
    timings: dict[str, float]
    created: str = ""
    model: ModelUsed | None = None
    runtime: Runtime | None = None
    memory_changes: tuple[str, ...] = ()
    sweep: SweepEntry | None = None

    @classmethod
    def from_record(cls, record: Any) -> Sidecar:
        """The typed view of a record; ValueError if it is not a sidecar (another JSON file, or a damaged one)."""
        if not isinstance(record, Mapping) or record.get("kind") not in KINDS:
            raise ValueError(f"not an svd-demo sidecar (kind {_kind_of(record)})")
        parameters, timings = record.get("parameters", {}), record.get("timings", {})
        if not isinstance(parameters, Mapping) or not isinstance(timings, Mapping):
            raise ValueError("a sidecar's parameters and timings must be objects")
        return cls(kind=record["kind"], parameters=dict(parameters), timings=dict(timings),
                   created=str(record.get("created", "")), model=_section(ModelUsed, record.get("model")),
                   runtime=_section(Runtime, record.get("runtime")),
                   memory_changes=tuple(record.get("memory_changes") or ()),
                   sweep=_section(SweepEntry, record.get("sweep")))

    @classmethod
    def read(cls, path: str | Path) -> Sidecar:
        """The sidecar at `path`; OSError if it cannot be read, ValueError if it is not a sidecar."""
        return cls.from_record(json.loads(Path(path).read_text(encoding="utf-8")))


def _kind_of(record: Any) -> str:
    return repr(record.get("kind")) if isinstance(record, Mapping) else f"none: a {type(record).__name__}"


def _section(cls: type, data: Any) -> Any:
    """A dataclass from a record's section (unknown keys ignored); None when the record has no such section."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ValueError(f"a sidecar's {cls.__name__} section must be an object")
    try:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"a sidecar's {cls.__name__} section is incomplete: {exc}") from None
