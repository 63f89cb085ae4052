"""Tiny media files whose headers lie about what they hold, and a way to measure what reading them costs.

Each file is a few hundred bytes to a few KB, and its header claims a frame size, a length or a pixel count far above
the app's caps. A reader that trusts the header only enough to refuse it stays cheap; one that starts a decoder first
allocates for the claim (a 16000x16000 GIF made ffmpeg grow to 1.7 GB before it was refused).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

CLAIMED_SIDE = 16000  # 256 megapixels: under ffmpeg's own sanity limit (268 M), so only our caps stop it


def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=60)


def gif_claiming(path: Path, width: int = CLAIMED_SIDE, height: int = CLAIMED_SIDE) -> Path:
    """A 35-byte GIF whose screen and only image claim `width` x `height` (decoded: 4 bytes a pixel)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)  # two-colour palette
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    path.write_bytes(screen + image + b"\x3b")
    return path


def y4m_claiming(path: Path, width: int = CLAIMED_SIDE, height: int = CLAIMED_SIDE) -> Path:
    """A raw YUV4MPEG2 stream whose header claims `width` x `height`, with 20 KB of one frame's data."""
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F8:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + bytes(20_000))
    return path


def avi_claiming_frames(path: Path, frames: int = 1_000_000) -> Path:
    """An 8-frame 64x48 MJPEG AVI whose headers claim `frames` frames (at 8 fps: `frames` / 8 seconds)."""
    small = path.with_name(path.stem + ".honest.avi")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=8", "-frames:v", "8", "-c:v", "mjpeg", str(small))
    data = bytearray(small.read_bytes())
    small.unlink()
    for tag, offset in ((b"avih", 16), (b"strh", 32)):  # dwTotalFrames of the file, dwLength of the stream
        struct.pack_into("<I", data, data.index(tag) + 8 + offset, frames)
    path.write_bytes(bytes(data))
    return path


def png_claiming(path: Path, width: int = 60_000, height: int = 60_000) -> Path:
    """A PNG of a few bytes whose IHDR claims `width` x `height` RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


LYING_VIDEOS = {
    # name: (file name, how to make it, what the refusal must say)
    "gif_16000x16000": ("screen.gif", gif_claiming, r"16000x16000 pixels, larger than the maximum of 3840x2160"),
    "y4m_16000x16000": ("raw.y4m", y4m_claiming, r"16000x16000 pixels, larger than the maximum of 3840x2160"),
    "y4m_named_mp4": ("raw.mp4", y4m_claiming, r"16000x16000 pixels, larger than the maximum of 3840x2160"),
    "avi_a_million_frames": ("long.avi", avi_claiming_frames, r"125000 s long, more than the maximum of 600 s"),
}


_MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from svd_demo.core.errors import UserFacingError
from svd_demo.files.video_input import frames_of

def kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))

before = kib("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM, the peak, to what is resident now
started = time.perf_counter()
try:
    frames_of({path!r}, 400, "Extending")
    message = None
except UserFacingError as exc:
    message = str(exc)
print(json.dumps({{"self_mb": (kib("VmHWM:") - before) / 1024,
                  "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - started, "message": message}}))
"""


def reading_cost(path: Path) -> dict:
    """Peak memory growth of a fresh Python process reading `path` as Extend does (`frames_of`), and its largest
    ffmpeg child's peak. The children run one after another, so their sum bounds what the input cost at once."""
    root = str(Path(__file__).resolve().parents[1])
    code = _MEASURE.format(root=root, path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    cost = json.loads(out.stdout.strip().splitlines()[-1])
    cost["total_mb"] = cost["self_mb"] + cost["children_mb"]
    return cost


def _kib(status_file: str, field: str) -> int:
    with open(status_file) as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


class MemoryPeak:
    """Peak memory growth of this process and the peak of its largest child while the block runs, in MB.

    This process's peak (VmHWM) is reset on entry (Linux: /proc/self/clear_refs). Children (ffmpeg) come and go in
    milliseconds, so a thread reads each one's own peak (VmHWM) every 2 ms until it is gone: a child that grows for
    a claim takes far longer than that to reach it.
    """

    def __enter__(self) -> MemoryPeak:
        self.self_mb = self.children_mb = 0.0
        self._before = _kib("/proc/self/status", "VmRSS:")
        self._exe = os.readlink("/proc/self/exe")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory-peak", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            for task in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{task}/children") as f:
                        pids = f.read().split()
                except OSError:
                    continue  # the thread ended
                for pid in pids:
                    try:
                        if os.readlink(f"/proc/{pid}/exe") == self._exe:
                            continue  # forked, not yet running its program: it still shows this process's memory
                        peak = _kib(f"/proc/{pid}/status", "VmHWM:") / 1024
                    except (OSError, StopIteration):
                        continue  # the child ended, or is a zombie without memory
                    self.children_mb = max(self.children_mb, peak)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.self_mb = (_kib("/proc/self/status", "VmHWM:") - self._before) / 1024

    @property
    def total_mb(self) -> float:
        return self.self_mb + self.children_mb
