"""Benchmarks that print numbers (recorded in BENCHMARKS.md with their commands).

- `profiles` (the default of `python -m svd_demo bench`): on a GPU, the full-size SVD-XT architecture with random
  weights (no download; real weights via --svd-model), each memory profile timed and measured against the plain
  diffusers recipe, plus simulated smaller GPUs; on a CPU, tiny models and the app's own overhead.

- `startup`: seconds until the page answers HTTP 200, for `python app.py` and for a bare Gradio app that imports
  torch, each started fresh several times (median).
- `overhead`: everything a request does outside the pipeline call, for a 14-frame 1024x576 clip: loading and
  framing the photo, the 8-bit conversion, encoding, probing and the sidecar.
- `requests`: two requests through one studio on tiny models: the second must not load anything.
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

BARE_APP = """
import sys, torch, gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("bare")
demo.launch(server_port=int(sys.argv[1]), quiet=True)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    app = Path(__file__).resolve().parent.parent / "app.py"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as bare:
        bare.write(BARE_APP)
    results: dict[str, list[float]] = {"bare gradio + torch": [], "svd-demo app.py": []}
    for _ in range(repeats):  # interleaved, so a noisy neighbour hurts both alike
        port = _free_port()
        results["bare gradio + torch"].append(_time_to_page([sys.executable, bare.name, str(port)], port))
        port = _free_port()
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

    from svd_demo.image_to_video import to_uint8
    from svd_demo.images import load_image, prepare_image
    from svd_demo.outputs import library_versions, output_stem, write_outputs

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

    from svd_demo.params import VideoParams
    from svd_demo.settings import Settings
    from svd_demo.studio import Studio

    studio = Studio(Settings(svd_model=svd_model, output_dir=Path(tempfile.mkdtemp(prefix="svd-bench-"))))
    image = Image.new("RGB", (640, 480), (90, 140, 200))
    params = VideoParams(resolution=256, num_frames=14, num_inference_steps=2, randomize_seed=False)
    print("| request | loads so far | load_s | total_s |\n|---|---|---|---|")
    for i in (1, 2):
        result = studio.image_to_video(image, params)
        timings = result.record["timings"]
        print(f"| {i} | {studio.cache.loads} | {timings.get('load_s', 0):.2f} | {timings['total_s']:.2f} |")


# --- profiles: speed and memory per memory profile ---------------------------------------------------------------

# The published SVD-XT architecture (FACTS.md): UNet 1.52 B, VAE 98 M, CLIP ViT-H/14 632 M parameters.
SVD_XT_VAE = {"block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
              "layers_per_block": 2, "latent_channels": 4, "sample_size": 768, "scaling_factor": 0.18215,
              "force_upcast": True}
SVD_XT_CLIP = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
               "image_size": 224, "patch_size": 14, "projection_dim": 1024, "hidden_act": "gelu"}
SVD_SCHEDULER = {"prediction_type": "v_prediction", "use_karras_sigmas": True, "sigma_min": 0.002,
                 "sigma_max": 700.0, "timestep_type": "continuous", "beta_schedule": "scaled_linear",
                 "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "timestep_spacing": "leading",
                 "interpolation_type": "linear"}


def build_full_size_svd(device: str, dtype: object) -> object:
    """SVD-XT's architecture with random weights, built directly on `device` (seconds instead of minutes)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNetSpatioTemporalConditionModel(sample_size=96, num_frames=25).to(dtype)
        vae = AutoencoderKLTemporalDecoder(**SVD_XT_VAE).to(dtype)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_CLIP)).to(dtype)
    processor = CLIPImageProcessor(crop_size=224, size=224, image_mean=[0.48145466, 0.4578275, 0.40821073],
                                   image_std=[0.26862954, 0.26130258, 0.27577711])
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet,
                                        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
                                        feature_extractor=processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _peaks(device: str) -> tuple[float, float]:
    if device != "cuda":
        return 0.0, 0.0
    import torch

    return torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30


def _reset_peaks(device: str) -> None:
    from svd_demo.pipelines import free_memory

    free_memory(device)
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _run_profile(cache: object, loaded: object, image: object, params: object, device: str) -> dict[str, object]:
    """One clip through the app's own generation path; per-step times from its progress callback."""
    from svd_demo.image_to_video import OutOfMemory, generate_frames

    marks: list[float] = []

    def progress(fraction: float, text: str) -> None:
        if text.startswith("Denoising step"):
            _sync(device)
            marks.append(time.perf_counter())

    _reset_peaks(device)
    start = time.perf_counter()
    try:
        result = generate_frames(cache, loaded, image, params, progress=progress)
    except OutOfMemory as exc:
        return {"status": f"OOM: {exc}"}
    _sync(device)
    total = time.perf_counter() - start
    per_step = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else total
    allocated, reserved = _peaks(device)
    return {"status": "ok", "s_per_step": per_step, "decode_s": result.timings["decode_s"], "total_s": total,
            "peak_alloc_gib": allocated, "peak_reserved_gib": reserved, "profile": result.memory_profile,
            "changes": "; ".join(result.memory_changes)}


