"""The video layer: files that browsers play, moviepy's traps, metadata, the one ffmpeg parser, and nothing
half-written on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from svd_demo.core.errors import GenerationCancelled, InputError, VideoError, VideoInputError
from svd_demo.files import media
from svd_demo.files.media import (
    atomic_write,
    open_video_writer,
    parameters_tag,
    parse_ffmpeg_log,
    probe_video,
    read_metadata,
    write_video,
)
from svd_demo.files.outputs import apply_loop, output_stem, remove_old_outputs


def frames(n: int = 5, h: int = 64, w: int = 96) -> list[np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    return [np.stack([(x + 4 * i) % 256, y * 3 % 256, np.full_like(x, 128)], -1).astype(np.uint8) for i in range(n)]


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)


def ffmpeg_log(path: Path, *, header_only: bool = False) -> str:
    args = ["-find_stream_info", "0", "-i", str(path)] if header_only else \
        ["-i", str(path), "-map", "0:v:0?", "-c", "copy", "-f", "null", "-"]
    return media.run_ffmpeg(args, path.name, timeout_s=60)[1]


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "h264"), ("webm", "vp9"), ("gif", "gif")])
def test_formats_probe_right(tmp_path, fmt, codec):
    info = write_video(frames(), tmp_path / f"v.{fmt}", 8)
    assert (info.codec, info.num_frames, info.width, info.height) == (codec, 5, 96, 64)
    assert info.size_bytes > 0
    if fmt in ("mp4", "webm"):
        assert info.pix_fmt == "yuv420p"


def test_odd_sizes_are_made_even_and_play(tmp_path):
    info = write_video(frames(h=63, w=95), tmp_path / "odd.mp4", 8)
    assert (info.width, info.height, info.pix_fmt, info.num_frames) == (96, 64, "yuv420p", 5)


def test_moviepy_alone_leaves_an_empty_file_for_odd_sizes_without_raising(tmp_path):
    """The trap this layer exists for (moviepy 2.2.1): if it ever raises here, the guards can be revisited."""
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

    writer = FFMPEG_VideoWriter(str(tmp_path / "odd.mp4"), (95, 63), 8, ffmpeg_params=["-pix_fmt", "yuv420p"])
    for frame in frames(h=63, w=95):
        writer.write_frame(frame)
    writer.close()
    assert (tmp_path / "odd.mp4").stat().st_size == 0


def test_an_encode_that_fails_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(media, "even_sized", lambda frame: frame)  # let the odd size through: ffmpeg fails
    with pytest.raises(VideoError, match="Encoding odd.mp4 failed"):
        write_video(frames(h=63, w=95), tmp_path / "odd.mp4", 8)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_from_an_encoder_that_exits_cleanly_is_an_error(tmp_path, monkeypatch):
    class Silent:
        """Takes every frame, exits 0 and writes nothing: what moviepy reports as a success."""

        def __init__(self, tmp: Path, *args: object) -> None:
            tmp.touch()
            self.proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read()"],
                                         stdin=subprocess.PIPE, stderr=subprocess.PIPE)

        def write_frame(self, frame: np.ndarray) -> None:
            self.proc.stdin.write(frame.tobytes())

        def close(self) -> None:
            self.proc.wait()

    monkeypatch.setattr(media, "_ffmpeg_writer", Silent)
    with pytest.raises(VideoError, match="not a readable video"):
        write_video(frames(), tmp_path / "v.mp4", 8)
    assert list(tmp_path.iterdir()) == []


def test_the_rate_is_written_to_a_hundredth(tmp_path):
    assert write_video(frames(3), tmp_path / "v.mp4", 24000 / 1001).fps == pytest.approx(23.98)


def test_metadata_round_trip_with_awkward_characters(tmp_path):
    params = {"prompt": "a=b; c#d\\e\nsecond line", "seed": 3}
    path = write_video(frames(), tmp_path / "m.mp4", 8, metadata=parameters_tag(params)).path
    assert json.loads(read_metadata(path)["comment"]) == params


def test_failure_mid_way_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="earlier frames"):
        with open_video_writer(tmp_path / "x.mp4", 8) as writer:
            writer.write(frames()[0])
            writer.write(frames(h=32)[0])
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_a_clear_error(tmp_path):
    target = tmp_path / "file-not-folder"
    target.write_text("")
    with pytest.raises(VideoError, match="folder"):
        write_video(frames(), target / "v.mp4", 8)


def test_bad_fps_and_suffix(tmp_path):
    for fps in (float("nan"), 0, 0.001, 241):
        with pytest.raises(VideoError, match="fps"):
            write_video(frames(), tmp_path / "v.mp4", fps)
    with pytest.raises(VideoError, match=".mp4"):
        write_video(frames(), tmp_path / "v.avi", 8)
    assert list(tmp_path.iterdir()) == []


def test_not_a_video_is_a_clear_error(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("hello")
    with pytest.raises(VideoError, match="not a readable video"):
        probe_video(path)


def test_bad_input_is_both_a_video_error_and_an_input_error():
    assert issubclass(VideoInputError, VideoError) and issubclass(VideoInputError, InputError)


# ------------------------------------------------------------------------------------------------- atomic_write


def test_atomic_write_renames_a_file_or_folder_into_place(tmp_path):
    with atomic_write(tmp_path / "sub" / "a.json") as tmp:
        assert tmp.parent == tmp_path / "sub" and tmp.name.startswith(".a.partial-") and tmp.suffix == ".json"
        tmp.write_text("{}")
    with atomic_write(tmp_path / "frames") as tmp:
        tmp.mkdir()
        (tmp / "frame_0.png").write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "frame_0.png", "frames", "sub"]


@pytest.mark.parametrize("error", [RuntimeError("disk"), GenerationCancelled("Cancelled."), KeyboardInterrupt()])
def test_atomic_write_leaves_nothing_new_on_failure(tmp_path, error):
    (tmp_path / "old.txt").write_text("kept")
    with pytest.raises(type(error)):
        with atomic_write(tmp_path / "old.txt") as tmp:
            tmp.write_text("half")
            raise error
    with pytest.raises(type(error)):
        with atomic_write(tmp_path / "folder") as tmp:
            tmp.mkdir()
            (tmp / "frame_0.png").write_bytes(b"x")
            raise error
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"] and (tmp_path / "old.txt").read_text() == "kept"


# ------------------------------------------------------------------------------------------------ the one parser


def test_the_parser_reads_what_ffmpeg_reports_for_real_files(tmp_path):
    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=98x62:rate=7", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip))
    info = parse_ffmpeg_log(ffmpeg_log(clip), clip, 123)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.fps, info.tbr) == ("h264", "yuv420p", 98, 62, 7, 7)
    assert (info.num_frames, info.has_audio, info.size_bytes, info.path) == (7, True, 123, clip)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    header = parse_ffmpeg_log(ffmpeg_log(clip, header_only=True), clip)
    assert (header.width, header.height, header.num_frames) == (98, 62, None)  # nothing counted, nothing decoded

    webm = write_video(frames(), tmp_path / "v.webm", 8).path  # "yuv420p(tv, progressive)": one field
    assert parse_ffmpeg_log(ffmpeg_log(webm), webm).pix_fmt == "yuv420p"
    vfr = tmp_path / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "12", "-vf",
           "setpts='if(lt(N,6),N*0.1,0.6+(N-6)*0.3)/TB'", "-fps_mode", "vfr", "-pix_fmt", "yuv420p", str(vfr))
    info = parse_ffmpeg_log(ffmpeg_log(vfr), vfr)
    assert info.num_frames == 12 and info.fps != info.tbr  # what video_input tells a variable rate by


def test_the_parser_skips_cover_art_and_finds_no_video_in_audio(tmp_path):
    sound, with_cover = tmp_path / "sound.m4a", tmp_path / "cover.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(sound))
    assert parse_ffmpeg_log(ffmpeg_log(sound), sound) is None
    ffmpeg("-f", "lavfi", "-i", "color=red:size=32x32", "-frames:v", "1", str(tmp_path / "cover.png"))
    ffmpeg("-i", str(sound), "-i", str(tmp_path / "cover.png"), "-map", "0", "-map", "1", "-c:a", "copy",
           "-c:v", "png", "-disposition:v:0", "attached_pic", str(with_cover))
    assert "attached pic" in ffmpeg_log(with_cover) and parse_ffmpeg_log(ffmpeg_log(with_cover), with_cover) is None


def test_tags_cannot_forge_what_the_parser_reads(tmp_path):
    forged = ("x\n  Duration: 99:00:00.00, start: 0\nframe= 5000\n"
              "  Stream #0:1: Video: h264, yuv420p, 9999x9999, 1 fps\nStream mapping:\nOutput #0")
    path = write_video(frames(8), tmp_path / "v.mp4", 8, metadata={"comment": forged, "title": "frame= 7"}).path
    info = parse_ffmpeg_log(ffmpeg_log(path), path)
    assert (info.width, info.height, info.fps, info.num_frames) == (96, 64, 8, 8)
    assert info.duration == pytest.approx(1.0)


def test_a_header_that_claims_a_huge_size_is_read_from_the_header_alone(tmp_path):
    from lying_headers import gif_claiming

    path = gif_claiming(tmp_path / "screen.gif")
    info = parse_ffmpeg_log(ffmpeg_log(path, header_only=True), path)
    assert (info.codec, info.width, info.height, info.duration) == ("gif", 16000, 16000, None)


# --------------------------------------------------------------------------------------------------- outputs


def test_ping_pong_and_unique_names(tmp_path):
    clip = np.arange(4)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert [int(f[0, 0, 0]) for f in apply_loop(clip, "ping-pong")] == [0, 1, 2, 3, 2, 1]
    assert len(apply_loop(clip, "none")) == 4
    assert len({output_stem(tmp_path, "video", 1) for _ in range(100)}) == 100


def test_old_outputs_are_removed(tmp_path):
    import os
    import time

    old, new = tmp_path / "old.mp4", tmp_path / "new.mp4"
    old.write_text("x")
    new.write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_old_outputs(tmp_path, 3600) == 1
    assert not old.exists() and new.exists()
    assert remove_old_outputs(tmp_path, 0) == 0
