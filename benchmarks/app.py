"""The app's own cost on a CPU, `python -m benchmarks.app WHICH` (recorded in BENCHMARKS.md with the commands).

`startup`: seconds until the page answers HTTP 200, for `python app.py` and for a bare Gradio app that imports
  torch, each started fresh several times, interleaved (median).
`overhead`: everything a request does outside the pipeline call, for a 14-frame 1024x576 clip: loading and framing
  the photo, the 8-bit conversion, encoding, probing and the sidecar.
`requests`: two requests through one studio on tiny models: the second must not load anything.

`startup` and `requests` want a local model: `python -m svd_demo tiny-models ./tiny-models` writes tiny ones.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks._net import free_port

REPO = Path(__file__).resolve().parents[1]


BARE_APP = """
import sys, torch, gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("bare")
demo.launch(server_port=int(sys.argv[1]), quiet=True)
"""


def _time_to_page(cmd: list[str], port: int, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{' '.join(cmd)} did not serve a page within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_startup(svd_model: str, repeats: int) -> None:
    app = REPO / "app.py"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as bare:
        bare.write(BARE_APP)
    results: dict[str, list[float]] = {"bare gradio + torch": [], "svd-demo app.py": []}
    for _ in range(repeats):  # interleaved, so a noisy neighbour hurts both alike
        port = free_port()
        results["bare gradio + torch"].append(_time_to_page([sys.executable, bare.name, str(port)], port))
        port = free_port()
        results["svd-demo app.py"].append(
            _time_to_page([sys.executable, str(app), "--svd-model", svd_model, "--port", str(port)], port))
    Path(bare.name).unlink()
    print("| app | median s | runs |\n|---|---|---|")
    for name, times in results.items():
        print(f"| {name} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
    ratio = statistics.median(results["svd-demo app.py"]) / statistics.median(results["bare gradio + torch"])
    print(f"\nratio app / bare: {ratio:.2f} (target <= 1.2)")


def bench_overhead(repeats: int) -> None:
    from PIL import Image

    from svd_demo.engine.image_to_video import to_uint8
    from svd_demo.files.images import load_image, prepare_image
    from svd_demo.files.outputs import library_versions, output_stem, write_outputs

    out = Path(tempfile.mkdtemp(prefix="svd-bench-"))
    # A 12-megapixel photo-like JPEG (smooth gradients and edges, as a camera gives), framed to 1024x576.
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    photo = np.stack([x / 4000 * 255, y / 3000 * 255, (np.sin(x / 50) * np.cos(y / 70) + 1) * 127], -1)
    Image.fromarray(photo.astype(np.uint8)).save(out / "photo.jpg", quality=92)
    prepared = prepare_image(load_image(out / "photo.jpg").image, 1024, "crop").image
    base = np.asarray(prepared, np.float32) / 255
    # What the pipeline returns: 14 float frames in [0, 1], each shifted a little (motion, like a real clip).
    float_frames = np.stack([np.roll(base, 6 * i, axis=1) for i in range(14)])
    stages: dict[str, list[float]] = {"load + frame the photo": [], "NaN check + 8-bit": [],
                                      "encode + probe + sidecar": [], "total": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        loaded = load_image(out / "photo.jpg", min_side=1024)  # as Studio.prepare does
        prepare_image(loaded.image, 1024, "crop")
        t1 = time.perf_counter()
        frames = to_uint8(float_frames)
        t2 = time.perf_counter()
        record = {"parameters": {"seed": 1}, "versions": library_versions(), "timings": {}}
        write_outputs(frames, output_stem(out, "video", 1), 7.0, record)
        t3 = time.perf_counter()
        for name, value in zip(stages, [t1 - t0, t2 - t1, t3 - t2, t3 - t0], strict=True):
            stages[name].append(value)
    print("| stage (14 frames, 1024x576, from a 4000x3000 JPEG) | median s |\n|---|---|")
    for name, times in stages.items():
        print(f"| {name} | {statistics.median(times):.3f} |")
    print("\ntarget: total <= 0.5 s on 2 CPU cores")


def bench_requests(svd_model: str) -> None:
    from PIL import Image

    from svd_demo.core.params import VideoParams
    from svd_demo.core.settings import Settings
    from svd_demo.studio.studio import Studio

    studio = Studio(Settings(svd_model=svd_model, output_dir=Path(tempfile.mkdtemp(prefix="svd-bench-"))))
    image = Image.new("RGB", (640, 480), (90, 140, 200))
    params = VideoParams(resolution=256, num_frames=14, num_inference_steps=2, randomize_seed=False)
    print("| request | loads so far | load_s | total_s |\n|---|---|---|---|")
    for i in (1, 2):
        result = studio.image_to_video(image, params)
        timings = result.record["timings"]
        print(f"| {i} | {studio.cache.loads} | {timings.get('load_s', 0):.2f} | {timings['total_s']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["startup", "overhead", "requests"])
    parser.add_argument("--svd-model", default="./tiny-models/svd",
                        help="startup/requests: a local model folder [default ./tiny-models/svd]")
    parser.add_argument("--repeats", type=int, default=5, help="startup/overhead: runs per figure (median)")
    args = parser.parse_args(argv)
    if args.which == "startup":
        bench_startup(args.svd_model, args.repeats)
    elif args.which == "overhead":
        bench_overhead(args.repeats)
    else:
        bench_requests(args.svd_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
