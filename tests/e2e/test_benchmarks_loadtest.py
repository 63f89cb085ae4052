"""The load script: a short real run (the app in a subprocess, 4 clients x 3 requests) passes every check and stops
the app; the checks themselves catch what they are meant to catch; and the app is stopped when the run fails.

The full run (8 clients, 56 requests) is a separate command: see BENCHMARKS.md ("Load").
"""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.loadtest import (
    AppServer,
    Outcome,
    Request,
    check_gpu_overlaps,
    check_rss_growth,
    gpu_intervals,
    main,
    percentile,
    run_load,
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie still answers kill(0): it has exited, its parent has not reaped it yet
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_a_short_load_run_passes_every_check_and_stops_the_app(tiny_models_dir, tmp_path):
    started: list[AppServer] = []
    # A queue of 2 for 4 clients: some requests may be turned away, which must come back as queue-full, not hang.
    # 12 requests are too few to judge a leak (memory still settles after warm-up): only doubling fails here; the
    # full run checks 15%.
    report = run_load(tiny_models_dir, clients=4, requests_per_client=3, queue_size=2, output_ttl=15, timeout=120,
                      rss_every=2, max_rss_growth=1.0, workdir=tmp_path / "load", log=lambda text: None,
                      on_start=started.append)
    text = report.markdown()
    assert report.ok, text
    assert len(report.outcomes) == 12
    assert {o.status for o in report.outcomes} <= {"ok", "queue_full"}, text
    done = [o for o in report.outcomes if o.status == "ok"]
    assert len(done) >= 4, text
    assert all(o.message == "Queue is full! Please try again." for o in report.outcomes if o.status == "queue_full")
    assert {o.request.endpoint for o in done} >= {"/image_to_video", "/text_to_image", "/text_to_video"}, text
    assert report.gpu_sections >= 3 and report.min_gpu_gap_s is not None and report.min_gpu_gap_s > -0.02, text
    assert len({o.request.kwargs.get("seed") for o in report.outcomes} - {None}) >= 9  # distinct seeds
    assert len(report.rss_series) >= 4 and report.peak_rss_mb and report.peak_rss_mb > 100
    assert report.max_output_files > 0
    for endpoint in report.endpoints:
        assert f"| {endpoint} |" in text
    assert "requests/minute" in text and "p99" in text
    assert started and started[0].pid == report.server_pid and _gone(report.server_pid)


FAKE_APP = """
import http.server, subprocess, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like the app's ffmpeg children
open(sys.argv[sys.argv.index("--output-dir") + 1] + "/child.pid", "w").write(str(child.pid))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.mark.parametrize("failure", ["ctrl-c", "error"])
def test_the_app_and_its_children_are_stopped_when_the_run_fails(tmp_path, monkeypatch, failure):
    """A stand-in app (answers HTTP, has a child process, is no Gradio app) in place of app.py: fast and exact."""
    import benchmarks.loadtest as loadtest

    fake = tmp_path / "fake_app.py"
    fake.write_text(FAKE_APP)
    monkeypatch.setattr(loadtest, "APP", fake)
    (tmp_path / "models" / "svd").mkdir(parents=True)
    (tmp_path / "models" / "sdxl").mkdir()
    started: list[AppServer] = []

    def on_start(server: AppServer) -> None:
        started.append(server)
        if failure == "ctrl-c":
            raise KeyboardInterrupt

    expected = KeyboardInterrupt if failure == "ctrl-c" else Exception  # "error": the client finds no Gradio app
    with pytest.raises(expected):
        run_load(tmp_path / "models", clients=1, requests_per_client=1, workdir=tmp_path / "load",
                 log=lambda text: None, on_start=on_start, timeout=30)
    assert started and _gone(started[0].pid)
    child = int((tmp_path / "load" / "outputs" / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)  # the child is reaped by init once its parent is gone
    assert _gone(child)
    assert (tmp_path / "load" / "server.log").is_file()  # kept for inspection


def test_main_refuses_a_folder_without_models(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--models", str(tmp_path)])
    assert "tiny-models" in capsys.readouterr().err


def test_overlapping_gpu_sections_are_caught():
    serial = [(0.0, 1.0, "a"), (1.2, 2.0, "b"), (2.5, 3.0, "c")]
    failures, overlap, gap = check_gpu_overlaps(serial)
    assert not failures and gap == pytest.approx(0.2)
    failures, overlap, _ = check_gpu_overlaps([(0.0, 1.0, "a"), (0.5, 2.0, "b")])
    assert failures and overlap == pytest.approx(0.5)
    failures, _, _ = check_gpu_overlaps([(0.0, 10.0, "long"), (1.0, 2.0, "x"), (3.0, 4.0, "y")])
    assert len(failures) == 2  # both short runs sit inside the long one, not only the first
    assert not check_gpu_overlaps([(0.0, 1.0, "a"), (0.99, 2.0, "b")])[0]  # within the file-time resolution


def test_gpu_intervals_come_from_sidecar_timings_and_file_times():
    request = Request(0, 0, "/text_to_video", {})
    video = {"kind": "text_to_video", "_file": "v.json", "timings": {"gpu_section_s": 2.0, "encode_s": 0.5}}
    still = {"kind": "text_to_image", "_file": "s.json", "files": {"png": "s.png"}, "timings": {"gpu_section_s": 1.0}}
    outcome = Outcome(request, "ok", 4.0, 0.0, sidecars=[video, still])
    intervals, problems = gpu_intervals(outcome, {"v.json": 110.0, "s.png": 106.0})
    assert not problems
    assert sorted((s, e) for s, e, _ in intervals) == [(105.0, 106.0), (107.5, 109.5)]
    _, problems = gpu_intervals(outcome, {})
    assert len(problems) == 2  # a sidecar the watcher never saw is reported, not skipped


def test_rss_growth_check():
    steady = [(0, 500.0), (10, 900.0), (20, 950.0), (30, 940.0), (40, 960.0), (50, 955.0), (56, 958.0)]
    assert check_rss_growth(steady, 0.15) == (None, None)
    leaking = [(0, 500.0), (10, 900.0), (20, 950.0), (30, 1100.0), (40, 1200.0), (50, 1300.0), (56, 1400.0)]
    failure, _ = check_rss_growth(leaking, 0.15)
    assert failure and "950 MB" in failure and "1400 MB" in failure
    assert check_rss_growth([(0, 500.0), (2, 600.0)], 0.15)[1]  # too few samples: a note, not a verdict


def test_percentile():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0], 99) == 1.0
    assert percentile(list(map(float, range(101))), 90) == pytest.approx(90.0)
