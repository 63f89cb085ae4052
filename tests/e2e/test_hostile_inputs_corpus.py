"""The long corpus of hostile inputs against a launched app (the fixtures are in conftest.py, the calls in
hostile_calls.py): every class of hostile value to every parameter of every endpoint, every number out of range or
of the wrong type, unusable images through preview and generation, forged file parameters, an animated GIF, a short
output TTL; then real runs, a video and a still, must still succeed. One demo for the module, as in
tests/integration/test_hostile_inputs.py; after every few cases a cheap /prepare_image request must still succeed.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradio_client import handle_file
from helpers import FAST
from hostile_calls import TEXT_FAST, assert_4xx, assert_refused, cheap_values, raw_call, refusal, refused
from PIL import Image

from svd_demo.core.params import shown
from svd_demo.files.media import probe_video

pytestmark = pytest.mark.usefixtures("still_serving")  # after every few cases, a cheap request still works


def _truncated_png(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


REFUSED_IMAGES = {
    # name: (file name, how to make it, what the message must say)
    "truncated_png": ("cut.png", _truncated_png, r"cut off \(truncated\)"),
    "truncated_jpeg": ("cut.jpg", _truncated_jpeg, r"cut off \(truncated\)"),
    "zero_bytes": ("empty.png", lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
    "text_renamed_png": ("notes.png", lambda p: p.write_text("this is a shopping list, not a picture\n"),
                         r"could not be read as an image"),
    "svg": ("drawing.svg", lambda p: p.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
                                                  '<rect width="64" height="64" fill="red"/></svg>'),
            r"SVG is a vector drawing format and is not supported"),
    "pdf_renamed_png": ("page.png", lambda p: p.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"),
                        r"PDF documents are not supported"),
    "heic": ("phone.heic", lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64),
             r"HEIC/HEIF photos are not supported"),
    "36_megapixel_bomb": ("bomb.png", lambda p: Image.new("L", (6000, 6000), 0).save(p, optimize=True),
                          r"6000x6000 \(36\.0 megapixels\); the limit is 25\.0 megapixels"),
    "one_pixel": ("dot.png", lambda p: Image.new("RGB", (1, 1), (9, 9, 9)).save(p),
                  r"only 1x1 pixels; both sides must be at least 16"),
    # The app refuses the 100000x10 strip (10 px is below the 16 px minimum side) rather than cropping it to 3:1.
    "strip_100000x10": ("strip.png", lambda p: Image.new("RGB", (100_000, 10), (90, 90, 90)).save(p),
                        r"only 100000x10 pixels; both sides must be at least 16"),
}


@pytest.mark.parametrize("case", list(REFUSED_IMAGES))
def test_unusable_image_is_refused_by_preview_and_generation(hostile_client, hostile_files, case):
    name, make, pattern = REFUSED_IMAGES[case]
    path = hostile_files / name
    make(path)
    if case == "36_megapixel_bomb":
        assert path.stat().st_size < 100_000  # small on the wire, 36 MP decoded
    image, notes = hostile_client.predict(handle_file(str(path)), 256, "native", api_name="/prepare_image")
    assert image is None and notes.startswith("⚠️"), notes
    assert re.search(pattern, notes), notes
    refused(lambda: hostile_client.predict(image=handle_file(str(path)), **FAST, api_name="/image_to_video"), pattern)


def test_animated_gif_makes_a_video_from_its_first_frame(hostile_client, hostile_files):
    frames = [Image.new("RGB", (200, 150), c) for c in [(230, 20, 20), (20, 230, 20), (20, 20, 230)]]
    path = hostile_files / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    video, seed, prepared, notes, out, _preview = hostile_client.predict(image=handle_file(str(path)), seed=21, **FAST,
                                                       api_name="/image_to_video")
    assert "animated; its first frame was used" in notes, notes
    assert seed == 21 and probe_video(video).num_frames == 4
    first = np.asarray(Image.open(prepared).convert("RGB")).astype(int)
    assert first[..., 0].mean() > 180 and first[..., 1].mean() < 80  # red: frame 0, not green or blue


@pytest.mark.parametrize("api, name", [("/image_to_video", "image"), ("/compare_seeds", "image"),
                                       ("/prepare_image", "image_path"), ("/extend_video", "video"),
                                       ("/interpolate", "video")])
@pytest.mark.parametrize("value", ["/etc/passwd", "/tmp", "photo.png", "", 123, [], {"a": 1},
                                   {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}], ids=repr)
def test_a_file_parameter_that_is_not_an_uploaded_file_gets_our_message(hostile_server, hostile_endpoints, api, name,
                                                                        value, uploaded_image, uploaded_video):
    # Before: "upstream app raised an exception" (no message at all) or pydantic's validation text.
    status, message = raw_call(hostile_server, hostile_endpoints, api,
                               **{**cheap_values(hostile_endpoints, api, uploaded_image, uploaded_video), name: value})
    assert_refused(status, message, rf"^`{name}` must be (a file uploaded to this server|an uploaded file)")
    assert "pydantic" not in message and "validation error for" not in message, message


@pytest.fixture(scope="module")
def numeric(hostile_endpoints) -> list[str]:
    """Every number the video endpoint takes (from the API itself, so a parameter added later is covered too)."""
    names = [p["parameter_name"] for p in hostile_endpoints["/image_to_video"]["parameters"]
             if p["component"] in ("Slider", "Number")]
    assert {"seed", "num_frames", "noise_aug_strength", "playback_fps"} <= set(names), names
    return names


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, 1e12, 2**64], ids=str)
def test_non_finite_negative_and_huge_numbers_get_4xx_for_every_parameter(hostile_server, hostile_endpoints,
                                                                          uploaded_image, numeric, bad):
    for name in numeric:
        status, message = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=uploaded_image,
                                   **{**FAST, name: bad})
        # Every message names the parameter: the range check of our Slider/Number subclasses or the validator.
        assert_4xx(status, message, rf"`{name}`")


@pytest.mark.parametrize("bad", ["abc", "7", None, [1, 2], {"a": 1}], ids=repr)
def test_strings_and_other_types_where_numbers_belong(hostile_server, hostile_endpoints, uploaded_image, numeric, bad):
    for name in numeric:
        status, message = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=uploaded_image,
                                   **{**FAST, name: bad})
        assert_4xx(status, message, rf"{name}|Expected a `float")


def test_text_to_video_keeps_its_own_still_when_the_video_outlasts_the_ttl(hostile_studio, monkeypatch):
    from dataclasses import replace

    from svd_demo.core.params import ImageParams, VideoParams

    monkeypatch.setattr(hostile_studio, "settings", replace(hostile_studio.settings, output_ttl=1))

    def slow_video_stage(fraction: float, text: str) -> None:
        if "video model" in text:
            time.sleep(1.2)  # a video stage longer than the TTL: minutes with real models and a TTL of a minute

    still, video = hostile_studio.text_to_video(
        ImageParams(prompt="a red kite", sdxl_steps=2, resolution=256, randomize_seed=False, seed=3),
        VideoParams(num_frames=4, num_inference_steps=2, randomize_seed=False), progress=slow_video_stage)
    assert video.files.video.is_file()
    assert still.path.is_file() and still.sidecar.is_file()  # returned to the user: must still exist


# The table comes from the running app itself (its config: each public endpoint's inputs, their components, ranges
# and choices; its API info: the parameter names), so a parameter or an endpoint added later is covered at once.
# Every value below must be refused, by the parameter's name where the value's type or range is wrong, and with a
# message about the content where a file's content is wrong; never a generic error, a 5xx, markup or a traceback.
HOSTILE_CLASSES = ("wrong_type", "wrong_unit", "boundary", "huge", "empty", "path_like", "lying_header")


NUMBER = r"^`{name}` must be a (finite|whole) number from {low} to {high}; got "


FILE_NOT_UPLOADED = r"^`{name}` must be (an uploaded file|a file uploaded to this server)"


def _hostile_values(row: dict[str, Any], hostile: str, uploads: dict[str, Any]) -> list[tuple[Any, str]]:
    """(value, pattern its refusal must match) for one parameter and one class of hostile input."""
    from lying_headers import LYING_VIDEOS

    name, kind, props = row["name"], row["kind"], row["props"]
    if kind in ("number", "whole"):
        low, high = props["minimum"], props["maximum"]
        low_text, high_text = (str(int(v)) if float(v).is_integer() else f"{v:g}" for v in (low, high))
        pattern = NUMBER.format(name=name, low=re.escape(low_text), high=re.escape(high_text))
        delta = 1 if kind == "whole" else (props.get("step") or 1)
        values = {"wrong_type": [True, [1], {"a": 1}], "wrong_unit": ["7 fps", "1024px", "50%"],
                  "boundary": [low - delta, high + delta] + ([low + 0.5] if kind == "whole" else []),
                  "huge": [1e308, -1e308, 2**64], "empty": ["", None], "path_like": ["/etc/passwd", "../../x"],
                  }.get(hostile, [])
        return [(v, pattern) for v in values]
    if kind == "bool":
        values = {"wrong_type": [2, 0.5, [True], {"a": 1}], "wrong_unit": ["checked", "enabled"],
                  "huge": ["true" * 10_000], "empty": ["", None], "path_like": ["/etc/passwd"]}.get(hostile, [])
        return [(v, rf"^`{name}` must be true or false; got ") for v in values]
    if kind in ("choice", "choices"):
        allowed = [value for _, value in props["choices"]]
        first = allowed[0]
        if kind == "choice":
            values = {"wrong_type": [1, True, [first], {"a": first}], "wrong_unit": [first.upper(), f" {first}"],
                      "huge": ["x" * 100_000], "empty": ["", None], "path_like": ["../../etc/passwd"]}
            pattern = rf"^`{name}` must be one of {re.escape(', '.join(allowed))}; got "
        else:
            values = {"wrong_type": [first, [1], [[first]], {"a": 1}], "wrong_unit": [[first.upper()]],
                      "boundary": [[*allowed, first]], "huge": [[first] * 10_000], "empty": [None, ""],
                      "path_like": [["../x"], "/etc/passwd"]}
            pattern = rf"^`{name}` must be a list of {re.escape(', '.join(allowed))}"
        return [(v, pattern) for v in values.get(hostile, [])]
    if kind == "model":  # empty means the configured model: not hostile
        values = {"wrong_type": [(v, rf"^`{name}` must be text") for v in (123, ["a"], {"a": 1}, True)],
                  "huge": [("x" * 100_000, r"model name is not valid")],
                  "path_like": [(v, r"could not be loaded|does not hold a diffusers pipeline|is a file, not a folder")
                                for v in ("/etc", "/etc/passwd", "../../../../proc/self")]}
        return values.get(hostile, [])
    if kind == "text":
        what = name.replace("_", " ")
        values = {"wrong_type": [(v, rf"^`{name}` must be text; got ") for v in (123, [1, 2], {"a": 1}, True)],
                  "boundary": [("a" * 2001, rf"{what} is 2001 characters long; the limit is 2000")],
                  "huge": [("a" * 100_000, rf"{what} is 100000 characters long; the limit is 2000")]}
        if name == "prompt":
            values["empty"] = [("", r"Please write a prompt"), (None, r"Please write a prompt")]
        return values.get(hostile, [])
    # files
    not_uploaded = FILE_NOT_UPLOADED.format(name=name)
    forged = [{"path": p, "meta": {"_type": "gradio.FileData"}} for p in ("/etc/passwd", "../../../../etc/passwd")]
    common = {"wrong_type": [(v, not_uploaded) for v in (123, [], {"a": 1}, True)],
              "path_like": [(v, not_uploaded) for v in ("/etc/passwd", "/tmp", "photo.png", *forged)]}
    if kind == "image":
        empty = [("", not_uploaded), (uploads["image_empty"], r"empty \(0 bytes\)")]
        if row["api"] != "/prepare_image":  # no image there just clears the preview
            empty.append((None, r"upload an image"))
        values = {**common, "empty": empty,
                  "wrong_unit": [(uploads["video_mp4"], r"is a video \(MP4 or MOV\), not a still image")],
                  "boundary": [(uploads["image_15x15"], r"only 15x15 pixels; both sides must be at least 16")],
                  "huge": [(uploads["image_6000x6000"], r"6000x6000 \(36\.0 megapixels\); the limit is 25\.0")],
                  "lying_header": [(uploads["png_claiming_60000x60000"], r"too large \(3600\.0 megapixels\)"),
                                   (uploads["gif_claiming_16000x16000"], r"too large \(256\.0 megapixels\)")]}
        return values.get(hostile, [])
    values = {**common,
              "empty": [("", not_uploaded), (None, r"upload a video|choose a video first"),
                        (uploads["video_empty"], r"is empty \(0 bytes\)")],
              "wrong_unit": [(uploads["still_png"], r"is a single image; (Extending continues a video|"
                                                    r"interpolation needs at least 2 frames)")],
              "boundary": [(uploads["video_14x14"], r"is 14x14 pixels; frames must be at least 16 pixels")],
              "huge": [(uploads["video_2100_frames"], r"more than 2000 frames|up to 400 frames")],
              "lying_header": [(uploads[case], pattern) for case, (_, _, pattern) in LYING_VIDEOS.items()]}
    if row["api"] == "/upscale":
        values["wrong_unit"] = []  # a still is a valid input there: it is upscaled into a PNG
    return values.get(hostile, [])


@pytest.mark.parametrize("hostile", HOSTILE_CLASSES)
def test_every_parameter_of_every_endpoint_refuses_each_class_of_hostile_input(
        hostile_server, hostile_endpoints, api_table, hostile_uploads, uploaded_image, uploaded_video, hostile):
    problems, tried = [], 0
    for row in api_table:
        base = cheap_values(hostile_endpoints, row["api"], uploaded_image, uploaded_video)
        for value, pattern in _hostile_values(row, hostile, hostile_uploads):
            tried += 1
            status, answer = raw_call(hostile_server, hostile_endpoints, row["api"], **{**base, row["name"]: value})
            message = refusal(row["api"], status, answer)
            where = f"{row['api']} {row['name']}={shown(value)}"
            if message is None:
                problems.append(f"{where}: ACCEPTED ({answer[:120]})")
            elif not 400 <= status < 500 and status != 200:
                problems.append(f"{where}: HTTP {status}: {message[:300]}")
            elif not re.search(pattern, message, re.S):
                problems.append(f"{where}: {message[:300]!r} does not match {pattern!r}")
            elif "Something went wrong" in message or "Traceback" in message or len(message) > 1500:
                problems.append(f"{where}: not a specific message: {message[:300]!r}")
            elif re.search(r"&(#x?[0-9a-f]+|[a-z]+);|<[a-z/!?]", message, re.I):
                problems.append(f"{where}: markup or HTML entities: {message[:300]!r}")
    assert tried, f"no {hostile} values for any parameter"
    assert not problems, f"{len(problems)} of {tried} {hostile} inputs not refused as they should be:\n" + \
        "\n".join(problems)


def test_after_the_corpus_real_runs_still_succeed(hostile_client, good_image, hostile_settings):
    video, seed, prepared, notes, out, _preview = hostile_client.predict(image=handle_file(str(good_image)), seed=77,
                                                                         **FAST, api_name="/image_to_video")
    assert seed == 77 and probe_video(video).num_frames == 4
    record = json.loads(Path(next(f for f in out if f.endswith(".json"))).read_text())
    assert record["parameters"]["seed"] == 77
    still, still_seed, _, _ = hostile_client.predict(prompt="a quiet harbour", **TEXT_FAST, api_name="/text_to_image")
    assert still_seed == 5 and Image.open(still).size == (256, 144)
    leftovers = [p.name for p in hostile_settings.output_dir.iterdir() if ".partial-" in p.name]
    assert not leftovers, leftovers  # refused and failed requests leave no half-written files behind
