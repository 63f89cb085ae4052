"""Reading frames from video files and image folders: streaming, rates, caps and clear errors."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from helpers import running_children, save_frames
from lying_headers import LYING_VIDEOS, png_claiming, reading_cost
from PIL import Image

from svd_demo.core.errors import InputError
from svd_demo.files import video_input
from svd_demo.files.video_input import natural_key, open_frames


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _frames(n: int, w: int = 96, h: int = 64) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (h // 8 + 2, (w + 4 * n) // 8 + 2, 3), dtype=np.uint8)
    base = cv2.resize(small, ((w + 4 * n) + 16, h + 16), interpolation=cv2.INTER_CUBIC)[8:8 + h, 8:-8]
    return [np.ascontiguousarray(base[:, 4 * i:4 * i + w]) for i in range(n)]


def _write_video(path, frames, fps=8.0, extra_input=(), extra_output=()):
    h, w = frames[0].shape[:2]
    cmd = [_ffmpeg(), "-y", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-framerate", str(fps), "-i", "-", *extra_input]
    suffix = str(path).rsplit(".", 1)[-1]
    codec = {"mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10"], "webm": ["-c:v", "libvpx-vp9"],
             "gif": [], "mkv": ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-crf", "10"]}[suffix]
    cmd += [*codec, *extra_output, str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True, capture_output=True)
    return path


def test_natural_sort_puts_frame2_before_frame10():
    names = ["frame10.png", "frame2.png", "frame1.png", "Frame3.png"]
    assert sorted(names, key=natural_key) == ["frame1.png", "frame2.png", "Frame3.png", "frame10.png"]


def test_folder_is_read_in_natural_order_with_default_fps(tmp_path):
    frames = _frames(11, 40, 24)
    names = [f"frame{i}.png" for i in range(11)]
    folder = save_frames(tmp_path / "in", frames, names)
    (folder / "notes.txt").write_text("not an image")
    src = open_frames(folder)
    assert (src.kind, src.fps, src.width, src.height, src.num_frames) == ("folder", 8.0, 40, 24, 11)
    assert any("8 fps" in note for note in src.notes)
    got = list(src.frames)
    assert len(got) == 11
    for a, b in zip(got, frames, strict=True):
        np.testing.assert_array_equal(a, b)
    assert open_frames(folder, fps=24).fps == 24.0


def test_folder_with_mixed_sizes_fails_on_the_odd_image(tmp_path):
    folder = save_frames(tmp_path / "in", [_frames(1, 40, 24)[0], _frames(1, 42, 24)[0]], ["a1.png", "a2.png"])
    src = open_frames(folder)
    with pytest.raises(InputError, match="a2.png.*same size"):
        list(src.frames)


def test_folder_rgba_and_grey_images_become_rgb(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGBA", (20, 18), (255, 0, 0, 255)).save(folder / "1.png")
    Image.new("L", (20, 18), 128).save(folder / "2.png")
    frames = list(open_frames(folder).frames)
    assert [f.shape for f in frames] == [(18, 20, 3)] * 2
    assert tuple(frames[0][0, 0]) == (255, 0, 0) and tuple(frames[1][0, 0]) == (128, 128, 128)


@pytest.mark.parametrize("suffix", ["mp4", "webm", "gif"])
def test_video_files_stream_every_frame(tmp_path, suffix):
    frames = _frames(10)
    path = _write_video(tmp_path / f"clip.{suffix}", frames, fps=10)
    src = open_frames(path)
    assert (src.kind, src.width, src.height, src.num_frames) == ("video", 96, 64, 10)
    assert src.fps == pytest.approx(10.0)
    got = list(src.frames)
    assert len(got) == 10 and got[0].shape == (64, 96, 3) and got[0].dtype == np.uint8
    for i in (0, 3, 9):  # frames arrive in order: each decoded frame is closest to its original
        diffs = [np.abs(got[i].astype(int) - f).mean() for f in frames]
        assert int(np.argmin(diffs)) == i


def test_video_with_audio_is_read_and_audio_ignored(tmp_path):
    path = tmp_path / "with_audio.mp4"
    subprocess.run([_ffmpeg(), "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=97x61:rate=7", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                    "-t", "1", "-vf", "pad=98:62", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(path)], check=True, capture_output=True)
    src = open_frames(path)
    assert src.has_audio and any("audio" in n for n in src.notes)
    assert src.fps == pytest.approx(7.0)
    assert len(list(src.frames)) == src.num_frames == 7


def test_variable_frame_rate_uses_the_average_rate_and_says_so(tmp_path):
    frames = _frames(12)
    path = _write_video(tmp_path / "vfr.mp4", frames, fps=10,
                        extra_output=["-vf", "setpts='if(lt(N,6),N*0.1,0.6+(N-6)*0.3)/TB'", "-fps_mode", "vfr"])
    src = open_frames(path)
    assert src.variable_frame_rate
    assert any("variable frame rate" in n for n in src.notes)
    assert 4.5 < src.fps < 7.0  # the average rate (12 frames over about 2 s), not the nominal 10 fps
    assert len(list(src.frames)) == 12  # every decoded frame exactly once: nothing dropped or duplicated


def test_fps_override_and_bad_fps(tmp_path):
    path = _write_video(tmp_path / "c.mp4", _frames(4), fps=8)
    assert open_frames(path, fps=30).fps == 30.0
    for bad in (0, -1, float("nan"), float("inf"), "x"):
        with pytest.raises(InputError, match="frame rate"):
            open_frames(path, fps=bad)


def test_close_before_reading_stops_the_decoder(tmp_path):
    path = _write_video(tmp_path / "c.mp4", _frames(30), fps=8)  # more than a pipe holds: ffmpeg waits on us
    before = running_children("ffmpeg")
    with open_frames(path) as src:
        next(src.frames)
        assert running_children("ffmpeg") - before, "no decoder ran"
    assert running_children("ffmpeg") == before  # stopped with 29 frames unread
    src.close()  # twice is fine


@pytest.mark.parametrize("content", [b"", b"hello, this is text\n" * 20, bytes(range(256)) * 40])
def test_corrupt_empty_or_text_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        open_frames(path)
    assert "broken.mp4" in str(err.value)


def test_truncated_video_is_an_input_error(tmp_path):
    path = _write_video(tmp_path / "c.mp4", _frames(30), fps=8)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        src = open_frames(path)
        list(src.frames)


def test_missing_path_single_image_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_frames(tmp_path / "nope.mp4")
    Image.new("RGB", (32, 32)).save(tmp_path / "one.png")
    with pytest.raises(InputError, match="at least 2 frames"):
        open_frames(tmp_path / "one.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_frames(tmp_path / "empty")
    with pytest.raises(InputError):
        open_frames("")


def test_corrupt_image_in_folder_names_the_file(tmp_path):
    folder = save_frames(tmp_path / "in", _frames(2, 32, 32))
    (folder / "frame2.png").write_bytes(b"not a png")
    src = open_frames(folder)
    with pytest.raises(InputError, match="frame2.png"):
        list(src.frames)


def test_oversized_resolution_is_refused_with_the_limit_in_the_message(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("RGB", (3900, 20)).save(folder / "a.png")
    with pytest.raises(InputError, match="3840x2160"):
        open_frames(folder)
    Image.new("RGB", (2200, 2200)).save(tmp_path / "square.png")
    with pytest.raises(InputError, match="3840x2160"):
        video_input.check_frame_size(2200, 2200, "x")
    video_input.check_frame_size(2160, 3840, "portrait is fine")
    with pytest.raises(InputError, match="at least 16"):
        video_input.check_frame_size(8, 100, "tiny")


def test_oversized_video_duration_and_frame_count(tmp_path, monkeypatch):
    path = _write_video(tmp_path / "c.mp4", _frames(10), fps=10)
    monkeypatch.setattr(video_input, "MAX_WIDTH", 64)
    with pytest.raises(InputError, match="96x64"):
        open_frames(path)
    monkeypatch.undo()
    monkeypatch.setattr(video_input, "MAX_DURATION_S", 0.5)
    with pytest.raises(InputError, match="seconds|s long"):
        open_frames(path)
    monkeypatch.undo()
    monkeypatch.setattr(video_input, "MAX_INPUT_FRAMES", 5)
    with pytest.raises(InputError, match="more than 5 frames"):
        open_frames(path)
    folder = save_frames(tmp_path / "many", _frames(6, 16, 16))
    with pytest.raises(InputError, match="more than 5 frames"):
        open_frames(folder)


# ------------------------------------------------------------------------------------ headers that lie (hostile)


@pytest.fixture
def nothing_decoded(monkeypatch):
    """Fails the test if a decoder starts, or if the packet-counting probe (whose stream analysis may decode a
    frame) runs: a file whose header breaks a cap must be refused from its header alone."""
    def forbidden(*args, **kwargs):
        raise AssertionError("decoding started before the header was checked")

    monkeypatch.setattr(video_input, "_start_decoder", forbidden)
    monkeypatch.setattr(video_input, "_probe", forbidden)


@pytest.mark.parametrize("case", list(LYING_VIDEOS))
def test_a_header_that_lies_is_refused_from_the_header_alone(tmp_path, nothing_decoded, case):
    name, make, pattern = LYING_VIDEOS[case]
    path = make(tmp_path / name)
    assert path.stat().st_size < 30_000
    with pytest.raises(InputError, match=pattern):
        open_frames(path)


@pytest.mark.parametrize("case", ["gif_16000x16000", "y4m_16000x16000", "avi_a_million_frames"])
def test_memory_growth_on_a_lying_header_stays_under_200_mb(tmp_path, case):
    name, make, pattern = LYING_VIDEOS[case]
    cost = reading_cost(make(tmp_path / name))
    assert cost["message"] and re.search(pattern, cost["message"]), cost
    # Before the fix the GIF's decoder (started beside the probe) alone grew to 1.7 GB.
    assert cost["total_mb"] < 200, cost


def test_a_lying_folder_image_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    folder = tmp_path / "frames"
    folder.mkdir()
    png_claiming(folder / "frame0.png", 6000, 6000)  # 36 MP: under Pillow's bomb limit, over ours
    Image.new("RGB", (32, 32)).save(folder / "frame1.png")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded before the size check"))
    with pytest.raises(InputError, match="6000x6000"):
        open_frames(folder)


def test_a_still_image_given_to_extend_is_refused_with_an_extend_message(tmp_path):
    Image.new("RGB", (64, 48)).save(tmp_path / "still.png")
    with pytest.raises(InputError) as err:
        video_input.frames_of(tmp_path / "still.png", 400, "Extending")
    message = str(err.value)
    assert "'still.png' is a single image" in message and "Extending continues a video" in message, message
    assert "interpolation" not in message.lower(), message


def test_frames_of_refuses_a_long_clip_from_its_frame_count_before_decoding(tmp_path, monkeypatch):
    path = _write_video(tmp_path / "c.mp4", _frames(10), fps=10)
    monkeypatch.setattr(video_input, "_start_decoder", lambda *a: pytest.fail("decoded a clip that was too long"))
    with pytest.raises(InputError, match=r"up to 5 frames; 'c.mp4' has 10"):
        video_input.frames_of(path, 5, "Extending")


def test_frames_of_refuses_a_clip_too_large_to_hold_in_memory(tmp_path, monkeypatch):
    path = _write_video(tmp_path / "c.mp4", _frames(10), fps=10)  # 10 frames of 96x64: 184 KB decoded
    monkeypatch.setattr(video_input, "MAX_FRAMES_IN_MEMORY_BYTES", 100_000)
    monkeypatch.setattr(video_input, "_start_decoder", lambda *a: pytest.fail("decoded a clip that was too large"))
    with pytest.raises(InputError, match=r"10 frames of 96x64 .*0\.2 MB.* limit of 0\.1 MB"):
        video_input.frames_of(path, 400, "Extending")


def test_probe_input_reads_size_rate_and_frame_count(tmp_path):
    info = video_input.probe_input(_write_video(tmp_path / "c.mp4", _frames(6), fps=8))
    assert (info.width, info.height, info.fps, info.num_frames, info.has_audio) == (96, 64, 8, 6, False)


def test_a_lying_header_is_refused_by_probe_input_and_clip_size_without_decoding(tmp_path, nothing_decoded):
    from svd_demo.core.params import VideoParams
    from svd_demo.studio import zerogpu

    name, make, pattern = LYING_VIDEOS["gif_16000x16000"]
    path = make(tmp_path / name)
    with pytest.raises(InputError, match=pattern):
        video_input.probe_input(path)
    with pytest.raises(InputError, match=pattern):  # ZeroGPU sizes an extension from the upload before the GPU call
        zerogpu.clip_size(str(path), VideoParams())
