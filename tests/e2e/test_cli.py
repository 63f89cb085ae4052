"""The command line: `python -m svd_demo ...` in a subprocess, as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import read_frames


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svd_demo", *args], capture_output=True, text=True, timeout=300)


def test_generate_twice_with_the_same_seed_gives_the_same_frames_then_extend(tiny_models_dir, photo, tmp_path):
    common = ["generate", "--image", str(photo), "--svd-model", str(tiny_models_dir / "svd"), "--resolution", "256",
              "--num-frames", "4", "--num-inference-steps", "2", "--seed", "5", "--device", "cpu"]
    first = cli(*common, "--out", str(tmp_path / "a.mp4"), "--extra-formats", "gif")
    assert first.returncode == 0, first.stderr
    second = cli(*common, "--out", str(tmp_path / "b.mp4"))
    assert second.returncode == 0, second.stderr
    assert np.array_equal(read_frames(tmp_path / "a.mp4"), read_frames(tmp_path / "b.mp4"))
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["parameters"]["seed"] == 5 and record["files"]["gif"] == "a.gif"
    assert (tmp_path / "a.gif").exists()

    longer = cli("extend", "--video", str(tmp_path / "a.mp4"), *common[3:], "--out", str(tmp_path / "c.mp4"))
    assert longer.returncode == 0, longer.stderr
    assert len(read_frames(tmp_path / "c.mp4")) == 4 + 3
    assert json.loads((tmp_path / "c.json").read_text())["source"]["name"] == "a.mp4"


def test_bad_input_exits_with_a_clear_message(tiny_models_dir, photo, tmp_path):
    result = cli("generate", "--image", str(photo), "--out", str(tmp_path / "x.mp4"), "--num-frames", "0",
                 "--svd-model", str(tiny_models_dir / "svd"))
    assert result.returncode == 2
    assert "`num_frames` must be between 2 and 50" in result.stderr
    assert not (tmp_path / "x.mp4").exists()
    result = cli("generate", "--image", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_help_lists_every_api_parameter():
    out = " ".join(cli("generate", "--help").stdout.split())
    for flag in ["--num-frames", "--num-inference-steps", "--motion-bucket-id", "--fps", "--noise-aug-strength",
                 "--min-guidance-scale", "--max-guidance-scale", "--decode-chunk-size", "--playback-fps",
                 "--aspect-mode", "--loop", "--seed", "--randomize-seed", "--resolution", "--svd-model"]:
        assert flag in out
    assert "Range 0-4294967295." in out and "e+" not in out  # the seed range, as a number to type


def test_interpolate_subcommand_does_not_import_the_diffusion_stack():
    code = ("import sys, svd_demo.cli.commands as c; p = c.build_parser(); "
            "print(sorted(m for m in ('torch', 'diffusers', 'gradio', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_subcommand_builds_only_its_own_parser():
    # svd_demo.core.params (a few ms, no third-party import) is allowed: it declares the interpolation's limits too.
    code = ("import sys, svd_demo.cli.commands as c; c.build_parser('interpolate'); "
            "print(sorted(m for m in ('svd_demo.batch.sweep', 'svd_demo.core.settings') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # start-up is part of what the interpolation benchmark times
    listed = " ".join(cli("--help").stdout.split())
    assert all(name in listed for name in ("generate", "text-to-video", "sweep", "interpolate", "tiny-models"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2, reason="Linux, 2+ cores")
def test_interpolate_subcommand_starts_no_idle_blas_threads():
    # OpenBLAS starts one spinning thread per extra core when numpy is imported; interpolation does no BLAS work.
    code = ("import os, sys, svd_demo.cli.commands as c\n"
            "if sys.argv[1] == 'interpolate':\n"
            "    try: c.main(['interpolate', '--help'])\n"
            "    except SystemExit: pass\n"
            "import numpy\nprint(len(os.listdir('/proc/self/task')))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}

    def threads(command: str) -> int:
        return int(subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True, check=True,
                                  env=env).stdout.split()[-1])

    assert threads("interpolate") == 1
    assert threads("other") > 1  # what the setting avoids (a BLAS without threads would fail here, not silently pass)


def test_interpolate_subcommand_imports_no_module_it_does_not_use(tmp_path):
    # Start-up is a large part of a short clip's run (and of what its benchmark times): numpy's masked arrays
    # (40 ms), which `np.median` loads for its NaN check, have no use here.
    from PIL import Image

    src = tmp_path / "frames"
    src.mkdir()
    texture = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    for i in range(4):  # a texture moving 2 px a frame: every pair goes through the flow and the cut test
        Image.fromarray(np.ascontiguousarray(texture[:, 2 * i:2 * i + 64])).save(src / f"f{i}.png")
    code = ("import sys, svd_demo.cli.commands as c\n"
            f"c.main(['interpolate', {str(src)!r}, '--factor', '3', '--out', {str(tmp_path / 'out')!r}, '--quiet'])\n"
            "print(sorted(m for m in ('numpy.ma', 'torch', 'moviepy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert len(list((tmp_path / "out").glob("*.png"))) == 10


def test_interpolate_subcommand_folder_output(tmp_path):
    from PIL import Image

    src = tmp_path / "frames"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (i * 80, 40, 90)).save(src / f"f{i}.png")
    result = cli("interpolate", str(src), "--factor", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 5  # 2N-1, originals included
    # Piped (not a terminal), progress is whole lines: a bare carriage return runs them together in a log (bytes:
    # text mode would turn each carriage return into a newline).
    piped = subprocess.run([sys.executable, "-m", "svd_demo", "interpolate", str(src), "--factor", "2", "--out",
                            str(tmp_path / "again")], capture_output=True, timeout=300)
    assert b"\r" not in piped.stderr and b"5/5 frames\n" in piped.stderr


def test_settings_from_a_video_reproduce_it_and_typed_flags_win(tiny_models_dir, photo, tmp_path):
    first = cli("generate", "--image", str(photo), "--svd-model", str(tiny_models_dir / "svd"), "--resolution", "256",
                "--num-frames", "4", "--num-inference-steps", "2", "--seed", "11", "--motion-bucket-id", "33",
                "--out", str(tmp_path / "a.mp4"))
    assert first.returncode == 0, first.stderr
    # No model flag: the model comes from the file too.
    again = cli("generate", "--image", str(photo), "--settings-from", str(tmp_path / "a.mp4"),
                "--out", str(tmp_path / "b.mp4"))
    assert again.returncode == 0, again.stderr
    assert "note: settings from a.mp4 (image to video, seed 11)" in again.stderr
    assert np.array_equal(read_frames(tmp_path / "a.mp4"), read_frames(tmp_path / "b.mp4"))
    changed = cli("generate", "--image", str(photo), "--settings-from", str(tmp_path / "b.json"),
                  "--num-frames", "3", "--out", str(tmp_path / "c.mp4"))
    assert changed.returncode == 0, changed.stderr
    record = json.loads((tmp_path / "c.json").read_text())["parameters"]
    assert (record["num_frames"], record["seed"], record["motion_bucket_id"]) == (3, 11, 33)

    refused = cli("generate", "--image", str(photo), "--settings-from", str(photo), "--out", str(tmp_path / "d.mp4"))
    assert refused.returncode == 2 and "`settings_from` must be a .mp4, .webm or .json file" in refused.stderr
    assert not (tmp_path / "d.mp4").exists()
    no_prompt = cli("text-to-video", "--settings-from", str(tmp_path / "a.json"), "--out", str(tmp_path / "e.mp4"))
    assert no_prompt.returncode == 2 and "a.json was not made from a prompt: pass --prompt" in no_prompt.stderr


def test_keyframes_between_two_photos_and_as_a_loop(tiny_models_dir, photo, tmp_path):
    from PIL import Image

    end = tmp_path / "end.png"
    Image.new("RGB", (300, 400), (20, 90, 200)).save(end)  # portrait: framed to the start photo's 16:9
    common = ["--svd-model", str(tiny_models_dir / "svd"), "--resolution", "256", "--num-frames", "4",
              "--num-inference-steps", "2", "--seed", "8", "--device", "cpu"]
    made = cli("keyframes", str(photo), str(end), *common, "--keyframe-guidance", "1.5", "--out",
               str(tmp_path / "k.mp4"))
    assert made.returncode == 0, made.stderr
    assert "framed to the start photo's 256x144 with the same aspect mode (crop)" in " ".join(made.stderr.split())
    record = json.loads((tmp_path / "k.json").read_text())
    assert record["kind"] == "keyframes_to_video" and record["parameters"]["keyframe_guidance"] == 1.5
    assert len(read_frames(tmp_path / "k.mp4")) == 4
    refused = cli("keyframes", str(photo), *common, "--out", str(tmp_path / "x.mp4"))
    assert refused.returncode == 2 and "Give the END photo" in refused.stderr and "--loop" in refused.stderr
    looped = cli("keyframes", str(photo), "--loop", *common, "--out", str(tmp_path / "loop.mp4"))
    assert looped.returncode == 0, looped.stderr
    parameters = json.loads((tmp_path / "loop.json").read_text())["parameters"]
    assert parameters["loop_to_start"] is True and parameters["end_sha256"] == parameters["start_sha256"]
    again = cli("keyframes", str(photo), str(end), "--settings-from", str(tmp_path / "k.mp4"), "--out",
                str(tmp_path / "again.mp4"), "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert np.array_equal(read_frames(tmp_path / "k.mp4"), read_frames(tmp_path / "again.mp4"))
