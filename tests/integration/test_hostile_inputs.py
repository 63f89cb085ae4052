"""Hostile and malformed inputs against a launched app: every case gets a clear message (or a correct result where
the input is odd but usable), and the server keeps serving afterwards.

One demo for the module (tiny models, its own output folder and Gradio temp folder, a 2 MB upload limit; the
fixtures are in conftest.py), driven with gradio_client like a real API caller, and with raw HTTP where a client
cannot send the input (NaN, strings where numbers belong, forged file paths; hostile_calls.py). Every input file is
made here, in tmp. Where a model actually runs it is a 4-frame 256x144 clip with 2 steps; most cases are refused
before any model runs. After every few cases a cheap /prepare_image request must still succeed. The long corpus
(every parameter of every endpoint, every number, unusable images) and the real runs after it are end to end
(tests/e2e/test_hostile_inputs_corpus.py).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from helpers import FAST
from hostile_calls import (
    HTTP_TIMEOUT,
    TEXT_FAST,
    assert_4xx,
    assert_plain,
    assert_refused,
    cheap_values,
    ffmpeg,
    many_frames_video,
    raw_call,
    refusal,
    refused,
    upload,
    video_file,
)
from PIL import Image

pytestmark = pytest.mark.usefixtures("still_serving")  # after every few cases, a cheap request still works


# -------------------------------------------------------------------------------------------------------- helpers


WORD_JOINER = "\u2060"  # invisible: what keeps a `<` or `&` in a message from starting a tag or an entity in a page


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


# ------------------------------------------------------------------------------------ odd images that must work


def test_very_wide_strip_that_is_tall_enough_becomes_3_to_1(hostile_client, hostile_files):
    path = hostile_files / "wide.png"
    Image.new("RGB", (100_000, 20), (30, 160, 90)).save(path)
    pixels, notes = _prepared_pixels(hostile_client, path)
    assert pixels.shape[:2] == (88, 256), notes  # clamped to the most extreme shape supported, 3:1 (rounded to 8)
    assert "3:1" in notes and "most extreme shape" in notes, notes
    assert np.abs(pixels - (30, 160, 90)).max() <= 2


def test_16_bit_grey_png_is_not_clipped(hostile_client, hostile_files):
    path = hostile_files / "grey16.png"
    Image.fromarray(np.full((150, 200), 32768, dtype=np.uint16)).save(path)  # mode I;16: mid-grey
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    pixels, notes = _prepared_pixels(hostile_client, path)
    assert np.abs(pixels - 128).max() <= 2, pixels.min()  # a naive conversion clips this to white (255)
    assert "16 bits per channel" in notes


def test_48_bit_rgb_png_stays_mid_grey(hostile_client, hostile_files):
    path = hostile_files / "rgb48.png"
    _png_48bit(path, 200, 150, 32896)  # 0x8080: 128 in either byte order
    pixels, notes = _prepared_pixels(hostile_client, path)
    assert np.abs(pixels - 128).max() <= 2, (pixels.min(), pixels.max())
    assert "16 bits per channel" in notes


def test_cmyk_jpeg_is_converted_with_a_notice(hostile_client, hostile_files):
    path = hostile_files / "print.jpg"
    Image.new("CMYK", (200, 150), (0, 255, 255, 0)).save(path, quality=95)  # pure red in print colours
    pixels, notes = _prepared_pixels(hostile_client, path)
    assert "CMYK" in notes
    centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60, centre


def test_exif_rotated_photo_comes_out_upright(hostile_client, hostile_files):
    stored = np.zeros((300, 400, 3), dtype=np.uint8)
    stored[:, :200] = (220, 30, 30)  # left half red
    stored[:, 200:] = (30, 30, 220)  # right half blue
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the stored left edge is the top
    path = hostile_files / "phone.jpg"
    im.save(path, exif=exif, quality=95)
    pixels, notes = _prepared_pixels(hostile_client, path)
    assert pixels.shape[:2] == (256, 192), notes  # portrait
    top, bottom = pixels[20, 96], pixels[-20, 96]
    assert top[0] > 180 and top[2] < 80, top
    assert bottom[2] > 180 and bottom[0] < 80, bottom


def test_transparent_png_is_not_black_where_transparent(hostile_client, hostile_files):
    rgba = Image.new("RGBA", (200, 150), (0, 0, 0, 0))  # transparent black: a naive RGB conversion shows black
    rgba.paste((200, 20, 20, 255), (50, 40, 150, 110))
    path = hostile_files / "logo.png"
    rgba.save(path)
    pixels, notes = _prepared_pixels(hostile_client, path)
    assert "transparent" in notes
    assert pixels[2, 2].min() >= 245 and pixels[-3, -3].min() >= 245, (pixels[2, 2], pixels[-3, -3])
    centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert centre[0] > 150 and centre[1] < 80, centre


# ------------------------------------------------------------------------------------- forged and oversized files


@pytest.mark.parametrize("forged", [
    {"path": "/etc/passwd"},
    {"path": "../../../../etc/passwd"},
    {"url": "data:image/png;base64,iVBORw0KGgoAAAA=", "path": None},  # inline base64 that is not an image
])
def test_forged_file_payloads_are_refused(hostile_server, hostile_endpoints, forged):
    image = {**forged, "meta": {"_type": "gradio.FileData"}}
    status, message = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=image, **FAST)
    assert "root:" not in message
    assert_refused(status, message, r"^`image` must be a file uploaded to this server|could not be read as an image")


def test_an_inline_base64_image_is_read_by_our_loader(hostile_server, hostile_endpoints):
    """A data: URL is decoded in memory and read by our loader, never written; Gradio's own path decoded it with PIL
    (bombs included) and re-encoded it as WebP (16 bits per channel lost, or refused)."""
    import base64

    buf = io.BytesIO()
    Image.fromarray(np.full((150, 200), 32768, dtype=np.uint16)).save(buf, "PNG")  # 16-bit grey
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    status, answer = raw_call(hostile_server, hostile_endpoints, "/prepare_image",
                              image_path={"url": url, "path": None, "meta": {"_type": "gradio.FileData"}},
                              resolution=256, aspect_mode="native")
    assert answer.startswith("complete: "), answer
    image, notes = json.loads(answer.split(": ", 1)[1])
    assert image and "16 bits per channel" in notes, notes


def test_upload_over_max_file_size_gets_413(hostile_server):
    blob = b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024)
    response = httpx.post(f"{hostile_server}gradio_api/upload", files=[("files", ("big.png", blob, "image/png"))],
                          timeout=HTTP_TIMEOUT)
    assert response.status_code == 413
    assert "maximum allowed size" in response.text


@pytest.mark.parametrize("path", [
    "gradio_api/file=/etc/passwd",
    "gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "gradio_api/file=/tmp/../../etc/passwd",
    "gradio_api/file=/proc/self/environ",
])
def test_files_outside_the_allowed_folders_are_not_served(hostile_server, path):
    response = httpx.get(f"{hostile_server}{path}", timeout=HTTP_TIMEOUT)
    assert response.status_code in (403, 404), (response.status_code, response.text[:200])
    assert "root:" not in response.text and "HF_HUB_OFFLINE" not in response.text


# --------------------------------------------------------------------------------------------- numbers and types


def test_fractional_whole_numbers_are_refused_with_the_parameter_named(hostile_server, hostile_endpoints,
                                                                       uploaded_image):
    for name in ["num_frames", "num_inference_steps", "motion_bucket_id", "fps", "decode_chunk_size"]:
        status, message = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=uploaded_image,
                                   **{**FAST, name: 4.5})
        assert_4xx(status, message, rf"`{name}` must be a whole number")


@pytest.mark.parametrize("api", ["/image_to_video", "/extend_video"])
def test_min_guidance_above_max_guidance_blames_those_two_only(hostile_client, good_image, hostile_files, api):
    source = {"image": handle_file(str(good_image))} if api == "/image_to_video" else \
        {"video": handle_file(str(video_file(hostile_files / "eight.mp4", 8)))}
    message = refused(lambda: hostile_client.predict(**source, **FAST, min_guidance_scale=5, max_guidance_scale=1,
                                                     api_name=api),
                      r"min_guidance_scale \(5\) must not be larger than max_guidance_scale \(1\)")
    # Not "16 parameter(s) failed validation", one line per parameter of the endpoint with the same text.
    assert message.startswith("2 parameter(s) failed validation:\n- min_guidance_scale: "), message
    assert "\n- max_guidance_scale: " in message and "- seed:" not in message, message


@pytest.mark.parametrize("name, value, allowed", [("aspect_mode", "diagonal", "crop, pad, native"),
                                                   ("loop", "boomerang", "none, ping-pong"),
                                                   ("extra_formats", ["exe"], "gif, webm"),
                                                   ("extra_formats", "gif", "gif, webm")])
def test_unknown_choices_are_refused_naming_the_parameter_value_and_choices(hostile_server, hostile_endpoints,
                                                                            uploaded_image, name, value, allowed):
    status, message = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=uploaded_image,
                               **{**FAST, name: value})
    assert_4xx(status, message, rf"^`{name}` must be .*{allowed}.*; got {re.escape(repr(value))}\.$")


def test_missing_image(hostile_client):
    refused(lambda: hostile_client.predict(image=None, **FAST, api_name="/image_to_video"), r"upload an image")


def test_non_finite_image_guidance_for_text_to_image(hostile_server, hostile_endpoints):
    status, message = raw_call(hostile_server, hostile_endpoints, "/text_to_image", prompt="a boat", **TEXT_FAST,
                               sdxl_guidance_scale=math.nan)
    assert status < 500 and "sdxl_guidance_scale" in message and "finite" in message, (status, message)


# ------------------------------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize("prompt, pattern", [
    ("", r"Please write a prompt"),
    (" \n\t ", r"Please write a prompt"),
    ("\x00\x07\x1b\x7f", r"Please write a prompt"),  # only control characters: nothing left to draw
    ("a" * 100_000, r"100000 characters long; the limit is 2000"),
])
def test_empty_and_huge_prompts_are_refused_before_the_queue(hostile_client, prompt, pattern):
    refused(lambda: hostile_client.predict(prompt=prompt, **TEXT_FAST, api_name="/text_to_image"), pattern)


def test_empty_prompt_for_text_to_video(hostile_client):
    refused(lambda: hostile_client.predict(prompt="", **TEXT_FAST, num_frames=4, num_inference_steps=2,
                                           api_name="/text_to_video"), r"Please write a prompt")


def test_html_and_control_characters_in_prompts_are_never_rendered(hostile_client):
    hostile = "<script>alert(1)</script> <img src=x onerror=alert(1)> \x00\x07\x1b[31m "
    padding = " ".join(f"word{i}" for i in range(120))  # past CLIP's 77 tokens: the notice quotes what was read
    still, seed, notes, out = hostile_client.predict(prompt=hostile + padding, negative_prompt=hostile + padding,
                                                     **TEXT_FAST, api_name="/text_to_image")
    assert seed == 5 and Path(still).is_file()
    assert "the text encoder reads 77 tokens" in notes and "negative prompt" in notes, notes
    assert_plain(notes)  # no tag can start: a word joiner follows each "<" (and nothing is an HTML entity)
    assert "script" in notes and "onerror" in notes, notes  # quoted as the text encoder read it
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", notes), repr(notes)
    record = json.loads(Path(next(f for f in out if f.endswith(".json"))).read_text())
    assert "\x1b" not in record["parameters"]["prompt"] and "\x00" not in record["parameters"]["prompt"]
    assert record["parameters"]["prompt"].startswith("<script>alert(1)</script>")  # kept verbatim, minus controls


# -------------------------------------------------------------------------------------------------- interpolate


@pytest.fixture(scope="module")
def interpolate(hostile_endpoints):
    # it exists: a missing endpoint fails these tests, it is no expected failure
    assert "/interpolate" in hostile_endpoints
    return "/interpolate"


def _truncated_mp4(path: Path) -> None:
    """The first third of an 8-frame "fast start" MP4 (index first, as browsers download them): 2 frames survive."""
    data = video_file(path.with_name("whole.mp4"), 8).read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _truncated_mp4_index_last(path: Path) -> None:
    """The first half of an MP4 whose index (moov) comes last, as cameras and ffmpeg write them by default."""
    whole = path.with_name("whole_index_last.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=8", "-frames:v", "8", "-pix_fmt", "yuv420p", str(whole))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _audio_only(path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(path))


def _no_frames(path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=8", "-t", "0", "-pix_fmt", "yuv420p", str(path))


REFUSED_VIDEOS = {
    "truncated_mp4_index_last": ("cut_index_last.mp4", _truncated_mp4_index_last, r"not a readable video.*moov"),
    "truncated_mp4": ("cut.mp4", _truncated_mp4, r"truncated|cut off|partial|damaged"),
    "audio_only": ("sound.m4a", _audio_only, r"no video stream"),
    "zero_frames": ("none.mp4", _no_frames, r"not a readable video|no video stream|0 frame"),
    "one_frame": ("single.mp4", lambda p: video_file(p, 1), r"1 frame\(s\); interpolation needs at least 2"),
    "2100_frames": ("long.mp4", many_frames_video, r"more than 2000 frames"),
}


@pytest.mark.parametrize("case", list(REFUSED_VIDEOS))
def test_unusable_video_is_refused_by_interpolate(hostile_client, interpolate, hostile_files, case):
    name, make, pattern = REFUSED_VIDEOS[case]
    make(hostile_files / name)
    refused(lambda: hostile_client.predict(video=handle_file(str(hostile_files / name)), factor=2, target_fps=0,
                                           slow_motion=False, api_name=interpolate), pattern)


@pytest.mark.parametrize("factor", [1, 17, -3, 2.5, math.nan], ids=str)
def test_bad_interpolation_factor(hostile_server, hostile_endpoints, interpolate, hostile_files, factor):
    video = upload(hostile_server, video_file(hostile_files / "eight.mp4", 8))
    status, message = raw_call(hostile_server, hostile_endpoints, interpolate, video=video, factor=factor,
                               target_fps=0)
    assert status < 500 and "Something went wrong" not in message, (status, message)
    assert re.search(r"factor", message), message


@pytest.mark.parametrize("target_fps", [math.nan, -5, 1000])
def test_bad_interpolation_target_fps(hostile_server, hostile_endpoints, interpolate, hostile_files, target_fps):
    video = upload(hostile_server, video_file(hostile_files / "eight.mp4", 8))
    status, message = raw_call(hostile_server, hostile_endpoints, interpolate, video=video, factor=2,
                               target_fps=target_fps)
    assert status < 500 and "Something went wrong" not in message, (status, message)
    assert re.search(r"`target_fps`", message), message


# ------------------------------------------------------------------------- booleans, counts, rates, messages


def _notes_of(message: str) -> str:
    """The notes (second output) of a finished /interpolate call, from `_raw_call`'s "complete: <data>"."""
    assert message.startswith("complete: "), message
    return json.loads(message.split(": ", 1)[1])[1]


