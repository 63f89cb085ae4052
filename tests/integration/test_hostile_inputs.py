"""Hostile and malformed inputs against a launched app: every case gets a clear message (or a correct result where
the input is odd but usable), and the server keeps serving afterwards.

One demo for the module (tiny models, its own output folder and Gradio temp folder, a 2 MB upload limit), driven
with gradio_client like a real API caller, and with raw HTTP where a client cannot send the input (NaN, strings where
numbers belong, forged file paths). Every input file is made here, in tmp. Where a model actually runs it is a
4-frame 256x144 clip with 2 steps; most cases are refused before any model runs. After every few cases a cheap
/prepare_image request must still succeed; the last test runs a real video and a real still.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from helpers import FAST, launched
from PIL import Image

from svd_demo.core.params import shown
from svd_demo.core.settings import Settings
from svd_demo.files.media import probe_video, write_video

TEXT_FAST = {"sdxl_steps": 2, "resolution": 256, "randomize_seed": False, "seed": 5}
HTTP_TIMEOUT = 60.0  # no single request may hang the suite


# --------------------------------------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def hostile_settings(tiny_models_dir, tmp_path_factory) -> Settings:
    return Settings(svd_model=str(tiny_models_dir / "svd"), sdxl_model=str(tiny_models_dir / "sdxl"),
                    output_dir=tmp_path_factory.mktemp("hostile_outputs"), device="cpu", max_file_size="2mb")


@pytest.fixture(scope="module")
def hostile_studio(hostile_settings):
    from svd_demo.studio.studio import Studio

    return Studio(hostile_settings)


@pytest.fixture(scope="module")
def server(hostile_settings, hostile_studio, tmp_path_factory):
    with launched(hostile_settings, hostile_studio, tmp_path_factory.mktemp("hostile_gradio")) as url:
        yield url


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> Client:
    return Client(server, verbose=False, download_files=str(tmp_path_factory.mktemp("hostile_downloads")))


@pytest.fixture(scope="module")
def endpoints(client) -> dict[str, Any]:
    return client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile_files")


@pytest.fixture(scope="module")
def good_image(files) -> Path:
    path = files / "good.png"
    y, x = np.mgrid[0:150, 0:200]
    Image.fromarray(np.stack([x, y, np.full_like(x, 90)], axis=-1).astype(np.uint8)).save(path)
    return path


HEALTH_EVERY = 3  # cases between health checks (each costs ~0.2 s)
_cases_run = [0]


@pytest.fixture(autouse=True)
def still_serving(client, good_image):
    """After every few cases a normal (cheap, CPU-only) request must still succeed: nothing is wedged or crashed."""
    yield
    _cases_run[0] += 1
    if _cases_run[0] % HEALTH_EVERY:
        return
    image, notes = client.predict(handle_file(str(good_image)), 256, "native", api_name="/prepare_image")
    assert image and "The video will be 256x192" in notes, notes


# -------------------------------------------------------------------------------------------------------- helpers


def _refused(call, pattern: str) -> str:
    """The call fails with gradio_client's AppError/ValidationError carrying the server's message."""
    with pytest.raises((AppError, ValidationError)) as info:
        call()
    message = str(info.value)
    assert re.search(pattern, message, re.I | re.S), message
    assert "Something went wrong on the server" not in message, message
    return message


def _upload(server: str, path: Path) -> dict[str, Any]:
    response = httpx.post(f"{server}gradio_api/upload", timeout=HTTP_TIMEOUT,
                          files=[("files", (path.name, path.read_bytes(), "application/octet-stream"))])
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def _raw_call(server: str, endpoints: dict, api_name: str, **values: Any) -> tuple[int, str]:
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


def _assert_4xx(status: int, message: str, pattern: str) -> None:
    assert 400 <= status < 500, (status, message)
    assert re.search(pattern, message, re.I | re.S), message
    assert "Traceback" not in message, message
    _assert_plain(message)


def _assert_refused(status: int, message: str, pattern: str) -> None:
    """Refused with our message: at queue join (4xx), or by the handler (an error event: HTTP 200 and no result)."""
    assert status != 200 or not re.match(r"(complete|none): ", message), (status, message)
    _assert_4xx(status if status != 200 else 400, message, pattern)


WORD_JOINER = "\u2060"  # invisible: what keeps a `<` or `&` in a message from starting a tag or an entity in a page


def _assert_plain(message: str) -> None:
    """An API message is plain text: no HTML entities for the page, and nothing a page would take for a tag."""
    assert not re.search(r"&(#x?[0-9a-f]+|[a-z]+);", message, re.I), message
    assert not re.search(r"<[a-z/!?]|&[a-z#]", message, re.I), message


def _cheap(endpoints: dict, api: str, image: Any = None, video: Any = None) -> dict[str, Any]:
    """Values that make any endpoint fast if it ever runs (small sizes, few steps, a prompt), with the given files
    for whichever file parameter it has."""
    names = {p["parameter_name"] for p in endpoints[api]["parameters"]}
    values = {**FAST, **TEXT_FAST, "prompt": "a boat", "factor": 2, "target_fps": 0,
              "image": image, "image_path": image, "video": video, "media": video, "start_image": image,
              "end_image": image}
    return {k: v for k, v in values.items() if k in names and v is not None}


def _png_48bit(path: Path, width: int, height: int, value: int) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), every sample `value` (0-65535)."""
    row = b"\x00" + struct.pack(">HHH", value, value, value) * width
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _prepared_pixels(client: Client, path: Path, aspect_mode: str = "native") -> tuple[np.ndarray, str]:
    image, notes = client.predict(handle_file(str(path)), 256, aspect_mode, api_name="/prepare_image")
    assert image, notes
    return np.asarray(Image.open(image).convert("RGB")).astype(int), notes


