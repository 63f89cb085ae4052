"""The page's and the API's handlers: module-level functions of (studio, values) that turn what the components
sent into parameter objects, call the `Studio`, and turn its results and errors into component updates.

`values` maps API parameter names to what the components sent; `bound` gives each handler the positional signature
Gradio reads (one parameter per input, named as the API names it), so the API's names, the inputs' order and the
handler's keys come from one list of names. Validators and cost checks run before the queue, so bad input never
waits behind someone else's video.
"""

import inspect
import logging
import random
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gradio as gr

from svd_demo.core.access import Access
from svd_demo.core.defaults import not_defaults, resolve_video
from svd_demo.core.errors import InputError, UserFacingError
from svd_demo.core.lora_refs import parse_loras
from svd_demo.core.params import (
    ALL_SPECS,
    IMAGE_SPECS,
    INTERPOLATION_SPECS,
    KEYFRAME_SPECS,
    LORAS,
    MAX_SEED,
    NUM_SEEDS,
    SPECS,
    UPSCALE_SPECS,
    ImageParams,
    VideoParams,
    checked,
    clean_prompt,
    parse_bool,
)
from svd_demo.core.settings import Settings
from svd_demo.engine.preview import PreviewSink
from svd_demo.engine.upscale import factor_of
from svd_demo.studio import zerogpu
from svd_demo.studio.budgets import (
    check_extend,
    check_image_to_video,
    check_interpolate,
    check_text_to_video,
    check_upscale_request,
)
from svd_demo.studio.restore import read_settings
from svd_demo.studio.studio import Studio, VideoResult
from svd_demo.web.gradio_overrides import page_safe
from svd_demo.web.runs import (
    INTERPOLATE_QUEUE,
    UPSCALE_RUNS,
    errors_for_user,
    fit_zerogpu,
    gpu_kwargs,
    live_previews,
    run_token,
    with_previews,
)

log = logging.getLogger("svd_demo")

UPSCALE_INPUTS = ["media", *UPSCALE_SPECS, "upscale_model"]  # the Upscale tab's inputs, in this order


def as_notes(lines: list[str] | tuple[str, ...]) -> str:
    """Notices as a Markdown list: shown as written on the page, and plain text for API clients (`page_safe`)."""
    return "\n".join(f"- {page_safe(line)}" for line in lines)


def _problem(check: Any, *args: Any) -> str:
    try:
        check(*args)
    except (gr.Error, UserFacingError) as exc:
        return exc.message if isinstance(exc, gr.Error) else str(exc)
    return ""


def _files(video: Any) -> list[str]:
    return [str(video.files.video), *map(str, video.files.extras.values()), str(video.files.sidecar)]


def _image_tab_outputs(result: Any) -> tuple[Any, ...]:
    """video, seed used, what the model saw, notices, files: what the image tab's runs show."""
    return str(result.files.video), result.seed, result.prepared, as_notes(result.notices), _files(result)


VIDEO_PARAMS = [*SPECS, "extra_formats"]  # what `VideoParams.from_raw` takes


VIDEO_INPUTS = ["svd_model", *VIDEO_PARAMS]  # the video settings every GPU handler receives, in this order


STILL_PARAMS = ["prompt", "negative_prompt", *IMAGE_SPECS, "seed", "randomize_seed", "resolution",
                LORAS.name]  # ImageParams'


TEXT_INPUTS = ["prompt", "negative_prompt", "sdxl_model", *IMAGE_SPECS, LORAS.name]


def _annotation(name: str) -> Any:
    """The type a component sends for parameter `name` (sliders and number boxes send floats)."""
    spec = ALL_SPECS.get(name)
    if spec is not None:
        return spec.kind if spec.kind in (bool, str) else float
    return {"extra_formats": list[str], "still_result": Any}.get(name, str | None)


def bound(handler: Callable[..., Any], studio: Studio, names: list[str],
           progress: gr.Progress | None = None) -> Callable[..., Any]:
    """`handler(studio, values, request, progress)` as Gradio calls it: positional parameters `names` (Gradio reads
    `inspect.signature`, here a generated `__signature__`), then the request and, if given, the progress tracker
    Gradio fills in. A generator handler stays a generator (Gradio streams its updates)."""
    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_annotation(name))
                  for name in names]
    parameters.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))
    if progress is not None:
        parameters.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=progress,
                                            annotation=gr.Progress))
    signature = inspect.Signature(parameters)

    def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        values = dict(signature.bind(*args, **kwargs).arguments)
        return values, values.pop("request"), values.pop("progress", None)

    if inspect.isgeneratorfunction(handler):
        def call(*args: Any, **kwargs: Any) -> Any:
            values, request, tracker = arguments(args, kwargs)
            yield from handler(studio, values, request, tracker)
    else:
        def call(*args: Any, **kwargs: Any) -> Any:
            values, request, tracker = arguments(args, kwargs)
            return handler(studio, values, request, tracker)

    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in parameters}
    call.__name__ = call.__qualname__ = handler.__name__
    call.__doc__ = handler.__doc__
    return call