@pytest.mark.parametrize("sent, slow", [("false", False), ("False", False), ("true", True), (False, False)])
def test_a_boolean_sent_as_a_string_means_what_it_says(hostile_server, hostile_endpoints, uploaded_video, sent, slow):
    # JSON callers and form fields send "false" as text; as a non-empty string it would turn slow motion on.
    status, message = raw_call(hostile_server, hostile_endpoints, "/interpolate", video=uploaded_video, factor=2,
                               target_fps=0, slow_motion=sent)
    assert status == 200, message
    assert f"8 frames at 8 fps became 15 frames at {8 if slow else 16} fps" in _notes_of(message)


@pytest.mark.parametrize("api, name", [("/interpolate", "slow_motion"), ("/image_to_video", "randomize_seed"),
                                       ("/text_to_image", "randomize_seed")])
@pytest.mark.parametrize("value", ["maybe", 2, 0.5, None, [True], ""], ids=repr)
def test_a_boolean_that_is_neither_true_nor_false_is_refused(hostile_server, hostile_endpoints, uploaded_image,
                                                             uploaded_video, api, name, value):
    status, message = raw_call(hostile_server, hostile_endpoints, api,
                               **{**cheap_values(hostile_endpoints, api, uploaded_image, uploaded_video), name: value})
    assert_refused(status, message, rf"^`{name}` must be true or false; got {re.escape(repr(value))}\.$")