def _run_baseline(pipe: object, image: object, params: object, device: str) -> dict[str, object]:
    """The plain diffusers recipe: fp16, enable_model_cpu_offload, default decode (all frames at once)."""
    import torch

    pipe.remove_all_hooks()
    pipe.to("cpu")
    pipe.enable_model_cpu_offload(device=device)
    _reset_peaks(device)
    start = time.perf_counter()
    try:
        pipe(image, height=image.height, width=image.width, num_frames=params.num_frames,
             num_inference_steps=params.num_inference_steps, generator=torch.Generator().manual_seed(0),
             output_type="np")
    except torch.OutOfMemoryError:
        return {"status": "OOM"}
    _sync(device)
    allocated, reserved = _peaks(device)
    return {"status": "ok", "total_s": time.perf_counter() - start, "peak_alloc_gib": allocated,
            "peak_reserved_gib": reserved}


def bench_profiles(args: argparse.Namespace) -> None:
    import torch
    from PIL import Image

    from svd_demo.memory import GIB, PLANS, apply_plan, choose_profile, resolve_device, resolve_dtype
    from svd_demo.params import VideoParams
    from svd_demo.pipelines import LoadedPipeline, PipelineCache
    from svd_demo.settings import Settings

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    on_gpu = device == "cuda"
    model = args.svd_model
    if on_gpu and model in ("", "random"):
        pipe, source = build_full_size_svd(device, dtype), "SVD-XT architecture, random weights"
    else:
        from diffusers import StableVideoDiffusionPipeline

        if not model or model == "random":  # CPU: the full-size model would take hours per clip
            from svd_demo.tiny_models import save_tiny_models

            model = str(save_tiny_models(tempfile.mkdtemp(prefix="svd-bench-"), which=("svd",))["svd"])
        pipe = StableVideoDiffusionPipeline.from_pretrained(model, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        source = model
    width, height = args.width, args.height
    image = Image.new("RGB", (width, height), (110, 90, 60))
    cache = PipelineCache(Settings(device=device))
    name = torch.cuda.get_device_name() if on_gpu else "CPU"
    print(f"# {name}; {source}; {dtype}; {width}x{height}; {args.steps} steps; torch {torch.__version__}\n")
    print("| frames | profile | s/step | decode s | total s | peak alloc GiB | peak reserved GiB | vs baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for frames in args.frames:
        params = VideoParams(num_frames=frames, num_inference_steps=args.steps, seed=0, randomize_seed=False,
                             fps=7, resolution=max(width, height))
        baseline = _run_baseline(pipe, image, params, device) if on_gpu else None
        if baseline:
            print(f"| {frames} | diffusers recipe (offload, full decode) | | | {baseline.get('total_s', 0):.1f} | "
                  f"{baseline.get('peak_alloc_gib', 0):.1f} | {baseline.get('peak_reserved_gib', 0):.1f} | 1.00 "
                  f"({baseline['status']}) |")
        for profile in args.profiles:
            apply_plan(pipe, PLANS[profile], device)
            loaded = LoadedPipeline("svd", source, pipe, device, dtype, profile, 0.0, None, True, profile)
            row = _run_profile(cache, loaded, image, params, device)
            if row["status"] != "ok":
                print(f"| {frames} | {profile} | {row['status']} |||||")
                continue
            ratio = (f"{baseline['total_s'] / row['total_s']:.2f}x faster" if baseline and
                     baseline["status"] == "ok" else "")
            print(f"| {frames} | {profile} | {row['s_per_step']:.2f} | {row['decode_s']:.2f} | {row['total_s']:.1f} | "
                  f"{row['peak_alloc_gib']:.1f} | {row['peak_reserved_gib']:.1f} | {ratio} |")
    if on_gpu and args.simulate:
        total = torch.cuda.get_device_properties(0).total_memory
        print("\n| simulated GPU | auto picks | status | total s | peak alloc GiB | what changed |")
        print("|---|---|---|---|---|---|")
        params = VideoParams(num_frames=max(args.frames), num_inference_steps=args.steps, seed=0,
                             randomize_seed=False, fps=7, resolution=max(width, height))
        for gib in args.simulate:
            torch.cuda.set_per_process_memory_fraction(min(1.0, gib * GIB / total))
            profile = choose_profile("auto", "cuda", (gib * GIB, gib * GIB))
            apply_plan(pipe, PLANS[profile], device)
            loaded = LoadedPipeline("svd", source, pipe, device, dtype, profile, 0.0, None, True, profile)
            row = _run_profile(cache, loaded, image, params, device)
            print(f"| {gib} GB | {profile} | {row['status']} | {row.get('total_s', 0):.1f} | "
                  f"{row.get('peak_alloc_gib', 0):.1f} | {row.get('changes', '')} |")
        torch.cuda.set_per_process_memory_fraction(1.0)
    if not on_gpu:
        _app_overhead(model, image, args)


def _app_overhead(model: str, image: object, args: argparse.Namespace) -> None:
    """On CPU: what the app adds around a bare pipeline call (framing, retries bookkeeping, encoding, sidecar)."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    from svd_demo.params import VideoParams
    from svd_demo.settings import Settings
    from svd_demo.studio import Studio

    frames = args.frames[0]
    pipe = StableVideoDiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    studio = Studio(Settings(svd_model=model, device="cpu", output_dir=Path(tempfile.mkdtemp(prefix="svd-bench-"))))
    params = VideoParams(num_frames=frames, num_inference_steps=args.steps, seed=0, randomize_seed=False,
                         resolution=max(image.size), aspect_mode="native")
    studio.image_to_video(image, params)  # load and warm up both paths once
    pipe(image, height=image.height, width=image.width, num_frames=frames, num_inference_steps=args.steps)
    bare, app = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        pipe(image, height=image.height, width=image.width, num_frames=frames, num_inference_steps=args.steps,
             decode_chunk_size=frames, generator=torch.Generator().manual_seed(0), output_type="np")
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        studio.image_to_video(image, params)
        app.append(time.perf_counter() - start)
    b, a = statistics.median(bare), statistics.median(app)
    print(f"\n| CPU, tiny model, {frames} frames | median s |\n|---|---|\n| bare pipeline call (frames in memory) | "
          f"{b:.2f} |\n| app: image -> MP4 + sidecar | {a:.2f} |\n| app overhead | {a - b:+.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m svd_demo.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="profiles",
                        choices=["profiles", "startup", "overhead", "requests"])
    parser.add_argument("--svd-model", default="random",
                        help="profiles: 'random' (full-size architecture on GPU, tiny on CPU) or a model folder/id; "
                             "startup/requests: a local model (tiny ones are fine).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--width", type=int, default=None, help="default 1024 on GPU, 256 on CPU")
    parser.add_argument("--height", type=int, default=None, help="default 576 on GPU, 144 on CPU")
    parser.add_argument("--frames", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        help="comma-separated, default 14,25 on GPU and 14 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="default 25 on GPU, 4 on CPU")
    parser.add_argument("--profiles", type=lambda t: t.split(","), default=["fast", "high", "balanced", "low",
                                                                              "minimal"])
    parser.add_argument("--simulate", type=lambda t: [int(x) for x in t.split(",")], default=[8, 12, 16, 24, 80],
                        help="GPU sizes (GB) to simulate with a per-process memory cap; empty to skip")
    args = parser.parse_args(argv)
    if args.which == "profiles":
        from svd_demo.memory import resolve_device

        gpu = resolve_device(args.device) == "cuda"
        args.width = args.width or (1024 if gpu else 256)
        args.height = args.height or (576 if gpu else 144)
        args.frames = args.frames or ([14, 25] if gpu else [14])
        args.steps = args.steps or (25 if gpu else 4)
        if not gpu:
            args.profiles = [p for p in args.profiles if p != "fast"]  # compiling on CPU takes minutes
        bench_profiles(args)
    elif args.which == "startup":
        bench_startup(args.svd_model if args.svd_model != "random" else "./tiny-models/svd", args.repeats)
    elif args.which == "overhead":
        bench_overhead(args.repeats)
    else:
        bench_requests(args.svd_model if args.svd_model != "random" else "./tiny-models/svd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
