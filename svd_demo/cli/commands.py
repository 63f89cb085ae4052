"""Command line: `python -m svd_demo SUBCOMMAND ...`.

Each subcommand imports only what it needs: the parameter specs are imported here; the settings and the model
presets (`core.settings`, `core.defaults`), the studio (torch, diffusers), the web layer (gradio), the sweep and
the tiny-model builder inside the commands that use them, so that `--help`, a refused flag and `interpolate`
(whose start-up its benchmark times) answer in a fraction of a second.

Every generation flag is built from `params.SPECS`, so its default, range and help are the UI's and the API's.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from svd_demo.core.errors import UserFacingError
from svd_demo.core.library_logs import quiet_library_notices
from svd_demo.core.lora_refs import MAX_LORAS
from svd_demo.core.params import (
    EXTRA_FORMATS,
    IMAGE_SPECS,
    INTERPOLATION_SPECS,
    KEYFRAME_SPECS,
    LORAS,
    SPECS,
    UPSCALE_SPECS,
    ImageParams,
    Spec,
    VideoParams,
    quick_for_unset,
)

SUBCOMMANDS = ("app", "generate", "extend", "text-to-image", "text-to-video", "sweep", "interpolate", "upscale",
               "bench", "tiny-models", "keyframes")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_spec_arguments(parser: argparse.ArgumentParser, specs: Sequence[Spec]) -> None:
    """One flag per parameter; the default is None so that only what the user typed reaches the validator."""
    for spec in specs:
        default = "the model's" if spec.default is None else spec.default
        # `:g` for fractions only: it would print the seed limit as 4.29497e+09
        low, high = (f"{v:g}" if isinstance(v, float) else v for v in (spec.minimum, spec.maximum))
        rng = f" Range {low}-{high}." if spec.minimum is not None else ""
        help_text = f"{spec.help}{rng} [default {default}]"
        if spec.kind is bool:
            parser.add_argument(_flag(spec.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(_flag(spec.name), default=None, choices=spec.choices, help=help_text,
                                metavar=None if spec.choices else spec.name.upper())


# Set by Ctrl-C: the model work runs on a worker thread, which stops at its next step or downloaded chunk (a
# download keeps its bytes for the next run) instead of running to its end while the process waits to exit.
CANCEL = threading.Event()


def _progress(fraction: float, text: str) -> None:
    width = max(shutil.get_terminal_size().columns - 8, 60)  # one line: `\r` cannot go back over a wrapped one
    print(f"\r[{fraction:4.0%}] {text[:width]:<60}", end="", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace):
    from svd_demo.core.settings import settings_from_args

    return settings_from_args(args)


def _typed(args: argparse.Namespace, names: Sequence[str]) -> dict[str, object]:
    """The values the user typed; an explicit --seed means "this seed" unless --randomize-seed says otherwise."""
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if "seed" in values and "randomize_seed" not in values:
        values["randomize_seed"] = False  # the same seed gives the same frames
    return values


def _restored(args: argparse.Namespace, names: Sequence[str]) -> dict[str, object]:
    """The values of `--settings-from` among `names` (none without it)."""
    restored = getattr(args, "restored", None)
    return {k: v for k, v in restored.values().items() if k in names} if restored is not None else {}


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, object]:
    """The values the user typed, over those of `--settings-from`."""
    return {**_restored(args, names), **_typed(args, names)}


def _restore(args: argparse.Namespace, typed: set[str]) -> None:
    """`--settings-from FILE`: its settings (model and prompt included) under whatever was typed."""
    from svd_demo.studio.restore import read_settings

    args.restored = restored = read_settings(args.settings_from)
    for name, model in (("svd_model", restored.svd_model), ("sdxl_model", restored.sdxl_model)):
        if model and hasattr(args, name) and _flag(name) not in typed:
            setattr(args, name, model)
    if getattr(args, "prompt", "") is None:
        if restored.still is None:
            raise UserFacingError(f"{restored.source} was not made from a prompt: pass --prompt.")
        args.prompt, args.negative_prompt = restored.still.prompt, restored.still.negative_prompt
    print(f"note: settings from {restored.source} ({restored.kind.replace('_', ' ')}, seed {restored.video.seed}) "
          "where no flag says otherwise", file=sys.stderr)


def _quick(studio, given: dict[str, object], names: Sequence[str], *model_refs: str | None,
           say: bool = True) -> dict[str, object]:
    """`given` on top of the quick starting values where they apply (a CPU, random weights), saying so if `say`."""

    used, note = quick_for_unset(studio.quick_defaults(*model_refs), names, given)
    if note and say:
        print(note, file=sys.stderr)
    return {**used, **given}


def _video_values(args: argparse.Namespace, studio, names: Sequence[str], *other_models: str | None,
                  say: bool = True) -> dict[str, object]:
    """The run's values among `names`, resolved as the page and the API resolve them (`core.defaults`): typed over
    `--settings-from` over the quick settings over the model's own (AnimateLCM: 4 steps, guidance 1/1, motion 80)
    over the parameters' defaults. Says so when quick settings apply, if `say`."""
    from svd_demo.core.defaults import resolve_video

    model = getattr(args, "svd_model", None) or studio.settings.svd_model
    typed, restored = _typed(args, names), _restored(args, names)
    quick = studio.quick_defaults(model, *other_models)
    _, note = quick_for_unset(quick, names, {**restored, **typed})
    if note and say:
        print(note, file=sys.stderr)
    resolved = resolve_video(model, quick=quick, restored=restored, given=typed)
    return {**{name: resolved[name] for name in names if name in resolved}, **typed}


