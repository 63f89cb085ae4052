"""The overrides of Gradio's internals (svd_demo/web/gradio_overrides.py) are written for one Gradio: the one
requirements.txt pins and the one installed. Any other fails here, so that an upgrade re-reads them first."""

from __future__ import annotations

import inspect
from pathlib import Path

import gradio as gr

from svd_demo.web import gradio_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_the_overrides_are_for_the_pinned_and_installed_gradio():
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip().startswith("gradio==")]
    assert pins == [f"gradio=={gradio_overrides.GRADIO_VERSION}"]
    assert gr.__version__ == gradio_overrides.GRADIO_VERSION


def test_the_internals_they_reach_into_are_there():
    """What the overrides replace or call must exist with the signatures they are written against."""
    assert list(inspect.signature(gr.Blocks.preprocess_data).parameters) == \
        ["self", "block_fn", "inputs", "state", "explicit_call"]
    for component in (gr.Image(), gr.Slider(), gr.Number()):
        assert callable(component.preprocess)
    assert callable(getattr(gr.File(), "_process_single_file", None))
    from gradio.queueing import Queue

    assert list(inspect.signature(Queue.push).parameters) == ["self", "body", "request", "username"]


def test_only_the_fenced_module_subclasses_or_patches_gradio():
    """The rest of the web layer uses Gradio as documented: no subclass of a Gradio class outside the fence."""
    import ast

    for path in (ROOT / "svd_demo" / "web").glob("*.py"):
        if path.name == "gradio_overrides.py":
            continue
        tree = ast.parse(path.read_text())
        bases = [ast.unparse(base) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for base in node.bases]
        assert not [b for b in bases if b.startswith("gr.")], (path.name, bases)
