"""Why a model could not be loaded, said in one sentence on the cause and one on what to do.

Shared by the pipelines, the AnimateLCM lane, the LoRAs and the hub downloads: the cause is searched for in the
whole exception chain (diffusers wraps the hub's errors in an OSError).
"""

from __future__ import annotations

from pathlib import Path

from svd_demo.core.errors import ModelLoadError
from svd_demo.core.models import DEFAULT_SDXL_MODEL, DEFAULT_SVD_MODEL, model_page

TINY_MODELS_HINT = ("To try the app without a download, build tiny random-weight models (`python -m svd_demo "
                    "tiny-models ./tiny-models`) and start it with `--svd-model ./tiny-models/svd --sdxl-model "
                    "./tiny-models/sdxl`.")


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (diffusers wraps the hub's errors in an OSError)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def is_network_error(exc: BaseException) -> bool:
    """A connection or timeout error, from the standard library or from the HTTP client the hub library uses
    (matched by name: that client and its exception classes have changed between versions)."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or any(
        word in type(exc).__name__ for word in ("ConnectError", "ConnectionError", "Timeout"))


def said(exc: BaseException) -> str:
    """An exception as one line: its type and its first line, whole."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
    return f"{type(exc).__name__}: {text}"


def explain_load_error(kind: str, model_ref: str, exc: BaseException) -> ModelLoadError:
    """Turn whatever `from_pretrained` raised into one sentence on the cause and one on what to do.

    The cause is found in the whole chain: diffusers reports a hub that cannot be reached as "not fully cached
    locally", and the connection error or the offline switch is only in its `__cause__`.
    """
    from huggingface_hub.errors import GatedRepoError, HFValidationError, OfflineModeIsEnabled, RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    name = {"svd": "video (SVD)", "sdxl": "image (SDXL)"}.get(kind, kind)
    chain = causes(exc)

    def caused_by(*types: type) -> BaseException | None:
        return next((c for c in chain if isinstance(c, types)), None)

    folder = Path(model_ref).expanduser()
    try:
        validate_repo_id(model_ref)
        hub_id = True
    except HFValidationError:
        hub_id = False
    if folder.exists() or not hub_id:  # a folder, or what can only mean one ("./x", "/x", "a/b/c")
        if not folder.is_dir():
            where = "is a file, not a folder" if folder.exists() else "does not exist on this machine"
            example = DEFAULT_SDXL_MODEL if kind == "sdxl" else DEFAULT_SVD_MODEL
            msg = (f"The {name} model folder '{model_ref}' {where}. Pass the folder that `save_pretrained` wrote "
                   f"(it holds model_index.json), or a hub id such as {example}.")
        elif not (folder / "model_index.json").is_file():
            msg = (f"The folder '{model_ref}' does not hold a diffusers pipeline (no model_index.json). Point the "
                   "setting at the folder that `save_pretrained` wrote, e.g. DIR/svd from `python -m svd_demo "
                   "tiny-models DIR`.")
        else:
            msg = (f"The {name} model in '{model_ref}' could not be read: its files are incomplete or corrupt "
                   f"({said(chain[-1])}). Save or download it again.")
        return ModelLoadError(msg)
    page = model_page(model_ref)
    if caused_by(GatedRepoError):
        msg = (f"The {name} model '{model_ref}' is gated: accept its licence at {page} while logged in to Hugging "
               "Face, create a read token at https://huggingface.co/settings/tokens, and restart the app with the "
               "HF_TOKEN environment variable set to it.")
    elif caused_by(RepositoryNotFoundError):
        msg = (f"There is no model '{model_ref}' on the Hugging Face hub, or it is private. Check the id at {page}; "
               "for a private model set HF_TOKEN; a local folder must exist on this machine.")
    elif caused_by(OfflineModeIsEnabled):
        msg = (f"The {name} model '{model_ref}' is not in this machine's model cache, and downloads are switched "
               f"off (HF_HUB_OFFLINE is set). Unset HF_HUB_OFFLINE to download it from {page} (a gated model also "
               f"needs HF_TOKEN), or copy the model's folder here and pass its path. {TINY_MODELS_HINT}")
    elif unreachable := next((c for c in chain if is_network_error(c)), None):
        msg = (f"The {name} model '{model_ref}' is not in this machine's model cache, and the Hugging Face hub "
               f"could not be reached to download it ({said(unreachable)}). Check the network or proxy, or "
               f"download it where there is network access (`hf download {model_ref} --local-dir DIR`) and pass "
               f"DIR. {TINY_MODELS_HINT}")
    else:
        msg = (f"The {name} model '{model_ref}' could not be loaded ({said(chain[-1])}). See {page}; gated "
               "models need HF_TOKEN.")
    return ModelLoadError(msg)
