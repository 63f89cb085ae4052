"""Public mode against a running server, as a hostile caller would try it (tiny models, loopback only): probes of
the disk, hub ids that would make the server download, uploads passed off as LoRAs, a model that cannot load,
the restore endpoint, and two instances on one machine."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from helpers import FAST, launched
from optional_deps import require
from PIL import Image

from svd_demo.core.settings import Settings, is_public, parse_settings, public_mode
from svd_demo.studio.studio import Studio

STILL = {"prompt": "a boat", "resolution": 256, "sdxl_steps": 2, "randomize_seed": False}


@pytest.fixture(scope="module")
def operator(tiny_models_dir, tmp_path_factory):
    """What the operator set up: a LoRA folder, a tiny upscaler, and an allowed model that is broken."""
    require("peft", "pip install -r requirements.txt")
    from svd_demo_testing.tiny_models import save_tiny_lora, save_tiny_upscalers

    root = tmp_path_factory.mktemp("operator")
    lora = save_tiny_lora(tiny_models_dir / "sdxl", root / "made", seed=1)
    (root / "loras").mkdir()
    shutil.copy(lora, root / "loras" / "pixel.safetensors")
    (root / "broken-svd").mkdir()  # an allowed model whose folder holds no pipeline
    return {"root": root, "lora": lora, "loras": root / "loras", "broken": root / "broken-svd",
            "upscaler": save_tiny_upscalers(root / "upscalers")["srvgg"]}


@pytest.fixture(scope="module")
def public_settings(tiny_settings, operator, tmp_path_factory) -> Settings:
    return replace(tiny_settings, public=True, output_dir=tmp_path_factory.mktemp("public-out"),
                   upscale_model=str(operator["upscaler"]), lora_dir=str(operator["loras"]),
                   allow_model=(f"video={operator['broken']}",))


@pytest.fixture(scope="module")
def public_studio(public_settings):
    return Studio(public_settings)


@pytest.fixture(scope="module")
def gradio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("public-gradio")


@pytest.fixture(scope="module")
def server(public_settings, public_studio, gradio_dir):
    with launched(public_settings, public_studio, gradio_dir) as url:
        yield url


def answer(url: str | Client, api_name: str, **values) -> str:
    """What the server says to a call: the refusal's text, or "ok" if it ran."""
    try:
        (url if isinstance(url, Client) else Client(url, verbose=False)).predict(**values, api_name=api_name)
    except (AppError, ValidationError) as exc:
        return str(exc)
    except httpx.HTTPStatusError as exc:  # refused at queue join (validators, inputs)
        return str(exc.response.json().get("detail"))
    return "ok"