def _checked_out(path: str, suffix: str) -> Path:
    out = Path(path)
    if out.suffix.lower() != suffix:
        raise UserFacingError(f"The output must end in {suffix} (got {out.name}); GIF and WebM come with "
                              "--extra-formats.")
    return out


def _report(notices: Sequence[str], summary: str) -> int:
    print(file=sys.stderr)  # end the progress line
    for notice in notices:
        print(f"note: {notice}", file=sys.stderr)
    print(summary)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """`generate` (an image) and `extend` (a clip, continued from its last frame): the same flags, the same report."""
    from svd_demo.studio.studio import Studio

    out = _checked_out(args.out, ".mp4")
    studio = Studio(_settings(args))
    names = [*SPECS, "extra_formats"]
    params = VideoParams.from_raw(_video_values(args, studio, names))
    if args.command == "extend":
        run, source = studio.extend_video, args.video
    else:
        run, source = studio.image_to_video, args.image
    result = run(source, params, model_ref=args.svd_model, progress=_progress, cancel=CANCEL,
                 out_stem=out.with_suffix(""))
    info = result.files.info
    return _report(result.notices, f"Wrote {result.files.video} ({info.num_frames} frames, {info.width}x"
                                   f"{info.height}, seed {result.seed}); parameters in {result.files.sidecar}")


def _image_params(args: argparse.Namespace, studio):
    names = [*IMAGE_SPECS, "seed", "randomize_seed", "resolution", "loras"]
    given = _quick(studio, _given(args, names), names, studio.settings.sdxl_model, studio.settings.svd_model)
    return ImageParams.from_raw({"prompt": args.prompt, "negative_prompt": args.negative_prompt, **given})


def cmd_text_to_image(args: argparse.Namespace) -> int:
    from svd_demo.studio.studio import Studio

    out = _checked_out(args.out, ".png")
    studio = Studio(_settings(args))
    result = studio.text_to_image(_image_params(args, studio), progress=_progress, cancel=CANCEL, out_path=out)
    return _report(result.notices, f"Wrote {result.path} ({result.image.width}x{result.image.height}, seed "
                                   f"{result.seed}); parameters in {result.sidecar}")


