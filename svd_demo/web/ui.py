"""The Gradio page: its tabs, their handlers, and how runs stream previews and stop. Gradio's internals are
overridden only in `gradio_overrides` (the web layer is the only one that imports gradio).

Handlers are thin module-level functions of (studio, values): they turn component values into parameter objects,
call the `Studio`, and turn its results and errors into component updates. `_bound` gives each the signature Gradio
reads, generated from the names of its inputs, which are the API's parameter names. Every GPU event shares one
concurrency id limited to the number of devices, so each GPU runs one job at a time whatever the tab; validation runs
before the queue, so bad input never waits behind someone else's video.
"""

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import queue
import random
import re
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import gradio as gr
from gradio.utils import _parse_file_size
from starlette.middleware import Middleware

from svd_demo.core.access import Access
from svd_demo.core.defaults import model_start, not_defaults, resolve_video
from svd_demo.core.errors import InputError, UserFacingError
from svd_demo.core.lora_refs import MAX_LORAS_CHARS, parse_loras
from svd_demo.core.models import is_tiny_model, sdxl_defaults
from svd_demo.core.params import (
    ALL_SPECS,
    EXTRA_FORMATS,
    IMAGE_SPECS,
    INTERPOLATION_SPECS,
    KEYFRAME_SPECS,
    LIVE_PREVIEW,
    LORAS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    NUM_SEEDS,
    SPECS,
    UPSCALE_SPECS,
    ImageParams,
    Spec,
    VideoParams,
    checked,
    clean_prompt,
    describe_quick,
    parse_bool,
)
from svd_demo.core.settings import Settings, login, public_mode
from svd_demo.engine.preview import PreviewSink, write_preview
from svd_demo.files.examples import EXAMPLES_DIR, example_images, example_prompts
from svd_demo.files.outputs import private_output_dir
from svd_demo.studio import zerogpu
from svd_demo.studio.budgets import (
    check_extend,
    check_image_to_video,
    check_interpolate,
    check_text_to_video,
    check_upscale_request,
)
from svd_demo.studio.restore import read_settings
from svd_demo.studio.studio import CancelFlag, Studio, VideoResult
from svd_demo.web.gradio_overrides import (
    AppBlocks,
    Refusal,
    named,
    page_safe,
    range_end,
    uploaded_file,
    uploaded_image,
)
from svd_demo.web.request_limit import RequestBodyLimit, body_limit

log = logging.getLogger("svd_demo")
T = TypeVar("T")

GPU_QUEUE = "gpu"  # the one concurrency id of every event that runs a model
INTERPOLATE_QUEUE = "interpolate"
UPSCALE_RUNS = "upscale"  # the Upscale tab's Cancel stops these runs only (they queue with the GPU's)
UPSCALE_INPUTS = ["media", *UPSCALE_SPECS, "upscale_model"]  # the Upscale tab's inputs, in this order
CANCEL_WAIT_S = 30  # the Cancel button waits this long for the run to stop (one step) before answering
CSS = """
.banner {padding: 0.5em 1em; border-radius: 8px; background: var(--color-accent-soft);}
.player video {max-height: 60vh; object-fit: contain;}
"""  # .player: a portrait clip fills the column's width and would stretch the page far below the fold


def _user_error(exc: BaseException) -> gr.Error:
    """What the person sees: our own messages verbatim (as plain text: they may quote user text), never internals."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserFacingError):
        return Refusal(str(exc))
    error_id = uuid.uuid4().hex[:8]
    log.exception("Unexpected error %s", error_id)
    return Refusal(f"Something went wrong on the server (error {error_id}). Please try again; if it keeps "
                    "happening, report the error id.")


@contextmanager
def _errors_for_user() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise _user_error(exc) from exc


def _component(spec: Spec, value: Any = None, choice_widget: type[gr.Radio | gr.Dropdown] = gr.Radio,
               **kwargs: Any) -> gr.components.Component:
    """A component for a parameter spec: its label, range, step, default and help come from `params`."""
    value = spec.default if value is None else value
    # Gradio's number box beside a slider clamps a typed value to the range without a word: the range is said here.
    ranged = spec.minimum is not None and spec.kind is not bool and spec.name != "seed"
    span = f" ({range_end(spec.minimum)}-{range_end(spec.maximum)})" if ranged else ""
    common = {"label": spec.label, "info": spec.help + span, **kwargs}
    if spec.kind is bool:
        return gr.Checkbox(value=value, **common)
    if spec.choices:
        return choice_widget(choices=list(spec.choices), value=value, **common)
    if spec.name == "seed":
        return named(gr.Number(value=value, precision=0, minimum=spec.minimum, maximum=spec.maximum, **common),
                      spec.name)
    whole = 0 if spec.kind is int else None  # precision 0: a whole number, refused (not rounded) otherwise
    return named(gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=value, precision=whole,
                         **common), spec.name)


def _live_preview_box() -> gr.Image:
    """Under the video (and its progress bar): the rough previews of a run while it denoises."""
    return gr.Image(label="Live preview", interactive=False, height=150, type="filepath", show_label=True)


def _seed_box(label: str) -> gr.Number:
    """An output showing the seed a run used. Hidden until there is one: an empty number box shows "0"."""
    box = gr.Number(label=label, value=None, precision=0, interactive=False, visible=False)
    box.change(lambda: gr.Number(visible=True), None, box, queue=False, api_visibility="private")
    return box


def _notes(lines: list[str] | tuple[str, ...]) -> str:
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
    return str(result.files.video), result.seed, result.prepared, _notes(result.notices), _files(result)


def _session(request: gr.Request | None) -> str:
    return (request.session_hash if request else None) or uuid.uuid4().hex


_RUN_FLAG: contextvars.ContextVar[CancelFlag | None] = contextvars.ContextVar("svd_demo_run_flag", default=None)
_END = object()


def _run_token(studio: Studio, request: gr.Request | None, kind: str = GPU_QUEUE) -> Any:
    """This run's cancel flag (made by `_stops_when_dropped`), registered under its session: the Cancel button
    and the end of the session reach it there."""
    return studio.cancels.token(_session(request), _RUN_FLAG.get(), kind)


def _stops_when_dropped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, a blocking handler or a generator of updates, run so that its run stops when Gradio drops the event.

    Gradio runs a plain handler in a worker thread, and dropping the event only cancels the asyncio task waiting
    for that thread: the thread, holding the GPU, would go on to the end. So the handler runs in a thread that this
    coroutine waits for, with a cancel flag of its own (`_run_token` hands it to the studio):
    - `Job.cancel()` in gradio_client and the Cancel buttons (`cancels=`) call Gradio's /cancel, which cancels this
      task: the CancelledError sets the flag, and the run stops at its next step.
    - A closed tab, a reload or a killed client end the session: `demo.unload` sets the session's flags.
    What a dropped run had already written is removed: nobody will fetch it.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        async def updates(*args: Any, **kwargs: Any) -> Any:
            flag = CancelFlag()
            steps = fn(*args, **kwargs)  # runs nothing yet
            try:
                while (item := await _in_thread(flag, partial(next, steps, _END))) is not _END:
                    if item is _STOPPED:
                        return
                    yield item
                    flag.files.clear()  # Gradio asks for the next update once it has sent this one
            except (GeneratorExit, asyncio.CancelledError):  # GeneratorExit: Gradio closed us, the client is gone
                flag.set()
                raise
            finally:
                with suppress(ValueError):  # still running on its thread: only after a second cancellation
                    steps.close()
                if flag.is_set():
                    flag.discard()

        return updates

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        flag = CancelFlag()
        try:
            result = await _in_thread(flag, partial(fn, *args, **kwargs))
        finally:
            if flag.is_set():
                flag.discard()
        if flag.is_set():  # stopped by its flag, or dropped (session ended, Cancel) just as it finished
            return gr.skip()
        return result

    return run


# A run stopped by its flag (Cancel, the end of its session) is not a failure: it ends leaving its outputs as they
# are (gr.skip), not with an error, which would put a red "Error" badge on them. The Cancel button says "Cancelled.".
_STOPPED = object()


async def _in_thread(flag: CancelFlag, call: Callable[[], Any]) -> Any:
    """`call()` on a worker thread, `flag` being its run's cancel flag, which is set if this task is cancelled.

    The task then ends at once, so /cancel answers at once (gradio_client waits 5 s for it); the run stops at its
    next step, and the next request waits for the device (`Studio.gpu`) until then.
    """

    def flagged() -> Any:
        _RUN_FLAG.set(flag)  # in this thread's own copy of the caller's context
        return call()

    def ended(work: asyncio.Future) -> None:
        flag.discard()  # whatever it wrote before it saw the flag
        if not work.cancelled():
            work.exception()  # GenerationCancelled, as expected: retrieved, so asyncio does not report it

    work = asyncio.ensure_future(anyio.to_thread.run_sync(flagged))
    try:
        return await asyncio.shield(work)
    except gr.Error:
        if flag.is_set():  # stopped by its flag (Cancel, or the end of its session): not an error
            return _STOPPED
        raise
    except asyncio.CancelledError:
        flag.set()
        work.add_done_callback(ended)
        log.info("A run's event was cancelled: it stops at its next step")
        raise


def _gpu_kwargs(progress: gr.Progress | None, token: Any, share: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Progress and cancel for a GPU call; none on ZeroGPU, whose worker process cannot call back into this one."""
    if zerogpu.on_zerogpu():
        return {}
    if progress is None:
        return {"cancel": token}
    start, end = share
    return {"progress": lambda f, text: progress(start + (end - start) * f, desc=text), "cancel": token}