@pytest.mark.parametrize("api, name, value, low, high", [
    ("/compare_seeds", "num_seeds", 2.5, 2, 8),  # refused, not floored to 2
    ("/image_to_video", "seed", 7.5, 0, 4294967295),  # refused, not rounded to 8
    ("/prepare_image", "resolution", 512.5, 64, 2048),  # refused, not floored to 512
    ("/interpolate", "factor", 2.5, 2, 16),
    ("/text_to_image", "sdxl_steps", 2.5, 1, 100),
])
def test_a_fractional_count_is_refused_not_rounded(hostile_server, hostile_endpoints, uploaded_image, uploaded_video,
                                                   api, name, value, low, high):
    status, message = raw_call(hostile_server, hostile_endpoints, api,
                               **{**cheap_values(hostile_endpoints, api, uploaded_image, uploaded_video), name: value})
    assert_refused(status, message, rf"^`{name}` must be a whole number from {low} to {high}; got {value}\.$")


def test_a_target_fps_below_the_source_rate_says_that_frames_are_dropped(hostile_server, hostile_endpoints,
                                                                         uploaded_video):
    status, message = raw_call(hostile_server, hostile_endpoints, "/interpolate", video=uploaded_video, factor=2,
                               target_fps=2)
    notes = _notes_of(message)
    assert "8 frames at 8 fps became 2 frames at 2 fps" in notes, notes
    assert re.search(r"target of 2 fps is below the source's 8 fps.*6 of its 8 frames were dropped", notes), notes