# ---------------------------------------------------------------------------------------------- unusable images


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


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSED_IMAGES))
def test_unusable_image_is_refused_by_preview_and_generation(client, files, case):
    name, make, pattern = REFUSED_IMAGES[case]
    path = files / name
    make(path)
    if case == "36_megapixel_bomb":
        assert path.stat().st_size < 100_000  # small on the wire, 36 MP decoded
    image, notes = client.predict(handle_file(str(path)), 256, "native", api_name="/prepare_image")
    assert image is None and notes.startswith("⚠️"), notes
    assert re.search(pattern, notes), notes
    _refused(lambda: client.predict(image=handle_file(str(path)), **FAST, api_name="/image_to_video"), pattern)


# ------------------------------------------------------------------------------------ odd images that must work


def test_very_wide_strip_that_is_tall_enough_becomes_3_to_1(client, files):
    path = files / "wide.png"
    Image.new("RGB", (100_000, 20), (30, 160, 90)).save(path)
    pixels, notes = _prepared_pixels(client, path)
    assert pixels.shape[:2] == (88, 256), notes  # clamped to the most extreme shape supported, 3:1 (rounded to 8)
    assert "3:1" in notes and "most extreme shape" in notes, notes
    assert np.abs(pixels - (30, 160, 90)).max() <= 2


def test_16_bit_grey_png_is_not_clipped(client, files):
    path = files / "grey16.png"
    Image.fromarray(np.full((150, 200), 32768, dtype=np.uint16)).save(path)  # mode I;16: mid-grey
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    pixels, notes = _prepared_pixels(client, path)
    assert np.abs(pixels - 128).max() <= 2, pixels.min()  # a naive conversion clips this to white (255)
    assert "16 bits per channel" in notes


def test_48_bit_rgb_png_stays_mid_grey(client, files):
    path = files / "rgb48.png"
    _png_48bit(path, 200, 150, 32896)  # 0x8080: 128 in either byte order
    pixels, notes = _prepared_pixels(client, path)
    assert np.abs(pixels - 128).max() <= 2, (pixels.min(), pixels.max())
    assert "16 bits per channel" in notes


def test_cmyk_jpeg_is_converted_with_a_notice(client, files):
    path = files / "print.jpg"
    Image.new("CMYK", (200, 150), (0, 255, 255, 0)).save(path, quality=95)  # pure red in print colours
    pixels, notes = _prepared_pixels(client, path)
    assert "CMYK" in notes
    centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60, centre


def test_exif_rotated_photo_comes_out_upright(client, files):
    stored = np.zeros((300, 400, 3), dtype=np.uint8)
    stored[:, :200] = (220, 30, 30)  # left half red
    stored[:, 200:] = (30, 30, 220)  # right half blue
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the stored left edge is the top
    path = files / "phone.jpg"
    im.save(path, exif=exif, quality=95)
    pixels, notes = _prepared_pixels(client, path)
    assert pixels.shape[:2] == (256, 192), notes  # portrait
    top, bottom = pixels[20, 96], pixels[-20, 96]
    assert top[0] > 180 and top[2] < 80, top
    assert bottom[2] > 180 and bottom[0] < 80, bottom


def test_transparent_png_is_not_black_where_transparent(client, files):
    rgba = Image.new("RGBA", (200, 150), (0, 0, 0, 0))  # transparent black: a naive RGB conversion shows black
    rgba.paste((200, 20, 20, 255), (50, 40, 150, 110))
    path = files / "logo.png"
    rgba.save(path)
    pixels, notes = _prepared_pixels(client, path)
    assert "transparent" in notes
    assert pixels[2, 2].min() >= 245 and pixels[-3, -3].min() >= 245, (pixels[2, 2], pixels[-3, -3])
    centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert centre[0] > 150 and centre[1] < 80, centre