@pytest.fixture
def probes():
    """A folder, a file, a safetensors file and a missing path, with short names (so messages quote them whole)."""
    root = Path(tempfile.mkdtemp(prefix="pz", dir="/tmp"))
    (root / "folder").mkdir()
    (root / "file").write_text("root:x:0:0\n")
    (root / "w.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    yield root, [str(root / "folder"), str(root / "file"), str(root / "w.safetensors"), str(root / "missing")]
    shutil.rmtree(root)


@pytest.fixture
def touched(monkeypatch):
    """Paths the process stats or opens while the test runs (the server runs in this process)."""
    seen: list[str] = []
    stat = os.stat

    def watched(path, *args, **kwargs):
        seen.append(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", watched)
    _AUDIT["open"] = seen
    yield seen
    _AUDIT.pop("open", None)


_AUDIT: dict[str, list] = {}


def _audit(event: str, args: tuple) -> None:
    if event == "open" and "open" in _AUDIT and isinstance(args[0], (str, bytes)):
        _AUDIT["open"].append(os.fsdecode(args[0]))
    elif event in ("socket.connect", "socket.getaddrinfo") and "network" in _AUDIT:
        host = args[1][0] if event == "socket.connect" and isinstance(args[1], tuple) else args[0]
        if host not in ("127.0.0.1", "localhost", "::1") and not str(host).startswith("/"):
            _AUDIT["network"].append(f"{event} {host}")
            raise OSError("no network in this test")


sys.addaudithook(_audit)  # hooks cannot be removed: this one only records while a test asks it to


def test_the_mode_follows_where_the_app_can_be_reached():
    assert public_mode(parse_settings([], {})) == (False, "listening on loopback (127.0.0.1) only")
    assert is_public(parse_settings(["--host", "0.0.0.0"], {}))
    assert is_public(parse_settings(["--share"], {}))
    assert not is_public(parse_settings(["--host", "0.0.0.0", "--no-public"], {}))
    assert is_public(parse_settings([], {"SVD_DEMO_PUBLIC": "true"}))
    assert public_mode(Settings(), {"SPACE_ID": "me/app"})[0]


def test_a_command_line_run_is_private(tiny_models_dir):
    from svd_demo.cli.commands import build_parser
    from svd_demo.core.settings import settings_from_args

    args = build_parser().parse_args(["generate", "--image", "x.png", "--out", "x.mp4",
                                      "--svd-model", str(tiny_models_dir / "svd")])
    assert settings_from_args(args).public is False  # even on a Space's terminal: it serves nobody


def test_allowed_models_come_from_the_options_and_a_file(tiny_settings, tmp_path):
    from svd_demo.core.access import Access, read_allowed

    listed = tmp_path / "allowed.txt"
    listed.write_text("# the operator's list\nimage=owner/still-model\n\nlora=owner/style  # a hub LoRA\n")
    settings = replace(tiny_settings, public=True, allow_model=("video=owner/clip-model",),
                       allow_models_file=str(listed))
    assert read_allowed(settings) == [("svd", "owner/clip-model"), ("sdxl", "owner/still-model"),
                                      ("lora", "owner/style")]
    access = Access.from_settings(settings)
    assert access.choices("svd")[0] == ("svd (from settings)", "svd")  # a local folder: by its name
    assert "owner/clip-model" in access.models["svd"] and "owner/still-model" in access.models["sdxl"]
    assert access.lora_ref("owner/style") == "owner/style"
    with pytest.raises(ValueError, match=r"--allow-model 'owner/x': write KIND=REF with KIND one of video"):
        read_allowed(replace(settings, allow_model=("owner/x",)))


def test_the_page_says_which_mode_runs_and_offers_exactly_the_lists(server, public_studio):
    config = httpx.get(f"{server}config").json()
    assert "Public mode (--public)" in json.dumps(config)
    pickers = {c["props"]["label"]: c["props"] for c in config["components"] if c.get("type") == "dropdown"}
    for label, kind in (("Video model", "svd"), ("Image model", "sdxl"), ("Upscale model", "upscale")):
        assert [value for _, value in pickers[label]["choices"]] == list(public_studio.access.models[kind])
        assert pickers[label]["allow_custom_value"] is False
    assert "broken-svd" in [value for _, value in pickers["Video model"]["choices"]]


@pytest.mark.parametrize(("api_name", "parameter"), [("/image_to_video", "svd_model"),
                                                      ("/text_to_image", "sdxl_model"),
                                                      ("/text_to_image", "loras"),
                                                      ("/upscale", "upscale_model")])
def test_probes_get_one_answer_whatever_exists_and_touch_nothing(server, probes, photo, touched, api_name,
                                                                 parameter):
    root, paths = probes
    inputs = {"/image_to_video": {"image": handle_file(str(photo)), **FAST}, "/text_to_image": STILL,
              "/upscale": {"media": handle_file(str(photo))}}[api_name]
    touched.clear()
    answers = {answer(server, api_name, **inputs, **{parameter: path}).replace(path, "PROBE") for path in paths}
    assert len(answers) == 1, answers
    refusal = answers.pop()
    assert parameter in refusal and ("offer" in refusal or "must be one of" in refusal), refusal
    assert not [path for path in touched if path.startswith(str(root))]


def test_an_unlisted_hub_id_is_refused_without_a_network_call(server, photo, monkeypatch):
    import diffusers.loaders.lora_base
    import diffusers.utils.hub_utils
    import huggingface_hub.constants

    for module in (huggingface_hub.constants, diffusers.loaders.lora_base, diffusers.utils.hub_utils):
        monkeypatch.setattr(module, "HF_HUB_OFFLINE", False)  # as on a Space: downloads allowed
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)  # the test client's reports
    calls = {"/image_to_video": {"image": handle_file(str(photo)), **FAST, "svd_model": "someone/unlisted-video"},
             "/text_to_image": {**STILL, "sdxl_model": "someone/unlisted-image"},
             "/upscale": {"media": handle_file(str(photo)), "upscale_model": "someone/repo/unlisted.pth"}}
    answers = []
    client = Client(server, verbose=False)  # first: the client library itself reports to the hub when it starts
    _AUDIT["network"] = attempts = []
    try:
        for api_name, values in calls.items():
            answers.append(answer(client, api_name, **values))
        answers.append(answer(client, "/text_to_image", **STILL, loras="someone/unlisted-lora"))
    finally:
        _AUDIT.pop("network")
    assert attempts == []
    assert all("offer" in text or "must be one of" in text for text in answers), answers


def test_an_uploaded_file_is_not_a_lora(server, operator):
    upload = httpx.post(f"{server}gradio_api/upload",
                        files=[("files", ("pixel.safetensors", operator["lora"].read_bytes()))]).json()[0]
    assert Path(upload).is_file()  # a real LoRA, on this server, at the path the caller was given
    text = answer(server, "/text_to_image", **STILL, loras=upload)
    assert "loras" in text and "pixel" in text and upload not in text, text
    assert answer(server, "/text_to_image", **STILL, loras="pixel:0.5") == "ok"  # the listed one, by name


def test_a_model_that_fails_to_load_leaves_the_loaded_one_serving(server, public_studio, photo):
    image = {"image": handle_file(str(photo)), **FAST}
    assert answer(server, "/image_to_video", **image) == "ok"
    loaded, loads = public_studio.cache.loaded("svd"), public_studio.cache.loads
    text = answer(server, "/image_to_video", **image, svd_model="broken-svd")  # allowed, but it cannot load
    assert public_studio.cache.loaded("svd") is loaded
    assert "does not hold a diffusers pipeline" in text and str(Path(public_studio.access.models["svd"]
                                                                     ["broken-svd"]).parent) not in text, text
    assert answer(server, "/image_to_video", **image) == "ok"
    assert public_studio.cache.loads == loads  # nobody paid for a reload


def _restore_index(url: str) -> int:
    config = httpx.get(f"{url}config").json()
    component = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "restore-settings")
    return next(d["id"] for d in config["dependencies"] if [component, "upload"] in d["targets"])


