"""The example photos and prompts shipped in examples/ (see examples/README.md for their sources and licences).

No gradio or torch here: the UI wraps these in `gr.Examples`, and the tests read them directly.
"""

from __future__ import annotations

import pathlib


def _examples_dir() -> pathlib.Path:
    """examples/ beside the package in a checkout (and on Spaces, in Docker); an installed package carries the same
    files as svd_demo/example_files (see pyproject.toml)."""
    package = pathlib.Path(__file__).resolve().parents[1]
    beside = package.parent / "examples"
    return beside if beside.is_dir() else package / "example_files"


EXAMPLES_DIR = _examples_dir()
IMAGES_DIR = EXAMPLES_DIR / "images"
PROMPTS_FILE = EXAMPLES_DIR / "prompts.txt"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def example_images() -> list[pathlib.Path]:
    """The example photos, sorted by name; empty when the folder is missing (e.g. a trimmed install)."""
    if not IMAGES_DIR.is_dir():
        return []
    return sorted(p for p in IMAGES_DIR.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def example_prompts() -> list[str]:
    """The example text-to-video prompts, one per non-empty line, stripped; empty when the file is missing."""
    if not PROMPTS_FILE.is_file():
        return []
    lines = (line.strip() for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]
