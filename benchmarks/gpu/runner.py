"""The state every part of the GPU benchmark shares (Runner): the budget (what fits, what is kept for later parts),
the rows, the SVD pipeline and its memory profile, and one timed run through the app's own path."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.gpu.config import FIXED_FACTOR, NOT_RUN, STEP_FACTOR, BenchConfig, row_parts
from benchmarks.gpu.device import GIB, DeviceOps
from benchmarks.gpu.models import load_svd
from benchmarks.gpu.report import Report, run_line


def step_stats(marks: list[float], start: float, end: float, steps: int, target: int) -> dict[str, object]:
    """Timings of one run from the synchronized end-of-step marks; fewer steps than `target` are extrapolated."""
    intervals = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    per_step = statistics.median(intervals) if intervals else None
    stats: dict[str, object] = {
        "steps_run": steps, "s_per_step": per_step, "first_step_s": marks[0] - start if marks else None,
        "decode_s": end - marks[-1] if marks else None, "total_s": end - start, "total_est_s": end - start}
    if per_step is not None and steps < target:
        stats["total_est_s"] = end - start + (target - steps) * per_step
        stats["extrapolated"] = (f"ran {steps} of {target} steps: the {target}-step total is the measured total + "
                                 f"{target - steps} x the median s/step")
    return stats


def run_meta(c: BenchConfig, parts: list[str], child: bool, t0: float) -> dict[str, Any]:
    """What results.json's `meta` says of the run before it starts: the command, the model, the sizes, the parts."""
    if c.svd_model not in ("", "random"):
        model = short = c.svd_model
    elif c.gpu:
        model, short = "SVD-XT and SDXL architectures, random weights (nothing downloaded)", "SVD-XT"
    else:
        model, short = "tiny random-weight SVD and SDXL (the tests' configs)", "tiny SVD"
    return dict(
        command=" ".join(["python -m benchmarks.gpu", *sys.argv[1:]]), device=c.device, dtype=c.dtype, model=model,
        svd=short, size=f"{c.width}x{c.height}", frames=c.frames, steps=c.steps, few_steps=c.few_steps,
        sdxl_steps=c.sdxl_steps, parts=parts, child=child, gpu="CUDA GPU" if c.gpu else "CPU",
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0)))


