"""Settings read back from a file this app wrote: an MP4 or WebM (the `comment` metadata holds the parameters as
JSON) or a .json sidecar. The UI restores them into its controls, the CLI takes them with `--settings-from FILE`.

Every value goes through the same validation as a request (`VideoParams.from_raw`, `ImageParams.from_raw`), so an
edited or forged file is refused with the parameter it got wrong, never half-applied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from svd_demo.core.errors import InputError, VideoError
from svd_demo.core.lora_refs import loras_text
from svd_demo.core.models import check_model_ref
from svd_demo.core.params import KEYFRAME_SPECS, ImageParams, VideoParams, checked
from svd_demo.files.media import read_metadata
from svd_demo.studio.sidecar import Sidecar

VIDEO_SUFFIXES = (".mp4", ".webm")  # the formats whose metadata we write (GIF has no place for it)
MAX_SIDECAR_BYTES = 1024 * 1024  # ours are a few KB; a bigger "sidecar" is not one
# The keys that make a video's `comment` ours: every video this app writes records these.
_OUR_KEYS = {"seed", "num_inference_steps", "motion_bucket_id", "model"}
_VIDEO_NAMES = {f.name for f in fields(VideoParams)}
_STILL_NAMES = {f.name for f in fields(ImageParams)}


@dataclass(frozen=True)
class RestoredSettings:
    """What a file says it was made with. `still` (with the prompt) only for a clip or still made from a prompt."""

    source: str  # the file's name, for messages
    kind: str  # image_to_video | extend_video | text_to_video | text_to_image | keyframes_to_video
    video: VideoParams
    svd_model: str | None
    still: ImageParams | None = None
    sdxl_model: str | None = None
    keyframes: dict[str, Any] | None = None  # a keyframes clip's own settings (KEYFRAME_SPECS), checked

    @property
    def prompt(self) -> str | None:
        return self.still.prompt if self.still else None

    def values(self) -> dict[str, Any]:
        """Every parameter by name, as a request would send it (the still's, with the prompt, where there is one;
        seed and resolution are the same in both).

        A prompt's clip leaves the framing out: its video stage always takes the still as it is (aspect native),
        which is not a choice the person made and would change how their photos are framed.
        """
        if not self.still:
            return {**self.video.to_dict(), **(self.keyframes or {})}
        video = {k: v for k, v in self.video.to_dict().items() if k != "aspect_mode"}
        return {**asdict(self.still), "loras": loras_text(self.still.loras), **video}


def read_settings(path: str | os.PathLike, check_lora: Callable[[str], str] | None = None) -> RestoredSettings:
    """The settings recorded in `path`; InputError (naming the file and what is wrong) for anything else.
    `check_lora` accepts or refuses each LoRA the file names (`ImageParams.from_raw`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        kind, parameters = _from_sidecar(path)
    elif suffix in VIDEO_SUFFIXES:
        kind, parameters = _from_video(path)
    else:
        raise InputError(f"`settings_from` must be a .mp4, .webm or .json file written by svd-demo; got {path.name}.")
    try:
        return _restored(path.name, kind, parameters, check_lora)
    except InputError as exc:
        raise InputError(f"The settings in {path.name} are not valid: {exc}") from None


def _from_sidecar(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise InputError(f"{path.name} is too large for an svd-demo sidecar (over 1 MB).")
        sidecar = Sidecar.read(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} cannot be read: {exc.strerror or exc}.") from None
    except ValueError as exc:  # not JSON, or JSON that is not one of our records
        raise InputError(f"{path.name} is not an svd-demo sidecar ({exc}): use the .json written beside a "
                         "video, or the video itself.") from None
    if sidecar.kind == "interpolate":
        raise InputError(f"{path.name} records a frame interpolation, which has no generation settings to restore: "
                         "use the sidecar of the clip it was made from.")
    return sidecar.kind, sidecar.parameters


def _from_video(path: Path) -> tuple[str, dict[str, Any]]:

    try:
        comment = read_metadata(path).get("comment", "")
        parameters = json.loads(comment) if comment.startswith("{") else None
    except (OSError, VideoError, ValueError):
        parameters = None  # unreadable, or a comment that is not our JSON: the same answer as no comment
    if not isinstance(parameters, dict) or not _OUR_KEYS <= parameters.keys():
        raise InputError(f"{path.name} has no svd-demo settings in its metadata: only the MP4 and WebM files this "
                         "app writes carry them (or use the .json sidecar written beside the video).")
    if KEYFRAME_SPECS.keys() <= parameters.keys():
        return "keyframes_to_video", parameters
    return ("text_to_video" if "prompt" in parameters else "image_to_video"), parameters


def _restored(source: str, kind: str, parameters: dict[str, Any],
              check_lora: Callable[[str], str] | None = None) -> RestoredSettings:
    # A saved seed reproduces the clip: restoring it must not draw a new one.
    video_values = {k: v for k, v in parameters.items() if k in _VIDEO_NAMES} | {"randomize_seed": False}
    still = None
    if "prompt" in parameters:
        still_values = {k: v for k, v in parameters.items() if k in _STILL_NAMES} | {"randomize_seed": False}
        still = ImageParams.from_raw(still_values, check_lora)
    keyframes = None
    if kind == "keyframes_to_video":
        keyframes = {name: checked(name, parameters.get(name, spec.default)) for name, spec in KEYFRAME_SPECS.items()}
    return RestoredSettings(source=source, kind=kind, video=VideoParams.from_raw(video_values),
                            svd_model=_model(parameters.get("model")), still=still,
                            sdxl_model=_model(parameters.get("sdxl_model")), keyframes=keyframes)


def _model(value: Any) -> str | None:

    return check_model_ref(value, "model the file names")
