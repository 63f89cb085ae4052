"""SDXL LoRAs on the image stage: loaded into the cached pipeline as named adapters, switched and unloaded without
reloading the base model. The references are parsed and checked in `svd_demo.core.lora_refs`.
Importing this module imports neither torch nor diffusers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svd_demo.core.errors import ModelLoadError, UserFacingError
from svd_demo.core.lora_refs import LoraSpec, looks_local
from svd_demo.engine.hub import fetch_file, lora_file
from svd_demo.engine.load_errors import causes, is_network_error, said

if TYPE_CHECKING:
    from svd_demo.engine.pipelines import LoadedPipeline


def adapter_name(ref: str) -> str:
    """A stable adapter name for a reference (peft names must be identifiers; refs hold '/' and '.')."""
    return "lora_" + hashlib.sha1(ref.encode()).hexdigest()[:12]


def apply_loras(loaded: LoadedPipeline, loras: Sequence[LoraSpec], source: Callable[[str], str] = lambda ref: ref,
                *, download: Any = None, cancel: Any = None) -> None:
    """Make exactly `loras` active on the pipeline with their weights: load the new ones as adapters, delete the
    ones no longer asked for, keep the rest. The base model stays loaded throughout. `source` maps a reference to
    what is loaded (a listed LoRA's name to its file).

    Call under the cache's lock. If a LoRA cannot be loaded, every adapter is removed (the base model is left as it
    was loaded) and a ModelLoadError says which LoRA and where to look. A hub LoRA is downloaded first through
    `svd_demo.engine.hub.fetch` (`download` gets its progress, `cancel` stops it).
    """
    pipe, adapters = loaded.pipe, loaded.lora_adapters
    stale = [name for ref, name in adapters.items() if ref not in {spec.ref for spec in loras}]
    if stale:
        pipe.delete_adapters(stale)
        for ref in [ref for ref, name in adapters.items() if name in stale]:
            del adapters[ref]
    try:
        for spec in loras:
            if spec.ref not in adapters:
                _load(pipe, spec.ref, adapter_name(spec.ref), source(spec.ref), download, cancel)
                adapters[spec.ref] = adapter_name(spec.ref)
        if loras:
            pipe.set_adapters([adapters[spec.ref] for spec in loras], [spec.weight for spec in loras])
    except BaseException:
        remove_all(loaded)
        raise


def remove_all(loaded: LoadedPipeline) -> None:
    """Delete every LoRA adapter (including one half-loaded by a failed call)."""
    names = set(loaded.lora_adapters.values())
    get_list = getattr(loaded.pipe, "get_list_adapters", None)
    if get_list is not None:
        names |= {name for component in get_list().values() for name in component}
    if names:
        loaded.pipe.delete_adapters(sorted(names))
    loaded.lora_adapters.clear()


def _load(pipe: Any, ref: str, name: str, source: str, download: Any = None, cancel: Any = None) -> None:
    local = looks_local(source)
    try:
        if local:
            path = Path(source).expanduser()
        else:  # the repo's one LoRA file, picked as diffusers picks it, fetched like every other hub file
            path = fetch_file(source, lora_file, progress=download, cancel=cancel)
        pipe.load_lora_weights(str(path), adapter_name=name)
    except UserFacingError:
        raise  # cancelled, or no room on the disk
    except Exception as exc:  # peft, diffusers and the hub raise many types: each becomes one sentence
        raise explain_lora_error(ref, exc, local=local) from exc


def explain_lora_error(ref: str, exc: BaseException, local: bool | None = None) -> ModelLoadError:
    """What went wrong loading a LoRA, and where to look (the model page for a hub id). `local`: whether `ref`
    names a file here (a listed name does without looking like one)."""
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    chain = causes(exc)
    if looks_local(ref) if local is None else local:
        return ModelLoadError(f"The LoRA file '{ref}' could not be loaded into the image model "
                              f"({said(chain[-1])}). It must be an SDXL LoRA (diffusers or kohya format).")
    page = f"https://huggingface.co/{ref}"
    if any(isinstance(c, GatedRepoError) for c in chain):
        return ModelLoadError(f"The LoRA '{ref}' is gated: accept its terms at {page} and set HF_TOKEN.")
    if any(isinstance(c, RepositoryNotFoundError) for c in chain):
        return ModelLoadError(f"There is no LoRA '{ref}' on the Hugging Face hub, or it is private: check the id at "
                              f"{page} (a private one needs HF_TOKEN).")
    if any(isinstance(c, OfflineModeIsEnabled) or is_network_error(c) for c in chain) or \
            "offline" in str(exc).lower() or "cached" in str(exc).lower():
        from huggingface_hub import constants

        fix = ("allow downloads (unset HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else
               "check that this machine reaches the Hugging Face hub")
        return ModelLoadError(f"The LoRA '{ref}' is not in this machine's model cache and could not be downloaded "
                              f"({said(chain[-1])}). Download it from {page} and pass its .safetensors file, or "
                              f"{fix}.")
    return ModelLoadError(f"The LoRA '{ref}' could not be loaded into the image model ({said(chain[-1])}). It "
                          f"must be an SDXL LoRA with one .safetensors file: see {page}.")
