"""Calls to the hostile-inputs app (its fixtures are in conftest.py) and checks of its answers: raw API calls that
a client cannot send, refusals, the values that make any endpoint cheap, and the video files the cases upload."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio_client.exceptions import AppError, ValidationError
from helpers import FAST

from svd_demo.files.media import write_video

TEXT_FAST = {"sdxl_steps": 2, "resolution": 256, "randomize_seed": False, "seed": 5}


HTTP_TIMEOUT = 60.0  # no single request may hang the suite


def refused(call, pattern: str) -> str:
    """The call fails with gradio_client's AppError/ValidationError carrying the server's message."""
    with pytest.raises((AppError, ValidationError)) as info:
        call()
    message = str(info.value)
    assert re.search(pattern, message, re.I | re.S), message
    assert "Something went wrong on the server" not in message, message
    return message


def upload(server: str, path: Path) -> dict[str, Any]:
    response = httpx.post(f"{server}gradio_api/upload", timeout=HTTP_TIMEOUT,
                          files=[("files", (path.name, path.read_bytes(), "application/octet-stream"))])
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def raw_call(server: str, endpoints: dict, api_name: str, **values: Any) -> tuple[int, str]:
    """POST /gradio_api/call/<name> with a JSON body that may hold NaN/Infinity (gradio_client cannot send those).

    Parameters not given take the endpoint's defaults from view_api. Returns (HTTP status, readable message): the
    `detail` of a 4xx/5xx, the message of an `error` event, or "complete: <data>" for a finished run.
    """
    data = []
    for param in endpoints[api_name]["parameters"]:
        name = param["parameter_name"]
        data.append(values.pop(name) if name in values else param["parameter_default"])
    assert not values, f"unknown parameters {sorted(values)} for {api_name}"
    body = json.dumps({"data": data})  # allow_nan: float("nan") becomes the (non-standard) literal NaN
    url = f"{server}gradio_api/call/{api_name.lstrip('/')}"
    response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=HTTP_TIMEOUT)
    if response.status_code != 200:
        try:
            detail = response.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = response.text
        if isinstance(detail, list):  # a validator's answer: one entry per parameter
            detail = " ".join(d.get("message", "") for d in detail if not d.get("is_valid", True))
        return response.status_code, str(detail)
    event_id = response.json()["event_id"]
    deadline, text = time.monotonic() + HTTP_TIMEOUT, ""
    with httpx.stream("GET", f"{url}/{event_id}", timeout=HTTP_TIMEOUT) as stream:
        for chunk in stream.iter_text():  # heartbeats keep a stream open: the deadline bounds the whole answer
            text += chunk
            assert time.monotonic() < deadline, f"{api_name} did not answer within {HTTP_TIMEOUT:.0f} s: {text}"
    events = re.findall(r"event: (\w+)\ndata: (.*)", text)
    kind, payload = events[-1] if events else ("none", text)
    if kind == "error":
        return 200, str((json.loads(payload) or {}).get("error") if payload != "null" else None)
    return 200, f"{kind}: {payload}"


def assert_4xx(status: int, message: str, pattern: str) -> None:
    assert 400 <= status < 500, (status, message)
    assert re.search(pattern, message, re.I | re.S), message
    assert "Traceback" not in message, message
    assert_plain(message)


def assert_refused(status: int, message: str, pattern: str) -> None:
    """Refused with our message: at queue join (4xx), or by the handler (an error event: HTTP 200 and no result)."""
    assert status != 200 or not re.match(r"(complete|none): ", message), (status, message)
    assert_4xx(status if status != 200 else 400, message, pattern)


def assert_plain(message: str) -> None:
    """An API message is plain text: no HTML entities for the page, and nothing a page would take for a tag."""
    assert not re.search(r"&(#x?[0-9a-f]+|[a-z]+);", message, re.I), message
    assert not re.search(r"<[a-z/!?]|&[a-z#]", message, re.I), message


def cheap_values(endpoints: dict, api: str, image: Any = None, video: Any = None) -> dict[str, Any]:
    """Values that make any endpoint fast if it ever runs (small sizes, few steps, a prompt), with the given files
    for whichever file parameter it has."""
    names = {p["parameter_name"] for p in endpoints[api]["parameters"]}
    values = {**FAST, **TEXT_FAST, "prompt": "a boat", "factor": 2, "target_fps": 0,
              "image": image, "image_path": image, "video": video, "media": video, "start_image": image,
              "end_image": image}
    return {k: v for k, v in values.items() if k in names and v is not None}


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=60)


def video_file(path: Path, frames: int, size: tuple[int, int] = (64, 48), fps: float = 8) -> Path:
    rng = np.random.default_rng(frames)
    write_video(rng.integers(0, 255, (frames, size[1], size[0], 3), dtype=np.uint8), path, fps)
    return path


def many_frames_video(path: Path) -> None:  # more than video_input.MAX_INPUT_FRAMES (2000), tiny frames
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=16x16:rate=1000", "-frames:v", "2100", "-pix_fmt", "yuv420p",
           str(path))


def refusal(api: str, status: int, answer: str) -> str | None:
    """The refusal's message, or None if the call was accepted. /prepare_image refuses a file's content in its
    notes ("⚠️ ..."), as the page shows it, and returns no image."""
    if status != 200 or not answer.startswith(("complete: ", "none: ")):
        return answer
    if api == "/prepare_image" and answer.startswith("complete: "):
        image, notes = json.loads(answer.split(": ", 1)[1])
        if image is None and notes.startswith("⚠️ "):
            return notes.removeprefix("⚠️ ")
    return None
