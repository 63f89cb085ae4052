"""Load errors that say what happened and what to do: each message's full text, for each cause."""

from __future__ import annotations

import shutil

import pytest

from svd_demo.core.errors import ModelLoadError
from svd_demo.core.settings import Settings
from svd_demo.engine.load_errors import TINY_MODELS_HINT, explain_load_error
from svd_demo.engine.pipelines import PipelineCache

XT = "stabilityai/stable-video-diffusion-img2vid-xt"


def _load_error(settings: Settings, ref: str) -> str:
    with pytest.raises(ModelLoadError) as caught:
        PipelineCache(settings, device="cpu").get("svd", ref)
    return str(caught.value)


def _wrapped(cause: BaseException) -> OSError:
    """What diffusers raises for a hub model it could not fetch: an OSError whose cause is the real one."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise OSError(f"Cannot load model {XT}: the model is not fully cached locally (Cannot find an "
                          "appropriate cached snapshot folder for the specified revision on the local disk and "
                          "outgoing traffic has been disabled.)") from inner
    except OSError as outer:
        return outer


def _hub_error(cls, status: int):
    import httpx2

    request = httpx2.Request("GET", f"https://huggingface.co/api/models/{XT}")
    return cls("refused", response=httpx2.Response(status, request=request))


def test_downloads_switched_off(tiny_settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _load_error(tiny_settings, XT) == (
        f"The video (SVD) model '{XT}' is not in this machine's model cache, and downloads are switched off "
        f"(HF_HUB_OFFLINE is set). Unset HF_HUB_OFFLINE to download it from https://huggingface.co/{XT} (a gated "
        f"model also needs HF_TOKEN), or copy the model's folder here and pass its path. {TINY_MODELS_HINT}")


def test_hub_unreachable_names_the_connection_error_not_the_cache():
    import httpx2

    exc = _wrapped(httpx2.ConnectError("[Errno -2] Name or service not known"))
    assert str(explain_load_error("svd", XT, exc)) == (
        f"The video (SVD) model '{XT}' is not in this machine's model cache, and the Hugging Face hub could not be "
        "reached to download it (ConnectError: [Errno -2] Name or service not known). Check the network or proxy, "
        f"or download it where there is network access (`hf download {XT} --local-dir DIR`) and pass DIR. "
        f"{TINY_MODELS_HINT}")
    assert TINY_MODELS_HINT == (
        "To try the app without a download, build tiny random-weight models (`python -m svd_demo tiny-models "
        "./tiny-models`) and start it with `--svd-model ./tiny-models/svd --sdxl-model ./tiny-models/sdxl`.")


def test_gated_model_names_the_licence_page_and_the_token():
    from huggingface_hub.errors import GatedRepoError

    exc = _wrapped(_hub_error(GatedRepoError, 403))
    assert str(explain_load_error("svd", XT, exc)) == (
        f"The video (SVD) model '{XT}' is gated: accept its licence at https://huggingface.co/{XT} while logged in "
        "to Hugging Face, create a read token at https://huggingface.co/settings/tokens, and restart the app with "
        "the HF_TOKEN environment variable set to it.")


def test_missing_hub_model():
    from huggingface_hub.errors import RepositoryNotFoundError

    exc = _wrapped(_hub_error(RepositoryNotFoundError, 404))
    assert str(explain_load_error("sdxl", "someone/no-such-model", exc)) == (
        "There is no model 'someone/no-such-model' on the Hugging Face hub, or it is private. Check the id at "
        "https://huggingface.co/someone/no-such-model; for a private model set HF_TOKEN; a local folder must exist "
        "on this machine.")


@pytest.mark.parametrize("ref", ["/nonexistent", "./no/such/folder", "~/no-such-folder"])
def test_a_wrong_local_path_is_a_folder_that_does_not_exist_with_no_link(tiny_settings, ref):
    message = _load_error(tiny_settings, ref)
    assert message == (
        f"The video (SVD) model folder '{ref}' does not exist on this machine. Pass the folder that "
        "`save_pretrained` wrote (it holds model_index.json), or a hub id such as "
        "stabilityai/stable-video-diffusion-img2vid-xt.")


def test_a_file_is_not_a_model_folder(tiny_settings, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError) as caught:
        PipelineCache(tiny_settings, device="cpu").get("sdxl", str(tmp_path / "weights.bin"))
    assert str(caught.value) == (
        f"The image (SDXL) model folder '{tmp_path / 'weights.bin'}' is a file, not a folder. Pass the folder that "
        "`save_pretrained` wrote (it holds model_index.json), or a hub id such as "
        "stabilityai/stable-diffusion-xl-base-1.0.")


def test_a_folder_that_is_not_a_pipeline(tiny_settings, tmp_path):
    (tmp_path / "empty").mkdir()
    assert _load_error(tiny_settings, str(tmp_path / "empty")) == (
        f"The folder '{tmp_path / 'empty'}' does not hold a diffusers pipeline (no model_index.json). Point the "
        "setting at the folder that `save_pretrained` wrote, e.g. DIR/svd from `python -m svd_demo tiny-models DIR`.")


def test_corrupt_weights_name_the_reader_error_whole(tiny_settings, tiny_models_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models_dir / "svd", broken)
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.write_bytes(b"\x00" * 100)
    message = _load_error(tiny_settings, str(broken))
    assert message.startswith(f"The video (SVD) model in '{broken}' could not be read: its files are incomplete or "
                              "corrupt (")
    assert message.endswith("). Save or download it again.")
    cause = message.split("corrupt (", 1)[1].rsplit(").", 1)[0]
    assert ": " in cause and not cause.endswith(("…", "...")) and len(cause) > 10


def test_the_app_still_answers_after_a_load_error(tiny_settings):
    cache = PipelineCache(tiny_settings, device="cpu")
    with pytest.raises(ModelLoadError):
        cache.get("svd", "/nonexistent")
    assert cache.get("svd", tiny_settings.svd_model).pipe is not None


CTRL_C_ON_THE_WORKER = """
import signal, threading
from svd_demo.core.settings import Settings
from svd_demo.engine.pipelines import PipelineCache

stop, finished = threading.Event(), threading.Event()

def job():
    stop.wait(1)  # the caller is asleep in its wait by now
    # The kernel gives a process's SIGINT to any of its threads; here, as it may, to the worker's.
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    stop.wait(10)
    finished.set()

try:
    PipelineCache(Settings(device="cpu"), device="cpu").run(job)
    print("ran to the end")
except KeyboardInterrupt:
    print("interrupted after the job ended" if finished.is_set() else "interrupted while the job ran")
finally:
    stop.set()
"""


def test_ctrl_c_reaches_the_waiting_caller_whichever_thread_the_kernel_gives_it_to():
    """The CLI waits for the device worker: Ctrl-C must stop that wait at once, not when the job (a download, a
    whole generation) has ended. CPython runs signal handlers on the main thread only, and a main thread asleep in a
    plain wait is not woken when the signal lands on another thread."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CTRL_C_ON_THE_WORKER], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted while the job ran", done.stdout + done.stderr[-2000:]