@pytest.mark.slow
def test_animated_gif_makes_a_video_from_its_first_frame(client, files):
    frames = [Image.new("RGB", (200, 150), c) for c in [(230, 20, 20), (20, 230, 20), (20, 20, 230)]]
    path = files / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    video, seed, prepared, notes, out, _preview = client.predict(image=handle_file(str(path)), seed=21, **FAST,
                                                       api_name="/image_to_video")
    assert "animated; its first frame was used" in notes, notes
    assert seed == 21 and probe_video(video).num_frames == 4
    first = np.asarray(Image.open(prepared).convert("RGB")).astype(int)
    assert first[..., 0].mean() > 180 and first[..., 1].mean() < 80  # red: frame 0, not green or blue


# ------------------------------------------------------------------------------------- forged and oversized files


@pytest.mark.parametrize("forged", [
    {"path": "/etc/passwd"},
    {"path": "../../../../etc/passwd"},
    {"url": "data:image/png;base64,iVBORw0KGgoAAAA=", "path": None},  # inline base64 that is not an image
])
def test_forged_file_payloads_are_refused(server, endpoints, forged):
    image = {**forged, "meta": {"_type": "gradio.FileData"}}
    status, message = _raw_call(server, endpoints, "/image_to_video", image=image, **FAST)
    assert "root:" not in message
    _assert_refused(status, message, r"^`image` must be a file uploaded to this server|could not be read as an image")


@pytest.mark.slow
@pytest.mark.parametrize("api, name", [("/image_to_video", "image"), ("/compare_seeds", "image"),
                                       ("/prepare_image", "image_path"), ("/extend_video", "video"),
                                       ("/interpolate", "video")])
@pytest.mark.parametrize("value", ["/etc/passwd", "/tmp", "photo.png", "", 123, [], {"a": 1},
                                   {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}], ids=repr)
def test_a_file_parameter_that_is_not_an_uploaded_file_gets_our_message(server, endpoints, api, name, value,
                                                                        uploaded_image, uploaded_video):
    # Before: "upstream app raised an exception" (no message at all) or pydantic's validation text.
    status, message = _raw_call(server, endpoints, api,
                                **{**_cheap(endpoints, api, uploaded_image, uploaded_video), name: value})
    _assert_refused(status, message, rf"^`{name}` must be (a file uploaded to this server|an uploaded file)")
    assert "pydantic" not in message and "validation error for" not in message, message


def test_an_inline_base64_image_is_read_by_our_loader(server, endpoints):
    """A data: URL is decoded in memory and read by our loader, never written; Gradio's own path decoded it with PIL
    (bombs included) and re-encoded it as WebP (16 bits per channel lost, or refused)."""
    import base64

    buf = io.BytesIO()
    Image.fromarray(np.full((150, 200), 32768, dtype=np.uint16)).save(buf, "PNG")  # 16-bit grey
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    status, answer = _raw_call(server, endpoints, "/prepare_image",
                               image_path={"url": url, "path": None, "meta": {"_type": "gradio.FileData"}},
                               resolution=256, aspect_mode="native")
    assert answer.startswith("complete: "), answer
    image, notes = json.loads(answer.split(": ", 1)[1])
    assert image and "16 bits per channel" in notes, notes


def test_upload_over_max_file_size_gets_413(server):
    blob = b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024)
    response = httpx.post(f"{server}gradio_api/upload", files=[("files", ("big.png", blob, "image/png"))],
                          timeout=HTTP_TIMEOUT)
    assert response.status_code == 413
    assert "maximum allowed size" in response.text


@pytest.mark.parametrize("path", [
    "gradio_api/file=/etc/passwd",
    "gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "gradio_api/file=/tmp/../../etc/passwd",
    "gradio_api/file=/proc/self/environ",
])
def test_files_outside_the_allowed_folders_are_not_served(server, path):
    response = httpx.get(f"{server}{path}", timeout=HTTP_TIMEOUT)
    assert response.status_code in (403, 404), (response.status_code, response.text[:200])
    assert "root:" not in response.text and "HF_HUB_OFFLINE" not in response.text


# --------------------------------------------------------------------------------------------- numbers and types


@pytest.fixture(scope="module")
def numeric(endpoints) -> list[str]:
    """Every number the video endpoint takes (from the API itself, so a parameter added later is covered too)."""
    names = [p["parameter_name"] for p in endpoints["/image_to_video"]["parameters"]
             if p["component"] in ("Slider", "Number")]
    assert {"seed", "num_frames", "noise_aug_strength", "playback_fps"} <= set(names), names
    return names


@pytest.fixture(scope="module")
def uploaded_image(server, good_image) -> dict[str, Any]:
    return _upload(server, good_image)


