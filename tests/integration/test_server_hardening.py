"""The server's own guarantees, in the style of Gradio's route tests: limits, file access, errors without internals."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from helpers import FAST, free_port, launched
from PIL import Image

from svd_demo.core.errors import InputError
from svd_demo.core.settings import Settings, is_public, login, parse_settings
from svd_demo.web.ui import build_demo, launch_kwargs


@pytest.fixture(scope="module")
def hardened(studio, tiny_settings, tmp_path_factory):
    with launched(tiny_settings, studio, tmp_path_factory.mktemp("gradio-hardening"), max_file_size="200kb") as url:
        yield url


def test_an_upload_over_the_size_limit_gets_413(hardened, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 400_000)
    with open(big, "rb") as f:
        response = httpx.post(f"{hardened}gradio_api/upload", files={"files": ("big.png", f, "image/png")})
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd"])
def test_files_outside_the_app_are_forbidden(hardened, path):
    response = httpx.get(f"{hardened}gradio_api/file={path}")
    assert response.status_code in (403, 404)
    assert "root:" not in response.text


def test_no_handler_returns_a_path_the_user_sent(hardened, photo, studio):
    client = Client(hardened, verbose=False)
    video, seed, prepared, notes, files, _preview = client.predict(image=handle_file(str(photo)), **FAST,
                                                                   api_name="/image_to_video")
    for returned in [video, prepared, *files]:
        assert str(photo) not in returned and photo.name not in returned


def test_an_unexpected_error_is_short_and_shows_no_internals(hardened, photo, studio, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail /srv/weights/key.bin")

    monkeypatch.setattr(studio, "image_to_video", broken)
    client = Client(hardened, verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(image=handle_file(str(photo)), **FAST, api_name="/image_to_video")
    assert "Something went wrong on the server (error " in str(info.value)
    assert "secret" not in str(info.value) and "Traceback" not in str(info.value)


def test_user_text_in_messages_is_escaped(hardened, tmp_path):
    bad = tmp_path / "<img src=x onerror=alert(1)>.png"
    bad.write_text("not an image")
    client = Client(hardened, verbose=False)
    with pytest.raises((AppError, ValidationError)) as info:  # refused before the queue: its header is read there
        client.predict(image=handle_file(str(bad)), **FAST, api_name="/image_to_video")
    assert "<img" not in str(info.value)


def test_defaults_are_private_and_login_comes_from_the_environment(tmp_path):
    settings = parse_settings([], {})
    assert (settings.host, settings.share, login(settings)) == ("127.0.0.1", False, None)
    assert not is_public(settings)
    assert login(parse_settings([], {"SVD_DEMO_AUTH": "ann:s3cret:x"})) == ("ann", "s3cret:x")
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        login(Settings(auth="nopassword"))
    with_auth = replace(parse_settings([], {"SVD_DEMO_AUTH": "ann:pw"}), output_dir=tmp_path)
    assert launch_kwargs(with_auth)["auth"] == ("ann", "pw")
    with pytest.raises(ValueError, match="studio.settings"):  # the studio's own output folder, or nothing served
        launch_kwargs(settings)


def test_a_password_protects_the_api(tiny_settings, studio, tmp_path):
    from dataclasses import replace

    settings = replace(tiny_settings, auth="ann:pw", port=free_port())
    demo = build_demo(settings, studio)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(settings))
    try:
        assert httpx.get(f"{url}gradio_api/info").status_code in (401, 403)
        Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
        client = Client(url, auth=("ann", "pw"), verbose=False)
        assert "/image_to_video" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    finally:
        demo.close()


BURST = 16  # requests fired at once: well above the queue size below, few enough for 2 CPU cores


def test_a_burst_never_gets_more_than_queue_size_waiting(tiny_settings, studio, tmp_path, photo, monkeypatch):
    """Gradio checks the queue size before it awaits the event's validator and adds the event after: a burst all
    passed the check (16 of 16 accepted with --queue-size 2)."""
    release = threading.Event()

    def held(*args, **kwargs):  # the GPU job: busy until the burst is over, so everything else has to wait
        release.wait(60)
        raise InputError("released")

    monkeypatch.setattr(studio, "image_to_video", held)
    settings = replace(tiny_settings, queue_size=2)
    with launched(settings, studio, tmp_path / "gradio") as url:
        client = Client(url, verbose=False)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/image_to_video"]
        upload = httpx.post(f"{url}gradio_api/upload", files=[("files", ("p.png", photo.read_bytes()))]).json()[0]
        values = {**FAST, "image": {"path": upload, "meta": {"_type": "gradio.FileData"}}}
        data = [values.get(p["parameter_name"], p["parameter_default"]) for p in params["parameters"]]
        barrier = threading.Barrier(BURST)

        def join(_: int) -> httpx.Response:
            barrier.wait(30)
            return httpx.post(f"{url}gradio_api/call/image_to_video", json={"data": data}, timeout=60)

        try:
            with ThreadPoolExecutor(BURST) as pool:
                answers = list(pool.map(join, range(BURST)))
        finally:
            release.set()
        accepted = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 503]
        assert len(accepted) + len(refused) == BURST, [(a.status_code, a.text[:200]) for a in answers]
        # One runs (the GPU queue runs one job at a time), at most queue_size wait.
        assert 1 <= len(accepted) <= settings.queue_size + 1, len(accepted)
        detail = refused[0].json()["detail"]
        assert "The queue is full: 2 requests are waiting" in detail and "--queue-size" in detail, detail