def _queued(url: str, fn_index: int, data: list) -> list:
    """An event sent through the queue by its index, as the page sends it; its output data."""
    session = uuid.uuid4().hex
    joined = httpx.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": fn_index,
                                                              "session_hash": session, "trigger_id": None})
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and (message := json.loads(line[5:]))["msg"] == "process_completed":
                assert message["success"], message
                return message["output"]["data"]
    raise AssertionError("no result")


def test_restore_is_queued_and_held_to_the_lists(server, tmp_path):
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({"kind": "image_to_video", "timings": {},
                                  "parameters": {"seed": 1, "num_inference_steps": 2, "model": "/etc"}}))
    upload = httpx.post(f"{server}gradio_api/upload", files=[("files", ("forged.json", forged.read_bytes()))])
    data = [{"path": upload.json()[0], "orig_name": "forged.json", "meta": {"_type": "gradio.FileData"}}]
    index = _restore_index(server)
    direct = httpx.post(f"{server}gradio_api/run/predict", json={"data": data, "fn_index": index})
    assert direct.status_code == 404, direct.text[:300]  # no way around the queue and its limits
    output = _queued(server, index, data)
    assert "/etc" not in json.dumps(output)
    assert "`svd_model` is not offered on this server" in json.dumps(output)


def test_one_client_may_have_only_a_few_requests_waiting(server, public_studio, public_settings, photo,
                                                         monkeypatch):
    started, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):  # the GPU job: busy until the test is done, so the others wait
        started.set()
        release.wait(60)
        raise RuntimeError("released")

    monkeypatch.setattr(public_studio, "image_to_video", held)
    client = Client(server, verbose=False)
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/image_to_video"]
    upload = httpx.post(f"{server}gradio_api/upload", files=[("files", ("p.png", photo.read_bytes()))]).json()[0]
    values = {**FAST, "image": {"path": upload, "meta": {"_type": "gradio.FileData"}}}
    data = [values.get(p["parameter_name"], p["parameter_default"]) for p in params["parameters"]]

    def send() -> httpx.Response:
        return httpx.post(f"{server}gradio_api/call/image_to_video", json={"data": data}, timeout=30)

    try:
        assert send().status_code == 200
        assert started.wait(30)
        waiting = [send() for _ in range(public_settings.max_queued_per_client)]
        refused = send()
    finally:
        release.set()
    assert [r.status_code for r in waiting] == [200] * public_settings.max_queued_per_client
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "You already have 2 requests waiting" in detail and "--max-queued-per-client" in detail, detail