def cmd_text_to_video(args: argparse.Namespace) -> int:
    from svd_demo.studio.studio import Studio

    studio = Studio(_settings(args))
    image_params = _image_params(args, studio)
    # seed, randomize_seed and resolution belong to the still: one --seed reproduces both stages
    names = [*(s for s in SPECS if s not in ("seed", "randomize_seed", "resolution")), "extra_formats"]
    video_params = VideoParams.from_raw(_video_values(args, studio, names, studio.settings.sdxl_model,
                                                      say=False))  # said for the still already
    out = _checked_out(args.out, ".mp4")
    still_path = _checked_out(args.still, ".png") if args.still else out.with_suffix(".still.png")
    still, video = studio.text_to_video(image_params, video_params, progress=_progress, cancel=CANCEL,
                                        out_stem=out.with_suffix(""), still_path=still_path)
    return _report(video.notices, f"Wrote {still.path} and {video.files.video} ({video.files.info.num_frames} "
                                  f"frames, seed {video.seed}); parameters in {video.files.sidecar}")


def cmd_tiny_models(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from svd_demo_testing.tiny_models import save_tiny_models, save_tiny_upscaler

    transformers_logging.disable_progress_bar()  # a bar per saved file of a few KB says nothing
    pipelines = tuple(kind for kind in args.which if kind != "upscaler")
    paths = save_tiny_models(args.directory, which=pipelines) if pipelines else {}
    for kind, path in paths.items():
        print(f"Wrote tiny random-weight {kind} pipeline to {path}")
    if "upscaler" in args.which:
        paths["upscaler"] = save_tiny_upscaler(Path(args.directory) / "upscaler.pth")
        print(f"Wrote a tiny random-weight upscaler to {paths['upscaler']}")
    if {"svd", "sdxl", "upscaler"} <= set(paths):
        print(f"Run the app on them: {_prog()} app --svd-model {paths['svd']} --sdxl-model {paths['sdxl']} "
              f"--upscale-model {paths['upscaler']}")
    return 0


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand, or only `only`'s: `main` builds just the one it runs, so that e.g. `interpolate` does not
    import the generation settings and the sweep (its start-up is part of what its benchmark times)."""
    parser = argparse.ArgumentParser(prog=_prog(), description="svd-demo from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    # Listed here for --help; `main` hands its arguments to the web app's own parser (svd_demo.web.server).
    sub.add_parser("app", help="Run the web app (the same as `python app.py`; `app --help` lists its options).",
                   add_help=False)
    if only in (None, "generate", "extend", "text-to-image", "text-to-video"):
        _add_generation_parsers(sub, only)
    if only in (None, "sweep"):
        from svd_demo.cli.sweep import add_sweep_parser

        add_sweep_parser(sub)
    if only in (None, "interpolate"):
        _add_interpolate_parser(sub)
    if only in (None, "upscale"):
        _add_upscale_parser(sub)
    # Listed for --help: the benchmark is the repository's `python -m benchmarks.gpu`, which `main` points to.
    sub.add_parser("bench", help="The GPU benchmark: `python -m benchmarks.gpu` in the repository.",
                   add_help=False)
    if only in (None, "keyframes"):
        _add_keyframes_parser(sub)
    if only in (None, "tiny-models"):
        tiny = sub.add_parser("tiny-models", help="Write tiny random-weight pipelines for tests and offline runs.")
        tiny.add_argument("directory", help="Folder to write DIR/svd, DIR/sdxl and DIR/upscaler.pth into.")
        tiny.add_argument("--which", nargs="+", default=["svd", "sdxl", "upscaler"],
                          choices=["svd", "sdxl", "upscaler"])
        tiny.set_defaults(func=cmd_tiny_models)
    return parser


SETTINGS_FROM_HELP = ("Start from the settings recorded in a video (.mp4/.webm) or .json sidecar this app wrote, "
                      "model and prompt included; flags you type win.")


def _add_generation_parsers(sub, only: str | None) -> None:
    from svd_demo.core.settings import MODEL_SETTINGS, add_settings_arguments

    video_commands = [
        ("generate", "--image", "Input image (PNG, JPEG, WebP, ...).", "Image to video with SVD.",
         "Animate an image with Stable Video Diffusion and write an MP4 (+ sidecar)."),
        ("extend", "--video", "The clip to continue (e.g. an MP4 made by generate).",
         "A longer video: SVD continues a clip from its last frame.",
         "Continue a video from its last frame with SVD and write the whole, longer clip (same size and frame rate) "
         "as an MP4 (+ sidecar)."),
    ]
    for name, source, source_help, what, description in video_commands:
        if only not in (None, name):
            continue
        cmd = sub.add_parser(name, help=what, description=description)
        cmd.add_argument(source, required=True, help=source_help)
        cmd.add_argument("--out", required=True, help="Output .mp4; OUT.json holds the parameters.")
        cmd.add_argument("--settings-from", metavar="FILE", help=SETTINGS_FROM_HELP)
        add_spec_arguments(cmd, list(SPECS.values()))
        cmd.add_argument("--extra-formats", default=None,
                         help=f"Also write these formats, comma-separated: {', '.join(EXTRA_FORMATS)}.")
        add_settings_arguments(cmd, only=MODEL_SETTINGS)
        cmd.set_defaults(func=cmd_generate)

    for name, func, suffix, what in [("text-to-image", cmd_text_to_image, ".png", "Prompt to a still with SDXL."),
                                     ("text-to-video", cmd_text_to_video, ".mp4",
                                      "Prompt to a still with SDXL, animated with SVD.")]:
        if only not in (None, name):
            continue
        cmd = sub.add_parser(name, help=what, description=what)
        cmd.add_argument("--prompt", default=None, help="What the still shows (required unless --settings-from "
                         "names a file made from a prompt).")
        cmd.add_argument("--negative-prompt", default="", help="What it should not show.")
        cmd.add_argument("--settings-from", metavar="FILE", help=SETTINGS_FROM_HELP)
        cmd.add_argument("--lora", action="append", dest="loras", metavar="ID_OR_FILE[:WEIGHT]",
                         help=f"{LORAS.help} Repeat for several (at most {MAX_LORAS}).")
        cmd.add_argument("--out", required=True, help=f"Output {suffix}; a .json sidecar is written beside it.")
        add_spec_arguments(cmd, list(IMAGE_SPECS.values()))
        if name == "text-to-video":
            cmd.add_argument("--still", default=None, help="Where to write the still (default: OUT.still.png).")
            add_spec_arguments(cmd, list(SPECS.values()))
            cmd.add_argument("--extra-formats", default=None,
                             help=f"Also write these formats, comma-separated: {', '.join(EXTRA_FORMATS)}.")
        else:
            add_spec_arguments(cmd, [SPECS["seed"], SPECS["randomize_seed"], SPECS["resolution"]])
        add_settings_arguments(cmd, only=MODEL_SETTINGS)
        cmd.set_defaults(func=func)


# `--loop` is the keyframes switch there: ping-pong (the video settings' `loop`) is pointless for a clip that ends on
# a photo of its own, so that setting is left out of the keyframes command.
KEYFRAMES_VIDEO_SPECS = tuple(name for name in ("seed", "randomize_seed", "resolution", "aspect_mode", "num_frames",
                                                "num_inference_steps", "motion_bucket_id", "fps",
                                                "noise_aug_strength", "decode_chunk_size", "playback_fps",
                                                "interpolate_fps", "upscale"))


def _add_keyframes_parser(sub) -> None:
    from svd_demo.core.settings import MODEL_SETTINGS, add_settings_arguments

    loop = KEYFRAME_SPECS["loop_to_start"]
    cmd = sub.add_parser("keyframes", help="Keyframes to video: SVD fills in the motion between two photos.",
                         description="A clip that starts on START and ends on END (ViBiDSampler on SVD-XT, about "
                                     "twice the work of image to video), written as an MP4 (+ sidecar). END is "
                                     "framed to START's size with the same aspect mode. With --loop the clip comes "
                                     "back to START.")
    cmd.add_argument("start", metavar="START", help="The first frame's photo (PNG, JPEG, WebP, ...).")
    cmd.add_argument("end", metavar="END", nargs="?", default=None,
                     help="The last frame's photo; leave it out with --loop.")
    cmd.add_argument("--loop", dest="loop_to_start", action="store_true", default=None,
                     help=f"{loop.help} [default off]")
    cmd.add_argument("--out", required=True, help="Output .mp4; OUT.json holds the parameters.")
    cmd.add_argument("--settings-from", metavar="FILE", help=SETTINGS_FROM_HELP)
    add_spec_arguments(cmd, [KEYFRAME_SPECS["keyframe_guidance"], *(SPECS[name] for name in KEYFRAMES_VIDEO_SPECS)])
    cmd.add_argument("--extra-formats", default=None,
                     help=f"Also write these formats, comma-separated: {', '.join(EXTRA_FORMATS)}.")
    add_settings_arguments(cmd, only=MODEL_SETTINGS)
    cmd.set_defaults(func=cmd_keyframes)


def cmd_keyframes(args: argparse.Namespace) -> int:
    """`keyframes START [END] [--loop]`: the video settings as `generate` takes them, and the method's own."""
    from svd_demo.studio.studio import Studio

    out = _checked_out(args.out, ".mp4")
    method = _given(args, list(KEYFRAME_SPECS))
    if args.end is None and not method.get("loop_to_start"):
        raise UserFacingError("Give the END photo after START, or pass --loop to end on the start photo.")
    studio = Studio(_settings(args))
    names = [*KEYFRAMES_VIDEO_SPECS, "extra_formats"]
    params = VideoParams.from_raw(_video_values(args, studio, names))
    result = studio.keyframes_to_video(args.start, args.end, params, model_ref=args.svd_model, progress=_progress,
                                       out_stem=out.with_suffix(""), **method)
    info, first, last = result.files.info, Path(args.start).name, Path(args.end or args.start).name
    return _report(result.notices, f"Wrote {result.files.video} ({info.num_frames} frames from {first} to {last}, "
                                   f"{info.width}x{info.height}, seed {result.seed}); parameters in "
                                   f"{result.files.sidecar}")


def _add_interpolate_parser(sub) -> None:
    factor, backend = INTERPOLATION_SPECS["factor"], INTERPOLATION_SPECS["backend"]
    parser = sub.add_parser("interpolate", help="Frame interpolation of a video or a folder of images.",
                            description="Motion-compensated frame interpolation: a factor or an exact target fps. "
                                        "A .json sidecar (the tab's) is written beside the output.")
    parser.add_argument("input", help="video file (mp4, webm, mov, mkv, gif, ...) or folder of images")
    parser.add_argument("--out", required=True, help="output .mp4/.webm/.gif, or a folder for PNG frames")
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument("--factor", type=int, help=f"output frames per input frame ({factor.minimum}-{factor.maximum})")
    rate.add_argument("--target-fps", "--fps", type=float, dest="target_fps",
                      help="exact output frame rate, e.g. 24 or 30")
    parser.add_argument("--slow-motion", action="store_true",
                        help="keep the source frame rate: the clip plays factor (or fps/source fps) times longer")
    parser.add_argument("--backend", default=backend.default, choices=backend.choices, help=backend.help)
    parser.add_argument("--input-fps", type=float, default=None,
                        help="override the input frame rate (a folder of images defaults to 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from svd_demo.studio.interpolating import interpolate_with_record

    # On a terminal one line is rewritten in place; piped into a log, carriage returns would run together.
    live = sys.stderr.isatty()

    def progress(done: int, total: int | None) -> None:
        text = f"{done}/{total if total else '?'} frames"
        print(f"\r{text}" if live else text, end="" if live else "\n", file=sys.stderr, flush=True)

    result, record = interpolate_with_record(args.input, args.out, factor=args.factor, target_fps=args.target_fps,
                                             slow_motion=args.slow_motion, backend=args.backend,
                                             input_fps=args.input_fps, progress=None if args.quiet else progress)
    if live and not args.quiet:
        print(file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{result.output_path}: {result.output_frames} frames at {result.output_fps:g} fps from "
          f"{result.input_frames} at {result.source_fps:g} fps ({result.width}x{result.height}, {result.backend}, "
          f"{result.cut_pairs} cuts, {result.copied_pairs} still pairs) in {result.seconds:.2f} s; parameters in "
          f"{record}")
    return 0


def _add_upscale_parser(sub) -> None:
    from svd_demo.core.settings import add_settings_arguments

    parser = sub.add_parser("upscale", help="Upscale a video, a folder of frames or a still with Real-ESRGAN.",
                            description="Make a video (streamed frame by frame) or a still 2x or 4x larger with a "
                                        "Real-ESRGAN network, in overlapping tiles; at most 3840 pixels on the long "
                                        "side. A .json sidecar is written beside the output.")
    parser.add_argument("input", help="video file (mp4, webm, mov, gif, ...), folder of images, or a still image")
    parser.add_argument("--out", required=True, help="output .mp4/.webm/.gif for a video, .png for a still")
    add_spec_arguments(parser, list(UPSCALE_SPECS.values()))
    add_settings_arguments(parser, only=("upscale_model", "device", "dtype", "max_image_pixels"))
    parser.set_defaults(func=cmd_upscale)


def cmd_upscale(args: argparse.Namespace) -> int:
    from svd_demo.studio.studio import Studio

    given = {name: getattr(args, name) for name in UPSCALE_SPECS if getattr(args, name) is not None}
    result, record = Studio(_settings(args)).upscale(
        args.input, upscale_factor=given.get("upscale_factor", UPSCALE_SPECS["upscale_factor"].default),
        tile=given.get("upscale_tile", UPSCALE_SPECS["upscale_tile"].default), progress=_progress, cancel=CANCEL,
        out_path=Path(args.out))
    what = f"{result.frames} frames" if result.kind == "video" else "a still"
    return _report(result.notes, f"Wrote {result.output_path} ({what}, {result.width}x{result.height} -> "
                                 f"{result.out_width}x{result.out_height}) in {result.seconds:.2f} s; parameters in "
                                 f"{record}")


def _tune_for_interpolation() -> None:
    """Process settings for `interpolate`, a short CPU-bound command (its start-up counts in its benchmark).

    Must run before numpy is imported: OpenBLAS starts one busy thread per core at import (0.12 s of CPU here), and
    interpolation uses no BLAS. Freed arrays stay in malloc's heap for reuse (see `svd_demo.engine.allocator`).
    """
    from svd_demo.engine.allocator import keep_freed_memory

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_memory()


def _bench(argv: list[str]) -> int:
    """`bench`: the GPU benchmark is a tool of the repository, not part of the app; say how it runs."""
    print("error: the GPU benchmark is `python -m benchmarks.gpu` (or `bash benchmarks/gpu_run.sh` on a lent "
          "machine), run from the svd-demo repository; see BENCHMARKS.md.", file=sys.stderr)
    return 2


def _prog() -> str:
    """`svd-demo` when run as the installed console script, else `python -m svd_demo`."""
    return "svd-demo" if Path(sys.argv[0]).name == "svd-demo" else "python -m svd_demo"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["app"]:
        from svd_demo.web.server import main as serve

        return serve(argv[1:], prog=f"{_prog()} app")  # which quiets the library notices itself
    quiet_library_notices()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from svd_demo.engine.hub import quiet_http_logs

    quiet_http_logs()
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    if argv[:1] == ["interpolate"]:
        _tune_for_interpolation()
    args = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None).parse_args(argv)
    try:
        if getattr(args, "settings_from", None):
            _restore(args, {a.split("=", 1)[0] for a in argv if a.startswith("--")})
        if getattr(args, "prompt", "") is None:
            raise UserFacingError("--prompt is required (or --settings-from a file made from a prompt).")
        return args.func(args)
    except UserFacingError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        CANCEL.set()
        print("\ninterrupted", file=sys.stderr)
        return 130