@pytest.fixture(scope="module")
def uploaded_video(server, files) -> dict[str, Any]:
    return _upload(server, _video(files / "eight_frames.mp4", 8))


@pytest.mark.slow
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, 1e12, 2**64], ids=str)
def test_non_finite_negative_and_huge_numbers_get_4xx_for_every_parameter(server, endpoints, uploaded_image, numeric,
                                                                          bad):
    for name in numeric:
        status, message = _raw_call(server, endpoints, "/image_to_video", image=uploaded_image,
                                    **{**FAST, name: bad})
        # Every message names the parameter: the range check of our Slider/Number subclasses or the validator.
        _assert_4xx(status, message, rf"`{name}`")


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["abc", "7", None, [1, 2], {"a": 1}], ids=repr)
def test_strings_and_other_types_where_numbers_belong(server, endpoints, uploaded_image, numeric, bad):
    for name in numeric:
        status, message = _raw_call(server, endpoints, "/image_to_video", image=uploaded_image,
                                    **{**FAST, name: bad})
        _assert_4xx(status, message, rf"{name}|Expected a `float")


def test_fractional_whole_numbers_are_refused_with_the_parameter_named(server, endpoints, uploaded_image):
    for name in ["num_frames", "num_inference_steps", "motion_bucket_id", "fps", "decode_chunk_size"]:
        status, message = _raw_call(server, endpoints, "/image_to_video", image=uploaded_image,
                                    **{**FAST, name: 4.5})
        _assert_4xx(status, message, rf"`{name}` must be a whole number")


@pytest.mark.parametrize("api", ["/image_to_video", "/extend_video"])
def test_min_guidance_above_max_guidance_blames_those_two_only(client, good_image, files, api):
    source = {"image": handle_file(str(good_image))} if api == "/image_to_video" else \
        {"video": handle_file(str(_video(files / "eight.mp4", 8)))}
    message = _refused(lambda: client.predict(**source, **FAST, min_guidance_scale=5, max_guidance_scale=1,
                                              api_name=api),
                       r"min_guidance_scale \(5\) must not be larger than max_guidance_scale \(1\)")
    # Not "16 parameter(s) failed validation", one line per parameter of the endpoint with the same text.
    assert message.startswith("2 parameter(s) failed validation:\n- min_guidance_scale: "), message
    assert "\n- max_guidance_scale: " in message and "- seed:" not in message, message


@pytest.mark.parametrize("name, value, allowed", [("aspect_mode", "diagonal", "crop, pad, native"),
                                                   ("loop", "boomerang", "none, ping-pong"),
                                                   ("extra_formats", ["exe"], "gif, webm"),
                                                   ("extra_formats", "gif", "gif, webm")])
def test_unknown_choices_are_refused_naming_the_parameter_value_and_choices(server, endpoints, uploaded_image, name,
                                                                          value, allowed):
    status, message = _raw_call(server, endpoints, "/image_to_video", image=uploaded_image, **{**FAST, name: value})
    _assert_4xx(status, message, rf"^`{name}` must be .*{allowed}.*; got {re.escape(repr(value))}\.$")


def test_missing_image(client):
    _refused(lambda: client.predict(image=None, **FAST, api_name="/image_to_video"), r"upload an image")


def test_non_finite_image_guidance_for_text_to_image(server, endpoints):
    status, message = _raw_call(server, endpoints, "/text_to_image", prompt="a boat", **TEXT_FAST,
                                sdxl_guidance_scale=math.nan)
    assert status < 500 and "sdxl_guidance_scale" in message and "finite" in message, (status, message)


# ------------------------------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize("prompt, pattern", [
    ("", r"Please write a prompt"),
    (" \n\t ", r"Please write a prompt"),
    ("\x00\x07\x1b\x7f", r"Please write a prompt"),  # only control characters: nothing left to draw
    ("a" * 100_000, r"100000 characters long; the limit is 2000"),
])
def test_empty_and_huge_prompts_are_refused_before_the_queue(client, prompt, pattern):
    _refused(lambda: client.predict(prompt=prompt, **TEXT_FAST, api_name="/text_to_image"), pattern)


def test_empty_prompt_for_text_to_video(client):
    _refused(lambda: client.predict(prompt="", **TEXT_FAST, num_frames=4, num_inference_steps=2,
                                    api_name="/text_to_video"), r"Please write a prompt")


