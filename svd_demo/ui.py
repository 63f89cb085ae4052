"""The Gradio interface: the only module (with app.py) that imports gradio.

Handlers are thin: they turn component values into parameter objects, call the `Studio`, and turn its results and
errors into component updates. Every GPU event shares one concurrency id with limit 1, so one GPU runs one job at a
time whatever the tab; validation runs before the queue, so bad input never waits behind someone else's video.
"""

import asyncio
import contextvars
import functools
import html
import inspect
import logging
import math
import os
import random
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import gradio as gr
import pydantic
from gradio import processing_utils
from gradio.exceptions import InvalidPathError

from svd_demo import zerogpu
from svd_demo.errors import InputError, UserFacingError
from svd_demo.examples import EXAMPLES_DIR, example_images, example_prompts
from svd_demo.models import SDXL_PRESETS, SVD_PRESETS, is_tiny_model, model_choices, sdxl_defaults, svd_defaults
from svd_demo.params import (
    EXTRA_FORMATS,
    IMAGE_SPECS,
    MAX_SEED,
    SPECS,
    ImageParams,
    Spec,
    VideoParams,
    clean_prompt,
    parse_bool,
    shown,
)
from svd_demo.settings import Settings, login
from svd_demo.studio import CancelFlag, Studio

log = logging.getLogger("svd_demo")

GPU_QUEUE = "gpu"  # the one concurrency id of every event that runs a model
INTERPOLATE_QUEUE = "interpolate"
CANCEL_WAIT_S = 30  # the Cancel button waits this long for the run to stop (one step) before answering
VIDEO_INPUTS = list(SPECS)  # the video parameters, in the order every GPU handler receives them
CSS = """
.banner {padding: 0.5em 1em; border-radius: 8px; background: var(--color-accent-soft);}
"""


_MARKUP_START = re.compile(r"([<&])(?=[A-Za-z0-9/!?#])")
WORD_JOINER = "\u2060"


def _page_safe(text: str) -> str:
    """`text` as written, in a form that no page can take for markup.

    Gradio shows gr.Error messages as (sanitized) HTML, and API clients get the very same string. html.escape made
    the page right and the API wrong (`&#x27;` around every quoted file name); an invisible word joiner after each
    `<` or `&` that could start a tag or an entity keeps both right: the page shows the text, the API gets it.
    """
    return _MARKUP_START.sub(r"\1" + WORD_JOINER, text)