PAGE = "page"  # a session state that the page sets when it loads: an API call leaves it False


def api_defaults(studio: Studio) -> dict[str, Any]:
    """What an API caller's client sends for a video parameter it leaves out: the controls' starting values."""
    start = model_source(studio.access, "svd", starting_model(studio.access, studio.settings, "svd"))
    return resolve_video(start, quick=studio.quick_defaults())


def video_params(studio: Studio, values: Mapping[str, Any]) -> VideoParams:
    """The video parameters among `values`, checked. The page sends what it shows (picking a model set that model's
    values); an API call is resolved as the CLI resolves a command (`core.defaults`): what it left out takes the
    named model's own values (AnimateLCM: 4 steps at guidance 1), not the page's starting ones."""
    given = {name: values[name] for name in VIDEO_PARAMS if name in values}
    if not values.get(PAGE):
        named = _model(values) or starting_model(studio.access, studio.settings, "svd")
        model = model_source(studio.access, "svd", named)
        typed = not_defaults({k: v for k, v in given.items() if k in SPECS}, api_defaults(studio))
        resolved = resolve_video(model, quick=studio.quick_defaults(), given=typed)
        given = {**given, **{name: resolved[name] for name in given if name in resolved}}
    with errors_for_user():
        return VideoParams.from_raw(given)


def image_params(studio: Studio, values: Mapping[str, Any]) -> ImageParams:
    """The still's parameters among `values`, checked (LoRAs: those the studio offers)."""
    with errors_for_user():
        return ImageParams.from_raw({name: values[name] for name in STILL_PARAMS if name in values},
                                    check_lora=studio.access.lora_ref)


def _model(values: Mapping[str, Any], name: str = "svd_model") -> str | None:
    return values.get(name) or None  # empty: the one in the settings


def _warn_memory_changes(result: VideoResult) -> None:
    for change in result.memory_changes:
        gr.Warning(change)


def prepare_image(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                  progress: Any = None) -> tuple[Any, str]:
    """The image as the model will see it, and what the video will be (size, conversions); CPU only."""
    if not values.get("image_path"):
        return None, ""
    resolution = values.get("resolution", SPECS["resolution"].default)
    try:
        prep, loaded = studio.prepare(values["image_path"], int(resolution),
                                      values.get("aspect_mode", SPECS["aspect_mode"].default))
    except UserFacingError as exc:
        return None, f"⚠️ {page_safe(str(exc))}"
    w, h = prep.image.size
    return prep.image, as_notes([f"The video will be {w}x{h}.", *loaded.notices, *prep.notices])


def image_to_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                   progress: gr.Progress | None = None) -> Iterator[tuple[Any, ...]]:
    """Animate an image; with `live_preview`, yields rough previews while denoising first. The last update: the
    MP4, the seed used, the prepared image, notices, all files, and an empty preview."""
    image = values.get("image")
    params = fit_zerogpu(studio, image, video_params(studio, values), _model(values))
    with errors_for_user(), run_token(studio, request) as token:
        def run(sink: PreviewSink | None) -> VideoResult:
            return studio.image_to_video(image, params, model_ref=_model(values), preview=sink,
                                         **gpu_kwargs(progress, token))

        result = yield from with_previews(studio, live_previews(values), run, skipped=5)
    _warn_memory_changes(result)
    yield (*_image_tab_outputs(result), None)


def _extended(studio: Studio, values: Mapping[str, Any], request: gr.Request | None,
              progress: gr.Progress | None) -> VideoResult:
    """Extend, as both video tabs offer it: continue `video` from its last frame (`Studio.extend_video`)."""
    video, params = values.get("video"), video_params(studio, values)
    if zerogpu.on_zerogpu():
        with errors_for_user():
            size = zerogpu.clip_size(video, params)
        params = fit_zerogpu(studio, None, params, _model(values), size)
    with errors_for_user(), run_token(studio, request) as token:
        result = studio.extend_video(video, params, model_ref=_model(values), **gpu_kwargs(progress, token))
    _warn_memory_changes(result)
    return result


