"""Quality and speed benchmark of the interpolation backends against ffmpeg's ``minterpolate``.

Run: ``python -m benchmarks.interpolation --out DIR`` (needs ``scikit-image`` for its public-domain photos; a
benchmark-only dependency, ``pip install scikit-image``).

Method: each test clip is rendered at 1024x576 and 24 fps from real photographs with an exactly known motion, so
the ground truth of every frame is exact. Every other frame is dropped (a 12 fps half-rate clip, written as PNGs),
each method rebuilds the dropped frames with factor 2, and the rebuilt frames are scored against the originals
(PSNR over RGB, and SSIM: Gaussian window 11, sigma 1.5, per RGB channel, averaged). Only the rebuilt frames are
scored; the kept ones are exact copies for every method.

Clips:

* ``objects``: three photo cut-outs (the cat from ``chelsea``, the astronaut's face, the coffee cup) with soft
  elliptical mattes, moving, turning and crossing over a still photo background (``rocket``), occluding each other.
* ``camera``: a real photograph (``stereo_motorcycle``, left view) seen through a camera that pans, zooms in and
  rolls slightly (one similarity transform per frame: exact ground truth).

Methods, each timed as a whole command with start-up included, through the CLI users run
(``python -m svd_demo interpolate``), wall time and CPU time (user + system of the command and its children):

* ``flow``: ``python -m svd_demo interpolate IN --factor 2 --out OUT --quiet`` (``--input-fps 12`` for the PNG
  folder); ``flow-hq`` and ``blend`` add ``--backend flow-hq`` / ``--backend blend``
* ``minterpolate``: ``ffmpeg ... -vf tpad=stop_mode=clone:stop=1,minterpolate=fps=24:mi_mode=mci -frames:v 29 ...``
  (the imageio-ffmpeg binary; mc_mode obmc, me epzs: ffmpeg's defaults), from the same input to the same kind of
  output (PNG folder, or H.264 MP4 with the shared encoder's settings: ``-preset veryfast -crf 18 -pix_fmt yuv420p``)

The package's bytecode is compiled first (as pip does at install). Timings are the best of ``--repeat`` rounds,
the commands taking turns in each round; the 1-minute load average is sampled after every command and reported.
``--breakdown`` also times the pieces of the MP4 -> MP4 run one by one (interpreter start, imports, probe, decode,
encode, compute) to show where the time goes.

The tables are printed and written to ``DIR/interpolation_bench.md``.

``--clips FOLDER`` instead scores real footage: every video file in FOLDER, frames dropped at gaps 2, 4 and 8 and
rebuilt by ``flow``, minterpolate and RIFE (see ``benchmarks/interpolation_real.py``); the table goes to
``DIR/interpolation_real.md``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np

from benchmarks import interpolation_real as real

WIDTH, HEIGHT = 1024, 576
FULL_FPS = 24
NUM_FRAMES = 29  # full-rate frames; the half-rate clip has 15, and 14 frames are rebuilt


# ---------------------------------------------------------------------------------------------------- photos


def _photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - benchmark-only dependency
        raise SystemExit("The benchmark needs scikit-image for its photos: pip install scikit-image") from None
    img = getattr(data, name)()
    if isinstance(img, tuple):
        img = img[0]
    return np.ascontiguousarray(img[..., :3])


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


# ------------------------------------------------------------------------------------------------------ clips


def _sprite(img: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A cut-out (RGB float, alpha float) with a soft elliptical matte from img[y0:y1, x0:x1]."""
    x0, y0, x1, y1 = box
    rgb = img[y0:y1, x0:x1].astype(np.float32)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2)
    edge = 3.0 / min(w, h) * 2
    alpha = np.clip((1.0 - r) / edge, 0.0, 1.0)
    return rgb, alpha