class _Refusal(gr.Error):
    """A message for the person or program that sent the request, shown as is (and as plain text, see _page_safe).

    Its str() is the message: Gradio answers a refusal at queue join (HTTP 400) with str(error), which for gr.Error
    is the message's repr, quotes and backslashes included.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_page_safe(message), print_exception=False)

    def __str__(self) -> str:
        return self.message


class UploadedImage(gr.Image):
    """An image input that hands the uploaded file to our loader untouched.

    gr.Image opens every upload with PIL before returning its path, so a corrupt file, an SVG or a decompression
    bomb would get Gradio's generic 400 instead of our message; and its RGB conversion would drop transparency and
    clip 16-bit images. `images.load_image` does all of that properly.
    """

    def get_block_name(self) -> str:
        return "image"  # the browser side is gr.Image's own

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:
            return None
        if (payload.url or "").startswith("data:"):
            # Inline base64 from API callers, written to a file as it came: Gradio's own path decodes it with PIL
            # first (a decompression bomb included) and re-encodes it as WebP (16 bits per channel become 8).
            try:
                return processing_utils.save_base64_to_cache(payload.url, self.GRADIO_CACHE)
            except (ValueError, TypeError) as exc:
                raise _Refusal(f"The image sent inline (a data: URL) is not valid base64 ({exc}). Send the file "
                               "instead (gradio_client's handle_file()).") from None
        return str(payload.path) if payload.path else None


class _NamesItsParameter:
    """Gradio's own checks answer "Value 100 is greater than maximum value 25." or "Could not preprocess input
    component at index 2", which does not say which of a dozen numbers sent to the API was wrong; this one names the
    parameter, as the rest of our checks do. With precision 0 a fraction is refused, not rounded (Gradio rounds:
    2.5 seeds became 2)."""

    param = ""

    def preprocess(self, payload: float | None) -> float | int | None:
        number = isinstance(payload, (int, float)) and not isinstance(payload, bool) and math.isfinite(payload)
        whole = self.precision == 0
        if not number or not self.minimum <= payload <= self.maximum or (whole and payload != int(payload)):
            kind = "a whole number" if whole else "a finite number"
            low, high = (int(v) if float(v).is_integer() else v for v in (self.minimum, self.maximum))
            raise _Refusal(f"`{self.param}` must be {kind} from {low} to {high}; got {shown(payload)}.")
        return super().preprocess(payload)


class Slider(_NamesItsParameter, gr.Slider):
    def get_block_name(self) -> str:
        return "slider"


class Number(_NamesItsParameter, gr.Number):
    def get_block_name(self) -> str:
        return "number"


def _named(component: _NamesItsParameter, param: str) -> Any:
    """The component, its range errors naming `param` (the handler's parameter, as the API calls it)."""
    component.param = param
    return component


def _user_error(exc: BaseException) -> gr.Error:
    """What the person sees: our own messages verbatim (as plain text: they may quote user text), never internals."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserFacingError):
        return _Refusal(str(exc))
    error_id = uuid.uuid4().hex[:8]
    log.exception("Unexpected error %s", error_id)
    return _Refusal(f"Something went wrong on the server (error {error_id}). Please try again; if it keeps "
                    "happening, report the error id.")


@contextmanager
def _errors_for_user() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise _user_error(exc) from exc


def _component(spec: Spec, value: Any = None, **kwargs: Any) -> gr.components.Component:
    """A component for a parameter spec: its label, range, step, default and help come from `params`."""
    value = spec.default if value is None else value
    common = {"label": spec.label, "info": spec.help, **kwargs}
    if spec.kind is bool:
        return gr.Checkbox(value=value, **common)
    if spec.choices:
        return gr.Radio(choices=list(spec.choices), value=value, **common)
    if spec.name == "seed":
        return _named(Number(value=value, precision=0, minimum=spec.minimum, maximum=spec.maximum, **common),
                      spec.name)
    whole = 0 if spec.kind is int else None  # precision 0: a whole number, refused (not rounded) otherwise
    return _named(Slider(minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=value, precision=whole,
                         **common), spec.name)


def _seed_box(label: str) -> gr.Number:
    """An output showing the seed a run used. Hidden until there is one: an empty number box shows "0"."""
    box = gr.Number(label=label, value=None, precision=0, interactive=False, visible=False)
    box.change(lambda: gr.Number(visible=True), None, box, queue=False, api_visibility="private")
    return box


def _notes(lines: list[str] | tuple[str, ...]) -> str:
    """Notices as a Markdown list: shown as written on the page, and plain text for API clients (`_page_safe`)."""
    return "\n".join(f"- {_page_safe(line)}" for line in lines)


def _video_params(values: tuple[Any, ...]) -> VideoParams:
    """Component values (VIDEO_INPUTS order, then extra formats) to checked parameters."""
    named = dict(zip([*VIDEO_INPUTS, "extra_formats"], values, strict=True))
    with _errors_for_user():
        return VideoParams.from_raw(named)


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
        if flag.is_set():  # dropped (session ended, Cancel) just as it finished
            raise _cancelled()
        return result

    return run


def _cancelled() -> gr.Error:
    return gr.Error("Cancelled.", title="Cancelled", print_exception=False)


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
            raise _cancelled() from None
        raise
    except asyncio.CancelledError:
        flag.set()
        work.add_done_callback(ended)
        log.info("A run's event was cancelled: it stops at its next step")
        raise


def _gpu_kwargs(progress: gr.Progress, token: Any, share: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Progress and cancel for a GPU call; none on ZeroGPU, whose worker process cannot call back into this one."""
    if zerogpu.on_zerogpu():
        return {}
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


@dataclass
class VideoControls:
    """The video settings every tab shares: one set of components, not a copy per tab."""

    svd_model: gr.Dropdown
    by_name: dict[str, gr.components.Component]
    extra_formats: gr.CheckboxGroup
    column: gr.Column

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.svd_model, *(self.by_name[n] for n in VIDEO_INPUTS), self.extra_formats]


def _video_settings(settings: Settings) -> VideoControls:
    frames_default, fps_default = svd_defaults(settings.svd_model)
    with gr.Column(scale=1, min_width=320) as column:
        gr.Markdown("### Video settings")
        svd_model = gr.Dropdown(choices=model_choices(SVD_PRESETS, settings.svd_model), value=settings.svd_model,
                                label="Video model", allow_custom_value=True,
                                info="SVD makes 14 frames, SVD-XT 25. A hub id or a local folder also works.")
        by_name: dict[str, gr.components.Component] = {}
        for name in ("resolution", "aspect_mode", "num_frames", "motion_bucket_id", "fps"):
            by_name[name] = _component(SPECS[name], {"num_frames": frames_default, "fps": fps_default}.get(name))
        with gr.Accordion("Advanced", open=False):
            for name in ("seed", "randomize_seed", "num_inference_steps", "noise_aug_strength", "min_guidance_scale",
                         "max_guidance_scale", "decode_chunk_size", "playback_fps", "loop", "interpolate_fps"):
                by_name[name] = _component(SPECS[name])
            extra_formats = gr.CheckboxGroup(choices=list(EXTRA_FORMATS), value=[], label="Also write",
                                             info="MP4 is always written.")
    svd_model.change(lambda ref: [gr.update(value=v) for v in svd_defaults(ref)], inputs=svd_model,
                     outputs=[by_name["num_frames"], by_name["fps"]], queue=False, api_visibility="private")
    return VideoControls(svd_model, by_name, extra_formats, column)