def test_html_and_control_characters_in_prompts_are_never_rendered(client):
    hostile = "<script>alert(1)</script> <img src=x onerror=alert(1)> \x00\x07\x1b[31m "
    padding = " ".join(f"word{i}" for i in range(120))  # past CLIP's 77 tokens: the notice quotes what was read
    still, seed, notes, out = client.predict(prompt=hostile + padding, negative_prompt=hostile + padding,
                                             **TEXT_FAST, api_name="/text_to_image")
    assert seed == 5 and Path(still).is_file()
    assert "the text encoder reads 77 tokens" in notes and "negative prompt" in notes, notes
    _assert_plain(notes)  # no tag can start: a word joiner follows each "<" (and nothing is an HTML entity)
    assert "script" in notes and "onerror" in notes, notes  # quoted as the text encoder read it
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", notes), repr(notes)
    record = json.loads(Path(next(f for f in out if f.endswith(".json"))).read_text())
    assert "\x1b" not in record["parameters"]["prompt"] and "\x00" not in record["parameters"]["prompt"]
    assert record["parameters"]["prompt"].startswith("<script>alert(1)</script>")  # kept verbatim, minus controls


# ------------------------------------------------------------------------------------------ a short output TTL


@pytest.mark.slow
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


# -------------------------------------------------------------------------------------------------- interpolate


@pytest.fixture(scope="module")
def interpolate(endpoints):
    assert "/interpolate" in endpoints  # it exists: a missing endpoint fails these tests, it is no expected failure
    return "/interpolate"


def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=60)


def _video(path: Path, frames: int, size: tuple[int, int] = (64, 48), fps: float = 8) -> Path:
    rng = np.random.default_rng(frames)
    write_video(rng.integers(0, 255, (frames, size[1], size[0], 3), dtype=np.uint8), path, fps)
    return path


def _truncated_mp4(path: Path) -> None:
    """The first third of an 8-frame "fast start" MP4 (index first, as browsers download them): 2 frames survive."""
    data = _video(path.with_name("whole.mp4"), 8).read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _truncated_mp4_index_last(path: Path) -> None:
    """The first half of an MP4 whose index (moov) comes last, as cameras and ffmpeg write them by default."""
    whole = path.with_name("whole_index_last.mp4")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=8", "-frames:v", "8", "-pix_fmt", "yuv420p", str(whole))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _audio_only(path: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(path))


def _no_frames(path: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=8", "-t", "0", "-pix_fmt", "yuv420p", str(path))


def _many_frames(path: Path) -> None:  # more than video_input.MAX_INPUT_FRAMES (2000), tiny frames
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=16x16:rate=1000", "-frames:v", "2100", "-pix_fmt", "yuv420p",
            str(path))


REFUSED_VIDEOS = {
    "truncated_mp4_index_last": ("cut_index_last.mp4", _truncated_mp4_index_last, r"not a readable video.*moov"),
    "truncated_mp4": ("cut.mp4", _truncated_mp4, r"truncated|cut off|partial|damaged"),
    "audio_only": ("sound.m4a", _audio_only, r"no video stream"),
    "zero_frames": ("none.mp4", _no_frames, r"not a readable video|no video stream|0 frame"),
    "one_frame": ("single.mp4", lambda p: _video(p, 1), r"1 frame\(s\); interpolation needs at least 2"),
    "2100_frames": ("long.mp4", _many_frames, r"more than 2000 frames"),
}


@pytest.mark.parametrize("case", list(REFUSED_VIDEOS))
def test_unusable_video_is_refused_by_interpolate(client, interpolate, files, case):
    name, make, pattern = REFUSED_VIDEOS[case]
    make(files / name)
    _refused(lambda: client.predict(video=handle_file(str(files / name)), factor=2, target_fps=0,
                                    slow_motion=False, api_name=interpolate), pattern)


@pytest.mark.parametrize("factor", [1, 17, -3, 2.5, math.nan], ids=str)
def test_bad_interpolation_factor(server, endpoints, interpolate, files, factor):
    video = _upload(server, _video(files / "eight.mp4", 8))
    status, message = _raw_call(server, endpoints, interpolate, video=video, factor=factor, target_fps=0)
    assert status < 500 and "Something went wrong" not in message, (status, message)
    assert re.search(r"factor", message), message


@pytest.mark.parametrize("target_fps", [math.nan, -5, 1000])
def test_bad_interpolation_target_fps(server, endpoints, interpolate, files, target_fps):
    video = _upload(server, _video(files / "eight.mp4", 8))
    status, message = _raw_call(server, endpoints, interpolate, video=video, factor=2, target_fps=target_fps)
    assert status < 500 and "Something went wrong" not in message, (status, message)
    assert re.search(r"`target_fps`", message), message


# ------------------------------------------------------------------------- booleans, counts, rates, messages


def _notes_of(message: str) -> str:
    """The notes (second output) of a finished /interpolate call, from `_raw_call`'s "complete: <data>"."""
    assert message.startswith("complete: "), message
    return json.loads(message.split(": ", 1)[1])[1]