def _place(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, cx: float, cy: float, angle: float,
           scale: float) -> None:
    h, w = alpha.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[0, 2] += cx - (w - 1) / 2
    m[1, 2] += cy - (h - 1) / 2
    size = (canvas.shape[1], canvas.shape[0])
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    c = cv2.warpAffine(rgb, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    a = np.clip(a, 0, 1)[..., None]
    canvas *= 1 - a
    canvas += a * c


def make_objects_clip(num: int = NUM_FRAMES) -> list[np.ndarray]:
    """Three photo cut-outs moving over a still photo background, crossing each other."""
    rocket = _photo("rocket")  # 427x640
    bg = cv2.resize(rocket[20:380, :], (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    sprites = [
        (_sprite(_photo("chelsea"), (90, 20, 330, 260)), (120, 330), (760, 250), (-4, 6), 1.0),
        (_sprite(_photo("astronaut"), (150, 20, 330, 240)), (900, 160), (330, 380), (3, -5), 0.95),
        (_sprite(_photo("coffee"), (170, 20, 470, 280)), (470, 520), (600, 120), (0, 25), 0.7),
    ]
    frames = []
    for i in range(num):
        s = i / (num - 1)
        canvas = bg.copy()
        for (rgb, alpha), (xa, ya), (xb, yb), (ra, rb), sc in sprites:
            e = _smoothstep(s) * 0.6 + s * 0.4
            cx = xa + (xb - xa) * e + 18 * math.sin(2 * math.pi * s)
            cy = ya + (yb - ya) * e
            _place(canvas, rgb, alpha, cx, cy, ra + (rb - ra) * s, sc * (1 + 0.08 * s))
        frames.append(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    return frames


def make_camera_clip(num: int = NUM_FRAMES) -> list[np.ndarray]:
    """A photograph seen by a camera that pans, zooms in and rolls slightly."""
    photo = _photo("stereo_motorcycle")  # 500x741
    ph, pw = photo.shape[:2]
    frames = []
    for i in range(num):
        s = i / (num - 1)
        e = _smoothstep(s)
        zoom = 0.60 - 0.12 * e  # source pixels per output pixel
        cx = pw / 2 - 60 + 120 * s
        cy = ph / 2 + 25 - 50 * e
        angle = math.radians(-2.0 + 4.0 * s)
        ca, sa = math.cos(angle) * zoom, math.sin(angle) * zoom
        # output (x, y) -> source: c + R*zoom*((x, y) - centre)
        m = np.array([[ca, -sa, cx - ca * (WIDTH - 1) / 2 + sa * (HEIGHT - 1) / 2],
                      [sa, ca, cy - sa * (WIDTH - 1) / 2 - ca * (HEIGHT - 1) / 2]], np.float64)
        out = cv2.warpAffine(photo, m, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
        frames.append(out)
    return frames


CLIPS = {"objects": make_objects_clip, "camera": make_camera_clip}


# ---------------------------------------------------------------------------------------------------- metrics


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, per channel, averaged."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for ch in range(a.shape[2]):
        x = a[..., ch].astype(np.float64)
        y = b[..., ch].astype(np.float64)

        def blur(z):
            return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        scores.append(float(smap[5:-5, 5:-5].mean()))
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------------------ running


def _write_pngs(frames: list[np.ndarray], folder: pathlib.Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _read_pngs(folder: pathlib.Path) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted(folder.glob("*.png"))]


METHODS = ("flow", "flow-hq", "blend", "minterpolate")
CLI = [sys.executable, "-m", "svd_demo", "interpolate"]
"""Our command, exactly as users run it; it runs from the folder that holds the ``svd_demo`` package."""
_PACKAGE_PARENT = pathlib.Path(__file__).resolve().parents[1]


def _commands(
    src: pathlib.Path, out: pathlib.Path, num_out: int, kind: str
) -> dict[str, tuple[list[str], pathlib.Path]]:
    """The whole command per method, and where it writes; ``kind`` "png" (folder in and out) or "mp4"."""
    import imageio_ffmpeg

    def ours(backend: str) -> tuple[list[str], pathlib.Path]:
        target = out / (backend if kind == "png" else f"{backend}.mp4")
        cmd = [*CLI, str(src), "--factor", "2", "--out", str(target), "--quiet"]
        if backend != "flow":
            cmd += ["--backend", backend]
        if kind == "png":
            cmd += ["--input-fps", str(FULL_FPS // 2)]
        return cmd, target

    mi_filter = f"tpad=stop_mode=clone:stop=1,minterpolate=fps={FULL_FPS}:mi_mode=mci"
    ff = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    if kind == "png":
        target = out / "minterpolate"
        mi = [*ff, "-framerate", str(FULL_FPS // 2), "-i", str(src / "frame_%04d.png"), "-vf", mi_filter,
              "-frames:v", str(num_out), "-start_number", "0", str(target / "frame_%05d.png")]
    else:
        target = out / "minterpolate.mp4"
        mi = [*ff, "-i", str(src), "-vf", mi_filter, "-frames:v", str(num_out), "-c:v", "libx264", "-preset",
              "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(target)]
    return {"flow": ours("flow"), "flow-hq": ours("flow-hq"), "blend": ours("blend"), "minterpolate": (mi, target)}


class _Load:
    """The 1-minute load average, sampled after every timed command."""

    samples: list[float] = []

    @classmethod
    def sample(cls) -> None:
        cls.samples.append(os.getloadavg()[0])

    @classmethod
    def text(cls) -> str:
        return f"{min(cls.samples):.1f}-{max(cls.samples):.1f}" if cls.samples else "?"


def _run_once(cmd: list[str], target: pathlib.Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of the whole command, process start-up included, into a clean target.

    CPU is user + system time of the command and every process it waited for (ffmpeg children included).
    """
    if target is not None:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if "-start_number" in cmd:  # ffmpeg writes into an existing folder; ours creates its own
            target.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
                          cwd=_PACKAGE_PARENT)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _Load.sample()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _engine_seconds(method: str, frames: list[np.ndarray], half_mp4: pathlib.Path,
                    num_out: int) -> tuple[float, float]:
    """(wall, CPU) of the compute only, without start-up and file output: our backend in-process on decoded frames,
    or ffmpeg's minterpolate from the half-rate MP4 to the null muxer."""
    import imageio_ffmpeg

    from svd_demo.engine.interpolation import BACKENDS

    if method == "minterpolate":
        return _run_once([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(half_mp4),
                          "-vf", f"tpad=stop_mode=clone:stop=1,minterpolate=fps={FULL_FPS}:mi_mode=mci",
                          "-frames:v", str(num_out), "-f", "null", "-"])
    backend = BACKENDS[method]()
    half = frames[::2]
    start, cpu = time.perf_counter(), time.process_time()
    for a, b in zip(half, half[1:], strict=False):
        backend.interpolate(a, b, [0.5])
    return time.perf_counter() - start, time.process_time() - cpu


def _best(old: tuple[float, float] | None, new: tuple[float, float]) -> tuple[float, float]:
    """Best wall and best CPU over the rounds (each minimum on its own)."""
    return new if old is None else (min(old[0], new[0]), min(old[1], new[1]))


def run(out: pathlib.Path, *, clips: list[str], methods: list[str], repeat: int = 3) -> list[dict]:
    """Score every method on every clip; timings are the best of ``repeat`` rounds, the methods taking turns in
    each round so that a busy machine slows them all alike."""
    from svd_demo.files.media import write_video

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in clips:
        frames = CLIPS[name]()
        clip_dir = out / name
        shutil.rmtree(clip_dir, ignore_errors=True)
        half = clip_dir / "half"
        _write_pngs(frames[::2], half)
        half_mp4 = clip_dir / "half.mp4"
        write_video(frames[::2], half_mp4, fps=FULL_FPS // 2)
        num_out = len(frames) if len(frames) % 2 else len(frames) - 1
        png_cmds = _commands(half, clip_dir, num_out, "png")
        mp4_cmds = _commands(half_mp4, clip_dir, num_out, "mp4")
        times: dict[str, dict[str, tuple[float, float] | None]] = {
            m: {"png": None, "mp4": None, "engine": None} for m in methods}
        for _ in range(repeat):
            for method in methods:
                t = times[method]
                t["png"] = _best(t["png"], _run_once(*png_cmds[method]))
                t["mp4"] = _best(t["mp4"], _run_once(*mp4_cmds[method]))
                t["engine"] = _best(t["engine"], _engine_seconds(method, frames, half_mp4, num_out))
        for method in methods:
            made = _read_pngs(png_cmds[method][1])
            if len(made) != num_out:
                raise SystemExit(f"{method} made {len(made)} frames on {name}, expected {num_out}")
            kept = [psnr(made[i], frames[i]) for i in range(0, num_out, 2)]
            rebuilt = list(range(1, num_out, 2))
            p = [psnr(made[i], frames[i]) for i in rebuilt]
            s = [ssim(made[i], frames[i]) for i in rebuilt]
            t = times[method]
            row = {"clip": name, "method": method, "psnr": float(np.mean(p)), "ssim": float(np.mean(s)),
                   "seconds_png": t["png"][0], "seconds_mp4": t["mp4"][0], "cpu_mp4": t["mp4"][1],
                   "seconds_engine": t["engine"][0], "cpu_engine": t["engine"][1],
                   "kept_psnr": float(np.mean([min(k, 99.0) for k in kept])), "frames": num_out,
                   "command_png": " ".join(png_cmds[method][0]), "command_mp4": " ".join(mp4_cmds[method][0])}
            rows.append(row)
            print(f"{name:8s} {method:13s} PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}  "
                  f"png {row['seconds_png']:5.2f} s  mp4 {row['seconds_mp4']:5.2f} s (CPU {row['cpu_mp4']:5.2f} s)  "
                  f"compute {row['seconds_engine']:5.2f} s  (kept frames {row['kept_psnr']:.1f} dB)", flush=True)
    return rows


def breakdown(out: pathlib.Path, clip: str, repeat: int = 5) -> list[tuple[str, float, float]]:
    """Where the MP4 -> MP4 time goes: each piece of our run as its own command (best of ``repeat``, interleaved).

    Needs the files of a :func:`run` on ``clip`` with ``flow``, ``blend`` and ``minterpolate``: ``half.mp4`` and
    ``flow.mp4`` in ``out/clip``. Returns (step, wall s, CPU s) rows.
    """
    import imageio_ffmpeg

    from svd_demo.engine.interpolation import X264_PRESET

    clip_dir = out / clip
    half_mp4, made = clip_dir / "half.mp4", clip_dir / "flow.mp4"
    frames = CLIPS[clip]()
    num_out = len(frames) if len(frames) % 2 else len(frames) - 1
    ff = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    raw = clip_dir / "flow.rgb"  # our output frames, decoded: what the encoder receives
    subprocess.run([*ff, "-i", str(made), "-f", "rawvideo", "-pix_fmt", "rgb24", str(raw)], check=True)
    encoded = clip_dir / "encode_only.mp4"

    def encode(preset: str) -> list[str]:  # what svd_demo.files.media runs, reading the frames from a file, not a pipe
        return [*ff, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", str(FULL_FPS),
                "-i", str(raw), "-c:v", "libx264", "-preset", preset, "-crf", "18", "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", str(encoded)]

    mp4_cmds = _commands(half_mp4, clip_dir, num_out, "mp4")
    steps: list[tuple[str, list[str], pathlib.Path | None]] = [
        ("Python start-up: `python -c pass`", [sys.executable, "-c", "pass"], None),
        ("+ numpy and OpenCV: `python -c 'import numpy, cv2'`", [sys.executable, "-c", "import numpy, cv2"], None),
        ("+ the CLI: `python -m svd_demo interpolate --help`", [*CLI, "--help"], None),
        ("probe the input (ffmpeg stream copy, counts packets)",
         [*ff, "-i", str(half_mp4), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"], None),
        ("decode the input to RGB (15 frames)",
         [*ff, "-i", str(half_mp4), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", os.devnull], None),
        (f"encode {num_out} RGB frames, x264 veryfast (the shared default)", encode("veryfast"), encoded),
        (f"encode {num_out} RGB frames, x264 {X264_PRESET} (interpolation output)", encode(X264_PRESET), encoded),
        ("probe the output (ffmpeg stream copy)",
         [*ff, "-i", str(made), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"], None),
        ("whole command, `--backend blend` (every fixed cost, no motion work)", *mp4_cmds["blend"]),
        ("whole command, `flow` (default)", *mp4_cmds["flow"]),
        ("minterpolate to the null muxer (no encode)",
         [*ff, "-i", str(half_mp4), "-vf", f"tpad=stop_mode=clone:stop=1,minterpolate=fps={FULL_FPS}:mi_mode=mci",
          "-frames:v", str(num_out), "-f", "null", "-"], None),
        ("minterpolate whole command", *mp4_cmds["minterpolate"]),
    ]
    best: dict[str, tuple[float, float] | None] = {label: None for label, _, _ in steps}
    engine = None
    for _ in range(repeat):
        for label, cmd, target in steps:
            best[label] = _best(best[label], _run_once(cmd, target))
        engine = _best(engine, _engine_seconds("flow", frames, half_mp4, num_out))
    raw.unlink()
    encoded.unlink(missing_ok=True)
    rows = [(label, *best[label]) for label, _, _ in steps]
    rows.insert(-2, ("`flow` compute only, in-process (14 pairs, no I/O)", *engine))
    return rows


def to_markdown(rows: list[dict], steps: list[tuple[str, float, float]] | None = None) -> str:
    lines = ["| clip | method | PSNR (dB) | SSIM | s, PNG dir -> PNG dir | s, MP4 -> MP4 | CPU s, MP4 -> MP4 "
             "| s, compute only |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_png']:.2f} "
                     f"| {r['seconds_mp4']:.2f} | {r['cpu_mp4']:.2f} | {r['seconds_engine']:.2f} |")
    by = {(r["clip"], r["method"]): r for r in rows}
    notes = []
    for clip in dict.fromkeys(r["clip"] for r in rows):
        m = by.get((clip, "minterpolate"))
        for method in ("flow", "flow-hq"):
            f = by.get((clip, method))
            if f and m:
                notes.append(f"- {clip}, {method} vs minterpolate: {f['psnr'] - m['psnr']:+.2f} dB PSNR, "
                             f"{f['ssim'] - m['ssim']:+.4f} SSIM; speed-up {m['seconds_png'] / f['seconds_png']:.2f}x "
                             f"(PNG), {m['seconds_mp4'] / f['seconds_mp4']:.2f}x (MP4; CPU "
                             f"{m['cpu_mp4'] / f['cpu_mp4']:.2f}x), {m['seconds_engine'] / f['seconds_engine']:.2f}x "
                             "(compute only)")
    text = "\n".join(lines + [""] + notes) + "\n"
    if steps:
        text += "\n| step (MP4 -> MP4 pieces, each its own command) | wall s | CPU s |\n|---|---:|---:|\n"
        text += "".join(f"| {label} | {wall:.3f} | {cpu:.3f} |\n" for label, wall, cpu in steps)
    return text + f"\nLoad average (1 min) while timing: {_Load.text()} on {os.cpu_count()} CPUs.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.interpolation", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=pathlib.Path, help="work folder for clips, outputs and table")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), metavar="CLIP|DIR",
                        help=f"synthetic clips ({', '.join(CLIPS)}), or one folder of real video files: frames "
                             "dropped at gaps 2, 4 and 8 (see benchmarks/interpolation_real.py)")
    parser.add_argument("--methods", nargs="+", default=None, choices=sorted(set(METHODS) | set(real.METHODS)),
                        help=f"default: {' '.join(METHODS)}; with a folder of clips: {' '.join(real.DEFAULT_METHODS)}")
    parser.add_argument("--gaps", nargs="+", type=int, default=list(real.GAPS),
                        help="with a folder of clips: keep every g-th frame and rebuild the rest, for each g")
    parser.add_argument("--fresh-rife", action="store_true", help="recompute RIFE's frames instead of reusing OUT's")
    parser.add_argument("--repeat", type=int, default=3, help="time each command this many times, keep the best")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the pieces of the MP4 -> MP4 run (on the first clip; needs flow, blend and "
                             "minterpolate among the methods)")
    args = parser.parse_args(argv)
    folder = pathlib.Path(args.clips[0])
    if len(args.clips) == 1 and args.clips[0] not in CLIPS:
        return _main_real(args, folder.resolve())
    unknown = [c for c in args.clips if c not in CLIPS]
    if unknown:
        parser.error(f"--clips: unknown clip {unknown[0]!r}; choose from {', '.join(CLIPS)} or give one folder")
    args.methods = args.methods or list(METHODS)
    wrong = [m for m in args.methods if m not in METHODS]
    if wrong:
        parser.error(f"--methods {wrong[0]} needs a folder of real clips (--clips DIR)")
    if args.breakdown and not {"flow", "blend", "minterpolate"} <= set(args.methods):
        parser.error("--breakdown needs the methods flow, blend and minterpolate")
    args.out = args.out.resolve()  # the commands run from the package's folder
    # Time the command as installed (pip compiles the bytecode) or as run a second time, not the first run's
    # compiling: where PYTHONDONTWRITEBYTECODE is set, every run would otherwise compile svd_demo again (12-18 ms).
    compileall.compile_dir(str(_PACKAGE_PARENT / "svd_demo"), quiet=1)
    rows = run(args.out, clips=args.clips, methods=args.methods, repeat=max(1, args.repeat))
    steps = breakdown(args.out, args.clips[0], repeat=max(1, args.repeat)) if args.breakdown else None
    table = to_markdown(rows, steps)
    print()
    print(table)
    (args.out / "interpolation_bench.md").write_text(table)
    return 0


def _main_real(args: argparse.Namespace, folder: pathlib.Path) -> int:
    """The real-footage mode: ``--clips DIR``."""
    methods = args.methods or list(real.DEFAULT_METHODS)
    bad_gaps = [g for g in args.gaps if not 2 <= g <= 16]
    if bad_gaps:
        raise SystemExit(f"--gaps {bad_gaps[0]}: a gap is 2 to 16 (the interpolation factors the CLI accepts).")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    compileall.compile_dir(str(_PACKAGE_PARENT / "svd_demo"), quiet=1)
    rows = real.run(folder, out, methods=methods, gaps=args.gaps, repeat=max(1, args.repeat),
                    fresh_rife=args.fresh_rife)
    # The real-footage run times its commands through this module as imported, which under ``python -m`` is a
    # second copy of it (``__main__`` is the first): read the load samples there.
    from benchmarks import interpolation as imported

    table = real.to_markdown(rows) + (f"\nLoad average (1 min) while timing: {imported._Load.text()} on "
                                      f"{os.cpu_count()} CPUs.\n")
    print()
    print(table)
    (out / "interpolation_real.md").write_text(table)
    (out / "interpolation_real.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