def _extend(studio: Studio, video: str, svd_model: str, params: VideoParams, request: gr.Request,
            progress: gr.Progress) -> Any:
    """Extend, as both video tabs offer it: continue `video` from its last frame (`Studio.extend_video`)."""
    if zerogpu.on_zerogpu():
        with _errors_for_user():
            size = zerogpu.clip_size(video, params)
        params = _fit_zerogpu(studio, None, params, svd_model or None, size)
    with _errors_for_user(), _run_token(studio, request) as token:
        result = studio.extend_video(video, params, model_ref=svd_model or None, **_gpu_kwargs(progress, token))
    for change in result.record.get("memory_changes", []):
        gr.Warning(change)
    return result


def _video_validations(values: tuple[Any, ...]) -> list[dict]:
    """One answer per video parameter (VIDEO_INPUTS, then extra formats): a problem is put on the parameters its
    message names, e.g. min and max guidance, not on all sixteen (on all only if it names none)."""
    names = [*VIDEO_INPUTS, "extra_formats"]
    problem = _problem(_video_params, values)
    blamed = set(re.findall(r"`(\w+)`", problem)) & set(names) or set(names)
    return [gr.validate(not (problem and name in blamed), problem) for name in names]


def _validate_extend(video: str | None, svd_model: str, *values: Any) -> list[dict]:
    return [gr.validate(bool(video), "Generate or choose a video first: Extend continues the one shown."),
            gr.validate(True, ""), *_video_validations(values)]