def test_a_still_image_sent_to_extend_gets_an_extend_message(hostile_server, hostile_endpoints, uploaded_image):
    status, message = raw_call(hostile_server, hostile_endpoints, "/extend_video",
                               **cheap_values(hostile_endpoints, "/extend_video"), video=uploaded_image)
    assert "'good.png' is a single image; Extending continues a video" in message, message
    assert "interpolation" not in message.lower(), message
    assert_plain(message)


def test_refusals_reach_api_clients_as_plain_text(hostile_server, hostile_endpoints, uploaded_image, hostile_client,
                                                  good_image):
    # An error event: a quoted file name came as &#x27;good.png&#x27;.
    _, message = raw_call(hostile_server, hostile_endpoints, "/extend_video",
                          **cheap_values(hostile_endpoints, "/extend_video"), video=uploaded_image)
    assert message.startswith("'good.png' is a single image"), message
    # A refusal at queue join (HTTP 400): its detail is the message itself, not its repr with quotes and escapes.
    status, detail = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=uploaded_image, **FAST,
                              seed="it's")
    assert (status, detail) == (400, '`seed` must be a whole number from 0 to 4294967295; got "it\'s".')
    # A validator's answer (HTTP 422), as gradio_client shows it.
    message = refused(lambda: hostile_client.predict(image=handle_file(str(good_image)), **FAST, min_guidance_scale=5,
                                                     max_guidance_scale=1, api_name="/image_to_video"), r"must not be")
    assert_plain(message)