def _fit_zerogpu(studio: Studio, source: Any, params: VideoParams, model_ref: str | None,
                 size: tuple[int, int] | None = None) -> VideoParams:
    """On ZeroGPU, cut a job to the Space's time limit (saying so) or refuse it before it starts."""
    if not zerogpu.on_zerogpu():
        return params
    with _errors_for_user():
        params, notice = zerogpu.prepare(studio, source, params, model_ref, studio.settings.zerogpu_seconds, size)
    if notice:
        gr.Warning(notice)
    return params


# ------------------------------------------------------------------------------------------------------ handlers
# Module-level functions of (studio, values): `values` maps API parameter names to what the components sent.
# `_bound` gives each one the positional signature Gradio reads (one parameter per input, named as the API names
# it), so the API's names, the inputs' order and the handler's keys come from one list of names.

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


def _bound(handler: Callable[..., Any], studio: Studio, names: list[str],
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


def _api_defaults(studio: Studio) -> dict[str, Any]:
    """What an API caller's client sends for a video parameter it leaves out: the controls' starting values."""
    start = _source(studio.access, "svd", _starting_model(studio.access, studio.settings, "svd"))
    return resolve_video(start, quick=studio.quick_defaults())


def _video_params(studio: Studio, values: Mapping[str, Any]) -> VideoParams:
    """The video parameters among `values`, checked. The page sends what it shows (picking a model set that model's
    values); an API call is resolved as the CLI resolves a command (`core.defaults`): what it left out takes the
    named model's own values (AnimateLCM: 4 steps at guidance 1), not the page's starting ones."""
    given = {name: values[name] for name in VIDEO_PARAMS if name in values}
    if not values.get(PAGE):
        model = _source(studio.access, "svd", _model(values) or _starting_model(studio.access, studio.settings, "svd"))
        typed = not_defaults({k: v for k, v in given.items() if k in SPECS}, _api_defaults(studio))
        resolved = resolve_video(model, quick=studio.quick_defaults(), given=typed)
        given = {**given, **{name: resolved[name] for name in given if name in resolved}}
    with _errors_for_user():
        return VideoParams.from_raw(given)


def _image_params(studio: Studio, values: Mapping[str, Any]) -> ImageParams:
    """The still's parameters among `values`, checked (LoRAs: those the studio offers)."""
    with _errors_for_user():
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
    return prep.image, _notes([f"The video will be {w}x{h}.", *loaded.notices, *prep.notices])


def _live(values: Mapping[str, Any]) -> bool:
    """Whether this run streams previews: asked for, and not on ZeroGPU (its worker cannot call back here)."""
    with _errors_for_user():
        return parse_bool(values.get(LIVE_PREVIEW.name, LIVE_PREVIEW.default), LIVE_PREVIEW.name) \
            and not zerogpu.on_zerogpu()


@functools.cache
def _preview_dir() -> Path:
    """Where live previews are written: a private temporary folder of this process. Not the output folder: its
    files are served where they are (not copied into Gradio's cache), and a preview is deleted while the run goes
    on, so Gradio must have a copy of its own."""
    return private_output_dir(prefix="svd-demo-previews-")


def _with_previews(studio: Studio, live: bool, run: Callable[[PreviewSink | None], T],
                   skipped: int) -> Generator[tuple[Any, ...], None, T]:
    """`run(sink)`, yielding an update for each live preview as it comes (`skipped` unchanged outputs, then the
    preview's file) and returning its result: `result = yield from _with_previews(...)`.

    With previews, the run goes on a thread of its own while this generator (on Gradio's worker thread, idle
    otherwise) encodes the previews: the denoising loop only hands over frames. Only the newest waiting preview is
    encoded. A preview file is deleted once the next one is asked for: Gradio has copied it by then (previews are
    written outside the output folder, whose files it serves in place: `_preview_dir`).
    """
    if not live:
        return run(None)
    updates: queue.SimpleQueue[tuple[bool | None, Any]] = queue.SimpleQueue()
    context = contextvars.copy_context()  # Gradio's progress bar is found through context variables

    def work() -> None:
        try:
            updates.put((True, context.run(run, lambda frames: updates.put((False, frames)))))
        except BaseException as exc:  # handed to the generator, which raises it
            updates.put((None, exc))

    threading.Thread(target=work, name="run-with-preview", daemon=True).start()
    shown: Path | None = None
    try:
        while True:
            done, item = updates.get()
            while done is False and not updates.empty():  # a newer preview (or the end) is already there
                done, item = updates.get()
            if done is None:
                raise item
            if done:
                return item
            path = write_preview(item, _preview_dir() / f"preview-{uuid.uuid4().hex[:12]}.webp")
            if shown is not None:
                shown.unlink(missing_ok=True)
            shown = path
            yield (*[gr.skip()] * skipped, str(path))
    finally:
        if shown is not None:
            shown.unlink(missing_ok=True)


def image_to_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                   progress: gr.Progress | None = None) -> Iterator[tuple[Any, ...]]:
    """Animate an image; with `live_preview`, yields rough previews while denoising first. The last update: the
    MP4, the seed used, the prepared image, notices, all files, and an empty preview."""
    image = values.get("image")
    params = _fit_zerogpu(studio, image, _video_params(studio, values), _model(values))
    with _errors_for_user(), _run_token(studio, request) as token:
        def run(sink: PreviewSink | None) -> VideoResult:
            return studio.image_to_video(image, params, model_ref=_model(values), preview=sink,
                                         **_gpu_kwargs(progress, token))

        result = yield from _with_previews(studio, _live(values), run, skipped=5)
    _warn_memory_changes(result)
    yield (*_image_tab_outputs(result), None)