def test_sidecars_returned_in_public_mode_name_no_server_path(server, public_settings, operator, tiny_models_dir,
                                                              photo):
    client = Client(server, verbose=False)
    files = [*client.predict(**STILL, loras="pixel", api_name="/text_to_image")[3],
             *client.predict(media=handle_file(str(photo)), api_name="/upscale")[3],
             *client.predict(image=handle_file(str(photo)), **{**FAST, "upscale": "2x"},
                             api_name="/image_to_video")[4]]
    sidecars = [Path(f).read_text() for f in files if f.endswith(".json")]
    assert len(sidecars) == 3
    for text in sidecars:
        for server_path in (tiny_models_dir, operator["root"], public_settings.output_dir, tempfile.gettempdir()):
            assert str(server_path) not in text, (server_path, text)
    assert '"pixel"' in sidecars[0] and '"svd"' in sidecars[2]


def test_two_instances_never_see_each_others_files(tiny_settings, tmp_path):
    first, second = (Studio(replace(tiny_settings, output_dir=None, output_ttl=60)) for _ in range(2))
    assert first.output_dir != second.output_dir
    assert oct(first.output_dir.stat().st_mode & 0o777) == "0o700"
    old = first.output_dir / "theirs.png"
    Image.new("RGB", (8, 8)).save(old)
    os.utime(old, (time.time() - 3600,) * 2)  # expired by the other's TTL
    with launched(second.settings, second, tmp_path / "second") as url:
        response = httpx.get(f"{url}gradio_api/file={old}")
        assert response.status_code in (403, 404)
    second._sweep()
    assert old.exists()  # its sweep keeps to its own folder
    first._sweep()
    assert not old.exists()


def test_local_use_keeps_local_models_and_lora_files(studio, tiny_settings, operator):
    """Private mode (loopback, no --public): paths work as before, and listed names too."""
    assert not studio.access.public
    assert studio.access.model("svd", tiny_settings.svd_model) == (tiny_settings.svd_model,) * 2
    assert studio.access.lora_ref(str(operator["lora"])) == str(operator["lora"])
    private = Studio(replace(tiny_settings, lora_dir=str(operator["loras"])))
    assert private.access.lora_source("pixel") == str((operator["loras"] / "pixel.safetensors").resolve())


def test_no_upscale_call_leaves_a_temp_file(server, gradio_dir, photo):
    def empty_files() -> set[Path]:
        return {p for p in gradio_dir.rglob("*") if p.is_file() and p.stat().st_size == 0}

    before = empty_files()
    Client(server, verbose=False).predict(media=handle_file(str(photo)), api_name="/upscale")
    assert empty_files() == before