# ------------------------------------------------------------------------------------------------ lying headers


def test_a_header_that_lies_costs_the_server_little(hostile_server, hostile_endpoints, api_table, hostile_uploads,
                                                    uploaded_image, uploaded_video):
    """Every lying video to every video parameter: the app (this process, the server runs in it) and its ffmpeg
    children grow by under 200 MB. Before the fix, one 35-byte GIF made a decoder grow to 1.7 GB."""
    from lying_headers import LYING_VIDEOS, MemoryPeak

    rows = [row for row in api_table if row["kind"] == "video"]
    assert rows
    with MemoryPeak() as peak:
        for row in rows:
            base = cheap_values(hostile_endpoints, row["api"], uploaded_image, uploaded_video)
            for case, (_, _, pattern) in LYING_VIDEOS.items():
                status, answer = raw_call(hostile_server, hostile_endpoints, row["api"],
                                          **{**base, row["name"]: hostile_uploads[case]})
                assert re.search(pattern, refusal(row["api"], status, answer) or "ACCEPTED"), (row["api"], answer)
    print(f"lying headers: app grew {peak.self_mb:.1f} MB, largest ffmpeg child {peak.children_mb:.1f} MB")
    assert peak.total_mb < 200, (peak.self_mb, peak.children_mb)


def test_the_api_docs_show_how_a_client_reads_a_refusal(hostile_client, good_image):
    """docs/api.md's snippet, run as written against this server: a bare "400 Bad Request" from gradio_client, whose
    reason the snippet finds in the response body."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    snippet = re.search(r"<!-- refusal-snippet: [^>]*-->\n```python\n(.*?)```", page, re.S).group(1)
    expected = re.search(r'print\(e\.response\.json\(\)\["detail"\]\)  # (.*)', snippet).group(1)
    printed: list[str] = []  # the snippet's own print (the in-process server prints to the same stdout)
    exec(snippet, {"client": hostile_client, "handle_file": lambda _: handle_file(str(good_image)),
                   "print": printed.append})
    assert printed == [expected]


# ------------------------------------------------------------------------------------------------------- models
# Last: a failed load frees the pipeline that was loaded. The real runs after a whole corpus are end to end
# (tests/e2e/test_hostile_inputs_corpus.py).


def test_unknown_svd_model_names_hf_token_and_the_page_and_the_rest_keeps_working(hostile_client, good_image):
    message = refused(lambda: hostile_client.predict(image=handle_file(str(good_image)), svd_model="no/such-model",
                                                     **FAST, api_name="/image_to_video"), r"no/such-model")
    assert "HF_TOKEN" in message and "https://huggingface.co/no/such-model" in message, message
    still, *_ = hostile_client.predict(prompt="a lighthouse", **TEXT_FAST, api_name="/text_to_image")
    assert Path(still).is_file()  # the rest keeps working after the failed load


def test_unknown_sdxl_model(hostile_client):
    message = refused(lambda: hostile_client.predict(prompt="a fox", sdxl_model="no/such-model", **TEXT_FAST,
                                                     api_name="/text_to_image"),
                      r"image \(SDXL\) model .*no/such-model")
    assert "HF_TOKEN" in message, message


def test_markup_in_a_model_name_stays_plain_text_that_no_page_renders(hostile_client, good_image):
    name = "<img src=x onerror=1> & &amp; it's"
    message = refused(lambda: hostile_client.predict(image=handle_file(str(good_image)), svd_model=name,
                                                     **FAST, api_name="/image_to_video"),
                      r"does not exist on this machine")
    assert name in message.replace(WORD_JOINER, ""), message  # what was sent, as sent (the joiners are invisible)
    assert_plain(message)


def test_a_local_folder_that_is_not_a_pipeline(hostile_client, good_image, hostile_files):
    message = refused(lambda: hostile_client.predict(image=handle_file(str(good_image)), svd_model=str(hostile_files),
                                                     **FAST, api_name="/image_to_video"),
                      r"does not hold a diffusers pipeline")
    assert "model_index.json" in message


def test_a_model_that_is_not_a_string(hostile_server, hostile_endpoints, uploaded_image):
    status, message = raw_call(hostile_server, hostile_endpoints, "/image_to_video", image=uploaded_image,
                               svd_model=123, **FAST)
    assert status < 500 and "Something went wrong" not in message and re.search(r"model", message), message


def test_a_model_name_longer_than_a_file_name_can_be(hostile_client, good_image):
    refused(lambda: hostile_client.predict(image=handle_file(str(good_image)), svd_model="x" * 300, **FAST,
                                           api_name="/image_to_video"), r"model")
