"""Parameter sweeps: the grid, a real 2x2 sweep on tiny models (files, CSV, contact sheet), resuming, failing fast,
error rows, HTML escaping, the command line, prompts (text to video) and the UI's compare-seeds helper."""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import FAST
from PIL import Image

from svd_demo.batch.sweep import (
    SweepItem,
    SweepRow,
    collect_images,
    expand_grid,
    parse_list,
    run_sweep,
    write_contact_sheet,
)
from svd_demo.cli.sweep import add_sweep_parser
from svd_demo.core.errors import GenerationCancelled, InputError, UserFacingError
from svd_demo.core.params import SPECS, VideoParams

TINY = {k: v for k, v in FAST.items() if k != "randomize_seed"}  # a sweep never randomizes
GRID = {**{k: [v] for k, v in TINY.items()}, "seed": [0, 1], "motion_bucket_id": [40, 200]}
ATTRIBUTE = re.compile(r'\b(src|href)="([^"]*)"')


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def snapshot(directory: Path) -> dict[str, float]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in sorted(directory.rglob("*")) if p.is_file()}


def sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m svd_demo")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    return parser


class NeverRuns:
    """A studio that fails the test if anything is generated."""

    def image_to_video(self, *args, **kwargs):
        raise AssertionError("a finished item was generated again")

    def text_to_video(self, *args, **kwargs):
        raise AssertionError("a finished item was generated again")


# ---------------------------------------------------------------------------------------------------------------
# The grid (no model)


def test_grid_is_the_cartesian_product_with_stable_ids(tmp_path):
    a, b = Path("one/a.png"), Path("one/b.png")
    items = expand_grid([a, b], {"seed": ["0", "1", "2"], "motion_bucket_id": ["40", "127"]})
    assert len(items) == 2 * 3 * 2
    assert len({item.id for item in items}) == 12 and all(re.fullmatch(r"[0-9a-f]{12}", i.id) for i in items)
    # images outermost, seeds innermost: neighbours on the sheet differ by seed
    assert [(i.image.name, i.params.motion_bucket_id, i.params.seed) for i in items[:4]] == [
        ("a.png", 40, 0), ("a.png", 40, 1), ("a.png", 40, 2), ("a.png", 127, 0)]
    assert items[0].varying == {"motion_bucket_id": 40, "seed": 0}
    assert all(i.params.randomize_seed is False for i in items)
    # Stable: the same image name and values give the same id, whatever the folder or the spelling of the value.
    again = expand_grid([Path("elsewhere/a.png"), b], {"motion_bucket_id": [40, 127.0], "seed": [0, 1, 2]})
    assert [i.id for i in again] == [i.id for i in items]
    # Anything that decides the video changes the id; output formats do not.
    base = expand_grid([a], {"seed": [0]})[0].id
    assert expand_grid([a], {"seed": [0], "num_frames": [14]})[0].id != base
    assert expand_grid([a], {"seed": [0]}, model="other/model")[0].id != base
    assert expand_grid([a], {"seed": [0]}, extra_formats="gif")[0].id == base
    # A value listed twice runs once; no values at all is one item with the defaults.
    assert len(expand_grid([a], {"seed": [0, "0", 0.0]})) == 1
    (item,) = expand_grid([a], {})
    assert item.params == VideoParams(randomize_seed=False)


def test_grid_with_prompts_adds_the_image_stage():
    items = expand_grid([Path("a.png")], {"seed": [0, 1], "aspect_mode": ["crop", "native"], "sdxl_steps": [2, 4]},
                        prompts=["waves", "clouds"], negative_prompt="blurry", model="svd", sdxl_model="sdxl")
    images = [i for i in items if i.image is not None]
    prompts = [i for i in items if i.prompt is not None]
    assert len(images) == 2 * 2  # seeds x aspect modes; the image stage does not apply
    assert len(prompts) == 2 * 2 * 2  # prompts x seeds x sdxl steps; aspect_mode does not apply (still at size)
    first = prompts[0].image_params
    assert (first.prompt, first.negative_prompt, first.sdxl_steps, first.seed) == ("waves", "blurry", 2, 0)
    assert first.randomize_seed is False and first.resolution == prompts[0].params.resolution
    with pytest.raises(InputError, match="sdxl_steps only apply to text-to-video"):
        expand_grid([Path("a.png")], {"sdxl_steps": [2]})