def extend_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                 progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """A longer video: SVD continues `video` from its last frame with these settings, and the new frames are
    appended (at the video's size and frame rate). Returns the same outputs as image_to_video, but "what the model
    will see" is left as it is: it belongs to the input photo, which Extend does not use."""
    video, seed, _last_frame, notes, files = _image_tab_outputs(_extended(studio, values, request, progress))
    return video, seed, gr.skip(), notes, files


def extend_this_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                      progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """Extend on the text tab: the video, its seed, notices and files."""
    result = _extended(studio, values, request, progress)
    return str(result.files.video), result.seed, as_notes(result.notices), _files(result)


def compare_seeds(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                  progress: gr.Progress | None = None) -> list[tuple[str, str]]:
    """The same image and settings with `num_seeds` consecutive seeds; returns (video, "seed N") pairs."""
    image = values.get("image")
    params = fit_zerogpu(studio, image, video_params(studio, values), _model(values))
    first = random.SystemRandom().randint(0, MAX_SEED) if params.randomize_seed else params.seed
    count = int(values.get("num_seeds", NUM_SEEDS.default))
    seeds = [(first + i) % (MAX_SEED + 1) for i in range(count)]
    with errors_for_user(), run_token(studio, request) as token:
        results = studio.compare_seeds(image, params, seeds, model_ref=_model(values),
                                       **gpu_kwargs(progress, token))
    return [(str(r.files.video), f"seed {r.seed}") for r in results]


def take_seed(selected: gr.SelectData) -> tuple[Any, Any]:
    """A clip picked in Compare seeds: its seed goes into the settings (Randomize off), ready to generate with."""
    caption = (selected.value or {}).get("caption") or ""
    match = re.fullmatch(r"seed (\d+)", caption)
    if not match:
        return gr.skip(), gr.skip()
    gr.Info(f"Seed {match[1]} is in the settings now (Randomize is off).")
    return int(match[1]), False


def text_to_image(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                  progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """Render an SDXL still at the video size; returns the still, its seed, notices and files."""
    params = image_params(studio, values)
    with errors_for_user(), run_token(studio, request) as token:
        result = studio.text_to_image(params, model_ref=_model(values, "sdxl_model"), **gpu_kwargs(progress, token))
    return (str(result.path), result.seed, as_notes(result.notices), [str(result.path), str(result.sidecar)],
            result)


def text_to_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                  progress: gr.Progress | None = None) -> Iterator[tuple[Any, ...]]:
    """Prompt -> still -> video in one call; the still is shown as soon as it exists, then (with `live_preview`)
    rough previews of the video while it is denoised; the last output is the preview (empty at the end)."""
    # The two stages of Studio.text_to_video, called one by one so the still can be yielded in between.
    motion, still_params = video_params(studio, values), image_params(studio, values)
    with errors_for_user(), run_token(studio, request) as token:
        still = studio.text_to_image(still_params, model_ref=_model(values, "sdxl_model"),
                                     **gpu_kwargs(progress, token, (0.0, 0.3)))
        yield str(still.path), None, still.seed, None, as_notes(still.notices), [str(still.path)], still, None
        motion = fit_zerogpu(studio, still.image, motion, _model(values), still.image.size)

        def run(sink: PreviewSink | None) -> VideoResult:
            return studio.animate_still(still, motion, model_ref=_model(values), preview=sink,
                                        **gpu_kwargs(progress, token, (0.3, 1.0)))

        result = yield from with_previews(studio, live_previews(values), run, skipped=7)
    _warn_memory_changes(result)
    yield (str(still.path), str(result.files.video), still.seed, result.seed, as_notes(result.notices),
           [str(still.path), str(still.sidecar), *_files(result)], still, None)