def _extended(studio: Studio, values: Mapping[str, Any], request: gr.Request | None,
              progress: gr.Progress | None) -> VideoResult:
    """Extend, as both video tabs offer it: continue `video` from its last frame (`Studio.extend_video`)."""
    video, params = values.get("video"), _video_params(studio, values)
    if zerogpu.on_zerogpu():
        with _errors_for_user():
            size = zerogpu.clip_size(video, params)
        params = _fit_zerogpu(studio, None, params, _model(values), size)
    with _errors_for_user(), _run_token(studio, request) as token:
        result = studio.extend_video(video, params, model_ref=_model(values), **_gpu_kwargs(progress, token))
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
    return str(result.files.video), result.seed, _notes(result.notices), _files(result)


def compare_seeds(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                  progress: gr.Progress | None = None) -> list[tuple[str, str]]:
    """The same image and settings with `num_seeds` consecutive seeds; returns (video, "seed N") pairs."""
    image = values.get("image")
    params = _fit_zerogpu(studio, image, _video_params(studio, values), _model(values))
    first = random.SystemRandom().randint(0, MAX_SEED) if params.randomize_seed else params.seed
    count = int(values.get("num_seeds", NUM_SEEDS.default))
    seeds = [(first + i) % (MAX_SEED + 1) for i in range(count)]
    with _errors_for_user(), _run_token(studio, request) as token:
        results = studio.compare_seeds(image, params, seeds, model_ref=_model(values),
                                       **_gpu_kwargs(progress, token))
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
    params = _image_params(studio, values)
    with _errors_for_user(), _run_token(studio, request) as token:
        result = studio.text_to_image(params, model_ref=_model(values, "sdxl_model"), **_gpu_kwargs(progress, token))
    return (str(result.path), result.seed, _notes(result.notices), [str(result.path), str(result.sidecar)],
            result)


def text_to_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                  progress: gr.Progress | None = None) -> Iterator[tuple[Any, ...]]:
    """Prompt -> still -> video in one call; the still is shown as soon as it exists, then (with `live_preview`)
    rough previews of the video while it is denoised; the last output is the preview (empty at the end)."""
    # The two stages of Studio.text_to_video, called one by one so the still can be yielded in between.
    video_params, params = _video_params(studio, values), _image_params(studio, values)
    with _errors_for_user(), _run_token(studio, request) as token:
        still = studio.text_to_image(params, model_ref=_model(values, "sdxl_model"),
                                     **_gpu_kwargs(progress, token, (0.0, 0.3)))
        yield str(still.path), None, still.seed, None, _notes(still.notices), [str(still.path)], still, None
        video_params = _fit_zerogpu(studio, still.image, video_params, _model(values), still.image.size)

        def run(sink: PreviewSink | None) -> VideoResult:
            return studio.animate_still(still, video_params, model_ref=_model(values), preview=sink,
                                        **_gpu_kwargs(progress, token, (0.3, 1.0)))

        result = yield from _with_previews(studio, _live(values), run, skipped=7)
    _warn_memory_changes(result)
    yield (str(still.path), str(result.files.video), still.seed, result.seed, _notes(result.notices),
           [str(still.path), str(still.sidecar), *_files(result)], still, None)