def _image_tab(studio: Studio, controls: VideoControls) -> tuple[UploadedImage, gr.Video]:
    with gr.Row():
        with gr.Column():
            image = UploadedImage(label="Input image", type="filepath", image_mode=None,
                                  sources=["upload", "clipboard"], height=320)
            prepared = gr.Image(label="What the model will see", interactive=False, height=240, format="png")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False)
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

    def preview(image_path: str | None, resolution: float, aspect_mode: str) -> tuple[Any, str]:
        if not image_path:
            return None, ""
        try:
            prep, loaded = studio.prepare(image_path, int(resolution), aspect_mode)
        except UserFacingError as exc:
            return None, f"⚠️ {_page_safe(str(exc))}"
        w, h = prep.image.size
        return prep.image, _notes([f"The video will be {w}x{h}.", *loaded.notices, *prep.notices])

    gr.on([image.change, controls.by_name["resolution"].release, controls.by_name["aspect_mode"].change], preview,
          inputs=[image, controls.by_name["resolution"], controls.by_name["aspect_mode"]],
          outputs=[prepared, notices], api_name="prepare_image", concurrency_id="cpu", concurrency_limit=4,
          show_progress="minimal")

    def image_to_video(image: str | None, svd_model: str, seed: float, randomize_seed: bool, resolution: float,
                       aspect_mode: str, num_frames: float, num_inference_steps: float, motion_bucket_id: float,
                       fps: float, noise_aug_strength: float, min_guidance_scale: float, max_guidance_scale: float,
                       decode_chunk_size: float, playback_fps: float, loop: str, interpolate_fps: float,
                       extra_formats: list[str], request: gr.Request,
                       progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's idiom)
                       ) -> tuple[Any, ...]:
        """Animate an image; returns the MP4, the seed used, the prepared image, notices and all files."""
        values = locals()
        params = _video_params(tuple(values[name] for name in [*VIDEO_INPUTS, "extra_formats"]))
        params = _fit_zerogpu(studio, image, params, svd_model or None)
        with _errors_for_user(), _run_token(studio, request) as token:
            result = studio.image_to_video(image, params, model_ref=svd_model or None, **_gpu_kwargs(progress, token))
        for change in result.record.get("memory_changes", []):
            gr.Warning(change)
        return _image_tab_outputs(result)

    def validate(image: str | None, svd_model: str, *values: Any) -> list[dict]:
        """Runs before the queue: a missing image or a bad number is refused without waiting for the GPU."""
        return [gr.validate(bool(image), "Please upload an image first."), gr.validate(True, ""),
                *_video_validations(values)]

    event = generate.click(_stops_when_dropped(image_to_video), inputs=[image, *controls.inputs],
                           outputs=[video, seed_used, prepared, notices, files], api_name="image_to_video",
                           concurrency_id=GPU_QUEUE, concurrency_limit=len(studio.caches), validator=validate,
                           show_progress_on=[video])

    def extend_video(video: str | None, svd_model: str, seed: float, randomize_seed: bool, resolution: float,
                     aspect_mode: str, num_frames: float, num_inference_steps: float, motion_bucket_id: float,
                     fps: float, noise_aug_strength: float, min_guidance_scale: float, max_guidance_scale: float,
                     decode_chunk_size: float, playback_fps: float, loop: str, interpolate_fps: float,
                     extra_formats: list[str], request: gr.Request,
                     progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                     ) -> tuple[Any, ...]:
        """A longer video: SVD continues `video` from its last frame with these settings, and the new frames are
        appended (at the video's size and frame rate). Returns the same outputs as image_to_video."""
        values = locals()
        params = _video_params(tuple(values[name] for name in [*VIDEO_INPUTS, "extra_formats"]))
        return _image_tab_outputs(_extend(studio, video, svd_model, params, request, progress))

    extend_event = extend.click(_stops_when_dropped(extend_video), inputs=[video, *controls.inputs],
                                outputs=[video, seed_used, prepared, notices, files], api_name="extend_video",
                                concurrency_id=GPU_QUEUE, concurrency_limit=len(studio.caches),
                                validator=_validate_extend, show_progress_on=[video])

    with gr.Accordion("Compare seeds", open=False):
        gr.Markdown("The same image and settings with several seeds, side by side: pick the motion you like, then "
                    "reuse its seed.")
        with gr.Row():
            num_seeds = _named(Slider(2, 8, value=4, step=1, precision=0, label="Seeds", info="Starting from the "
                                      "seed in the settings (or a random one when Randomize is on)."), "num_seeds")
            compare = gr.Button("Compare seeds")
        gallery = gr.Gallery(label="One clip per seed", columns=4, height="auto", interactive=False)

    def compare_seeds(image: str | None, num_seeds: float, svd_model: str, seed: float, randomize_seed: bool,
                      resolution: float, aspect_mode: str, num_frames: float, num_inference_steps: float,
                      motion_bucket_id: float, fps: float, noise_aug_strength: float, min_guidance_scale: float,
                      max_guidance_scale: float, decode_chunk_size: float, playback_fps: float, loop: str,
                      interpolate_fps: float, extra_formats: list[str], request: gr.Request,
                      progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                      ) -> list[tuple[str, str]]:
        """The same image and settings with `num_seeds` consecutive seeds; returns (video, "seed N") pairs."""
        from svd_demo.sweep import compare_seeds as run_seeds

        values = locals()
        params = _video_params(tuple(values[name] for name in [*VIDEO_INPUTS, "extra_formats"]))
        params = _fit_zerogpu(studio, image, params, svd_model or None)
        first = random.SystemRandom().randint(0, MAX_SEED) if params.randomize_seed else params.seed
        seeds = [(first + i) % (MAX_SEED + 1) for i in range(int(num_seeds))]
        with _errors_for_user(), _run_token(studio, request) as token:
            results = run_seeds(studio, image, params, seeds, model_ref=svd_model or None,
                                **_gpu_kwargs(progress, token))
        return [(str(r.files.video), f"seed {r.seed}") for r in results]

    def needs_image(image: str | None, *rest: Any) -> list[dict]:
        return [gr.validate(bool(image), "Please upload an image first."), *(gr.validate(True, "") for _ in rest)]

    compare_event = compare.click(_stops_when_dropped(compare_seeds), inputs=[image, num_seeds, *controls.inputs],
                                  outputs=gallery, api_name="compare_seeds", concurrency_id=GPU_QUEUE,
                                  concurrency_limit=len(studio.caches), validator=needs_image)
    _cancel_button(studio, cancel, [event, extend_event, compare_event], notices)
    return image, video