def animate_this_still(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                       progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """The video stage alone, for the session's last still; the last output hands the still to the image tab."""
    still = values.get("still_result")
    if still is None:
        raise gr.Error("Make a still first (Still only or Prompt to video).")
    params = fit_zerogpu(studio, still.image, video_params(studio, values), _model(values), still.image.size)
    with errors_for_user(), run_token(studio, request) as token:
        result = studio.animate_still(still, params, model_ref=_model(values), **gpu_kwargs(progress, token))
    return str(result.files.video), result.seed, as_notes(result.notices), _files(result), str(still.path)


def interpolate(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """Interpolate a video by a factor or to an exact target fps (target_fps > 0 wins)."""
    if not values.get("video"):
        raise gr.Error("Please upload a video first (or use the last generated one).")
    values = {**{name: spec.default for name, spec in INTERPOLATION_SPECS.items()}, **values}
    target_fps = values["target_fps"]
    use_fps = target_fps not in (0, None, "")
    report = None if progress is None else lambda f, text: progress(f, desc=text)
    with errors_for_user(), run_token(studio, request, INTERPOLATE_QUEUE) as token:
        # Raw values: the interpolation module checks them and says what is wrong (2.5 is not a factor).
        out = studio.interpolate(values["video"], factor=None if use_fps else values["factor"],
                                 target_fps=target_fps if use_fps else None, slow_motion=bool(values["slow_motion"]),
                                 backend=values["backend"], progress=report, cancel=token)
    lines = [f"{out.input_frames} frames at {out.source_fps:g} fps became {out.output_frames} frames at "
             f"{out.output_fps:g} fps in {out.seconds:.1f} s.", *out.notes]
    if out.cut_pairs:
        lines.append(f"{out.cut_pairs} scene cut(s): frames were repeated there instead of blended.")
    return str(out.output_path), as_notes(lines), [str(out.output_path), str(out.output_path.with_suffix(".json"))]


def restore_settings(path: str | None, access: Access | None = None) -> list[Any]:
    """Updates for VIDEO_INPUTS, TEXT_INPUTS, the tabs and the note, from a video or sidecar made here.

    A file without our settings changes nothing and says why; a clip made from a prompt opens the text tab. With
    `access`, models and LoRAs are held to what it offers: a model that is not on offer leaves its picker as it is.
    """
    unchanged = [gr.update()] * (len(VIDEO_INPUTS) + len(TEXT_INPUTS) + len(KEYFRAME_SPECS)) + [gr.Tabs()]
    if not path:
        return [*unchanged, ""]
    try:
        restored = read_settings(path, check_lora=access.lora_ref if access else None)
    except InputError as exc:
        return [*unchanged, as_notes([str(exc)])]
    values = restored.values()
    models = {"svd_model": restored.svd_model, "sdxl_model": restored.sdxl_model}
    kept = []
    if access is not None:
        offered = {"svd_model": access.model_name("svd", restored.svd_model),
                   "sdxl_model": access.model_name("sdxl", restored.sdxl_model)}
        kept = [name for name, model in models.items() if model and not offered[name]]
        models = offered
    names = [*VIDEO_INPUTS, *TEXT_INPUTS, *KEYFRAME_SPECS]
    updates = [gr.update(value=models[n]) if n in models and models[n] else
               gr.update(value=values[n]) if n in values else gr.update() for n in names]
    if restored.keyframes:
        return [*updates, gr.Tabs(selected="keyframes"), as_notes([_restored_keyframes_note(restored)])]
    tab = "text_to_video" if restored.still else "image_to_video"
    what = (f"the prompt \u201c{restored.still.prompt}\u201d, " if restored.still else "") + f"seed {values['seed']}"
    note = (f"Restored the settings of {restored.source} ({restored.kind.replace('_', ' ')}: {what}). "
            + ("Press Prompt to video to make it again." if restored.still else
               "Upload its photo and press Generate to make it again."))
    lines = [note, *(f"The file's `{name}` is not offered on this server: the current one is kept." for name in kept)]
    gr.Info(note)  # the note sits at the foot of the sidebar, out of sight on a long page
    return [*updates, gr.Tabs(selected=tab), as_notes(lines)]


def _restored_keyframes_note(restored: Any) -> str:
    loop = " back to the start photo" if restored.keyframes.get("loop_to_start") else ""
    return (f"Restored the settings of {restored.source} (keyframes{loop}: seed {restored.video.seed}). Upload its "
            f"start{'' if loop else ' and end'} photo and press Generate between the photos to make it again.")


def upscale(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
            progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """Upscale a video (streamed frame by frame) or a still 2x or 4x with a Real-ESRGAN network."""
    if not values.get("media"):
        raise gr.Error("Please upload a video or an image first (or use the last generated video).")
    values = {**{name: spec.default for name, spec in UPSCALE_SPECS.items()}, **values}
    with errors_for_user(), run_token(studio, request, UPSCALE_RUNS) as token:
        out, record = studio.upscale(values["media"], upscale_factor=values["upscale_factor"],
                                     model_ref=values.get("upscale_model") or None, tile=values["upscale_tile"],
                                     **gpu_kwargs(progress, token))
    what = f"{out.frames} frames" if out.kind == "video" else "The still"
    lines = [f"{what}: {out.width}x{out.height} became {out.out_width}x{out.out_height} in {out.seconds:.1f} s.",
             *out.notes]
    video = str(out.output_path) if out.kind == "video" else None
    still = str(out.output_path) if out.kind == "still" else None
    return video, still, as_notes(lines), [str(out.output_path), str(record)]


KEYFRAME_INPUTS = ["start_image", "end_image", *KEYFRAME_SPECS]  # the Keyframes tab's own inputs, in this order


def prepare_keyframes(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                      progress: Any = None) -> tuple[Any, Any, str]:
    """Both photos as the model will see them (the end framed to the start's size and aspect mode), and what the
    video will be; CPU only. Without an end photo (and no loop), only the start is shown."""
    start, end = values.get("start_image"), values.get("end_image")
    if not start:
        return None, None, ""
    resolution = values.get("resolution", SPECS["resolution"].default)
    aspect_mode = values.get("aspect_mode", SPECS["aspect_mode"].default)
    try:
        loop = parse_bool(values.get("loop_to_start", False), "loop_to_start")
        if not end and not loop:
            shown_start, _ = studio.prepare(start, int(resolution), aspect_mode)
            return shown_start.image, None, as_notes(["Add the end photo, or switch on the loop to end on this one."])
        photos = studio.prepare_keyframes(start, end, int(resolution), aspect_mode, loop_to_start=loop)
    except UserFacingError as exc:
        return None, None, f"⚠️ {page_safe(str(exc))}"
    w, h = photos.start.image.size
    return photos.start.image, photos.end.image, as_notes([f"The video will be {w}x{h}.", *photos.start_notices,
                                                         *photos.end_notices])


def keyframes_to_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                       progress: gr.Progress | None = None) -> Iterator[tuple[Any, ...]]:
    """A clip from `start_image` to `end_image` (or back to the start with `loop_to_start`): SVD fills in the
    motion (ViBiDSampler, about twice the work of image to video). With `live_preview`, yields rough previews
    first. The last update: the MP4, the seed used, notices, all files, and an empty preview."""
    start, end = values.get("start_image"), values.get("end_image")
    params = fit_zerogpu(studio, start, video_params(studio, values), _model(values))
    method = {name: values.get(name, spec.default) for name, spec in KEYFRAME_SPECS.items()}
    with errors_for_user(), run_token(studio, request) as token:
        def run(sink: PreviewSink | None) -> VideoResult:
            return studio.keyframes_to_video(start, end, params, model_ref=_model(values), preview=sink, **method,
                                             **gpu_kwargs(progress, token))

        result = yield from with_previews(studio, live_previews(values), run, skipped=4)
    _warn_memory_changes(result)
    yield str(result.files.video), result.seed, as_notes(result.notices), _files(result), None


def keyframes_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Both photos there (or the loop on), the method's settings and the video settings, before the queue."""
    problems = {name: problem for name in KEYFRAME_SPECS
                if (problem := _problem(checked, name, values.get(name, KEYFRAME_SPECS[name].default)))}
    if not values.get("start_image"):
        problems["start_image"] = "Please upload an image as the start photo (`start_image`)."
    if not values.get("end_image") and "loop_to_start" not in problems and not checked(
            "loop_to_start", values.get("loop_to_start", False)):
        problems["end_image"] = ("Please upload an image as the end photo (`end_image`), or switch on "
                                 "`loop_to_start` to end on the start photo.")
    return {**problems, **video_problems(values)}


# Validators run before the queue: a missing file or a bad number is refused without waiting for the GPU. Each
# check maps parameter names to the problem Gradio shows on them.


def input_validator(check: Callable[[Mapping[str, Any]], dict[str, str]],
                    names: list[str]) -> Callable[..., list[dict]]:
    """A Gradio validator for an event whose inputs are `names`: one gr.validate per input."""

    def validate(*args: Any) -> list[dict]:
        problems = check(dict(zip(names, args, strict=True)))
        # Shown as plain text under the component, where Markdown's backticks would stand as they are.
        return [gr.validate(name not in problems, problems.get(name, "").replace("`", "")) for name in names]

    return validate


def video_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """A problem with the video parameters, put on the parameters its message names, e.g. min and max guidance,
    not on all sixteen (on all only if it names none)."""
    problem = _problem(lambda raw: VideoParams.from_raw({k: raw[k] for k in VIDEO_PARAMS if k in raw}), values)
    if not problem:
        return {}
    blamed = set(re.findall(r"`(\w+)`", problem)) & set(VIDEO_PARAMS) or set(VIDEO_PARAMS)
    return dict.fromkeys(blamed, problem)


def needs_image(values: Mapping[str, Any]) -> dict[str, str]:
    return {} if values.get("image") else {"image": "Please upload an image first."}


def image_run_problems(values: Mapping[str, Any]) -> dict[str, str]:
    return {**needs_image(values), **video_problems(values)}


def extend_problems(values: Mapping[str, Any]) -> dict[str, str]:
    missing = {} if values.get("video") else {"video": "Generate or choose a video first: Extend continues the one "
                                                       "shown."}
    return {**missing, **video_problems(values)}


# Costs: once a request's values pass the checks above, its work is estimated from them and its input's header and
# held to the studio's budgets (studio/budgets.py), so a request that will be refused never waits, let alone runs.


def with_costs(check: Callable[[Mapping[str, Any]], dict[str, str]] | None, studio: Studio,
                cost: Callable[[Studio, Mapping[str, Any]], None]) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    """`check`, then, when it found nothing, `cost(studio, values)`, its refusal put on the parameters it names."""

    def checked(values: Mapping[str, Any]) -> dict[str, str]:
        problems = check(values) if check is not None else {}
        if problems:
            return problems
        try:
            cost(studio, values)
        except (UserFacingError, gr.Error) as exc:
            message = exc.message if isinstance(exc, gr.Error) else page_safe(str(exc))
            blamed = set(re.findall(r"`(\w+)`", message)) & set(values)
            return dict.fromkeys(blamed or [next(iter(values))], message)
        except Exception:  # an estimate that fails must not refuse: the run itself says what is wrong
            log.exception("Estimating a request's work failed; it is queued unchecked")
        return {}

    return checked


def image_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    seeds = int(values.get("num_seeds") or 1)
    check_image_to_video(studio.budgets, values["image"], video_params(studio, values), model_ref=_model(values),
                         default_model=studio.settings.svd_model, seeds=seeds)


def extend_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    check_extend(studio.budgets, values["video"], video_params(studio, values), model_ref=_model(values),
                 default_model=studio.settings.svd_model)


def text_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    orientation = values.get("orientation", IMAGE_SPECS["orientation"].default)
    check_text_to_video(studio.budgets, video_params(studio, values), orientation, model_ref=_model(values),
                        default_model=studio.settings.svd_model)


def interpolate_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    if not values.get("video"):
        return
    target_fps = values.get("target_fps")
    use_fps = target_fps not in (0, None, "")
    check_interpolate(studio.budgets, values["video"], factor=None if use_fps else values.get("factor"),
                      target_fps=target_fps if use_fps else None)


def upscale_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    if not values.get("media"):
        return
    tile = checked("upscale_tile", values.get("upscale_tile", UPSCALE_SPECS["upscale_tile"].default))
    factor = factor_of(values.get("upscale_factor", UPSCALE_SPECS["upscale_factor"].default), "upscale_factor")
    check_upscale_request(studio.budgets, values["media"], factor, tile)


def prompt_problems(values: Mapping[str, Any]) -> dict[str, str]:
    problem = _problem(clean_prompt, values.get("prompt"))
    return {"prompt": problem} if problem else {}


def text_problems(values: Mapping[str, Any], access: Access | None = None) -> dict[str, str]:
    """The prompt and the LoRAs (not on offer, files that do not exist, weights out of range), before the queue."""
    problem = _problem(parse_loras, values.get(LORAS.name), *([access.lora_ref] if access else []))
    return {**prompt_problems(values), **({LORAS.name: problem} if problem else {})}


def model_source(access: Access, kind: str, ref: str) -> str:
    """What a picker's value loads (a name's model), or the value itself where it is not on offer."""
    try:
        return access.model(kind, ref)[1]
    except InputError:
        return ref


_SETTING = {"svd": "svd_model", "sdxl": "sdxl_model", "upscale": "upscale_model"}


def starting_model(access: Access, settings: Settings, kind: str) -> str:
    """The picker's first value: the settings' model as `access` names it (its own default if not on offer)."""
    return access.model_name(kind, getattr(settings, _SETTING[kind])) or access.defaults[kind]
