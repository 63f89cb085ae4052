"""Frame interpolation as a request: a video or a folder of frames in; a video or a folder of PNG frames out, and
its sidecar beside it. The Frame interpolation tab (`Studio.interpolate`) and `svd-demo interpolate` both run
this; the command runs it without building a studio, whose start (torch, the pipeline cache: seconds) would cost
more than interpolating a short clip.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

from svd_demo.core.params import INTERPOLATION_SPECS
from svd_demo.engine.interpolation import InterpolationResult, ProgressCallback, interpolate_file
from svd_demo.files.outputs import write_json_atomic
from svd_demo.studio import sidecar


def sidecar_path(output: Path) -> Path:
    """Where the record of an output goes: beside a file (`clip.json`), beside a folder of frames (`out.json`)."""
    return output.with_suffix(".json") if output.suffix else output.parent / f"{output.name}.json"


def interpolate_with_record(video: str | Path, output: str | Path, *, factor: int | None = None,
                            target_fps: float | None = None, slow_motion: bool = False,
                            backend: str = INTERPOLATION_SPECS["backend"].default, input_fps: float | None = None,
                            progress: ProgressCallback | None = None,
                            cancel: threading.Event | None = None) -> tuple[InterpolationResult, Path]:
    """Interpolate `video` into `output` and write its sidecar; (the result, the sidecar's path). The settings also
    go into a video's metadata, where restoring reads them. Nothing is left behind on an error or a cancel."""
    settings: dict[str, Any] = {"factor": factor, "target_fps": target_fps, "slow_motion": slow_motion,
                                "backend": backend}
    if input_fps is not None:
        settings["input_fps"] = input_fps
    output = Path(output).expanduser()
    result = interpolate_file(video, output, factor=factor, target_fps=target_fps, slow_motion=slow_motion,
                              backend=backend, input_fps=input_fps, progress=progress, cancel=cancel,
                              metadata={"comment": json.dumps(settings, sort_keys=True)})
    record = sidecar_path(output)
    try:
        write_json_atomic(record, sidecar.interpolate(settings, source_name=Path(video).name, result=result))
    except BaseException:
        if output.is_dir():
            shutil.rmtree(output, ignore_errors=True)
        else:
            output.unlink(missing_ok=True)
        raise
    return result, record
