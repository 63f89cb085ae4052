"""An instance's private folders (outputs, previews, Gradio's uploads): left behind by a killed instance, they go
when the next instance starts; a running instance's stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

from svd_demo.files.outputs import private_output_dir, remove_old_outputs

PREFIX = "svd-demo-test-private-"
MAKE_ONE = ("import sys, time; from svd_demo.files.outputs import private_output_dir; "
            f"print(private_output_dir(prefix={PREFIX!r}), flush=True); time.sleep(float(sys.argv[1]))")


@pytest.fixture
def shared_tmp(tmp_path, monkeypatch):
    """One temporary folder for this process and the instances it starts, as /tmp is for instances on a machine."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # forget the cached /tmp
    return tmp_path


def _instance(seconds: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", MAKE_ONE, str(seconds)], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def test_a_killed_instances_folder_goes_when_the_next_starts_and_a_running_ones_stays(shared_tmp):
    killed, killed_dir = _instance(60)
    with open(os.path.join(killed_dir, "clip.mp4"), "wb") as clip:
        clip.write(b"x" * 10)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    assert os.path.isdir(killed_dir)  # SIGKILL: no exit handler ran
    running, running_dir = _instance(60)
    try:
        assert not os.path.exists(killed_dir)  # the next instance to start removed it
        mine = private_output_dir(prefix=PREFIX)
        assert mine.is_dir() and oct(mine.stat().st_mode & 0o777) == "0o700"
        assert os.path.isdir(running_dir)  # locked by its instance, which runs
    finally:
        running.kill()
        running.wait(10)
    assert sorted(p.name for p in shared_tmp.iterdir()) == sorted([mine.name, os.path.basename(running_dir)])


def test_an_instance_that_ends_leaves_no_folder(shared_tmp):
    ended, ended_dir = _instance(0)
    assert ended.wait(10) == 0
    assert not os.path.exists(ended_dir)


def test_other_folders_in_the_temporary_folder_are_left_alone(shared_tmp):
    """Only folders made by `private_output_dir` are judged (they hold its lock file): a folder with a similar
    name stays."""
    other = shared_tmp / f"{PREFIX}someone-else"
    other.mkdir()
    (shared_tmp / "unrelated").mkdir()
    private_output_dir(prefix=PREFIX)
    assert other.is_dir() and (shared_tmp / "unrelated").is_dir()


def test_the_expiry_sweep_keeps_the_folders_lock(shared_tmp):
    folder = private_output_dir(prefix=PREFIX)
    for name in os.listdir(folder):
        os.utime(folder / name, (0, 0))
    old = folder / "old.mp4"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    assert remove_old_outputs(folder, 60) == 1
    assert os.listdir(folder)  # the lock: without it a later SIGKILL would leave this folder for good
