"""docs/settings.md, rendered from what the code declares, so that the page cannot drift from it.

It reads the parameter specs (`svd_demo.core.params`), the model presets (`svd_demo.core.models`), the app's
options (the parser `svd_demo.core.settings` builds) and, for "which front ends take it", the public API endpoints
of the page as Gradio builds it and the subcommands of the CLI's parser. Run from the repository root:

    python -m tools.settings_doc           # print the page
    python -m tools.settings_doc --write   # write docs/settings.md
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from svd_demo.core import models, params
from svd_demo.core.params import Spec

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
WRITE_COMMAND = "python -m tools.settings_doc --write"

# The spec tables in the order the page shows them; a spec in none of them lands in "Other parameters".
GROUPS: tuple[tuple[str, dict[str, Spec]], ...] = (
    ("Video", params.SPECS),
    ("Still (SDXL)", params.IMAGE_SPECS),
    ("Keyframes", params.KEYFRAME_SPECS),
    ("Frame interpolation", params.INTERPOLATION_SPECS),
    ("Upscaling", params.UPSCALE_SPECS),
)


def _cell(value: Any) -> str:
    """Text for one table cell: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default(spec: Spec) -> str:
    if spec.default is None:
        shown = "the model's ([presets](#model-presets))"
    elif isinstance(spec.default, bool):
        shown = "on" if spec.default else "off"
    elif spec.default == "":
        shown = "empty"
    else:
        shown = f"`{_number(spec.default)}`"
    quick = params.QUICK_DEFAULTS.get(spec.name)
    return shown if quick is None else f"{shown} (quick: `{quick}`)"


def _values(spec: Spec) -> str:
    if spec.choices:
        return " · ".join(f"`{choice}`" for choice in spec.choices)
    if spec.kind is bool:
        return "true / false"
    if spec.minimum is not None:
        step = f", step {_number(spec.step)}" if spec.step not in (None, 1) else ""
        return f"{_number(spec.minimum)} to {_number(spec.maximum)}{step}"
    return "text"


def api_parameters() -> dict[str, list[str]]:
    """Each public API endpoint of the page and its parameter names, in order, from the Blocks Gradio builds."""
    from svd_demo.core.settings import Settings
    from svd_demo.studio.studio import Studio
    from svd_demo.web.ui import build_demo

    with tempfile.TemporaryDirectory() as outputs:  # the studio wants a folder; building the page writes nothing
        settings = Settings(device="cpu", output_dir=Path(outputs))
        demo = build_demo(settings, Studio(settings))
        # A session's state (the page's marker) is an input of the handler but no parameter of the API.
        return {f"/{fn.api_name}": [name for name, block in zip(fn.input_parameter_names, fn.inputs, strict=True)
                                    if not block.stateful] for fn in demo.fns.values()
                if fn.api_name and fn.api_visibility == "public"}


def cli_parameters() -> dict[str, list[str]]:
    """Each CLI subcommand and the parameter names (argparse `dest`s) its options fill."""
    from svd_demo.cli.commands import build_parser

    subparsers = next(action for action in build_parser()._actions
                      if isinstance(action, argparse._SubParsersAction))
    return {name: [action.dest for action in parser._actions] for name, parser in subparsers.choices.items()}


def _takers(name: str, api: dict[str, list[str]], cli: dict[str, list[str]]) -> tuple[str, str]:
    endpoints = ", ".join(f"`{endpoint}`" for endpoint, names in api.items() if name in names)
    commands = ", ".join(f"`{command}`" for command, names in cli.items() if name in names)
    return endpoints or "—", commands or "—"


def _spec_table(specs: Iterable[Spec], api: dict[str, list[str]], cli: dict[str, list[str]]) -> list[str]:
    rows = ["| name | label | type | default | values | help | API endpoints | CLI commands |",
            "|---|---|---|---|---|---|---|---|"]
    for spec in specs:
        endpoints, commands = _takers(spec.name, api, cli)
        rows.append(f"| `{spec.name}` | {_cell(spec.label)} | {spec.kind.__name__} | {_default(spec)} | "
                    f"{_values(spec)} | {_cell(spec.help)} | {endpoints} | {commands} |")
    return rows


def _optional(value: Any) -> str:
    return "—" if value is None else _number(value)


