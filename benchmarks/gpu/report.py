"""The benchmark's results: results.json and summary.md (the headline, one table per part, why a row was not
measured), rewritten after every part, and the progress lines stamped with the clock and the seconds since t0."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu.config import CACHE_ROWS, LANE_STEPS, SVD_ROWS, UPSCALE_ROWS


def fmt(value: object, digits: int = 2) -> str:
    """A table cell: empty for None, floats with `digits` decimals."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def run_line(row: str, r: dict[str, Any]) -> str:
    """The progress line of one timed run: status, steps, totals, s/step, decode and peak memory."""
    peaks = (f", peak alloc {r['peak_alloc_gib']:.2f} / reserved {r['peak_reserved_gib']:.2f} GiB"
             if "peak_alloc_gib" in r else "")
    return (f"{row}: {r.get('status')}{' (' + r['reason'] + ')' if r.get('reason') else ''}, "
            f"{r.get('steps_run', '?')} steps, total {fmt(r.get('total_s'), 1)} s"
            f"{' (extrapolated: ' + fmt(r.get('total_est_s'), 1) + ' s)' if r.get('extrapolated') else ''}, "
            f"s/step {fmt(r.get('s_per_step'), 3)}, decode {fmt(r.get('decode_s'))} s{peaks}"
            f"{'; ' + r['changes'] if r.get('changes') else ''}")


def derive(data: dict[str, Any]) -> None:
    """Ratios against the diffusers recipe and the headline sentence, from the rows."""
    rows, meta = data["rows"], data["meta"]
    base = rows.get("baseline", {})
    measured = {name: rows[name] for name in SVD_ROWS[1:] if rows.get(name, {}).get("status") == "ok"
                and rows[name].get("total_est_s")}
    data["headline"] = None
    if base.get("status") != "ok" or not base.get("total_s") or not measured:
        return
    for row in measured.values():
        row["vs_recipe"] = base["total_s"] / row["total_est_s"]
    best = min(measured, key=lambda name: measured[name]["total_est_s"])
    row = measured[best]
    est = " (extrapolated)" if row.get("extrapolated") else ""

    def peak(r: dict[str, Any]) -> str:
        return f", peak alloc {r['peak_alloc_gib']:.1f} GiB" if r.get("peak_alloc_gib") is not None else ""

    data["headline"] = (
        f"{meta.get('svd')}, {meta.get('frames')} frames {meta.get('size')} {meta.get('steps')} steps: the fastest "
        f"profile, '{best}', {row['total_est_s']:.1f} s{est} ({fmt(row.get('s_per_step'), 3)} s/step, decode "
        f"{fmt(row.get('decode_s'))} s{peak(row)}), against the diffusers recipe's {base['total_s']:.1f} s "
        f"({fmt(base.get('s_per_step'), 3)} s/step, decode {fmt(base.get('decode_s'))} s{peak(base)}): "
        f"{row['vs_recipe']:.2f}x as fast{est}")



def _why(row: dict[str, Any]) -> str:
    parts = [row.get("reason") or "", row.get("extrapolated") or "", row.get("changes") or "",
             "output had NaN (random weights): timing and memory are valid" if row.get("nan_output") else ""]
    return "; ".join(p for p in parts if p)