def animate_this_still(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                       progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """The video stage alone, for the session's last still; the last output hands the still to the image tab."""
    still = values.get("still_result")
    if still is None:
        raise gr.Error("Make a still first (Still only or Prompt to video).")
    params = _fit_zerogpu(studio, still.image, _video_params(studio, values), _model(values), still.image.size)
    with _errors_for_user(), _run_token(studio, request) as token:
        result = studio.animate_still(still, params, model_ref=_model(values), **_gpu_kwargs(progress, token))
    return str(result.files.video), result.seed, _notes(result.notices), _files(result), str(still.path)


def interpolate(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                progress: gr.Progress | None = None) -> tuple[Any, ...]:
    """Interpolate a video by a factor or to an exact target fps (target_fps > 0 wins)."""
    if not values.get("video"):
        raise gr.Error("Please upload a video first (or use the last generated one).")
    values = {**{name: spec.default for name, spec in INTERPOLATION_SPECS.items()}, **values}
    target_fps = values["target_fps"]
    use_fps = target_fps not in (0, None, "")
    report = None if progress is None else lambda f, text: progress(f, desc=text)
    with _errors_for_user(), _run_token(studio, request, INTERPOLATE_QUEUE) as token:
        # Raw values: the interpolation module checks them and says what is wrong (2.5 is not a factor).
        out = studio.interpolate(values["video"], factor=None if use_fps else values["factor"],
                                 target_fps=target_fps if use_fps else None, slow_motion=bool(values["slow_motion"]),
                                 backend=values["backend"], progress=report, cancel=token)
    lines = [f"{out.input_frames} frames at {out.source_fps:g} fps became {out.output_frames} frames at "
             f"{out.output_fps:g} fps in {out.seconds:.1f} s.", *out.notes]
    if out.cut_pairs:
        lines.append(f"{out.cut_pairs} scene cut(s): frames were repeated there instead of blended.")
    return str(out.output_path), _notes(lines), [str(out.output_path), str(out.output_path.with_suffix(".json"))]


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
        return [*unchanged, _notes([str(exc)])]
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
        return [*updates, gr.Tabs(selected="keyframes"), _notes([_restored_keyframes_note(restored)])]
    tab = "text_to_video" if restored.still else "image_to_video"
    what = (f"the prompt \u201c{restored.still.prompt}\u201d, " if restored.still else "") + f"seed {values['seed']}"
    note = (f"Restored the settings of {restored.source} ({restored.kind.replace('_', ' ')}: {what}). "
            + ("Press Prompt to video to make it again." if restored.still else
               "Upload its photo and press Generate to make it again."))
    lines = [note, *(f"The file's `{name}` is not offered on this server: the current one is kept." for name in kept)]
    gr.Info(note)  # the note sits at the foot of the sidebar, out of sight on a long page
    return [*updates, gr.Tabs(selected=tab), _notes(lines)]


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
    with _errors_for_user(), _run_token(studio, request, UPSCALE_RUNS) as token:
        out, record = studio.upscale(values["media"], upscale_factor=values["upscale_factor"],
                                     model_ref=values.get("upscale_model") or None, tile=values["upscale_tile"],
                                     **_gpu_kwargs(progress, token))
    what = f"{out.frames} frames" if out.kind == "video" else "The still"
    lines = [f"{what}: {out.width}x{out.height} became {out.out_width}x{out.out_height} in {out.seconds:.1f} s.",
             *out.notes]
    video = str(out.output_path) if out.kind == "video" else None
    still = str(out.output_path) if out.kind == "still" else None
    return video, still, _notes(lines), [str(out.output_path), str(record)]


# --- Keyframes to video: a start and an end photo (engine/keyframes.py) ----------------------------------------

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
            return shown_start.image, None, _notes(["Add the end photo, or switch on the loop to end on this one."])
        photos = studio.prepare_keyframes(start, end, int(resolution), aspect_mode, loop_to_start=loop)
    except UserFacingError as exc:
        return None, None, f"⚠️ {page_safe(str(exc))}"
    w, h = photos.start.image.size
    return photos.start.image, photos.end.image, _notes([f"The video will be {w}x{h}.", *photos.start_notices,
                                                         *photos.end_notices])


def keyframes_to_video(studio: Studio, values: Mapping[str, Any], request: gr.Request | None = None,
                       progress: gr.Progress | None = None) -> Iterator[tuple[Any, ...]]:
    """A clip from `start_image` to `end_image` (or back to the start with `loop_to_start`): SVD fills in the
    motion (ViBiDSampler, about twice the work of image to video). With `live_preview`, yields rough previews
    first. The last update: the MP4, the seed used, notices, all files, and an empty preview."""
    start, end = values.get("start_image"), values.get("end_image")
    params = _fit_zerogpu(studio, start, _video_params(studio, values), _model(values))
    method = {name: values.get(name, spec.default) for name, spec in KEYFRAME_SPECS.items()}
    with _errors_for_user(), _run_token(studio, request) as token:
        def run(sink: PreviewSink | None) -> VideoResult:
            return studio.keyframes_to_video(start, end, params, model_ref=_model(values), preview=sink, **method,
                                             **_gpu_kwargs(progress, token))

        result = yield from _with_previews(studio, _live(values), run, skipped=4)
    _warn_memory_changes(result)
    yield str(result.files.video), result.seed, _notes(result.notices), _files(result), None


def _keyframes_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Both photos there (or the loop on), the method's settings and the video settings, before the queue."""
    problems = {name: problem for name in KEYFRAME_SPECS
                if (problem := _problem(checked, name, values.get(name, KEYFRAME_SPECS[name].default)))}
    if not values.get("start_image"):
        problems["start_image"] = "Please upload an image as the start photo (`start_image`)."
    if not values.get("end_image") and "loop_to_start" not in problems and not checked(
            "loop_to_start", values.get("loop_to_start", False)):
        problems["end_image"] = ("Please upload an image as the end photo (`end_image`), or switch on "
                                 "`loop_to_start` to end on the start photo.")
    return {**problems, **_video_problems(values)}


# Validators run before the queue: a missing file or a bad number is refused without waiting for the GPU. Each
# check maps parameter names to the problem Gradio shows on them.


def _validator(check: Callable[[Mapping[str, Any]], dict[str, str]], names: list[str]) -> Callable[..., list[dict]]:
    """A Gradio validator for an event whose inputs are `names`: one gr.validate per input."""

    def validate(*args: Any) -> list[dict]:
        problems = check(dict(zip(names, args, strict=True)))
        # Shown as plain text under the component, where Markdown's backticks would stand as they are.
        return [gr.validate(name not in problems, problems.get(name, "").replace("`", "")) for name in names]

    return validate


def _video_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """A problem with the video parameters, put on the parameters its message names, e.g. min and max guidance,
    not on all sixteen (on all only if it names none)."""
    problem = _problem(lambda raw: VideoParams.from_raw({k: raw[k] for k in VIDEO_PARAMS if k in raw}), values)
    if not problem:
        return {}
    blamed = set(re.findall(r"`(\w+)`", problem)) & set(VIDEO_PARAMS) or set(VIDEO_PARAMS)
    return dict.fromkeys(blamed, problem)


def _needs_image(values: Mapping[str, Any]) -> dict[str, str]:
    return {} if values.get("image") else {"image": "Please upload an image first."}


def _image_run_problems(values: Mapping[str, Any]) -> dict[str, str]:
    return {**_needs_image(values), **_video_problems(values)}


def _extend_problems(values: Mapping[str, Any]) -> dict[str, str]:
    missing = {} if values.get("video") else {"video": "Generate or choose a video first: Extend continues the one "
                                                       "shown."}
    return {**missing, **_video_problems(values)}


# Costs: once a request's values pass the checks above, its work is estimated from them and its input's header and
# held to the studio's budgets (studio/budgets.py), so a request that will be refused never waits, let alone runs.


def _with_costs(check: Callable[[Mapping[str, Any]], dict[str, str]] | None, studio: Studio,
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


def _image_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    seeds = int(values.get("num_seeds") or 1)
    check_image_to_video(studio.budgets, values["image"], _video_params(studio, values), model_ref=_model(values),
                         default_model=studio.settings.svd_model, seeds=seeds)


def _extend_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    check_extend(studio.budgets, values["video"], _video_params(studio, values), model_ref=_model(values),
                 default_model=studio.settings.svd_model)


def _text_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    orientation = values.get("orientation", IMAGE_SPECS["orientation"].default)
    check_text_to_video(studio.budgets, _video_params(studio, values), orientation, model_ref=_model(values),
                        default_model=studio.settings.svd_model)


def _interpolate_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    if not values.get("video"):
        return
    target_fps = values.get("target_fps")
    use_fps = target_fps not in (0, None, "")
    check_interpolate(studio.budgets, values["video"], factor=None if use_fps else values.get("factor"),
                      target_fps=target_fps if use_fps else None)


def _upscale_cost(studio: Studio, values: Mapping[str, Any]) -> None:
    from svd_demo.engine.upscale import factor_of

    if not values.get("media"):
        return
    tile = checked("upscale_tile", values.get("upscale_tile", UPSCALE_SPECS["upscale_tile"].default))
    factor = factor_of(values.get("upscale_factor", UPSCALE_SPECS["upscale_factor"].default), "upscale_factor")
    check_upscale_request(studio.budgets, values["media"], factor, tile)


def _prompt_problems(values: Mapping[str, Any]) -> dict[str, str]:
    problem = _problem(clean_prompt, values.get("prompt"))
    return {"prompt": problem} if problem else {}


def _text_problems(values: Mapping[str, Any], access: Access | None = None) -> dict[str, str]:
    """The prompt and the LoRAs (not on offer, files that do not exist, weights out of range), before the queue."""
    problem = _problem(parse_loras, values.get(LORAS.name), *([access.lora_ref] if access else []))
    return {**_prompt_problems(values), **({LORAS.name: problem} if problem else {})}


# -------------------------------------------------------------------------------------------------------- layout

_GPU_PROGRESS = gr.Progress(track_tqdm=True)


def _wire(trigger: Any, handler: Callable[..., Any], studio: Studio, components: Mapping[str, Any],
          names: list[str], *, progress: gr.Progress | None = _GPU_PROGRESS,
          check: Callable[[Mapping[str, Any]], dict[str, str]] | None = None, **event: Any) -> Any:
    """`trigger` (e.g. a button's click) runs `handler` on the components `names`, stopped when Gradio drops it."""
    if "svd_model" in names and PAGE in components:  # the video settings: whether the page sent them
        names = [*names, PAGE]
    validator = _validator(check, names) if check is not None else None
    outputs = event.get("outputs", [])
    notes = [out for out in (outputs if isinstance(outputs, list) else [outputs]) if isinstance(out, gr.Markdown)]
    if notes:  # at once, before the run queues: a run that fails must not leave the last run's note under its error
        trigger(lambda: "" if len(notes) == 1 else [""] * len(notes), None, notes, queue=False,
                api_visibility="private")
    return trigger(_stops_when_dropped(_bound(handler, studio, names, progress)),
                   inputs=[components[name] for name in names], validator=validator, **event)


@dataclass
class VideoControls:
    """The video settings every tab shares: one set of components, not a copy per tab."""

    by_name: dict[str, gr.components.Component]  # VIDEO_INPUTS: the model, the parameters, the extra formats
    column: gr.Column


def _source(access: Access, kind: str, ref: str) -> str:
    """What a picker's value loads (a name's model), or the value itself where it is not on offer."""
    try:
        return access.model(kind, ref)[1]
    except InputError:
        return ref


_SETTING = {"svd": "svd_model", "sdxl": "sdxl_model", "upscale": "upscale_model"}


def _starting_model(access: Access, settings: Settings, kind: str) -> str:
    """The picker's first value: the settings' model as `access` names it (its own default if not on offer)."""
    return access.model_name(kind, getattr(settings, _SETTING[kind])) or access.defaults[kind]


def _model_picker(access: Access, settings: Settings, kind: str, **kwargs: Any) -> gr.Dropdown:
    """A model picker offering `access`'s models; in public mode those only (no other value is taken)."""
    if access.public:
        kwargs["info"] = "The models this server offers."
    return gr.Dropdown(choices=access.choices(kind), value=_starting_model(access, settings, kind),
                       allow_custom_value=not access.public, **kwargs)


def _video_settings(access: Access, settings: Settings, quick: dict[str, int]) -> VideoControls:
    def model_defaults(ref: str) -> dict[str, int | float]:
        """What picking `ref` sets: its frames and fps and, for a few-step model, its steps, guidance and motion,
        under the quick settings where they apply (`core.defaults.model_start`)."""
        return model_start(_source(access, "svd", ref), quick)

    initial = model_defaults(_starting_model(access, settings, "svd"))
    by_name: dict[str, gr.components.Component] = {}
    with gr.Column(scale=1, min_width=320) as column:
        gr.Markdown("### Video settings")
        by_name["svd_model"] = _model_picker(access, settings, "svd", label="Video model",
                                             info="SVD makes 14 frames, SVD-XT 25; AnimateLCM-SVD-xt makes "
                                                  "SVD-XT's 25 in 4 steps. A hub id or a local folder also works.")
        starting = {**quick, **initial}
        for name in ("resolution", "aspect_mode", "num_frames", "motion_bucket_id", "fps"):
            by_name[name] = _component(SPECS[name], starting.get(name))
        with gr.Accordion("Advanced", open=False):
            for name in ("seed", "randomize_seed", "num_inference_steps", "noise_aug_strength", "min_guidance_scale",
                         "max_guidance_scale", "decode_chunk_size", "playback_fps", "loop", "interpolate_fps",
                         "upscale", "feature_cache"):
                by_name[name] = _component(SPECS[name], starting.get(name))
            by_name["extra_formats"] = gr.CheckboxGroup(choices=list(EXTRA_FORMATS), value=[], label="Also write",
                                                        info="MP4 is always written.")
        # Off as the API's default (LIVE_PREVIEW.default: an API call omitting it gets the component's starting
        # value); the page ticks it when it loads (build_demo), as a person watches.
        by_name[LIVE_PREVIEW.name] = _component(LIVE_PREVIEW)
        by_name[PAGE] = gr.State(False)  # set by the page's load event (build_demo); not an API parameter
        with gr.Accordion("Restore settings from a video", open=False):
            by_name["restore"] = uploaded_file(label="Drop a video (.mp4, .webm) or .json made here", type="filepath",
                                         file_types=[".mp4", ".webm", ".json"], elem_id="restore-settings")
            by_name["restore_note"] = gr.Markdown()
    # .input, not .change: only a person's pick brings the model's defaults; a restored file sets both itself.
    # A few-step model (AnimateLCM: 4 steps, guidance 1) brings its steps, guidance and motion too; any other model
    # puts those back to their defaults.
    by_name["svd_model"].input(lambda ref: [gr.update(value=v) for v in model_defaults(ref).values()],
                               inputs=by_name["svd_model"], outputs=[by_name[name] for name in initial],
                               queue=False, api_visibility="private")
    return VideoControls(by_name, column)


def _image_tab(studio: Studio, controls: VideoControls) -> tuple[gr.Image, gr.Video]:
    with gr.Row():
        with gr.Column():
            image = uploaded_image("image", label="Input image", type="filepath", image_mode=None,
                                  sources=["upload", "clipboard"], height=320)
            prepared = gr.Image(label="What the model will see", interactive=False, height=240, format="png")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            video = gr.Video(label="Video", elem_classes="player", autoplay=True, loop=True, interactive=False)
            live = _live_preview_box()
            extend = gr.Button("Extend: continue from the last frame")
            seed_used = _seed_box("Seed used")
            notices = gr.Markdown()
            files = gr.File(label="Files (video, extra formats, parameters JSON)", file_count="multiple",
                            interactive=False)

    if example_images():
        # A click only fills the input (and its preview): a job starts from Generate, with the sidebar's settings,
        # in the queue and cancellable like any other. Cached examples ran at the default size on first click.
        gr.Examples([[str(p)] for p in example_images()], inputs=[image], cache_examples=False,
                    label="Example photos (public domain / CC0)")

    with gr.Accordion("Compare seeds", open=False):
        gr.Markdown("The same image and settings with several seeds, side by side: pick the motion you like, then "
                    "reuse its seed.")
        with gr.Row():
            num_seeds = _component(NUM_SEEDS)
            compare = gr.Button("Compare seeds")
        gallery = gr.Gallery(label="One clip per seed", columns=4, height="auto", interactive=False)

    by_name = {**controls.by_name, "image": image, "video": video, "num_seeds": num_seeds}
    gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": len(studio.caches), "show_progress_on": [video]}
    outputs = [video, seed_used, prepared, notices, files]
    gr.on([image.change, by_name["resolution"].release, by_name["aspect_mode"].change],
          _bound(prepare_image, studio, ["image_path", "resolution", "aspect_mode"]),
          inputs=[image, by_name["resolution"], by_name["aspect_mode"]], outputs=[prepared, notices],
          api_name="prepare_image", concurrency_id="cpu", concurrency_limit=4, show_progress="minimal")
    events = [
        _wire(generate.click, image_to_video, studio, by_name, ["image", *VIDEO_INPUTS, LIVE_PREVIEW.name],
              check=_with_costs(_image_run_problems, studio, _image_cost), outputs=[*outputs, live],
              api_name="image_to_video", **gpu),
        _wire(extend.click, extend_video, studio, by_name, ["video", *VIDEO_INPUTS],
              check=_with_costs(_extend_problems, studio, _extend_cost), outputs=outputs, api_name="extend_video",
              **gpu),
        _wire(compare.click, compare_seeds, studio, by_name, ["image", "num_seeds", *VIDEO_INPUTS],
              check=_with_costs(_needs_image, studio, _image_cost), outputs=gallery, api_name="compare_seeds",
              **{**gpu, "show_progress_on": None}),
    ]
    gallery.select(take_seed, None, [by_name["seed"], by_name["randomize_seed"]], queue=False,
                   api_visibility="private")
    _cancel_button(studio, cancel, events, notices)
    return image, video


def _text_tab(studio: Studio, settings: Settings, controls: VideoControls, image_input: gr.Image,
              quick: dict[str, int]) -> tuple[gr.Video, dict[str, Any]]:
    def model_defaults(ref: str) -> tuple[int, float]:
        steps, guidance = sdxl_defaults(ref)
        return min(steps, quick.get("sdxl_steps", steps)), guidance

    steps_default, guidance_default = model_defaults(_starting_model(studio.access, settings, "sdxl"))
    by_name: dict[str, Any] = dict(controls.by_name)
    with gr.Row():
        with gr.Column():
            by_name["prompt"] = gr.Textbox(label="Prompt", lines=3, placeholder="A lighthouse on a cliff at sunset, "
                                           "waves crashing, golden light, photograph", max_length=MAX_PROMPT_CHARS)
            by_name["negative_prompt"] = gr.Textbox(label="Negative prompt", value="",
                                                    placeholder="blurry, low quality, text",
                                                    max_length=MAX_PROMPT_CHARS)
            with gr.Row():
                by_name["sdxl_model"] = _model_picker(studio.access, settings, "sdxl", label="Image model")
                by_name["orientation"] = _component(IMAGE_SPECS["orientation"])
            with gr.Row():
                by_name["sdxl_steps"] = _component(IMAGE_SPECS["sdxl_steps"], steps_default)
                by_name["sdxl_guidance_scale"] = _component(IMAGE_SPECS["sdxl_guidance_scale"], guidance_default)
            with gr.Accordion("LoRA", open=False):
                by_name[LORAS.name] = gr.Textbox(label=LORAS.label, info=_loras_help(studio.access), lines=2,
                                                 value=LORAS.default,
                                                 placeholder="nerijs/pixel-art-xl:0.8", max_length=MAX_LORAS_CHARS)
            with gr.Row():
                still_only = gr.Button("Still only")
                animate = gr.Button("Animate this still")
                to_video = gr.Button("Prompt to video", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            still = gr.Image(label="Still", interactive=False, format="png", type="filepath")
            video = by_name["video"] = gr.Video(label="Video", elem_classes="player", autoplay=True, loop=True,
                                                interactive=False)
            live = _live_preview_box()
            extend = gr.Button("Extend: continue from the last frame")
            with gr.Row():
                still_seed = _seed_box("Still seed")
                video_seed = _seed_box("Video seed")
            notices = gr.Markdown()
            files = gr.File(label="Files", file_count="multiple", interactive=False)
    if example_prompts():
        gr.Examples([[p] for p in example_prompts()], inputs=[by_name["prompt"]], label="Example prompts")
    by_name["still_result"] = last_still = gr.State(None)  # this session's StillResult, for "Animate this still"
    by_name["sdxl_model"].input(lambda ref: [gr.update(value=v) for v in model_defaults(ref)],
                                 inputs=by_name["sdxl_model"],
                                 outputs=[by_name["sdxl_steps"], by_name["sdxl_guidance_scale"]], queue=False,
                                 api_visibility="private")

    gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": len(studio.caches), "show_progress_on": [video]}
    text_problems = partial(_text_problems, access=studio.access)
    events = [
        _wire(still_only.click, text_to_image, studio, by_name,
              [*TEXT_INPUTS, "seed", "randomize_seed", "resolution"], check=text_problems,
              outputs=[still, still_seed, notices, files, last_still], api_name="text_to_image",
              **{**gpu, "show_progress_on": [still]}),
        _wire(to_video.click, text_to_video, studio, by_name, [*TEXT_INPUTS, *VIDEO_INPUTS, LIVE_PREVIEW.name],
              check=_with_costs(text_problems, studio, _text_cost),
              outputs=[still, video, still_seed, video_seed, notices, files, last_still, live],
              api_name="text_to_video", **gpu),
        _wire(animate.click, animate_this_still, studio, by_name, ["still_result", *VIDEO_INPUTS],
              outputs=[video, video_seed, notices, files, image_input], api_visibility="private", **gpu),
        _wire(extend.click, extend_this_video, studio, by_name, ["video", *VIDEO_INPUTS],
              check=_with_costs(_extend_problems, studio, _extend_cost), outputs=[video, video_seed, notices, files],
              api_visibility="private", **gpu),
    ]
    _cancel_button(studio, cancel, events, notices)
    return video, by_name


def _keyframes_tab(studio: Studio, controls: VideoControls) -> tuple[gr.Video, dict[str, Any]]:
    """Start and end photo side by side, each shown as the model will see it; the shared video settings apply."""
    by_name: dict[str, Any] = dict(controls.by_name)
    gr.Markdown("Give the first and the last frame: SVD fills in the motion between them (ViBiDSampler, about "
                "twice the work of image to video). The end photo is framed to the start photo's size with the "
                "same aspect mode. Loop ends on the start photo, for a clip that repeats without a jump.")
    with gr.Row():
        with gr.Column():
            by_name["start_image"] = uploaded_image("start_image", label="Start photo (first frame)", type="filepath",
                                                     image_mode=None, sources=["upload", "clipboard"], height=240)
            start_seen = gr.Image(label="Start, as the model will see it", interactive=False, height=160,
                                  format="png")
        with gr.Column():
            by_name["end_image"] = uploaded_image("end_image", label="End photo (last frame)", type="filepath",
                                                   image_mode=None, sources=["upload", "clipboard"], height=240)
            end_seen = gr.Image(label="End, as the model will see it", interactive=False, height=160, format="png")
    with gr.Row():
        by_name["loop_to_start"] = _component(KEYFRAME_SPECS["loop_to_start"])
        by_name["keyframe_guidance"] = _component(KEYFRAME_SPECS["keyframe_guidance"])
    with gr.Row():
        generate = gr.Button("Generate between the photos", variant="primary", elem_id="keyframes-generate")
        cancel = gr.Button("Cancel", variant="stop")
    video = by_name["video"] = gr.Video(label="Video", elem_classes="player", autoplay=True, loop=True,
                                        interactive=False, elem_id="keyframes-video")
    live = _live_preview_box()
    extend = gr.Button("Extend: continue from the last frame")
    seed_used = _seed_box("Seed used")
    notices = gr.Markdown()
    files = gr.File(label="Files (video, extra formats, parameters JSON)", file_count="multiple", interactive=False)

    preview_names = ["start_image", "end_image", "resolution", "aspect_mode", "loop_to_start"]
    gr.on([by_name["start_image"].change, by_name["end_image"].change, by_name["loop_to_start"].change,
           by_name["resolution"].release, by_name["aspect_mode"].change],
          _bound(prepare_keyframes, studio, preview_names), inputs=[by_name[n] for n in preview_names],
          outputs=[start_seen, end_seen, notices], concurrency_id="cpu", concurrency_limit=4,
          show_progress="minimal", api_visibility="private")
    gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": len(studio.caches), "show_progress_on": [video]}
    events = [
        _wire(generate.click, keyframes_to_video, studio, by_name, [*KEYFRAME_INPUTS, *VIDEO_INPUTS,
                                                                    LIVE_PREVIEW.name],
              check=_keyframes_problems, outputs=[video, seed_used, notices, files, live],
              api_name="keyframes_to_video", **gpu),
        _wire(extend.click, extend_this_video, studio, by_name, ["video", *VIDEO_INPUTS], check=_extend_problems,
              outputs=[video, seed_used, notices, files], api_visibility="private", **gpu),
    ]
    _cancel_button(studio, cancel, events, notices)
    return video, by_name


def _interpolate_tab(studio: Studio, last_videos: list[gr.Video]) -> gr.Video:
    gr.Markdown("Smooth a clip to a higher frame rate (e.g. 7 fps to 24 with Target fps) with motion-compensated "
                "interpolation (optical flow in both directions, occlusion-aware), safe at scene cuts. Upload a video "
                "(mp4, webm, mov, gif) or take the last one generated here.")
    by_name: dict[str, Any] = {}
    with gr.Row():
        with gr.Column():
            by_name["video"] = source = gr.Video(label="Original", elem_classes="player", sources=["upload"])
            take_last = gr.Button("Use the last generated video")
            with gr.Row():
                by_name["factor"] = _component(INTERPOLATION_SPECS["factor"])
                by_name["target_fps"] = _component(INTERPOLATION_SPECS["target_fps"])
            with gr.Row():
                by_name["slow_motion"] = _component(INTERPOLATION_SPECS["slow_motion"])
                by_name["backend"] = _component(INTERPOLATION_SPECS["backend"], choice_widget=gr.Dropdown)
            with gr.Row():
                run = gr.Button("Interpolate", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            result = gr.Video(label="Interpolated", elem_classes="player", autoplay=True, loop=True, interactive=False)
            notes = gr.Markdown()
            files = gr.File(label="Files", file_count="multiple", interactive=False)

    take_last.click(_newest_video, inputs=last_videos, outputs=source, queue=False, api_visibility="private")
    factor = INTERPOLATION_SPECS["factor"]
    event = _wire(run.click, interpolate, studio, by_name, ["video", *INTERPOLATION_SPECS], progress=gr.Progress(),
                  check=_with_costs(None, studio, _interpolate_cost), outputs=[result, notes, files],
                  api_name="interpolate",
                  api_description=f"Interpolate a video by a factor ({factor.minimum}-{factor.maximum}) or to an "
                                  "exact target fps (target_fps > 0 wins).",
                  concurrency_id=INTERPOLATE_QUEUE,
                  concurrency_limit=2)  # CPU work: runs beside a GPU job, but two at most on a 2-core Space
    _cancel_button(studio, cancel, event, notes, INTERPOLATE_QUEUE)
    return result


def _newest_video(*videos: str | None) -> str | None:
    """The newest of the video tabs' videos ("Use the last generated video"): Gradio writes each file when its video
    is shown."""
    shown = [v for v in videos if v and os.path.exists(v)]
    return max(shown, key=os.path.getmtime) if shown else None


def _upscale_tab(studio: Studio, settings: Settings, last_videos: list[gr.Video]) -> None:
    gr.Markdown("Make a video or a still 2x or 4x larger with a Real-ESRGAN network (the fast AnimeVideo v3 or the "
                "sharper, slower x4plus), in overlapping tiles so 4K fits a consumer GPU. Output is at most 3840 "
                "pixels on the long side. To upscale while generating, use *Upscale* in the video settings.")
    by_name: dict[str, Any] = {}
    with gr.Row():
        with gr.Column():
            # No `file_types`: Gradio would refuse other names with a message that names no parameter; the
            # upscaler's own checks read the file's header and say what is wrong with it.
            by_name["media"] = source = uploaded_file(label="Video or image", file_count="single")
            take_last = gr.Button("Use the last generated video")
            with gr.Row():
                by_name["upscale_factor"] = _component(UPSCALE_SPECS["upscale_factor"])
                by_name["upscale_tile"] = _component(UPSCALE_SPECS["upscale_tile"])
            by_name["upscale_model"] = _model_picker(
                studio.access, settings, "upscale", label="Upscale model",
                info="A preset, a local .pth/.safetensors file, or a hub file OWNER/REPO/FILE.pth.")
            with gr.Row():
                run = gr.Button("Upscale", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            video = gr.Video(label="Upscaled video", elem_classes="player", autoplay=True, loop=True,
                             interactive=False)
            still = gr.Image(label="Upscaled still", interactive=False, type="filepath")
            notes = gr.Markdown()
            files = gr.File(label="Files", file_count="multiple", interactive=False)

    take_last.click(_newest_video, inputs=last_videos, outputs=source, queue=False, api_visibility="private")
    event = _wire(run.click, upscale, studio, by_name, UPSCALE_INPUTS, check=_with_costs(None, studio, _upscale_cost),
                  outputs=[video, still, notes, files],
                  api_name="upscale", api_description="Upscale a video or a still 2x or 4x (Real-ESRGAN).",
                  concurrency_id=GPU_QUEUE, concurrency_limit=len(studio.caches))
    _cancel_button(studio, cancel, event, notes, UPSCALE_RUNS)


def _cancel_button(studio: Studio, button: gr.Button, events: Any, notes: gr.Markdown, kind: str = GPU_QUEUE) -> None:
    def cancel_run(request: gr.Request) -> str:
        """Stop this session's runs of `kind`, wait for them to stop, and say so (the video box just empties)."""
        session = _session(request)
        if studio.cancels.cancel(session, kind) and not studio.cancels.wait_stopped(session, CANCEL_WAIT_S, kind):
            message = "Cancelling: the run stops at its next step."
        else:
            message = "Cancelled."
        gr.Info(message)
        return _notes([message])

    # First Gradio drops the events (a queued job leaves the queue; a running one is stopped by
    # `_stops_when_dropped`): the page runs a click's listeners one after the other, and `cancel_run` waits. The
    # flags then stop a running job even when the page has lost track of it.
    button.click(None, None, None, cancels=events if isinstance(events, list) else [events])
    button.click(cancel_run, None, notes, queue=False, api_visibility="private")


def _mode_line(public: bool, why: str) -> str:
    """Which mode runs, and why, for the top of the page."""
    if public:
        return (f"Public mode ({why}): models and LoRAs are offered by name from this server's lists, and each "
                "visitor may have only a few requests waiting.")
    return f"Private mode ({why}): any local model folder, hub id or LoRA file can be used."


def _loras_help(access: Access) -> str:
    """The LoRA box's help: in public mode, the names on offer."""
    if not access.public:
        return LORAS.help + (f" From --lora-dir: {', '.join(access.loras)}." if access.loras else "")
    offered = ", ".join(access.loras) or "none"
    return f"LoRAs this server offers, by name, one per line with an optional weight (NAME:0.8): {offered}."


def _banner(settings: Settings, device: str, quick: dict[str, int]) -> str:
    notes = []
    if device == "cpu":
        notes.append("**Running on the CPU:** generation will be very slow (many minutes per clip with real "
                     "models). A CUDA GPU is strongly recommended.")
    if is_tiny_model(settings.svd_model) or is_tiny_model(settings.sdxl_model):
        notes.append("**Random weights:** the loaded models are tiny test models, so the results are noise. "
                     "Point `--svd-model` / `--sdxl-model` at real models for real results.")
    if quick:
        notes.append(f"**Quick settings:** the page starts from {describe_quick(quick)}, so that a run finishes "
                     "in seconds here. Raise any of them freely; on a GPU with real models the defaults are the "
                     "models' own.")
    return "\n\n".join(notes)


def build_demo(settings: Settings, studio: Studio | None = None) -> gr.Blocks:
    """The whole app. Nothing is loaded here: models load on the first request (or at launch with --preload)."""
    studio = studio or Studio(settings)
    public, why = public_mode(studio.settings)  # the studio's: its access lists were made for that mode
    log.info("Running in %s mode: %s.", "public" if public else "private", why)
    if studio.settings.output_dir is not None:
        # Results are served from the folder they are written to: Gradio copies any other file into its cache
        # (a long clip would take its disk space twice or more). Static paths are per process, and so is the
        # output folder: an instance is a process (server.main makes a private folder for each).
        gr.set_static_paths([studio.settings.output_dir])
    with AppBlocks(title="SVD Studio", delete_cache=_delete_cache(settings)) as demo:
        demo.public, demo.max_queued_per_client = public, settings.max_queued_per_client
        gr.Markdown("# SVD Studio\nAnimate a photo or a prompt with Stable Video Diffusion.")
        quick = studio.quick_defaults()
        gr.Markdown(_mode_line(public, why), elem_id="mode")
        banner = _banner(settings, studio.cache.device, quick)
        if banner:
            gr.Markdown(banner, elem_classes="banner")
        with gr.Row():
            # On the left, the settings both video tabs share (a collapsible sidebar hid them).
            controls = _video_settings(studio.access, settings, quick)
            with gr.Column(scale=3), gr.Tabs() as tabs:
                with gr.Tab("Image to video", id="image_to_video") as image_tab:
                    image_input, image_video = _image_tab(studio, controls)
                with gr.Tab("Text to image to video", id="text_to_video") as text_tab:
                    text_video, text_inputs = _text_tab(studio, settings, controls, image_input, quick)
                with gr.Tab("Keyframes", id="keyframes") as keyframes_tab:
                    keyframes_video, keyframe_inputs = _keyframes_tab(studio, controls)
                with gr.Tab("Frame interpolation", id="interpolate") as interpolate_tab:
                    interpolated = _interpolate_tab(studio, [image_video, text_video, keyframes_video])
                with gr.Tab("Upscale", id="upscale") as upscale_tab:
                    _upscale_tab(studio, settings, [image_video, text_video, keyframes_video, interpolated])
        restored = [*(controls.by_name[n] for n in VIDEO_INPUTS), *(text_inputs[n] for n in TEXT_INPUTS),
                    *(keyframe_inputs[n] for n in KEYFRAME_SPECS), tabs, controls.by_name["restore_note"]]

        def restore(path: str | None) -> list[Any]:
            return restore_settings(path, studio.access)

        # Queued, like every event that reads a file: it runs ffprobe, and callers can reach it by its index.
        controls.by_name["restore"].upload(restore, controls.by_name["restore"], restored, api_visibility="private",
                                           concurrency_id="cpu", concurrency_limit=4, show_progress="minimal")
        # The settings column belongs to the two video tabs; on the post-processing tabs it would only mislead.
        for tab, visible in ((image_tab, True), (text_tab, True), (keyframes_tab, True), (interpolate_tab, False),
                             (upscale_tab, False)):
            tab.select(partial(gr.Column, visible=visible), None, controls.column, queue=False,
                       api_visibility="private")

        def end_session(request: gr.Request) -> None:
            """A closed or reloaded tab, or a client gone: nobody waits for its runs, so they stop."""
            if studio.cancels.cancel(_session(request)):
                log.info("A session ended: its runs stop at their next step")

        demo.unload(end_session)
        # Live previews on for the page only: set in the browser, so the API's default stays off.
        demo.load(None, None, controls.by_name[LIVE_PREVIEW.name], js="() => true", queue=False,
                  api_visibility="private")
        demo.load(lambda: True, None, controls.by_name[PAGE], queue=False, api_visibility="private")
    return demo


def _delete_cache(settings: Settings) -> tuple[int, int] | None:
    """Gradio's own upload/result cache follows the same time-to-live as our outputs."""
    ttl = settings.output_ttl
    return (max(60, ttl // 4), ttl) if ttl > 0 else None


def launch_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for `demo.launch`, shared by app.py and the tests: give it the studio's settings (`studio.settings`),
    whose output folder is the one to serve."""
    if settings.output_dir is None:
        raise ValueError("launch_kwargs needs the output folder the studio writes to: pass studio.settings.")
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "max_file_size": settings.max_file_size,
        "allowed_paths": [str(settings.output_dir), str(EXAMPLES_DIR)],
        "css": CSS,
        "footer_links": ["api"],
        "auth": login(settings),
        # Every request body, JSON calls included, within what one inline file of --max-file-size needs.
        "app_kwargs": {"middleware": [Middleware(RequestBodyLimit, max_bytes=body_limit(
            _parse_file_size(settings.max_file_size) or 2**62))]},
    }
