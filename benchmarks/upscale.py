"""Per-frame speed of the upscalers, on random weights of the real sizes (and the tiny test ones).

Run: ``python -m benchmarks.upscale`` (CPU) or ``python -m benchmarks.upscale --device cuda --dtype fp16``.

Each network is built with random weights at its real size (realesr-animevideov3: SRVGGNetCompact, 64 features,
16 convolutions, x4; RealESRGAN_x4plus: RRDBNet, 64 features, 23 blocks, growth 32, x4) and at the tiny test
size (`svd_demo_testing.tiny_models.save_tiny_upscalers`), saved as a checkpoint file and loaded through the app's own
loader (`svd_demo.engine.upscale.load_upscaler`). A frame of ``--size`` (default 1024x576, SVD's) is upscaled by
``upscale_frame`` at 2x (the 4x result resized down: the network's cost is the same) in tiles of
``--tile`` (default the app's 512) after one warm-up frame; the time per frame is the median of ``--repeat``
frames (wall clock, synchronised on CUDA), and on CUDA the peak allocated memory. Random weights cost what trained
ones cost: the work does not depend on the values.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], axis=-1)
    return np.clip(frame + rng.integers(-20, 20, frame.shape), 0, 255).astype(np.uint8)


def _checkpoints(folder: Path, which: list[str]) -> dict[str, Path]:
    import torch

    from svd_demo.engine.upscale.networks import RRDBNet, SRVGGNetCompact
    from svd_demo_testing.tiny_models import save_tiny_upscalers

    paths: dict[str, Path] = {}
    tiny = save_tiny_upscalers(folder)
    torch.manual_seed(0)
    real = {"animevideov3": (SRVGGNetCompact, "params"), "x4plus": (RRDBNet, "params_ema")}
    for name in which:
        if name.startswith("tiny-"):
            paths[name] = tiny[name.removeprefix("tiny-")]
        else:
            cls, key = real[name]
            paths[name] = folder / f"{name}.pth"
            torch.save({key: cls().state_dict()}, paths[name])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upscale", description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="tiny-srvgg,tiny-rrdb,animevideov3,x4plus",
                        help="comma-separated: tiny-srvgg, tiny-rrdb, animevideov3, x4plus")
    parser.add_argument("--size", default="1024x576", help="input frame WxH")
    parser.add_argument("--factor", type=int, default=2, choices=(2, 4))
    parser.add_argument("--tile", type=int, default=None, help="tile side in input pixels (0: whole frame)")
    parser.add_argument("--repeat", type=int, default=3, help="frames timed after the warm-up (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    args = parser.parse_args(argv)

    import torch

    from svd_demo.engine.upscale import DEFAULT_TILE, load_upscaler, upscale_frame

    width, height = (int(v) for v in args.size.lower().split("x"))
    tile = DEFAULT_TILE if args.tile is None else args.tile
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    frame = _frame(width, height)
    cuda = args.device.startswith("cuda")
    print(f"device {args.device} {args.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{width}x{height} -> {args.factor}x, tile {tile}")
    print("| network | parameters | load s | s/frame (median) | frames | peak GiB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, path in _checkpoints(Path(folder), args.networks.split(",")).items():
            upscaler = load_upscaler(str(path), args.device, dtype)
            upscale_frame(upscaler, frame, args.factor, tile=tile)  # warm-up: kernels, allocator
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                out = upscale_frame(upscaler, frame, args.factor, tile=tile)
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            assert out.shape == (height * args.factor, width * args.factor, 3)
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f}" if cuda else "-"
            print(f"| {name} | {upscaler.parameters / 1e6:.3f} M | {upscaler.load_seconds:.2f} | "
                  f"{statistics.median(times):.3f} | {len(times)} | {peak} |", flush=True)
            del upscaler
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