@pytest.mark.parametrize("sent, slow", [("false", False), ("False", False), ("true", True), (False, False)])
def test_a_boolean_sent_as_a_string_means_what_it_says(server, endpoints, uploaded_video, sent, slow):
    # JSON callers and form fields send "false" as text; as a non-empty string it would turn slow motion on.
    status, message = _raw_call(server, endpoints, "/interpolate", video=uploaded_video, factor=2, target_fps=0,
                                slow_motion=sent)
    assert status == 200, message
    assert f"8 frames at 8 fps became 15 frames at {8 if slow else 16} fps" in _notes_of(message)


@pytest.mark.parametrize("api, name", [("/interpolate", "slow_motion"), ("/image_to_video", "randomize_seed"),
                                       ("/text_to_image", "randomize_seed")])
@pytest.mark.parametrize("value", ["maybe", 2, 0.5, None, [True], ""], ids=repr)
def test_a_boolean_that_is_neither_true_nor_false_is_refused(server, endpoints, uploaded_image, uploaded_video,
                                                             api, name, value):
    status, message = _raw_call(server, endpoints, api,
                                **{**_cheap(endpoints, api, uploaded_image, uploaded_video), name: value})
    _assert_refused(status, message, rf"^`{name}` must be true or false; got {re.escape(repr(value))}\.$")


@pytest.mark.parametrize("api, name, value, low, high", [
    ("/compare_seeds", "num_seeds", 2.5, 2, 8),  # refused, not floored to 2
    ("/image_to_video", "seed", 7.5, 0, 4294967295),  # refused, not rounded to 8
    ("/prepare_image", "resolution", 512.5, 64, 2048),  # refused, not floored to 512
    ("/interpolate", "factor", 2.5, 2, 16),
    ("/text_to_image", "sdxl_steps", 2.5, 1, 100),
])
def test_a_fractional_count_is_refused_not_rounded(server, endpoints, uploaded_image, uploaded_video, api, name,
                                                  value, low, high):
    status, message = _raw_call(server, endpoints, api,
                                **{**_cheap(endpoints, api, uploaded_image, uploaded_video), name: value})
    _assert_refused(status, message, rf"^`{name}` must be a whole number from {low} to {high}; got {value}\.$")


def test_a_target_fps_below_the_source_rate_says_that_frames_are_dropped(server, endpoints, uploaded_video):
    status, message = _raw_call(server, endpoints, "/interpolate", video=uploaded_video, factor=2, target_fps=2)
    notes = _notes_of(message)
    assert "8 frames at 8 fps became 2 frames at 2 fps" in notes, notes
    assert re.search(r"target of 2 fps is below the source's 8 fps.*6 of its 8 frames were dropped", notes), notes


def test_a_still_image_sent_to_extend_gets_an_extend_message(server, endpoints, uploaded_image):
    status, message = _raw_call(server, endpoints, "/extend_video", **_cheap(endpoints, "/extend_video"),
                                video=uploaded_image)
    assert "'good.png' is a single image; Extending continues a video" in message, message
    assert "interpolation" not in message.lower(), message
    _assert_plain(message)


def test_refusals_reach_api_clients_as_plain_text(server, endpoints, uploaded_image, client, good_image):
    # An error event: a quoted file name came as &#x27;good.png&#x27;.
    _, message = _raw_call(server, endpoints, "/extend_video", **_cheap(endpoints, "/extend_video"),
                           video=uploaded_image)
    assert message.startswith("'good.png' is a single image"), message
    # A refusal at queue join (HTTP 400): its detail is the message itself, not its repr with quotes and escapes.
    status, detail = _raw_call(server, endpoints, "/image_to_video", image=uploaded_image, **FAST, seed="it's")
    assert (status, detail) == (400, '`seed` must be a whole number from 0 to 4294967295; got "it\'s".')
    # A validator's answer (HTTP 422), as gradio_client shows it.
    message = _refused(lambda: client.predict(image=handle_file(str(good_image)), **FAST, min_guidance_scale=5,
                                              max_guidance_scale=1, api_name="/image_to_video"), r"must not be")
    _assert_plain(message)


# ------------------------------------------------------------ every endpoint x every parameter x class of input
# The table comes from the running app itself (its config: each public endpoint's inputs, their components, ranges
# and choices; its API info: the parameter names), so a parameter or an endpoint added later is covered at once.
# Every value below must be refused, by the parameter's name where the value's type or range is wrong, and with a
# message about the content where a file's content is wrong; never a generic error, a 5xx, markup or a traceback.

HOSTILE_CLASSES = ("wrong_type", "wrong_unit", "boundary", "huge", "empty", "path_like", "lying_header")
NUMBER = r"^`{name}` must be a (finite|whole) number from {low} to {high}; got "
FILE_NOT_UPLOADED = r"^`{name}` must be (an uploaded file|a file uploaded to this server)"


