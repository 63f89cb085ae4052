"""ZeroGPU: start-up under its rules, durations from the job's size, jobs cut or refused before they start, and a
no-op everywhere else."""

from __future__ import annotations

import pytest

from svd_demo.core.errors import InputError
from svd_demo.core.params import VideoParams
from svd_demo.studio import zerogpu


def test_detection_and_no_op_elsewhere(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not zerogpu.on_zerogpu()
    assert zerogpu.on_zerogpu({"SPACES_ZERO_GPU": "true"})

    def fn():
        return 1

    assert zerogpu.gpu(fn, lambda: 5) is fn  # `spaces` is never imported off ZeroGPU


def test_duration_grows_with_frames_steps_and_size():
    small = zerogpu.video_seconds(VideoParams(num_frames=14, num_inference_steps=25), 512, 288)
    big = zerogpu.video_seconds(VideoParams(num_frames=25, num_inference_steps=25), 1024, 576)
    more_steps = zerogpu.video_seconds(VideoParams(num_frames=25, num_inference_steps=50), 1024, 576)
    assert small < big < more_steps
    assert zerogpu.duration_for(big, 120) <= 120


def test_a_job_that_fits_is_untouched_one_that_does_not_is_cut_with_a_message():
    params = VideoParams(num_frames=25, num_inference_steps=25)
    assert zerogpu.fit_video(params, 512, 288, 120) == (params, None)
    cut, notice = zerogpu.fit_video(params, 1024, 576, 40)
    assert zerogpu.MIN_STEPS <= cut.num_inference_steps < 25
    assert f"{cut.num_inference_steps} denoising steps instead of 25" in notice
    assert zerogpu.video_seconds(cut, 1024, 576) * zerogpu.SAFETY <= 40


def test_a_job_that_cannot_fit_is_refused_before_it_starts():
    with pytest.raises(InputError, match="Lower the resolution or the number of frames"):
        zerogpu.fit_video(VideoParams(num_frames=50, num_inference_steps=25), 1024, 576, 30)