def render_markdown(data: dict[str, Any]) -> str:
    """summary.md: the headline, one table per part, and why any row was not measured."""
    meta, rows = data["meta"], data["rows"]
    state = f"STOPPED: {meta['stopped']}" if meta.get("stopped") else ("completed" if meta.get("done") else "running")
    out = [f"# svd-demo bench: {meta.get('gpu', '?')}", "",
           f"{meta.get('model', '?')}; {meta.get('dtype')}; {meta.get('size')}, {meta.get('frames')} frames, "
           f"{meta.get('steps')} steps; torch {meta.get('torch')}, diffusers {meta.get('diffusers')}, transformers "
           f"{meta.get('transformers')}, accelerate {meta.get('accelerate')}; device {meta.get('device')}"
           f"{', CUDA context ' + fmt(meta['ctx_gib']) + ' GiB' if meta.get('ctx_gib') else ''}. {state} after "
           f"{fmt(meta.get('wall_s'), 0)} s of a {meta.get('budget_s'):g} s budget. Command: "
           f"`{meta.get('command')}`", ""]
    if data.get("headline"):
        out += ["## Headline", "", data["headline"], ""]
    out += [f"## SVD per profile ({meta.get('frames')} frames, {meta.get('size')}, {meta.get('steps')} steps; each "
            "timed run after a 1-step warm-up of the same part)", "",
            "| profile | status | steps run | s/step (median) | decode s | total s (as run) | total s for "
            f"{meta.get('steps')} steps | peak alloc GiB | peak reserved GiB | card GiB needed (reserved + context) "
            "| vs recipe | PSNR vs high dB | notes |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    names = {"baseline": "diffusers recipe (model CPU offload, default decode)", "int8": "int8 (low, int8 UNet)"}
    for name in SVD_ROWS:
        r = rows.get(name, {})
        ratio = f"{r['vs_recipe']:.2f}x" if r.get("vs_recipe") else ""
        out.append(f"| {names.get(name, name)} | {r.get('status')} | {fmt(r.get('steps_run'))} | "
                   f"{fmt(r.get('s_per_step'), 3)} | {fmt(r.get('decode_s'))} | {fmt(r.get('total_s'), 1)} | "
                   f"{fmt(r.get('total_est_s'), 1)} | {fmt(r.get('peak_alloc_gib'))} | "
                   f"{fmt(r.get('peak_reserved_gib'))} | {fmt(r.get('card_need_gib'))} | {ratio} | "
                   f"{fmt(r.get('psnr_vs_high_db'), 1)} | {_why(r)} |")
    fast = rows.get("fast", {})
    if "compile_warmup_s" in fast:
        out += ["", f"fast: compile warm-up {fmt(fast.get('compile_warmup_s'), 1)} s (2 steps); recompile-limit "
                f"warnings {fast.get('recompile_limit_hits')}; max |frame diff| vs high (uint8) "
                f"{fast.get('max_abs_diff_vs_high')}; child exit {fast.get('child_exit')}"]
    caps = [(name, r) for name, r in rows.items() if r.get("part") == "caps"]
    if caps:
        out += ["", "## Simulated smaller GPUs", "",
                "A per-process memory cap of (card - the measured CUDA context); `auto` is given (total = card, "
                "free = card - context). Real cards report a little less in total (a '24 GB' card about 22-23.5 "
                f"GiB). Completion checks of {meta.get('few_steps')} steps, after the profile's own part warmed it "
                "up; s/step is not a headline figure here.", "",
                "| card | auto sees total / free GiB | auto picks (SVD) | auto (SDXL) | ran | status | steps | s/step "
                "| peak alloc GiB | peak reserved GiB | notes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in caps:
            out.append(f"| {name} | {fmt(r.get('total_gib'), 1)} / {fmt(r.get('free_gib'), 1)} | "
                       f"{fmt(r.get('auto'))} | {fmt(r.get('sdxl_auto'))} | {fmt(r.get('ran'))} | {r.get('status')}"
                       f" | {fmt(r.get('steps_run'))} | {fmt(r.get('s_per_step'), 3)} | "
                       f"{fmt(r.get('peak_alloc_gib'))} | {fmt(r.get('peak_reserved_gib'))} | {_why(r)} |")
    out += speed_options_markdown(rows, meta)
    s = rows.get("sdxl", {})
    out += ["", f"## SDXL still ({fmt(s.get('size')) or meta.get('size')}, profile high, after a 2-step warm-up)",
            "", "| status | build s | steps run | s/step (median) | decode s | total s | total s for "
            f"{meta.get('sdxl_steps')} steps | peak alloc GiB | peak reserved GiB | notes |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {s.get('status')} | {fmt(s.get('build_s'), 1)} | {fmt(s.get('steps_run'))} | "
            f"{fmt(s.get('s_per_step'), 3)} | {fmt(s.get('decode_s'))} | {fmt(s.get('total_s'), 1)} | "
            f"{fmt(s.get('total_est_s'), 1)} | {fmt(s.get('peak_alloc_gib'))} | {fmt(s.get('peak_reserved_gib'))}"
            f" | {_why(s)} |"]
    w, sw, pv = rows.get("warmup", {}), rows.get("switch", {}), rows.get("preview", {})
    out += ["", "## Warm-up and profile switches", "",
            f"- warm-up ('high', 2 steps, the first run): {w.get('status')}, {fmt(w.get('total_s'), 1)} s. {_why(w)}",
            f"- switch (a low run, then minimal, then high): {sw.get('status')}; inference tensors while in minimal: "
            f"{sw.get('inference_params')}. {_why(sw)} {sw.get('note') or ''}",
            f"- live preview (latents -> RGB every {pv.get('every_steps')} steps): {pv.get('status')}, "
            f"{fmt(pv.get('preview_ms'), 2)} ms per preview = {fmt(pv.get('pct_of_a_step'), 2)} % of a 'high' step,"
            f" {fmt(pv.get('pct_per_step'), 2)} % per step on average (limit 5 %); WebP encoding (UI thread) "
            f"{fmt(pv.get('encode_ms'), 1)} ms. {_why(pv)}"]
    k, h = rows.get("keyframes", {}), rows.get("high", {})
    out += ["", f"## Keyframes to video (ViBiDSampler) against image to video, 'high', {meta.get('size')}, "
            f"{meta.get('frames')} frames", "",
            "| mode | status | steps run | s/step | total s (est. for all steps) | peak alloc GiB | notes |",
            "|---|---|---|---|---|---|---|",
            f"| image to video ('high') | {h.get('status')} | {fmt(h.get('steps_run'))} | "
            f"{fmt(h.get('s_per_step'), 3)} | {fmt(h.get('total_est_s'), 1)} | {fmt(h.get('peak_alloc_gib'))} | "
            f"{_why(h)} |",
            f"| keyframes | {k.get('status')} | {fmt(k.get('steps_run'))} | {fmt(k.get('s_per_step'), 3)} | "
            f"{fmt(k.get('total_est_s'), 1)} | {fmt(k.get('peak_alloc_gib'))} | "
            + (f"s/step x{fmt(k['step_ratio_vs_high'])} of image to video" if k.get("step_ratio_vs_high") else "")
            + (f", peak memory x{fmt(k['peak_ratio_vs_high'])}" if k.get("peak_ratio_vs_high") else "")
            + f". {_why(k)} |"]
    ups = [(name, rows[name]) for name in UPSCALE_ROWS if name in rows]
    if ups:
        out += ["", f"## Upscaling (2x of {meta.get('size')}, 512-px tiles, after a warm-up frame)", "",
                "| network | status | parameters M | s/frame (median) | frames | peak alloc GiB | notes |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {name} | {r.get('status')} | {fmt(r.get('parameters_m'))} | {fmt(r.get('s_per_frame'), 3)} | "
                f"{fmt(r.get('frames'))} | {fmt(r.get('peak_alloc_gib'))} | {_why(r)} |" for name, r in ups]
    out += ["", "## Parts", "", "| part | status | started at +s | took s | note |", "|---|---|---|---|---|"]
    for name, p in data["parts"].items():
        out.append(f"| {name} | {p.get('status')} | {fmt(p.get('start_s'), 1)} | {fmt(p.get('took_s'), 1)} | "
                   f"{p.get('note', '')} |")
    if data["notes"] or data["errors"]:
        out += ["", "## Notes and errors", ""] + [f"- {n}" for n in data["notes"]]
        out += [f"- {k}: {v.strip().splitlines()[-1][:300]}" for k, v in data["errors"].items() if v]
    return "\n".join(out) + "\n"


def speed_options_markdown(rows: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The speed options against `high`: feature caching (speed-up, fidelity) and the 4-step lane (end to end)."""
    lane, fast = rows.get("lane", {}), rows.get("fast", {})
    cache_lines = []
    for index, (row, (interval, branch)) in enumerate(CACHE_ROWS.items()):
        c = rows.get(row, {})
        which = "DeepCache's SVD setting, the default" if index == 0 else "the earlier default"
        cache_lines.append(
            f"| feature cache (interval {interval}, branch {branch}: {which}) | {c.get('status')} | "
            f"{fmt(c.get('steps_run'))} | {fmt((c.get('app_timings') or {}).get('denoise_s'))} | "
            f"{fmt(c.get('total_s'), 1)} | {fmt(c.get('denoise_speedup'))} / {fmt(c.get('speedup_vs_high'))} | "
            f"{fmt(c.get('psnr_vs_high_db'), 1)} | {fmt(c.get('ssim_vs_high'), 3)} | "
            f"{fmt(c.get('peak_alloc_gib'))} | {_why(c)} |")
    return ["", f"## Speed options against 'high' ({meta.get('frames')} frames, {meta.get('size')})", "",
            "| option | status | steps | denoise s | total s | speed-up vs high (denoise / end to end) | PSNR dB vs "
            "high | SSIM vs high | peak alloc GiB | notes |", "|---|---|---|---|---|---|---|---|---|---|",
            *cache_lines,
            f"| AnimateLCM lane ({LANE_STEPS} steps, guidance 1) vs {meta.get('steps')}-step high | "
            f"{lane.get('status')} | {fmt(lane.get('steps_run'))} | "
            f"{fmt((lane.get('app_timings') or {}).get('denoise_s'))} | {fmt(lane.get('total_s'), 1)} | "
            f"{fmt(lane.get('denoise_speedup'))} / {fmt(lane.get('speedup_vs_high'))} | | | "
            f"{fmt(lane.get('peak_alloc_gib'))} | {_why(lane)} |",
            f"| AnimateLCM lane on 'fast' (compiled) | {fast.get('status') if 'lane_total_s' in fast else 'not run'}"
            f" | {LANE_STEPS if 'lane_total_s' in fast else ''} | | {fmt(fast.get('lane_total_s'), 1)} | | | | | "
            f"{fast.get('lane_note') or ''} |",
            "", "Random weights (no --svd-model): timings hold, PSNR/SSIM do not say how real weights fare (a random "
            "UNet lacks the slowly changing deep features caching relies on), and the lane's frames are noise."]


class Report:
    """results.json + summary.md in `out`, rewritten after every part; progress lines stamped with the clock and the
    seconds since `t0` (also appended to out/progress.log)."""

    def __init__(self, out: Path, t0: float, budget_s: float, tag: str = "") -> None:
        self.out, self.t0, self.budget_s, self.tag = out, t0, budget_s, tag
        out.mkdir(parents=True, exist_ok=True)
        (out / "progress.log").write_text("")
        self.data: dict[str, Any] = {"meta": {"budget_s": budget_s, "stopped": None, "done": False}, "rows": {},
                                     "parts": {}, "notes": [], "errors": {}, "headline": None}
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} +{self.elapsed():.1f}s] {self.tag}{message}"
        print(line, flush=True)
        with open(self.out / "progress.log", "a") as f:
            f.write(line + "\n")

    def note(self, message: str) -> None:
        self.data["notes"].append(message)
        self.log("note: " + message)

    def save(self) -> None:
        with self._lock:
            self.data["meta"]["wall_s"] = self.elapsed()
            for _ in range(5):  # the watchdog thread may catch a dict mid-update: then try again
                try:
                    derive(self.data)
                    texts = {"results.json": json.dumps(self.data, indent=2, default=str),
                             "summary.md": render_markdown(self.data)}
                    break
                except RuntimeError:
                    time.sleep(0.05)
            else:
                return
            for name, text in texts.items():
                tmp = self.out / (name + ".tmp")
                tmp.write_text(text)
                os.replace(tmp, self.out / name)