@pytest.fixture(scope="module")
def api_table(client) -> list[dict[str, Any]]:
    """One row per parameter of every public endpoint: api, name, kind and the component's props."""
    config = client.config
    components = {c["id"]: c for c in config["components"]}
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    rows = []
    for dep in config["dependencies"]:
        if not dep.get("api_name") or dep.get("api_visibility", "public") != "public":
            continue
        api = "/" + dep["api_name"]
        names = [p["parameter_name"] for p in named[api]["parameters"]]
        sent = [i for i in dep["inputs"] if components[i]["type"] != "state"]  # a session's state is no parameter
        for name, component_id in zip(names, sent, strict=True):
            component = components[component_id]
            props = component["props"]
            kind = {"slider": "number", "number": "number", "checkbox": "bool", "radio": "choice",
                    "checkboxgroup": "choices", "textbox": "text", "image": "image", "video": "video",
                    "file": "video",  # /upscale's media: a video, or a still (which it takes)
                    "dropdown": "model" if props.get("allow_custom_value") else "choice"}[component["type"]]
            if kind == "number" and props.get("precision") == 0:
                kind = "whole"
            rows.append({"api": api, "name": name, "kind": kind, "props": props})
    assert {r["api"] for r in rows} >= {"/image_to_video", "/extend_video", "/compare_seeds", "/text_to_image",
                                        "/text_to_video", "/interpolate", "/prepare_image",
                                        "/keyframes_to_video"}, rows
    return rows


@pytest.fixture(scope="module")
def hostile_uploads(server, files) -> dict[str, dict[str, Any]]:
    """Every hostile file, uploaded once: {case: file reference}."""
    from lying_headers import LYING_VIDEOS, gif_claiming, png_claiming

    made = {
        "image_15x15": lambda p: Image.new("RGB", (15, 15), (9, 9, 9)).save(p),
        "image_6000x6000": lambda p: Image.new("L", (6000, 6000), 0).save(p, optimize=True),
        "image_empty": lambda p: p.write_bytes(b""),
        "png_claiming_60000x60000": png_claiming,
        "gif_claiming_16000x16000": gif_claiming,
        "video_mp4": lambda p: _video(p, 8),
        "video_14x14": lambda p: _video(p, 3, (14, 14)),
        "video_2100_frames": _many_frames,
        "video_empty": lambda p: p.write_bytes(b""),
        "still_png": lambda p: Image.new("RGB", (64, 48), (9, 99, 9)).save(p),
    }
    suffix = {"video_mp4": ".mp4", "video_14x14": ".mp4", "video_2100_frames": ".mp4", "video_empty": ".mp4",
              "gif_claiming_16000x16000": ".gif"}
    uploads = {}
    for case, make in made.items():
        path = files / f"hostile_{case}{suffix.get(case, '.png')}"
        make(path)
        uploads[case] = _upload(server, path)
    for case, (name, make, _) in LYING_VIDEOS.items():
        uploads[case] = _upload(server, make(files / f"lying_{name}"))
    return uploads


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


def _refusal(api: str, status: int, answer: str) -> str | None:
    """The refusal's message, or None if the call was accepted. /prepare_image refuses a file's content in its
    notes ("⚠️ ..."), as the page shows it, and returns no image."""
    if status != 200 or not answer.startswith(("complete: ", "none: ")):
        return answer
    if api == "/prepare_image" and answer.startswith("complete: "):
        image, notes = json.loads(answer.split(": ", 1)[1])
        if image is None and notes.startswith("⚠️ "):
            return notes.removeprefix("⚠️ ")
    return None


@pytest.mark.slow
@pytest.mark.parametrize("hostile", HOSTILE_CLASSES)
def test_every_parameter_of_every_endpoint_refuses_each_class_of_hostile_input(
        server, endpoints, api_table, hostile_uploads, uploaded_image, uploaded_video, hostile):
    problems, tried = [], 0
    for row in api_table:
        base = _cheap(endpoints, row["api"], uploaded_image, uploaded_video)
        for value, pattern in _hostile_values(row, hostile, hostile_uploads):
            tried += 1
            status, answer = _raw_call(server, endpoints, row["api"], **{**base, row["name"]: value})
            message = _refusal(row["api"], status, answer)
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


