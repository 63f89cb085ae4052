"""Upscaler references, loading a checkpoint into its network, load errors that say what to do, and the cache.

A reference is one of:
* a preset name (`UPSCALER_PRESETS`): `realesr-animevideov3` (fast, the default) or `RealESRGAN_x4plus` (quality);
* a local checkpoint file (`.pth`, `.pt` or `.safetensors`);
* a file in a hub repository, `OWNER/REPO/FILE.pth` (downloaded once into the hub cache by `engine.hub.fetch`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svd_demo.core.errors import ModelLoadError, UserFacingError
from svd_demo.core.models import (
    check_upscaler_ref,
    upscaler_page,
    upscaler_preset,
)
from svd_demo.engine.hub import fetch

if TYPE_CHECKING:
    from svd_demo.engine.upscale.networks import Architecture

log = logging.getLogger("svd_demo")

def _checkpoint_file(ref: str, download: Any = None, cancel: Any = None) -> Path:
    """The local file for `ref`, downloading a hub file on first use (ModelLoadError naming the page if not);
    `download` and `cancel` as in `svd_demo.engine.hub.fetch`."""
    local = Path(ref).expanduser()
    if local.is_file():
        return local
    preset = upscaler_preset(ref)
    repo_id, filename = (preset.repo_id, preset.filename) if preset else ("/".join(ref.split("/")[:2]),
                                                                          "/".join(ref.split("/")[2:]))
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )


    page = upscaler_page(ref)
    hub_page = f"https://huggingface.co/{repo_id}"
    try:
        return fetch(repo_id, files=[filename], progress=download, cancel=cancel) / filename
    except UserFacingError:
        raise  # cancelled, or no room on the disk
    except Exception as exc:  # the hub raises many types; each becomes one sentence on what to do
        if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
            why = ("downloads are switched off (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE
                   else "the Hugging Face hub could not be reached")
            what = (f"is not in this machine's hub cache, and {why}. Download {filename} from {hub_page} (about "
                    f"the model: {page}) and pass the file's path, or allow downloads")
        elif isinstance(exc, EntryNotFoundError):
            what = f"is not a file of the hub repository {hub_page}: check the file name, or pass a local file"
        elif isinstance(exc, RepositoryNotFoundError):
            what = f"names a hub repository {hub_page} that does not exist or is private (HF_TOKEN)"
        else:
            said = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            what = (f"could not be downloaded from {hub_page} ({type(exc).__name__}: {said[:200]}). Download the "
                    "file and pass its path")
        raise ModelLoadError(f"The upscale model '{ref}' {what}.") from exc


def _read_state(path: Path) -> dict[str, Any]:
    """The weights in a checkpoint file: a plain state dict, or BasicSR's {"params_ema" or "params": ...}."""
    import torch

    from svd_demo.engine.upscale.networks import UnknownArchitecture  # torch: only when a network loads

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        # weights_only: a .pth is a pickle, and a pickle from the internet must not run code when it is read.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        for key in ("params_ema", "params", "state_dict"):  # EMA weights are the ones the authors evaluate
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnknownArchitecture("it does not hold a dictionary of weights")
    return state


@dataclass
class LoadedUpscaler:
    """A network ready to run, and what it is."""

    ref: str
    network: Any  # torch.nn.Module, in eval mode, on `device`
    architecture: Architecture
    device: str
    dtype: Any
    parameters: int
    load_seconds: float

    @property
    def scale(self) -> int:
        return self.architecture.scale


def load_upscaler(ref: str, device: str = "cpu", dtype: Any = None, *, download: Any = None,
                  cancel: Any = None) -> LoadedUpscaler:
    """Read `ref`'s checkpoint (downloaded first from the hub if need be: `download` gets the progress, `cancel`
    stops it), build the network its weights describe, and move it to `device`/`dtype`."""
    import torch

    from svd_demo.engine.upscale.networks import UnknownArchitecture, detect  # torch: only when one loads

    started = time.perf_counter()
    ref = check_upscaler_ref(ref)
    path = _checkpoint_file(ref, download, cancel)
    page = upscaler_page(ref)
    where = f" (see {page})" if page else ""
    try:
        state = _read_state(path)
        architecture = detect(state)
        network = architecture.build()
        network.load_state_dict(state, strict=True)
    except UnknownArchitecture as exc:
        raise ModelLoadError(f"The upscale model file '{path.name}' is not a Real-ESRGAN network: {exc}. Use an "
                             f"SRVGGNetCompact or RRDBNet checkpoint such as realesr-animevideov3.pth{where}."
                             ) from exc
    except Exception as exc:  # a damaged or truncated file, or weights whose shapes do not fit the network
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"The upscale model file '{path.name}' could not be loaded: it is damaged, incomplete "
                             f"or not a checkpoint ({type(exc).__name__}: {said[:200]}). Download it again{where}."
                             ) from exc
    dtype = dtype or torch.float32
    network = network.to(device=device, dtype=dtype).eval().requires_grad_(False)
    count = sum(p.numel() for p in network.parameters())
    seconds = time.perf_counter() - started
    log.info("Loaded upscaler %s (%s x%d, %.2f M parameters) in %.2f s", ref, architecture.name,
             architecture.scale, count / 1e6, seconds)
    return LoadedUpscaler(ref=ref, network=network, architecture=architecture, device=device, dtype=dtype,
                          parameters=count, load_seconds=seconds)


class UpscalerCache:
    """One upscaler at a time, loaded on first use and kept; asking for another one frees the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedUpscaler | None = None
        self.loads = 0  # how many times a checkpoint was read (tests read it)

    def get(self, ref: str, device: str = "cpu", dtype: Any = None, *, download: Any = None,
            cancel: Any = None) -> LoadedUpscaler:
        import torch

        ref = check_upscaler_ref(ref)
        dtype = dtype or torch.float32
        with self._lock:
            current = self._loaded
            if current is not None and (current.ref, current.device, current.dtype) == (ref, device, dtype):
                return current
            self._loaded = None
            del current  # the old network's memory goes before the new one is read
            self._loaded = load_upscaler(ref, device, dtype, download=download, cancel=cancel)
            self.loads += 1
            return self._loaded