def _preset_tables() -> list[str]:
    lines = ["## Model presets", "",
             "Picking a video model sets its frames and conditioning fps, and its sampling settings where it has its "
             "own (— means the parameter's default above). Any other hub id or folder takes 14 frames at 7 fps, or "
             "the frames its UNet config names.", "",
             "| video model | id | frames | fps | steps | min / max guidance | motion | playback fps |",
             "|---|---|---|---|---|---|---|---|"]
    for p in models.SVD_PRESETS:
        default = " (default)" if p.model_id == models.DEFAULT_SVD_MODEL else ""
        guidance = f"{_optional(p.min_guidance_scale)} / {_optional(p.max_guidance_scale)}"
        lines.append(f"| {_cell(p.label)}{default} | `{p.model_id}` | {p.num_frames} | {p.fps} | "
                     f"{_optional(p.num_inference_steps)} | {guidance} | {_optional(p.motion_bucket_id)} | "
                     f"{_optional(p.playback_fps)} |")
    lines += ["", "| image model | id | steps | guidance |", "|---|---|---|---|"]
    for p in models.SDXL_PRESETS:
        default = " (default)" if p.model_id == models.DEFAULT_SDXL_MODEL else ""
        lines.append(f"| {_cell(p.label)}{default} | `{p.model_id}` | {p.steps} | {_number(p.guidance_scale)} |")
    return lines


def _option_table() -> list[str]:
    """The app's options as `svd-demo app --help` shows them, without the environment of the machine rendering."""
    from svd_demo.core.settings import add_settings_arguments

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, environ={})
    lines = ["| option | environment variable | default | what it does |", "|---|---|---|---|"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        found = re.fullmatch(r"(.*) \[env (\S+); default (.*)\]", action.help or "", re.S)
        if found is None:
            raise ValueError(f"{action.dest}: its help does not end with [env ...; default ...]: {action.help!r}")
        what, env, default = found.groups()
        choices = f" ({' / '.join(action.choices)})" if action.choices else ""
        flags = " / ".join(f"`{flag}`" for flag in action.option_strings)
        shown = {"False": "off", "True": "on", "()": "none", "": "empty"}.get(default, default)
        lines.append(f"| {flags}{choices} | `{env}` | {_cell(shown)} | {_cell(what)} |")
    return lines


def render() -> str:
    """The whole of docs/settings.md."""
    api, cli = api_parameters(), cli_parameters()
    grouped = {name for _, table in GROUPS for name in table}
    others = [spec for name, spec in params.ALL_SPECS.items() if name not in grouped]
    quick = ", ".join(f"`{name}` {value}" for name, value in params.QUICK_DEFAULTS.items())
    lines = ["# Settings", "",
             f"<!-- Generated by `{WRITE_COMMAND}` from svd_demo's parameter specs, model presets and options: "
             "edit those, not this page. -->", "",
             "Every generation parameter is declared once, with its default, range and help; the page's controls, "
             "the API's keyword parameters and the CLI's flags (`--num-frames` for `num_frames`) all read that "
             "declaration. Values out of range are refused with a message that names the parameter.", "",
             f"*quick*: on a CPU, or with random-weight models, the page and the CLI start from {quick} instead "
             "(every control stays free to raise).", ""]
    for title, table in GROUPS:
        lines += [f"## {title}", "", *_spec_table(table.values(), api, cli), ""]
    lines += ["## Other parameters", "", *_spec_table(others, api, cli), "",
              f"`extra_formats` (API and CLI): any of {', '.join(f'`{f}`' for f in params.EXTRA_FORMATS)} besides "
              "the MP4, which is always written.", ""]
    lines += _preset_tables() + [""]
    lines += ["## API endpoints", "",
              "Each public endpoint and its keyword parameters, in order (those not in the tables above are the "
              "inputs and model pickers: see [the API](api.md)).", "",
              "| endpoint | parameters |", "|---|---|"]
    lines += [f"| `{endpoint}` | {', '.join(f'`{n}`' for n in names)} |" for endpoint, names in api.items()]
    lines += ["", "## App options", "",
              "`svd-demo app --help` (or `python app.py --help`) lists the same. Each option has an environment "
              "variable, for Docker and Spaces; the command line wins over the environment.", "",
              *_option_table(), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(DOC.parents[1])}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
