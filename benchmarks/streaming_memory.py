"""Peak RSS growth of the streaming cases: what a request costs in memory after its frames exist.

    python -m benchmarks.streaming_memory [--resolutions 512 1024] [--cases pingpong-60fps extend upscale]
                                          [--upscaler PATH] [--out notes.md]

Each case runs in a fresh child process, through the app's own code after generation: `studio.clip_as_written`
(loop, interpolation), `upscale.files.upscaled_frames` and `outputs.write_outputs` (every format at once):

* ``pingpong-60fps``: issue 22's request after its 50 frames exist: ping-pong, played at 1 fps, interpolated to
  60 fps (5,821 frames), one MP4.
* ``extend``: what Extend writes for a 400-frame clip: the frames held once (as Extend holds them), ping-pong,
  MP4 + GIF + WebM.
* ``upscale``: 14 frames upscaled 2x (Real-ESRGAN animevideov3 when ``--upscaler`` names its weights, else a tiny
  random-weight network), MP4 + GIF + WebM: each frame upscaled once.

The frames are a moving pattern at the resolution's 16:9 size (512: 512x288, 1024: 1024x576). The baseline is the
child's RSS once they (and the upscaler) are in memory; the peak is Linux's high-water mark (VmHWM, reset at the
baseline). ffmpeg runs in its own processes and is not counted: its GIF palette pass holds the clip's frames there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

CASES = ("pingpong-60fps", "extend", "upscale")


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(key)


def _frames(count: int, width: int, height: int):
    """A bright square moving across a gradient: every pair has motion to interpolate."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], -1).astype(np.uint8)
    side = height // 4
    frames = []
    for i in range(count):
        frame = base.copy()
        left = (i * 7) % (width - side)
        frame[height // 3:height // 3 + side, left:left + side] = (250, 240, 30)
        frames.append(frame)
    return frames


def run_case(case: str, resolution: int, upscaler_path: str | None) -> dict:
    """One case in this process; returns its numbers."""
    import numpy as np

    from svd_demo.core.params import VideoParams
    from svd_demo.files.outputs import write_outputs
    from svd_demo.studio.studio import clip_as_written

    width, height = resolution, resolution * 9 // 16
    out = Path(tempfile.mkdtemp(prefix="svd-streaming-"))
    upscaler = None
    if case == "pingpong-60fps":
        frames = np.stack(_frames(50, width, height))  # as generation hands them over
        params = VideoParams.from_raw({"loop": "ping-pong", "playback_fps": 1, "interpolate_fps": 60})
    elif case == "extend":
        frames = _frames(400, width, height)  # the clip and its new part, held once
        params = VideoParams.from_raw({"loop": "ping-pong", "playback_fps": 8, "extra_formats": ["gif", "webm"]})
    else:
        from svd_demo.engine.upscale import load_upscaler

        if upscaler_path is None:
            from svd_demo_testing.tiny_models import save_tiny_upscalers

            upscaler_path = str(save_tiny_upscalers(out / "upscalers")["srvgg"])
        upscaler = load_upscaler(upscaler_path, "cpu")
        frames = np.stack(_frames(14, width, height))
        params = VideoParams.from_raw({"playback_fps": 8, "extra_formats": ["gif", "webm"]})
    baseline = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    clip, fps, _ = clip_as_written(frames, params)
    if upscaler is not None:
        from svd_demo.engine.upscale.files import upscaled_frames

        clip = upscaled_frames(clip, upscaler, 2)
    files = write_outputs(clip, out / "clip", fps, {"parameters": {}}, extra_formats=params.extra_formats)
    seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    info = files.info
    for path in out.rglob("*"):
        if path.is_file():
            path.unlink()
    return {"case": case, "resolution": resolution, "frames_written": info.num_frames,
            "size": f"{info.width}x{info.height}", "files": 1 + len(files.extras), "seconds": round(seconds, 1),
            "baseline_mb": round(baseline), "peak_growth_mb": round(peak - baseline)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--upscaler", help="Real-ESRGAN weights for the upscale case (default: a tiny network)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "RESOLUTION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args.child[0], int(args.child[1]), args.upscaler)))
        return 0
    rows = []
    for resolution in args.resolutions:
        for case in args.cases:
            command = [sys.executable, "-m", "benchmarks.streaming_memory", "--child", case, str(resolution)]
            if args.upscaler:
                command += ["--upscaler", args.upscaler]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    table = ["| case | resolution | frames written | size | files | seconds | baseline RSS MB | peak growth MB |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['case']} | {r['resolution']} | {r['frames_written']} | {r['size']} | {r['files']} | "
              f"{r['seconds']} | {r['baseline_mb']} | {r['peak_growth_mb']} |" for r in rows]
    print("\n".join(table))
    if args.out:
        args.out.write_text("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
