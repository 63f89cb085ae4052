"""The memory levers' settings and messages: which levers change pixels, int8 without torchao as a clear error, and
`--quantize` as a setting. The levers themselves generate clips, end to end (tests/e2e/test_memory_levers_runs.py).
"""

from __future__ import annotations

import dataclasses
import sys

import pytest

from svd_demo.core.errors import ModelLoadError
from svd_demo.engine import memory
from svd_demo.engine.memory import pixel_note


def test_only_the_lossy_levers_have_a_pixel_note():
    assert pixel_note("high", "none") is None and pixel_note("balanced", "none") is None
    assert "fp8" in pixel_note("low", "none") and "fp8" in pixel_note("minimal", "none")
    assert "int8" in pixel_note("high", "int8")


def test_int8_without_torchao_is_a_clear_error(stand_in_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao", None)  # what `import torchao` meets where it is not installed
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    stand_in_cache.settings = dataclasses.replace(stand_in_cache.settings, quantize="int8")
    with pytest.raises(ModelLoadError, match=r"--quantize int8 needs torchao: pip install torchao==0\.18\.0"):
        stand_in_cache.get("svd", stand_in_cache.settings.svd_model)


def test_quantize_is_a_setting_with_an_environment_variable_and_fixed_choices(capsys):
    from svd_demo.core.settings import parse_settings

    assert parse_settings([], {}).quantize == "none"
    assert parse_settings(["--quantize", "int8"], {}).quantize == "int8"
    assert parse_settings([], {"SVD_DEMO_QUANTIZE": "int8"}).quantize == "int8"
    with pytest.raises(SystemExit):
        parse_settings(["--quantize", "int4"], {})
    assert "invalid choice: 'int4'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown --quantize 'int4'"):
        memory.quantization_config("int4")  # an environment value is not checked by argparse: loading says it