class Runner:
    """What the parts share: the configuration, the report and its rows, the time budget, the SVD pipeline and what
    the runs so far measured. `parts` are the requested ones in run order (parts.PART_ORDER); the parts themselves
    are functions in the parts_*.py modules that take the runner."""

    def __init__(self, config: BenchConfig, report: Report, parts: list[str], *, child: bool = False,
                 compare_frames: str | None = None) -> None:
        self.config, self.report, self.parts = config, report, parts
        self.child, self.compare_frames = child, compare_frames
        self.ops = DeviceOps(config.device)
        self.rows: dict[str, dict[str, Any]] = report.data["rows"]
        for name, part in row_parts(config.caps_gb).items():
            asked = part in parts
            self.rows[name] = {"part": part, "status": NOT_RUN if asked else "skipped",
                               "reason": "not reached" if asked else "not in --parts"}
        self.pipe: Any = None
        self.broken = False
        self.profile: str | None = None  # the memory plan the SVD pipeline is in now
        self.ctx = 0  # bytes of device memory outside the allocator (CUDA context, workspaces)
        gpu = config.gpu
        self.s_step, self.fixed, self.build_s = (1.0, 8.0, 20.0) if gpu else (0.3, 0.5, 3.0)  # refined as measured
        self.high_frames: np.ndarray | None = None
        self.child_proc: subprocess.Popen | None = None
        self.part, self.part_since = "setup", time.time()
        self.cache: Any = None
        self.image: Any = None
        self.dtype: Any = None
        report.data["meta"].update(run_meta(config, parts, child, report.t0))

    # -- budget ------------------------------------------------------------------------------------------------------

    def reserve(self) -> float:
        """Seconds kept back for the requested parts after the current one."""
        later = self.parts[self.parts.index(self.part) + 1:] if self.part in self.parts else self.parts
        return float(sum(self.config.part_min_s[p] for p in later))

    def estimate(self, profile: str, steps: int) -> float:
        return self.fixed * FIXED_FACTOR[profile] + steps * self.s_step * STEP_FACTOR[profile]

    def fits(self, row: str, need: float, what: str, *, needs_svd: bool = True) -> bool:
        """Whether `need` seconds (plus building SVD if due) fit the time left minus the reserve; else skip `row`."""
        if needs_svd and (self.pipe is None or self.broken):
            need += self.build_s
        left, reserve = max(0.0, self.report.left()), self.reserve()
        if need <= left - reserve:
            return True
        self.skip(row, f"not enough time: {what} need ~{need:.0f} s; {left:.0f} s were left and {reserve:.0f} s "
                       "kept for the parts after it")
        return False

    def steps_that_fit(self, cost: Callable[[int], float], lo: int, hi: int) -> int:
        """The most steps in (hi, 15, 10, 6, lo) whose `cost` fits the time left minus the reserve, or 0."""
        room = self.report.left() - self.reserve()
        for steps in sorted({hi, 15, 10, 6, lo}, reverse=True):
            if lo <= steps <= hi and cost(steps) <= room:
                return steps
        return 0

    # -- rows --------------------------------------------------------------------------------------------------------

    def skip(self, row: str, reason: str) -> None:
        self.rows[row].update(status="skipped", reason=reason)
        self.report.log(f"{row}: skipped: {reason}")

    def set_row(self, row: str, record: dict[str, Any]) -> None:
        record = {k: v for k, v in record.items() if not k.startswith("_")}
        if record.get("status") == "ok":
            record["reason"] = None
        self.rows[row].update(record)

    def log_run(self, row: str, r: dict[str, Any]) -> None:
        self.report.log(run_line(row, r))

    # -- set-up and the pipeline -------------------------------------------------------------------------------------

    def setup(self) -> None:
        import diffusers
        import torch
        import transformers
        from PIL import Image

        from svd_demo.core.settings import Settings
        from svd_demo.engine.memory import resolve_dtype
        from svd_demo.engine.pipelines import PipelineCache

        try:
            import accelerate

            accelerate_version = accelerate.__version__
        except ImportError:
            accelerate_version = None
        c = self.config
        self.dtype = resolve_dtype(c.dtype, c.device)
        self.cache = PipelineCache(Settings(device=c.device), device=c.device)
        self.image = Image.new("RGB", (c.width, c.height), (110, 90, 60))
        meta = self.report.data["meta"]
        meta.update(dtype=str(self.dtype).replace("torch.", ""), torch=torch.__version__,
                    diffusers=diffusers.__version__, diffusers_file=diffusers.__file__,
                    transformers=transformers.__version__,
                    accelerate=accelerate_version, python=sys.version.split()[0],
                    PYTORCH_CUDA_ALLOC_CONF=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), **self.ops.describe())
        if not c.gpu:
            # Control flow only: one thread keeps the tiny runs from stalling against other processes on shared
            # cores (two threads on a loaded 2-core machine made single steps 5-20x slower, at random).
            torch.set_num_threads(1)
            meta["cpu_threads"] = 1
        if c.gpu:
            torch.empty(1, device=c.device)  # create the CUDA context, then measure it
            self.ctx = self.ops.context_bytes()
        meta["ctx_gib"] = self.ctx / GIB
        self.report.log(f"bench on {meta['gpu']} ({c.device}, {meta['dtype']}): {meta['model']}; {meta['size']}, "
                        f"{c.frames} frames, {c.steps} steps; budget {self.report.budget_s:g} s, "
                        f"{self.report.left():.0f} s left; parts {','.join(self.parts)}")

    def ensure_pipe(self) -> None:
        """The SVD pipeline, built on first use and rebuilt when a failure may have left it half-moved."""
        if self.pipe is not None and not self.broken:
            return
        if self.broken:
            self.report.note(f"the SVD pipeline was left broken before part {self.part}: rebuilt from scratch")
        if self.pipe is not None:
            with contextlib.suppress(Exception):
                self.pipe.remove_all_hooks()
            self.pipe = None
        self.ops.empty_cache()
        start = time.perf_counter()
        self.pipe = load_svd(self.config, self.dtype, self.report.note)
        self.ops.sync()
        self.build_s = time.perf_counter() - start
        self.broken, self.profile = False, None
        self.report.data["meta"].setdefault("svd_build_s", self.build_s)
        self.report.log(f"SVD pipeline built on {self.config.device} in {self.build_s:.1f} s; "
                        f"{self.ops.allocated_gib():.2f} GiB allocated")

    def use(self, profile: str) -> None:
        from svd_demo.engine.memory import PLANS, apply_plan

        if self.profile != profile:
            self.profile = None
            apply_plan(self.pipe, PLANS[profile], self.config.device)
            self.profile = profile

    def park(self) -> None:
        """SVD weights off the GPU (model offload keeps them in CPU memory) and the allocator's cache emptied; a
        broken pipeline is dropped instead (the next part that needs one builds it again)."""
        if self.pipe is not None and not self.broken:
            try:
                self.use("balanced")
            except Exception as exc:  # noqa: BLE001  a pipeline that cannot move is thrown away
                self.report.note(f"parking the SVD pipeline failed ({type(exc).__name__}: {str(exc)[:150]}): dropped")
                self.broken = True
        if self.pipe is not None and self.broken:
            with contextlib.suppress(Exception):
                self.pipe.remove_all_hooks()
            self.pipe, self.profile = None, None
        self.ops.empty_cache()

    # -- one run -----------------------------------------------------------------------------------------------------

    def timed(self, call: Callable[[Callable[[], None]], dict[str, Any]], steps: int, target: int, *,
              breaks_svd: bool = True) -> dict[str, Any]:
        """Run `call(mark)` between synchronizations, with the device's peak statistics reset first; `call` calls
        `mark()` at the end of every denoising step and returns fields for the record. Failures are results."""
        from svd_demo.core.errors import UserFacingError

        marks: list[float] = []

        def mark() -> None:
            self.ops.sync()
            marks.append(time.perf_counter())

        rec: dict[str, Any] = {}
        self.ops.reset_peaks()
        self.ops.sync()
        start = time.perf_counter()
        try:
            rec.update(call(mark))
            self.ops.sync()
            rec["status"] = "ok"
        except UserFacingError as exc:  # out of memory after every retry, or NaN frames
            self.ops.sync()
            if "invalid values" in str(exc):  # to_uint8's NaN check comes after the whole run: the timing holds
                rec.update(status="ok", nan_output=True)
            else:
                rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # noqa: BLE001  a raw OOM, a broken profile switch, anything: a result here
            rec.update(status="failed", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:250]}",
                       traceback=traceback.format_exc()[-3000:])
            self.broken = self.broken or breaks_svd
        end = time.perf_counter()
        rec.update(step_stats(marks, start, end, steps, target), **self.ops.peaks())
        if "peak_reserved_gib" in rec:
            rec["card_need_gib"] = rec["peak_reserved_gib"] + self.ctx / GIB
        return rec

    def prepare(self, what: str, fn: Callable[[], None]) -> dict[str, Any] | None:
        """A profile switch before a timed run (not timed itself): None, or the failure as a record."""
        try:
            fn()
            self.ops.sync()
            return None
        except Exception as exc:  # noqa: BLE001  e.g. out of memory under a cap, the inference-tensor trap
            self.broken = True
            return {"status": "failed", "reason": f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:250]}",
                    "traceback": traceback.format_exc()[-3000:]}

    def app_run(self, profile: str, steps: int, *, frames: int | None = None, keep_frames: bool = False,
                target: int | None = None, keyframes: bool = False,
                cache_setting: tuple[int, int] | None = None, **options: Any) -> dict[str, Any]:
        """One clip through the app's own path (generate_frames) in `profile`; `options` are VideoParams fields,
        `cache_setting` the feature cache's (interval, branch) when `feature_cache` is on. With `keyframes`, the
        keyframes sampler from this image to a second one (two UNet halves a step)."""
        from svd_demo.core.params import VideoParams
        from svd_demo.engine.image_to_video import generate_frames
        from svd_demo.engine.pipelines import LoadedPipeline

        start = time.perf_counter()
        failed = self.prepare(f"switching to '{profile}'", lambda: self.use(profile))
        if failed:
            return failed
        apply_s = time.perf_counter() - start
        c = self.config
        loaded = LoadedPipeline(kind="svd", model_ref=c.svd_model, pipe=self.pipe, device=c.device,
                                dtype=self.dtype, profile=profile, load_seconds=0.0, revision=None,
                                random_weights=c.svd_model in ("", "random"), current_profile=profile)
        params = VideoParams(num_frames=frames or c.frames, num_inference_steps=steps, seed=0,
                             randomize_seed=False, fps=7, resolution=max(c.width, c.height), **options)

        source, sampler = self.image, None
        if keyframes:
            from PIL import Image

            from svd_demo.engine.keyframes import Keyframes, denoise_keyframes

            source = Keyframes(self.image, Image.new("RGB", self.image.size, (40, 70, 130)))
            sampler = denoise_keyframes

        def call(mark: Callable[[], None]) -> dict[str, Any]:
            caching = {}
            if cache_setting is not None:
                caching = {"cache_interval": cache_setting[0], "cache_branch": cache_setting[1]}
            result = generate_frames(self.cache, loaded, source, params, sampler=sampler,
                                     progress=lambda fraction, text: text.startswith(("Denoising step", "Step "))
                                     and mark(), **caching)
            return {"profile_used": result.memory_profile, "decode_chunk": result.decode_chunk_size,
                    "changes": "; ".join(result.memory_changes), "app_timings": result.timings,
                    **({"_frames": result.frames} if keep_frames else {})}

        return {"profile": profile, "apply_plan_s": apply_s, **self.timed(call, steps, target or self.config.steps)}