@pytest.mark.parametrize(("values", "named"), [
    ({"num_frames": ["0"]}, "`num_frames` must be between 2 and 50"),
    ({"motion_bucket_id": ["40", "300"]}, "`motion_bucket_id`"),
    ({"aspect_mode": ["crop", "wide"]}, "`aspect_mode` must be one of crop, pad, native"),
    ({"seed": ["-1"]}, "`seed`"),
    ({"noise_aug_strength": ["nan"]}, "`noise_aug_strength`"),
    ({"min_guidance_scale": ["5"]}, "must not be larger than `max_guidance_scale`"),
    ({"randomize_seed": [True]}, "never draws random seeds"),
    ({"steps": ["2"]}, "Unknown sweep parameter"),
])
def test_bad_values_are_refused_naming_the_parameter(values, named):
    with pytest.raises(InputError, match=re.escape(named)):
        expand_grid([Path("a.png")], values)


def test_lists_and_image_folders(tmp_path):
    assert parse_list("--seeds", ["0, 1,2", "7"]) == ["0", "1", "2", "7"]
    with pytest.raises(InputError, match="--seeds has an empty value"):
        parse_list("--seeds", "0,,1")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ["b.jpg", "a.PNG", "c.webp", ".hidden.png", "notes.txt"]:
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    extra = tmp_path / "z.tiff"
    extra.write_bytes(b"x")
    found = collect_images([folder, extra, folder / "b.jpg"])
    assert [p.name for p in found] == ["a.PNG", "b.jpg", "c.webp", "z.tiff"]  # sorted, each once, files kept
    with pytest.raises(InputError, match="does not exist"):
        collect_images([tmp_path / "missing"])
    with pytest.raises(InputError, match="holds no images"):
        collect_images([folder / "sub"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="Two images are named 'b.jpg'"):
        expand_grid(collect_images([folder, tmp_path / "other"]), {})


def test_a_bad_value_fails_before_anything_runs(photo, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "svd_demo", "sweep", "--images", str(photo), "--seeds", "0,1",
                             "--num-frames", "14,0", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "`num_frames` must be between 2 and 50; got '0'" in result.stderr
    assert not out.exists()


def test_building_the_parser_imports_no_diffusion_stack():
    code = ("import sys, argparse, svd_demo.cli.sweep as s; p = argparse.ArgumentParser(); "
            "s.add_sweep_parser(p.add_subparsers()); "
            "print(sorted(m for m in ('torch', 'diffusers', 'gradio', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_parameter_takes_a_list():
    parser = argparse.ArgumentParser(prog="python -m svd_demo")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_sweep_parser(subparsers)
    args = parser.parse_args(["sweep", "--images", "x.png", "--out", "o", "--seeds", "0,1", "--seed", "2",
                              "--aspect-mode", "crop,native", "--num-frames", "14,25", "--loop", "none"])
    assert args.seed == ["0,1", "2"] and args.aspect_mode == ["crop,native"] and args.num_frames == ["14,25"]
    assert args.func.__name__ == "run_sweep_command"
    flags = set(subparsers.choices["sweep"]._option_string_actions)
    for name in SPECS:
        if name not in ("seed", "randomize_seed"):
            assert "--" + name.replace("_", "-") in flags
    assert {"--seeds", "--seed", "--prompts", "--svd-model", "--dry-run"} <= flags
    assert "--randomize-seed" not in flags


# ---------------------------------------------------------------------------------------------------------------
# A real sweep on tiny models


@pytest.fixture(scope="module")
def done_sweep(studio, tmp_path_factory):
    """A 2 seeds x 2 motion buckets sweep of one photo, run once for the tests below (they copy before changing)."""
    photo = tmp_path_factory.mktemp("in") / "photo.png"
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(photo)
    out = tmp_path_factory.mktemp("sweep")
    items = expand_grid([photo], GRID, model=studio.settings.svd_model)
    lines: list[str] = []
    started = time.perf_counter()
    report = run_sweep(studio, items, out, progress=lines.append)
    return out, items, report, lines, time.perf_counter() - started


@pytest.mark.slow
def test_sweep_writes_videos_csv_and_contact_sheet(done_sweep):
    out, items, report, lines, seconds = done_sweep
    print(f"\n2x2 sweep: {seconds:.1f} s", *lines, sep="\n")  # shown with -s
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(
        f"{item.id}{suffix}" for item in items for suffix in (".mp4", ".json"))
    assert [row.status for row in report.rows] == ["ok"] * 4
    assert len(lines) == 4 and lines[0].startswith(f"[1/4] {items[0].id} photo.png motion_bucket_id=40 seed=0: ok")
    assert "4 ran, 0 skipped" in report.summary

    rows = read_csv(out / "results.csv")
    assert len(rows) == 4
    assert list(rows[0])[:3] == ["id", "image", "seed"] and "prompt" not in rows[0]
    for column in ["resolution", "aspect_mode", "num_frames", "num_inference_steps", "motion_bucket_id", "fps",
                   "noise_aug_strength", "min_guidance_scale", "max_guidance_scale", "decode_chunk_size",
                   "playback_fps", "loop", "model", "total_s", "denoise_s", "decode_s", "encode_s",
                   "peak_memory_mb", "memory_kind", "status", "video"]:
        assert column in rows[0], column
    assert [(r["seed"], r["motion_bucket_id"]) for r in rows] == [("0", "40"), ("1", "40"), ("0", "200"),
                                                                    ("1", "200")]
    for row, item in zip(rows, items, strict=True):
        assert row["id"] == item.id and row["image"] == "photo.png" and row["status"] == "ok"
        assert row["num_frames"] == "4" and row["fps"] == "7"  # resolved from the model, not blank
        assert float(row["total_s"]) > 0 and float(row["denoise_s"]) > 0 and float(row["encode_s"]) > 0
        assert row["memory_kind"] == "process_peak_rss" and float(row["peak_memory_mb"]) > 50
        assert row["video"] == f"videos/{item.id}.mp4"

    sheet = (out / "index.html").read_text()
    assert sheet.count("<video ") == 4
    sources = [value for name, value in ATTRIBUTE.findall(sheet) if name == "src"]
    assert sources == [f"videos/{item.id}.mp4" for item in items]
    assert all((out / src).is_file() for src in sources)
    for name, value in ATTRIBUTE.findall(sheet):  # self-contained: every link is relative, inside the folder
        assert "//" not in value and not value.startswith("/") and ":" not in value, (name, value)
    assert "http" not in sheet and "@import" not in sheet
    for tag in ["controls", "loop", "muted", "autoplay", "playsinline"]:
        assert all(tag in video for video in re.findall(r"<video [^>]*>", sheet))
    assert "<b>motion_bucket_id</b> 200" in sheet and "<b>seed</b> 1" in sheet
    assert "<b>num_frames</b>" not in sheet and "num_frames=4" in sheet  # fixed values are listed once


@pytest.mark.slow
def test_a_second_run_skips_everything(done_sweep, tmp_path):
    out, items, first, _, _ = done_sweep
    again = tmp_path / "again"
    shutil.copytree(out, again)
    before = snapshot(again)
    started = time.perf_counter()
    lines: list[str] = []
    report = run_sweep(NeverRuns(), items, again, progress=lines.append)
    assert time.perf_counter() - started < 5  # about 0.2 s; generous for a busy machine
    assert [row.status for row in report.rows] == ["skipped"] * 4
    assert all(line.endswith("skipped (already done)") for line in lines)
    after = snapshot(again)
    assert after.keys() == before.keys()  # no new files
    assert {k: v for k, v in after.items() if k.startswith("videos")} == {
        k: v for k, v in before.items() if k.startswith("videos")}  # nothing rewritten
    rows, original = read_csv(again / "results.csv"), read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["skipped"] * 4
    strip = ("status",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in original]  # still complete, from the sidecars
    assert (again / "index.html").read_text().count("<video ") == 4


@pytest.mark.slow
def test_cancel_stops_before_the_next_item_and_keeps_the_sheet(done_sweep, tmp_path):
    out, items, _, _, _ = done_sweep
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "results.csv").unlink()
    extra = expand_grid([items[0].image], {**GRID, "seed": [9]})  # 2 more items, never started
    stop = threading.Event()
    stop.set()
    with pytest.raises(GenerationCancelled, match="after 4 of 6 items"):
        run_sweep(NeverRuns(), [*items, *extra], again, cancel=stop)
    assert [r["status"] for r in read_csv(again / "results.csv")] == ["skipped"] * 4 + ["pending"] * 2


@pytest.mark.slow
def test_an_interrupted_item_runs_again_through_the_cli(done_sweep, studio, tmp_path, capsys, monkeypatch):
    out, items, _, _, _ = done_sweep
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "videos" / f"{items[3].id}.json").unlink()  # killed between the MP4 and its sidecar
    photo = resumed / "photo.png"
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(photo)
    argv = ["sweep", "--images", str(photo), "--out", str(resumed), "--seeds", "0,1", "--motion-bucket-id", "40",
            "--motion-bucket-id", "200", "--resolution", "256", "--num-frames", "4", "--num-inference-steps", "2",
            "--svd-model", studio.settings.svd_model, "--device", "cpu"]
    made = []  # reuse the session's studio (its pipeline is loaded), but check what the command built it from
    monkeypatch.setattr("svd_demo.studio.studio.Studio", lambda settings: made.append(settings) or studio)
    args = sweep_parser().parse_args(argv)
    assert args.func(args) == 0
    assert made[0].svd_model == studio.settings.svd_model and made[0].device == "cpu"
    printed = capsys.readouterr().out
    assert "Sweep: 4 items (1 images, 0 prompts, 2 motion_bucket_id x 2 seed)" in printed
    lines = printed.splitlines()
    assert [line.endswith("skipped (already done)") for line in lines[1:4]] == [True] * 3
    assert lines[4].startswith(f"[4/4] {items[3].id}") and ": ok in" in lines[4]
    assert "1 ran, 3 skipped" in printed
    assert (resumed / "videos" / f"{items[3].id}.json").is_file()
    assert [r["status"] for r in read_csv(resumed / "results.csv")] == ["skipped"] * 3 + ["ok"]


def test_failed_items_become_error_rows_and_names_are_escaped(studio, photo, tmp_path):
    evil = tmp_path / '<img src=x onerror="alert(1)">.png'
    evil.write_bytes(b"not an image")
    items = expand_grid([evil, photo], {**GRID, "motion_bucket_id": [40], "seed": [0]})
    lines: list[str] = []
    report = run_sweep(studio, items[:1], tmp_path / "out", progress=lines.append)  # fails while loading: fast
    assert [row.status for row in report.rows] == ["error"]
    assert "could not be read as an image" in report.rows[0].error
    assert lines[0].startswith("[1/1]") and ": error: " in lines[0]
    (row,) = read_csv(tmp_path / "out" / "results.csv")
    assert row["status"].startswith("error: ") and row["image"] == evil.name and row["total_s"] == ""
    sheet = (tmp_path / "out" / "index.html").read_text()
    assert "<img" not in sheet and "onerror=\"" not in sheet
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.png" in sheet
    assert "<video " not in sheet  # a failed item shows its message, not a broken player
    # A rerun retries it (an error is not "done").
    assert [r.status for r in run_sweep(studio, items[:1], tmp_path / "out").rows] == ["error"]

    class Broken:
        def image_to_video(self, *args, **kwargs):
            raise RuntimeError("a bug, not the user's fault")

    with pytest.raises(RuntimeError, match="a bug"):  # only UserFacingError becomes a row
        run_sweep(Broken(), items[1:], tmp_path / "out2")


def test_the_sheet_escapes_every_value(tmp_path):
    nasty = '"><script>alert(1)</script>'
    item = SweepItem(id="abc123", params=VideoParams(randomize_seed=False), image=Path(f"{nasty}.png"))
    other = SweepItem(id="def456", params=VideoParams(randomize_seed=False, seed=2), image=Path(f"{nasty}.png"),
                      varying={"seed": 2})
    (tmp_path / "videos").mkdir()
    rows = [SweepRow(item=item, status="error", error=nasty),
            SweepRow(item=other, status="ok", parameters={"seed": 2, "loop": nasty, "model": nasty},
                     video=tmp_path / "videos" / "def456.mp4")]
    sheet = write_contact_sheet(rows, tmp_path).read_text()
    assert "<script>alert" not in sheet and '">' + "<script" not in sheet
    assert sheet.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # heading, error, a parameter value
    assert 'src="videos/def456.mp4"' in sheet


# ---------------------------------------------------------------------------------------------------------------
# Prompts and the UI helper


def test_prompts_need_text_to_video(tmp_path):
    items = expand_grid([], {"seed": [0]}, prompts=["waves"])

    class ImagesOnly:
        def image_to_video(self, *args, **kwargs):
            raise AssertionError("nothing may run")

    with pytest.raises(UserFacingError, match="--prompts needs text to video"):
        run_sweep(ImagesOnly(), items, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_prompt_items_go_through_text_to_video(studio, tiny_models_dir, tmp_path):
    if not callable(getattr(studio, "text_to_video", None)):
        pytest.skip("this Studio has no text_to_video yet")
    sdxl = str(tiny_models_dir / "sdxl")
    items = expand_grid([], {**{k: [v] for k, v in TINY.items()}, "seed": [3], "sdxl_steps": [2]},
                        prompts=["a lighthouse <b>at</b> dusk"], model=studio.settings.svd_model, sdxl_model=sdxl)
    report = run_sweep(studio, items, tmp_path, sdxl_model=sdxl)
    assert [row.status for row in report.rows] == ["ok"], report.rows[0].error
    item = items[0]
    assert {p.name for p in (tmp_path / "videos").iterdir()} == {
        f"{item.id}.mp4", f"{item.id}.json", f"{item.id}-still.png", f"{item.id}-still.json"}
    (row,) = read_csv(tmp_path / "results.csv")
    assert row["prompt"] == "a lighthouse <b>at</b> dusk" and row["sdxl_steps"] == "2" and row["seed"] == "3"
    assert row["sdxl_model"] == sdxl and float(row["sdxl_s"]) > 0
    sheet = (tmp_path / "index.html").read_text()
    assert "Prompt: a lighthouse &lt;b&gt;at&lt;/b&gt; dusk" in sheet and sheet.count("<video ") == 1
    assert [r.status for r in run_sweep(NeverRuns(), items, tmp_path).rows] == ["skipped"]


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (0, 2, 4)] if len(hex_colour) == 6 else \
        [int(c * 2, 16) / 255 for c in hex_colour]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_contact_sheet_links_are_readable_on_its_dark_background():
    from svd_demo.batch.sweep import _CSS

    background = re.search(r"body\{[^}]*background:#(\w+)", _CSS).group(1)
    for selector in ("a", "a:visited"):
        colour = re.search(rf"(?:^|}}|\n){re.escape(selector)}\{{[^}}]*color:#(\w+)", _CSS)
        assert colour, f"the contact sheet sets no colour for {selector}: the browser's dark blue on dark grey"
        lighter, darker = sorted((_luminance(colour.group(1)), _luminance(background)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5  # WCAG AA for body text


def test_a_sweep_on_a_cpu_starts_from_the_quick_settings(studio, tmp_path, capsys, monkeypatch):
    """As `generate` does: where no flag gives a size, frames or steps, a CPU (or random weights) sweeps at the
    quick settings, and says so; a flag wins."""
    photo = tmp_path / "photo.png"
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(photo)
    argv = ["sweep", "--images", str(photo), "--out", str(tmp_path / "out"), "--seeds", "0", "--num-frames", "8",
            "--svd-model", studio.settings.svd_model, "--device", "cpu"]
    swept = []
    monkeypatch.setattr("svd_demo.cli.sweep.run_sweep", lambda studio, items, *a, **k: swept.extend(items) or 1 / 0)
    args = sweep_parser().parse_args(argv)
    with pytest.raises(ZeroDivisionError):
        args.func(args)
    assert "note: quick settings for this machine" in capsys.readouterr().err
    params = swept[0].params
    assert (params.resolution, params.num_inference_steps, params.num_frames) == (256, 4, 8)


class InterruptedByCtrlC:
    """A studio whose run is interrupted by Ctrl-C (in the waiting thread) while its device worker computes."""

    def __init__(self) -> None:
        self.calls, self.cancel = 0, None

    def image_to_video(self, image, params, *, cancel=None, **kwargs):
        self.calls += 1
        self.cancel = cancel
        raise KeyboardInterrupt


def test_ctrl_c_stops_the_item_on_the_device_and_the_csv_lists_every_item(done_sweep, tmp_path):
    out, items, _, _, _ = done_sweep
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "videos" / f"{items[1].id}.json").unlink()  # item 2 will run again, and be interrupted
    studio = InterruptedByCtrlC()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(studio, items, again)
    assert studio.calls == 1 and studio.cancel is not None and studio.cancel.is_set()  # the worker is told to stop
    statuses = [r["status"] for r in read_csv(again / "results.csv")]
    assert statuses == ["skipped", "interrupted", "pending", "pending"]


def test_keyframes_items_have_their_own_ids_and_refuse_bad_settings(tmp_path):
    start, end = tmp_path / "start.png", tmp_path / "end.png"
    for path in (start, end):
        Image.new("RGB", (64, 48)).save(path)
    plain = expand_grid([start], {"seed": [0]})
    keyed = expand_grid([start], {"seed": [0]}, end_image=end, keyframe_guidance=["1", "2.5"])
    looped = expand_grid([start], {"seed": [0]}, loop_to_start=True)
    assert [item.keyframes for item in plain] == [None]
    assert [(i.keyframes.end_image, i.keyframes.keyframe_guidance) for i in keyed] == [(end, 1.0), (end, 2.5)]
    assert keyed[1].varying == {"keyframe_guidance": 2.5}
    assert looped[0].keyframes.loop_to_start and looped[0].keyframes.end_image is None
    assert len({item.id for item in [*plain, *keyed, *looped]}) == 4
    with pytest.raises(InputError, match=r"`keyframe_guidance` must be between 0 and 10"):
        expand_grid([start], {}, end_image=end, keyframe_guidance=["11"])
    with pytest.raises(InputError, match=r"--end-image FILE or --loop-to-start"):
        expand_grid([start], {}, keyframe_guidance=["2"])
    with pytest.raises(InputError, match=r"'.*missing.png' \(--end-image\) does not exist"):
        expand_grid([start], {}, end_image=tmp_path / "missing.png")


@pytest.mark.slow
def test_a_keyframes_sweep_runs_through_the_studio(studio, tmp_path):
    import json

    start, end = tmp_path / "start.png", tmp_path / "end.png"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(start)
    Image.new("RGB", (400, 300), (30, 30, 200)).save(end)
    items = expand_grid([start], {"seed": [1], "num_frames": [4], "num_inference_steps": [2], "resolution": [256]},
                        end_image=end, keyframe_guidance=["1", "2"], model=studio.settings.svd_model)
    report = run_sweep(studio, items, tmp_path / "out")
    assert [row.status for row in report.rows] == ["ok", "ok"]
    records = [json.loads(row.sidecar.read_text()) for row in report.rows]
    assert [r["kind"] for r in records] == ["keyframes_to_video"] * 2
    assert [r["parameters"]["keyframe_guidance"] for r in records] == [1.0, 2.0]
    with report.csv.open() as file:
        table = list(csv.DictReader(file))
    assert [(r["end_image"], r["keyframe_guidance"], r["loop_to_start"]) for r in table] == [
        ("end.png", "1.0", "False"), ("end.png", "2.0", "False")]