def _text_tab(studio: Studio, settings: Settings, controls: VideoControls, image_input: UploadedImage) -> gr.Video:
    steps_default, guidance_default = sdxl_defaults(settings.sdxl_model)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="A lighthouse on a cliff at sunset, waves "
                                "crashing, golden light, photograph", max_length=2000)
            negative_prompt = gr.Textbox(label="Negative prompt", value="", placeholder="blurry, low quality, text",
                                         max_length=2000)
            with gr.Row():
                sdxl_model = gr.Dropdown(choices=model_choices(SDXL_PRESETS, settings.sdxl_model),
                                         value=settings.sdxl_model, label="Image model", allow_custom_value=True)
                orientation = _component(IMAGE_SPECS["orientation"])
            with gr.Row():
                sdxl_steps = _component(IMAGE_SPECS["sdxl_steps"], steps_default)
                sdxl_guidance_scale = _component(IMAGE_SPECS["sdxl_guidance_scale"], guidance_default)
            with gr.Row():
                still_only = gr.Button("Still only")
                animate = gr.Button("Animate this still")
                to_video = gr.Button("Prompt to video", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            still = gr.Image(label="Still", interactive=False, format="png", type="filepath")
            video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False)
            extend = gr.Button("Extend: continue from the last frame")
            with gr.Row():
                still_seed = _seed_box("Still seed")
                video_seed = _seed_box("Video seed")
            notices = gr.Markdown()
            files = gr.File(label="Files", file_count="multiple", interactive=False)
    if example_prompts():
        gr.Examples([[p] for p in example_prompts()], inputs=[prompt], label="Example prompts")
    last_still = gr.State(None)  # this session's StillResult, for "Animate this still"
    sdxl_model.change(lambda ref: [gr.update(value=v) for v in sdxl_defaults(ref)], inputs=sdxl_model,
                      outputs=[sdxl_steps, sdxl_guidance_scale], queue=False, api_visibility="private")

    def image_params(prompt: str, negative_prompt: str, sdxl_steps: float, sdxl_guidance_scale: float,
                     orientation: str, seed: float, randomize_seed: bool, resolution: float) -> ImageParams:
        with _errors_for_user():
            return ImageParams.from_raw(dict(prompt=prompt, negative_prompt=negative_prompt, sdxl_steps=sdxl_steps,
                                             sdxl_guidance_scale=sdxl_guidance_scale, orientation=orientation,
                                             seed=seed, randomize_seed=randomize_seed, resolution=resolution))

    def text_to_image(prompt: str, negative_prompt: str, sdxl_model: str, sdxl_steps: float,
                      sdxl_guidance_scale: float, orientation: str, seed: float, randomize_seed: bool,
                      resolution: float, request: gr.Request,
                      progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                      ) -> tuple[Any, ...]:
        """Render an SDXL still at the video size; returns the still, its seed, notices and files."""
        params = image_params(prompt, negative_prompt, sdxl_steps, sdxl_guidance_scale, orientation, seed,
                              randomize_seed, resolution)
        with _errors_for_user(), _run_token(studio, request) as token:
            result = studio.text_to_image(params, model_ref=sdxl_model or None, **_gpu_kwargs(progress, token))
        return (str(result.path), result.seed, _notes(result.notices), [str(result.path), str(result.sidecar)],
                result)

    def text_to_video(prompt: str, negative_prompt: str, sdxl_model: str, sdxl_steps: float,
                      sdxl_guidance_scale: float, orientation: str, svd_model: str, seed: float,
                      randomize_seed: bool, resolution: float, aspect_mode: str, num_frames: float,
                      num_inference_steps: float, motion_bucket_id: float, fps: float, noise_aug_strength: float,
                      min_guidance_scale: float, max_guidance_scale: float, decode_chunk_size: float,
                      playback_fps: float, loop: str, interpolate_fps: float, extra_formats: list[str],
                      request: gr.Request,
                      progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                      ) -> Iterator[tuple[Any, ...]]:
        """Prompt -> still -> video in one call; the still is shown as soon as it exists."""
        # The two stages of Studio.text_to_video, called one by one so the still can be yielded in between.
        values = locals()
        video_params = _video_params(tuple(values[name] for name in [*VIDEO_INPUTS, "extra_formats"]))
        params = image_params(prompt, negative_prompt, sdxl_steps, sdxl_guidance_scale, orientation, seed,
                              randomize_seed, resolution)
        with _errors_for_user(), _run_token(studio, request) as token:
            still_result = studio.text_to_image(params, model_ref=sdxl_model or None,
                                                **_gpu_kwargs(progress, token, (0.0, 0.3)))
            yield (str(still_result.path), None, still_result.seed, None, _notes(still_result.notices),
                   [str(still_result.path)], still_result)
            video_params = _fit_zerogpu(studio, still_result.image, video_params, svd_model or None,
                                        still_result.image.size)
            result = studio.animate_still(still_result, video_params, model_ref=svd_model or None,
                                          **_gpu_kwargs(progress, token, (0.3, 1.0)))
        for change in result.record.get("memory_changes", []):
            gr.Warning(change)
        yield (str(still_result.path), str(result.files.video), still_result.seed, result.seed,
               _notes(result.notices), [str(still_result.path), str(still_result.sidecar), *_files(result)],
               still_result)

    # `request` and `progress` before *values: Gradio does not fill keyword-only ones after a *args.
    def animate_this_still(still_result: Any, svd_model: str, request: gr.Request,
                           progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                           *values: Any) -> tuple[Any, ...]:
        if still_result is None:
            raise gr.Error("Make a still first (Still only or Prompt to video).")
        params = _fit_zerogpu(studio, still_result.image, _video_params(values), svd_model or None,
                              still_result.image.size)
        with _errors_for_user(), _run_token(studio, request) as token:
            result = studio.animate_still(still_result, params, model_ref=svd_model or None,
                                          **_gpu_kwargs(progress, token))
        return (str(result.files.video), result.seed, _notes(result.notices), _files(result),
                str(still_result.path))  # the last one hands the still to the image tab

    def extend_this_video(video: str | None, svd_model: str, request: gr.Request,
                          progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                          *values: Any) -> tuple[Any, ...]:
        result = _extend(studio, video, svd_model, _video_params(values), request, progress)
        return str(result.files.video), result.seed, _notes(result.notices), _files(result)

    def validate_prompt(prompt: str, *rest: Any) -> list[dict]:
        problem = _problem(clean_prompt, prompt)
        return [gr.validate(not problem, problem), *(gr.validate(True, "") for _ in rest)]

    text_inputs = [prompt, negative_prompt, sdxl_model, sdxl_steps, sdxl_guidance_scale, orientation]
    shared = [controls.by_name["seed"], controls.by_name["randomize_seed"], controls.by_name["resolution"]]
    gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": len(studio.caches), "show_progress_on": [video]}
    events = [
        still_only.click(_stops_when_dropped(text_to_image), inputs=[*text_inputs, *shared],
                         outputs=[still, still_seed, notices, files, last_still], api_name="text_to_image",
                         validator=validate_prompt, **{**gpu, "show_progress_on": [still]}),
        to_video.click(_stops_when_dropped(text_to_video), inputs=[*text_inputs, *controls.inputs],
                       outputs=[still, video, still_seed, video_seed, notices, files, last_still],
                       api_name="text_to_video", validator=validate_prompt, **gpu),
        animate.click(_stops_when_dropped(animate_this_still), inputs=[last_still, *controls.inputs],
                      outputs=[video, video_seed, notices, files, image_input], api_visibility="private", **gpu),
        extend.click(_stops_when_dropped(extend_this_video), inputs=[video, *controls.inputs],
                     outputs=[video, video_seed, notices, files], api_visibility="private",
                     validator=_validate_extend, **gpu),
    ]
    _cancel_button(studio, cancel, events, notices)
    return video