def test_a_header_that_lies_costs_the_server_little(server, endpoints, api_table, hostile_uploads, uploaded_image,
                                                    uploaded_video):
    """Every lying video to every video parameter: the app (this process, the server runs in it) and its ffmpeg
    children grow by under 200 MB. Before the fix, one 35-byte GIF made a decoder grow to 1.7 GB."""
    from lying_headers import LYING_VIDEOS, MemoryPeak

    rows = [row for row in api_table if row["kind"] == "video"]
    assert rows
    with MemoryPeak() as peak:
        for row in rows:
            base = _cheap(endpoints, row["api"], uploaded_image, uploaded_video)
            for case, (_, _, pattern) in LYING_VIDEOS.items():
                status, answer = _raw_call(server, endpoints, row["api"],
                                           **{**base, row["name"]: hostile_uploads[case]})
                assert re.search(pattern, _refusal(row["api"], status, answer) or "ACCEPTED"), (row["api"], answer)
    print(f"lying headers: app grew {peak.self_mb:.1f} MB, largest ffmpeg child {peak.children_mb:.1f} MB")
    assert peak.total_mb < 200, (peak.self_mb, peak.children_mb)


def test_the_api_docs_show_how_a_client_reads_a_refusal(client, good_image):
    """docs/api.md's snippet, run as written against this server: a bare "400 Bad Request" from gradio_client, whose
    reason the snippet finds in the response body."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    snippet = re.search(r"<!-- refusal-snippet: [^>]*-->\n```python\n(.*?)```", page, re.S).group(1)
    expected = re.search(r'print\(e\.response\.json\(\)\["detail"\]\)  # (.*)', snippet).group(1)
    printed: list[str] = []  # the snippet's own print (the in-process server prints to the same stdout)
    exec(snippet, {"client": client, "handle_file": lambda _: handle_file(str(good_image)), "print": printed.append})
    assert printed == [expected]


# ------------------------------------------------------------------------------------------------------- models
# Last but one: a failed load frees the pipeline that was loaded, so these come just before the final real runs.


def test_unknown_svd_model_names_hf_token_and_the_page_and_the_rest_keeps_working(client, good_image):
    message = _refused(lambda: client.predict(image=handle_file(str(good_image)), svd_model="no/such-model",
                                              **FAST, api_name="/image_to_video"), r"no/such-model")
    assert "HF_TOKEN" in message and "https://huggingface.co/no/such-model" in message, message
    still, *_ = client.predict(prompt="a lighthouse", **TEXT_FAST, api_name="/text_to_image")
    assert Path(still).is_file()  # the configured video model loading again is the last test's first run


def test_unknown_sdxl_model(client):
    message = _refused(lambda: client.predict(prompt="a fox", sdxl_model="no/such-model", **TEXT_FAST,
                                              api_name="/text_to_image"), r"image \(SDXL\) model .*no/such-model")
    assert "HF_TOKEN" in message, message


def test_markup_in_a_model_name_stays_plain_text_that_no_page_renders(client, good_image):
    name = "<img src=x onerror=1> & &amp; it's"
    message = _refused(lambda: client.predict(image=handle_file(str(good_image)), svd_model=name,
                                              **FAST, api_name="/image_to_video"), r"does not exist on this machine")
    assert name in message.replace(WORD_JOINER, ""), message  # what was sent, as sent (the joiners are invisible)
    _assert_plain(message)


def test_a_local_folder_that_is_not_a_pipeline(client, good_image, files):
    message = _refused(lambda: client.predict(image=handle_file(str(good_image)), svd_model=str(files), **FAST,
                                              api_name="/image_to_video"), r"does not hold a diffusers pipeline")
    assert "model_index.json" in message


def test_a_model_that_is_not_a_string(server, endpoints, uploaded_image):
    status, message = _raw_call(server, endpoints, "/image_to_video", image=uploaded_image, svd_model=123, **FAST)
    assert status < 500 and "Something went wrong" not in message and re.search(r"model", message), message


def test_a_model_name_longer_than_a_file_name_can_be(client, good_image):
    _refused(lambda: client.predict(image=handle_file(str(good_image)), svd_model="x" * 300, **FAST,
                                    api_name="/image_to_video"), r"model")


# ---------------------------------------------------------------------------------------------------- the end


@pytest.mark.slow
def test_after_the_corpus_real_runs_still_succeed(client, good_image, hostile_settings):
    video, seed, prepared, notes, out, _preview = client.predict(image=handle_file(str(good_image)), seed=77, **FAST,
                                                       api_name="/image_to_video")
    assert seed == 77 and probe_video(video).num_frames == 4
    record = json.loads(Path(next(f for f in out if f.endswith(".json"))).read_text())
    assert record["parameters"]["seed"] == 77
    still, still_seed, _, _ = client.predict(prompt="a quiet harbour", **TEXT_FAST, api_name="/text_to_image")
    assert still_seed == 5 and Image.open(still).size == (256, 144)
    leftovers = [p.name for p in hostile_settings.output_dir.iterdir() if ".partial-" in p.name]
    assert not leftovers, leftovers  # refused and failed requests leave no half-written files behind
