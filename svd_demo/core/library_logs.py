"""Start-up notices from the libraries underneath that a person running the app cannot act on, kept out of the
app's and the CLI's output (read as errors by people trying the app for the first time).

Each is a warning meant for another library's authors or for an optional path we do not use; the names are the
loggers that emit them, so every other warning of the same libraries still shows.
"""

from __future__ import annotations

import logging
import os

_QUIET_LOGGERS = (
    # torchao (the int8 option's library, imported by transformers whenever it is installed): its CUDA kernels and
    # Triton are missing on a CPU build, said once per kernel at import.
    "torchao",
    # torchao registers its Enums with pytree the deprecated way: a notice for torchao.
    "torch.utils._pytree",
    # diffusers, when torchao is installed but its tensor types cannot be imported: only torchao checkpoints need them.
    "diffusers.quantizers.torchao.torchao_quantizer",
)


def quiet_library_notices() -> None:
    """Call before importing diffusers or transformers."""
    # "CLIPImageProcessor requires torchvision, falling back to CLIPImageProcessorPil": the PIL one is what SVD's
    # image encoder gets either way. transformers reads this when it is first imported.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
