"""`svd-demo sweep`: the command line of a sweep (svd_demo.batch.sweep runs it here, svd_demo.batch.ray on a Ray
cluster). Nothing here imports torch, gradio or Ray at import time: the CLI builds this parser on every start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svd_demo.batch.ray import add_ray_arguments, ray_requested, run_ray_command
from svd_demo.batch.sweep import (
    CSV_NAME,
    GRID_ORDER,
    IMAGE_SUFFIXES,
    IMAGE_SWEPT,
    SHEET_NAME,
    SWEPT,
    _check_text_to_video,
    _describe,
    _validate_values,
    collect_images,
    expand_grid,
    parse_list,
    read_prompts,
    run_sweep,
)
from svd_demo.core.errors import InputError
from svd_demo.core.params import IMAGE_SPECS, SPECS, quick_for_unset
from svd_demo.core.settings import MODEL_SETTINGS, add_settings_arguments


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", nargs="+", default=[], metavar="DIR_OR_FILE",
                        help=f"Image files and/or folders (every {' '.join(IMAGE_SUFFIXES)} in them, sorted).")
    parser.add_argument("--prompts", default=None, metavar="FILE",
                        help="Text-to-video items: one prompt per line (# starts a comment). Needs the SDXL stage.")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help=f"Output folder: videos/, {CSV_NAME}, {SHEET_NAME}. Rerunning skips finished items.")
    for name in (*SWEPT, *IMAGE_SWEPT):
        spec = SPECS.get(name) or IMAGE_SPECS[name]
        default = "the model's" if spec.default is None else spec.default
        rng = f" Range {spec.minimum:g}-{spec.maximum:g}." if spec.minimum is not None else ""
        choices = f" One or more of {', '.join(spec.choices)}." if spec.choices else ""
        flags = ["--seeds", "--seed"] if name == "seed" else [_flag(name)]
        parser.add_argument(*flags, dest=name, action="append", default=None, metavar="V[,V...]",
                            help=f"{spec.help}{rng}{choices} Comma-separated list."
                                 f"{' Prompt items only.' if name in IMAGE_SWEPT else ''} [default {default}]")
    parser.add_argument("--negative-prompt", default="", help="Negative prompt for every prompt item (not a list).")
    parser.add_argument("--end-image", default=None, metavar="FILE",
                        help="Keyframes: every image is a start photo and its clip ends on this photo (framed to "
                             "the start's size with the same aspect mode).")
    parser.add_argument("--loop-to-start", dest="loop_to_start", action="store_true",
                        help="Keyframes: every clip ends on its own start photo, so it loops without a jump.")
    parser.add_argument("--keyframe-guidance", action="append", default=None, metavar="V[,V...]",
                        help="Keyframes guidance, comma-separated list (with --end-image or --loop). [default 1.0]")
    parser.add_argument("--extra-formats", default=None,
                        help="Also write these formats for every item, comma-separated: gif, webm.")
    parser.add_argument("--dry-run", action="store_true", help="List the grid and exit without running anything.")
    add_settings_arguments(parser, only=MODEL_SETTINGS)
    add_ray_arguments(parser)
    parser.set_defaults(func=run_sweep_command)


def add_sweep_parser(subparsers: Any) -> None:
    """Add the `sweep` subcommand to `python -m svd_demo` (its func is `run_sweep_command`)."""
    parser = subparsers.add_parser(
        "sweep", help="Run a grid of images x parameter values; CSV of results and an HTML contact sheet.",
        description="Run every combination of images and parameter values once (a rerun skips finished items), "
                    f"then write {CSV_NAME} and {SHEET_NAME}, which plays the videos side by side. Every parameter "
                    "takes a comma-separated list, e.g. --seeds 0,1,2 --motion-bucket-id 40,127,200.")
    _configure(parser)


def _step_printer(fraction: float, text: str) -> None:
    print(f"\r  [{fraction:4.0%}] {text:<60}", end="", file=sys.stderr, flush=True)


def _quick_values(values: dict[str, list[str]], quick: Mapping[str, int], names: Sequence[str]) -> None:
    """The quick settings (on a CPU, or with random weights) for the parameters no flag gave, said in a note, as
    `generate` does: at full size a CPU takes hours an item."""

    used, note = quick_for_unset(quick, names, values)
    values.update({name: [str(value)] for name, value in used.items()})
    if note:
        print(note, file=sys.stderr)


def run_sweep_command(args: argparse.Namespace) -> int:
    """The `sweep` subcommand: 0 when every item ran or was done already, 1 when some failed."""
    on_ray = ray_requested(args)
    values = {name: parse_list(_flag(name) if name != "seed" else "--seeds", getattr(args, name))
              for name in (*SWEPT, *IMAGE_SWEPT) if getattr(args, name) is not None}
    if not args.images and not args.prompts:
        raise InputError("Nothing to sweep: give --images (files or folders) and/or --prompts FILE.")
    images = collect_images(args.images)
    prompts = read_prompts(args.prompts) if args.prompts else []
    sdxl_model = getattr(args, "sdxl_model", None) if prompts else None
    studio = None
    if not on_ray:  # a Ray cluster's workers have devices of their own: their runs take the values given
        from svd_demo.core.settings import settings_from_args
        from svd_demo.studio.studio import Studio

        studio = Studio(settings_from_args(args))
        swept = (*SWEPT, *(IMAGE_SWEPT if prompts else ()))
        _quick_values(values, studio.quick_defaults(args.svd_model, sdxl_model), swept)
    keyframe_guidance = parse_list("--keyframe-guidance", args.keyframe_guidance) if args.keyframe_guidance else []
    end_image = Path(args.end_image) if args.end_image else None
    items = expand_grid(images, values, prompts=prompts, negative_prompt=args.negative_prompt, model=args.svd_model,
                        sdxl_model=sdxl_model, extra_formats=args.extra_formats, end_image=end_image,
                        loop_to_start=args.loop_to_start, keyframe_guidance=keyframe_guidance)
    clean = _validate_values(values)
    counts = " x ".join(f"{len(clean[k])} {k}" for k in GRID_ORDER if len(clean.get(k, ())) > 1)
    print(f"Sweep: {len(items)} items ({len(images)} images, {len(prompts)} prompts"
          f"{', ' + counts if counts else ''}) into {args.out}")
    if args.dry_run:
        for index, item in enumerate(items, 1):
            print(f"[{index}/{len(items)}] {_describe(item)}")
        return 0
    if on_ray:
        if any(item.keyframes for item in items):
            raise InputError("Keyframes sweeps (--end-image, --loop-to-start) run on this machine: leave out the Ray "
                             "options.")
        return run_ray_command(args, items, sdxl_model)

    _check_text_to_video(studio, items)
    steps = _step_printer if sys.stderr.isatty() else None

    def line(text: str) -> None:
        if steps is not None:
            print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)
        print(text, flush=True)

    report = run_sweep(studio, items, args.out, progress=line, step_progress=steps, model_ref=args.svd_model,
                       sdxl_model=sdxl_model)
    print(report.summary)
    return 1 if report.count("error") else 0
