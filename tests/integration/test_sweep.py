"""Parameter sweeps: the grid, failing fast, error rows, HTML escaping, the command line, prompts, keyframes items and
Ctrl+C on a real 2x2 sweep (conftest.py's done_sweep). The sweep's files, CSV and contact sheet, resuming, cancel
and runs through text to video and keyframes are end to end (tests/e2e/test_sweep_runs.py)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sweep_cases import GRID, read_csv, sweep_parser

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
from svd_demo.core.errors import InputError, UserFacingError
from svd_demo.core.params import SPECS, VideoParams

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