def _interpolate_tab(studio: Studio, last_videos: list[gr.Video]) -> None:
    from svd_demo.interpolation import BACKENDS, MAX_FACTOR, MIN_FACTOR

    gr.Markdown("Smooth a clip to a higher frame rate (e.g. 7 fps to 24 with Target fps) with motion-compensated "
                "interpolation (optical flow in both directions, occlusion-aware), safe at scene cuts. Upload a video "
                "(mp4, webm, mov, gif) or take the last one generated here.")
    with gr.Row():
        with gr.Column():
            source = gr.Video(label="Original", sources=["upload"])
            take_last = gr.Button("Use the last generated video")
            with gr.Row():
                factor = _named(Slider(MIN_FACTOR, MAX_FACTOR, value=2, step=1, precision=0, label="Factor",
                                       info="Frames per source frame; used when target fps is 0."), "factor")
                target_fps = _named(Slider(0, 120, value=0, step=1, label="Target fps",
                                           info="An exact output rate (e.g. 24 or 30); 0 = use the factor."),
                                    "target_fps")
            with gr.Row():
                slow_motion = gr.Checkbox(value=False, label="Slow motion",
                                          info="Keep the source rate: the clip plays longer instead of smoother.")
                backend = gr.Dropdown(sorted(BACKENDS), value="flow", label="Method",
                                      info="flow (default), flow-hq (sharper, about 2x slower), blend (cross-fade).")
            with gr.Row():
                run = gr.Button("Interpolate", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            result = gr.Video(label="Interpolated", autoplay=True, loop=True, interactive=False)
            notes = gr.Markdown()
            files = gr.File(label="Files", file_count="multiple", interactive=False)

    def interpolate(video: str | None, factor: float, target_fps: float, slow_motion: bool, backend: str = "flow",
                    request: gr.Request | None = None,
                    progress: gr.Progress = gr.Progress(),  # noqa: B008
                    ) -> tuple[Any, ...]:
        """Interpolate a video by a factor (2-16) or to an exact target fps (target_fps > 0 wins)."""
        if not video:
            raise gr.Error("Please upload a video first (or use the last generated one).")
        if backend not in BACKENDS:
            raise gr.Error(f"Unknown method {html.escape(str(backend))!s}: choose {', '.join(sorted(BACKENDS))}.")
        with _errors_for_user(), _run_token(studio, request, INTERPOLATE_QUEUE) as token:
            # Raw values: the interpolation module checks them and says what is wrong (2.5 is not a factor).
            use_fps = target_fps not in (0, None, "")
            out = studio.interpolate(video, factor=None if use_fps else factor,
                                     target_fps=target_fps if use_fps else None, slow_motion=bool(slow_motion),
                                     backend=backend, progress=lambda f, text: progress(f, desc=text), cancel=token)
        lines = [f"{out.input_frames} frames at {out.source_fps:g} fps became {out.output_frames} frames at "
                 f"{out.output_fps:g} fps in {out.seconds:.1f} s.", *out.notes]
        if out.cut_pairs:
            lines.append(f"{out.cut_pairs} scene cut(s): frames were repeated there instead of blended.")
        return str(out.output_path), _notes(lines), [str(out.output_path),
                                                   str(out.output_path.with_suffix(".json"))]

    def newest(*videos: str | None) -> str | None:
        """The newer of the two video tabs' videos: Gradio writes each file when its video is shown."""
        shown = [v for v in videos if v and os.path.exists(v)]
        return max(shown, key=os.path.getmtime) if shown else None

    take_last.click(newest, inputs=last_videos, outputs=source, queue=False, api_visibility="private")
    event = run.click(_stops_when_dropped(interpolate), inputs=[source, factor, target_fps, slow_motion, backend],
                      outputs=[result, notes, files], api_name="interpolate", concurrency_id=INTERPOLATE_QUEUE,
                      concurrency_limit=2)  # CPU work: runs beside a GPU job, but two at most on a 2-core Space
    _cancel_button(studio, cancel, event, notes, INTERPOLATE_QUEUE)


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


def _banner(settings: Settings, device: str) -> str:
    notes = []
    if device == "cpu":
        notes.append("**Running on the CPU:** generation will be very slow (many minutes per clip with real "
                     "models). A CUDA GPU is strongly recommended.")
    if is_tiny_model(settings.svd_model) or is_tiny_model(settings.sdxl_model):
        notes.append("**Random weights:** the loaded models are tiny test models, so the results are noise. "
                     "Point `--svd-model` / `--sdxl-model` at real models for real results.")
    return "\n\n".join(notes)


# ------------------------------------------------------------------------ inputs Gradio passes on or answers vaguely

_FILE_COMPONENTS = (gr.Image, gr.Video, gr.File)


def _checked_input(component: gr.components.Component, name: str, value: Any) -> Any:
    """`value` as Gradio may take it, or a _Refusal naming the API parameter, the value and what is allowed.

    Left to Gradio, "false" checks a box (a non-empty string), [1, 2] becomes the prompt "[1, 2]", a file sent as a
    path string gets pydantic's text (or, where no validator runs, no message at all) and a wrong choice is not
    said to be which parameter's. Numbers check themselves (`_NamesItsParameter`), as they know their range.
    """
    if isinstance(component, gr.Checkbox):
        try:
            return parse_bool(value, name)
        except InputError as exc:
            raise _Refusal(str(exc)) from None
    if isinstance(component, _FILE_COMPONENTS):
        is_file = isinstance(value, dict) and (value.get("meta") or {}).get("_type") == "gradio.FileData"
        if value is None or (is_file and (value.get("path") or value.get("url"))):
            return value  # whether it was really uploaded here, Gradio checks (see _AppBlocks)
        raise _Refusal(f"`{name}` must be an uploaded file: upload it first (POST /gradio_api/upload, or "
                       f"gradio_client's handle_file()) and send the file reference it returns; got {shown(value)}. "
                       "The server opens no path named in a request.")
    allowed = [choice for _, choice in getattr(component, "choices", None) or []]
    if isinstance(component, gr.CheckboxGroup):
        if (isinstance(value, list) and all(isinstance(v, str) and v in allowed for v in value)
                and len(set(value)) == len(value)):
            return value
        raise _Refusal(f"`{name}` must be a list of {', '.join(map(str, allowed))} (each at most once, or an empty "
                       f"list); got {shown(value)}.")
    if isinstance(component, gr.Dropdown) and component.allow_custom_value:
        if value is None or isinstance(value, str):
            return value
        raise _Refusal(f"`{name}` must be text: one of {', '.join(map(str, allowed))}, or another hub id or "
                       f"folder; got {shown(value)}.")
    if isinstance(component, (gr.Radio, gr.Dropdown)):
        if any(type(value) is type(choice) and value == choice for choice in allowed):
            return value
        raise _Refusal(f"`{name}` must be one of {', '.join(map(str, allowed))}; got {shown(value)}.")
    if isinstance(component, gr.Textbox) and not (value is None or isinstance(value, str)):
        raise _Refusal(f"`{name}` must be text; got {shown(value)}.")
    return value


def _not_an_upload(block_fn: Any, values: list[Any], names: list[str | None]) -> _Refusal:
    """The refusal for a file reference Gradio would not take (not uploaded here, or malformed)."""
    for i, component in enumerate(block_fn.inputs):
        if isinstance(component, _FILE_COMPONENTS) and i < len(values) and isinstance(values[i], dict):
            name = (names[i] if i < len(names) else None) or component.label
            sent = values[i].get("path") or values[i].get("url")
            return _Refusal(f"`{name}` must be a file uploaded to this server (POST /gradio_api/upload, or "
                            f"gradio_client's handle_file()); {shown(sent)} was not uploaded here.")
    return _Refusal("A file sent with this request was not uploaded to this server. Upload it first (POST "
                    "/gradio_api/upload, or gradio_client's handle_file()).")


def _hold_to_max_size(queue: Any) -> None:
    """Make Gradio's queue keep to its `max_size` (--queue-size) when many requests arrive at once.

    Gradio checks the size, then awaits the event's validator, then adds the event: a burst all passes the check
    while the queue is still empty (16 of 16 accepted with a size of 2). Here a place is taken before the validator
    runs and given back when Gradio has added the event or refused it. Nothing is awaited between Gradio adding the
    event and the place being given back, so waiting events plus requests being admitted never exceed max_size.
    """
    push = queue.push
    admitting = 0

    async def push_within_max_size(body: Any, request: Any, username: str | None) -> tuple[bool, Any, str]:
        nonlocal admitting
        if queue.max_size is not None and len(queue) + admitting >= queue.max_size:
            return (False, f"The queue is full: {queue.max_size} requests are waiting, the most this server takes "
                    "(--queue-size). Please try again in a minute.", "queue_full")
        admitting += 1
        try:
            return await push(body, request, username)
        finally:
            admitting -= 1

    queue.push = push_within_max_size


class _AppBlocks(gr.Blocks):
    """gr.Blocks whose every input is checked before Gradio's own preprocessing, for browser and API alike, and
    whose queue keeps to its size under a burst."""

    def queue(self, *args: Any, **kwargs: Any) -> "_AppBlocks":
        super().queue(*args, **kwargs)
        _hold_to_max_size(self._queue)
        return self

    async def preprocess_data(self, block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False) -> Any:
        # The API's own parameter names: Gradio's, also for a validator (it copies its event's).
        names = list(block_fn.input_parameter_names or [])
        checked = list(inputs)
        for i, component in enumerate(block_fn.inputs):
            if i < len(checked) and not component.stateful and i not in block_fn.component_prop_inputs:
                name = (names[i] if i < len(names) else None) or component.label or f"input {i}"
                checked[i] = _checked_input(component, name, checked[i])
        try:
            return await super().preprocess_data(block_fn, checked, state, explicit_call)
        except (InvalidPathError, pydantic.ValidationError) as exc:  # Gradio's file checks: not ours to word
            raise _not_an_upload(block_fn, checked, names) from exc


def build_demo(settings: Settings, studio: Studio | None = None) -> gr.Blocks:
    """The whole app. Nothing is loaded here: models load on the first request (or at launch with --preload)."""
    studio = studio or Studio(settings)
    with _AppBlocks(title="SVD Studio", delete_cache=_delete_cache(settings)) as demo:
        gr.Markdown("# SVD Studio\nAnimate a photo or a prompt with Stable Video Diffusion.")
        banner = _banner(settings, studio.cache.device)
        if banner:
            gr.Markdown(banner, elem_classes="banner")
        with gr.Row():
            # On the left, the settings both video tabs share (a collapsible sidebar hid them).
            controls = _video_settings(settings)
            with gr.Column(scale=3), gr.Tabs():
                with gr.Tab("Image to video", id="image_to_video") as image_tab:
                    image_input, image_video = _image_tab(studio, controls)
                with gr.Tab("Text to image to video", id="text_to_video") as text_tab:
                    text_video = _text_tab(studio, settings, controls, image_input)
                with gr.Tab("Frame interpolation", id="interpolate") as interpolate_tab:
                    _interpolate_tab(studio, [image_video, text_video])
        # The settings column belongs to the two video tabs; on the interpolation tab it would only mislead.
        for tab, visible in ((image_tab, True), (text_tab, True), (interpolate_tab, False)):
            tab.select(partial(gr.Column, visible=visible), None, controls.column, queue=False,
                       api_visibility="private")

        def end_session(request: gr.Request) -> None:
            """A closed or reloaded tab, or a client gone: nobody waits for its runs, so they stop."""
            if studio.cancels.cancel(_session(request)):
                log.info("A session ended: its runs stop at their next step")

        demo.unload(end_session)
    return demo


def _delete_cache(settings: Settings) -> tuple[int, int] | None:
    """Gradio's own upload/result cache follows the same time-to-live as our outputs."""
    ttl = settings.output_ttl
    return (max(60, ttl // 4), ttl) if ttl > 0 else None


def launch_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for `demo.launch`, shared by app.py and the tests."""
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "max_file_size": settings.max_file_size,
        "allowed_paths": [str(settings.output_dir), str(EXAMPLES_DIR)],
        "css": CSS,
        "footer_links": ["api"],
        "auth": login(settings),
    }
