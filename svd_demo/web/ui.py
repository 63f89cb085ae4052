"""The Gradio page: its tabs and controls, and which handler each button calls (`build_demo`).

The handlers are in `handlers`, the way a run streams previews and stops in `runs`, and Gradio's internals are
overridden only in `gradio_overrides` (the web layer is the only one that imports gradio). Every GPU event shares
one concurrency id limited to the number of devices, so each GPU runs one job at a time whatever the tab.
"""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr
from gradio.utils import _parse_file_size
from starlette.middleware import Middleware

from svd_demo.core.access import Access
from svd_demo.core.defaults import model_start
from svd_demo.core.lora_refs import MAX_LORAS_CHARS
from svd_demo.core.models import is_tiny_model, sdxl_defaults
from svd_demo.core.params import (
    EXTRA_FORMATS,
    IMAGE_SPECS,
    INTERPOLATION_SPECS,
    KEYFRAME_SPECS,
    LIVE_PREVIEW,
    LORAS,
    MAX_PROMPT_CHARS,
    NUM_SEEDS,
    SPECS,
    UPSCALE_SPECS,
    Spec,
    describe_quick,
)
from svd_demo.core.settings import Settings, login, public_mode
from svd_demo.files.examples import EXAMPLES_DIR, example_images, example_prompts
from svd_demo.studio.studio import Studio
from svd_demo.web.gradio_overrides import AppBlocks, named, range_end, uploaded_file, uploaded_image
from svd_demo.web.handlers import (
    KEYFRAME_INPUTS,
    PAGE,
    TEXT_INPUTS,
    UPSCALE_INPUTS,
    VIDEO_INPUTS,
    animate_this_still,
    as_notes,
    bound,
    compare_seeds,
    extend_cost,
    extend_problems,
    extend_this_video,
    extend_video,
    image_cost,
    image_run_problems,
    image_to_video,
    input_validator,
    interpolate,
    interpolate_cost,
    keyframes_problems,
    keyframes_to_video,
    model_source,
    needs_image,
    prepare_image,
    prepare_keyframes,
    restore_settings,
    starting_model,
    take_seed,
    text_cost,
    text_problems,
    text_to_image,
    text_to_video,
    upscale,
    upscale_cost,
    with_costs,
)
from svd_demo.web.request_limit import RequestBodyLimit, body_limit
from svd_demo.web.runs import GPU_QUEUE, INTERPOLATE_QUEUE, UPSCALE_RUNS, session_of, stops_when_dropped

log = logging.getLogger("svd_demo")

CANCEL_WAIT_S = 30  # the Cancel button waits this long for the run to stop (one step) before answering
CSS = """
.banner {padding: 0.5em 1em; border-radius: 8px; background: var(--color-accent-soft);}
.player video {max-height: 60vh; object-fit: contain;}
"""  # .player: a portrait clip fills the column's width and would stretch the page far below the fold


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


_GPU_PROGRESS = gr.Progress(track_tqdm=True)


def _wire(trigger: Any, handler: Callable[..., Any], studio: Studio, components: Mapping[str, Any],
          names: list[str], *, progress: gr.Progress | None = _GPU_PROGRESS,
          check: Callable[[Mapping[str, Any]], dict[str, str]] | None = None, **event: Any) -> Any:
    """`trigger` (e.g. a button's click) runs `handler` on the components `names`, stopped when Gradio drops it."""
    if "svd_model" in names and PAGE in components:  # the video settings: whether the page sent them
        names = [*names, PAGE]
    validator = input_validator(check, names) if check is not None else None
    outputs = event.get("outputs", [])
    notes = [out for out in (outputs if isinstance(outputs, list) else [outputs]) if isinstance(out, gr.Markdown)]
    if notes:  # at once, before the run queues: a run that fails must not leave the last run's note under its error
        trigger(lambda: "" if len(notes) == 1 else [""] * len(notes), None, notes, queue=False,
                api_visibility="private")
    return trigger(stops_when_dropped(bound(handler, studio, names, progress)),
                   inputs=[components[name] for name in names], validator=validator, **event)


@dataclass
class VideoControls:
    """The video settings every tab shares: one set of components, not a copy per tab."""

    by_name: dict[str, gr.components.Component]  # VIDEO_INPUTS: the model, the parameters, the extra formats
    column: gr.Column


def _model_picker(access: Access, settings: Settings, kind: str, **kwargs: Any) -> gr.Dropdown:
    """A model picker offering `access`'s models; in public mode those only (no other value is taken)."""
    if access.public:
        kwargs["info"] = "The models this server offers."
    return gr.Dropdown(choices=access.choices(kind), value=starting_model(access, settings, kind),
                       allow_custom_value=not access.public, **kwargs)


def _video_settings(access: Access, settings: Settings, quick: dict[str, int]) -> VideoControls:
    def model_defaults(ref: str) -> dict[str, int | float]:
        """What picking `ref` sets: its frames and fps and, for a few-step model, its steps, guidance and motion,
        under the quick settings where they apply (`core.defaults.model_start`)."""
        return model_start(model_source(access, "svd", ref), quick)

    initial = model_defaults(starting_model(access, settings, "svd"))
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
          bound(prepare_image, studio, ["image_path", "resolution", "aspect_mode"]),
          inputs=[image, by_name["resolution"], by_name["aspect_mode"]], outputs=[prepared, notices],
          api_name="prepare_image", concurrency_id="cpu", concurrency_limit=4, show_progress="minimal")
    events = [
        _wire(generate.click, image_to_video, studio, by_name, ["image", *VIDEO_INPUTS, LIVE_PREVIEW.name],
              check=with_costs(image_run_problems, studio, image_cost), outputs=[*outputs, live],
              api_name="image_to_video", **gpu),
        _wire(extend.click, extend_video, studio, by_name, ["video", *VIDEO_INPUTS],
              check=with_costs(extend_problems, studio, extend_cost), outputs=outputs, api_name="extend_video",
              **gpu),
        _wire(compare.click, compare_seeds, studio, by_name, ["image", "num_seeds", *VIDEO_INPUTS],
              check=with_costs(needs_image, studio, image_cost), outputs=gallery, api_name="compare_seeds",
              **{**gpu, "show_progress_on": None}),
    ]
    gallery.select(take_seed, None, [by_name["seed"], by_name["randomize_seed"]], queue=False,
                   api_visibility="private")
    _cancel_button(studio, cancel, events, notices, [video, gallery])
    return image, video


def _text_tab(studio: Studio, settings: Settings, controls: VideoControls, image_input: gr.Image,
              quick: dict[str, int]) -> tuple[gr.Video, dict[str, Any]]:
    def model_defaults(ref: str) -> tuple[int, float]:
        steps, guidance = sdxl_defaults(ref)
        return min(steps, quick.get("sdxl_steps", steps)), guidance

    steps_default, guidance_default = model_defaults(starting_model(studio.access, settings, "sdxl"))
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
    text_checks = partial(text_problems, access=studio.access)
    events = [
        _wire(still_only.click, text_to_image, studio, by_name,
              [*TEXT_INPUTS, "seed", "randomize_seed", "resolution"], check=text_checks,
              outputs=[still, still_seed, notices, files, last_still], api_name="text_to_image",
              **{**gpu, "show_progress_on": [still]}),
        _wire(to_video.click, text_to_video, studio, by_name, [*TEXT_INPUTS, *VIDEO_INPUTS, LIVE_PREVIEW.name],
              check=with_costs(text_checks, studio, text_cost),
              outputs=[still, video, still_seed, video_seed, notices, files, last_still, live],
              api_name="text_to_video", **gpu),
        _wire(animate.click, animate_this_still, studio, by_name, ["still_result", *VIDEO_INPUTS],
              outputs=[video, video_seed, notices, files, image_input], api_visibility="private", **gpu),
        _wire(extend.click, extend_this_video, studio, by_name, ["video", *VIDEO_INPUTS],
              check=with_costs(extend_problems, studio, extend_cost), outputs=[video, video_seed, notices, files],
              api_visibility="private", **gpu),
    ]
    _cancel_button(studio, cancel, events, notices, [still, video])
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
          bound(prepare_keyframes, studio, preview_names), inputs=[by_name[n] for n in preview_names],
          outputs=[start_seen, end_seen, notices], concurrency_id="cpu", concurrency_limit=4,
          show_progress="minimal", api_visibility="private")
    gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": len(studio.caches), "show_progress_on": [video]}
    events = [
        _wire(generate.click, keyframes_to_video, studio, by_name, [*KEYFRAME_INPUTS, *VIDEO_INPUTS,
                                                                    LIVE_PREVIEW.name],
              check=keyframes_problems, outputs=[video, seed_used, notices, files, live],
              api_name="keyframes_to_video", **gpu),
        _wire(extend.click, extend_this_video, studio, by_name, ["video", *VIDEO_INPUTS], check=extend_problems,
              outputs=[video, seed_used, notices, files], api_visibility="private", **gpu),
    ]
    _cancel_button(studio, cancel, events, notices, [video])
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
                  check=with_costs(None, studio, interpolate_cost), outputs=[result, notes, files],
                  api_name="interpolate",
                  api_description=f"Interpolate a video by a factor ({factor.minimum}-{factor.maximum}) or to an "
                                  "exact target fps (target_fps > 0 wins).",
                  concurrency_id=INTERPOLATE_QUEUE,
                  concurrency_limit=2)  # CPU work: runs beside a GPU job, but two at most on a 2-core Space
    _cancel_button(studio, cancel, event, notes, [result, files], INTERPOLATE_QUEUE)
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
    event = _wire(run.click, upscale, studio, by_name, UPSCALE_INPUTS, check=with_costs(None, studio, upscale_cost),
                  outputs=[video, still, notes, files],
                  api_name="upscale", api_description="Upscale a video or a still 2x or 4x (Real-ESRGAN).",
                  concurrency_id=GPU_QUEUE, concurrency_limit=len(studio.caches))
    _cancel_button(studio, cancel, event, notes, [video, still, files], UPSCALE_RUNS)


def _cancel_button(studio: Studio, button: gr.Button, events: Any, notes: gr.Markdown, shown: list[Any],
                   kind: str = GPU_QUEUE) -> None:
    """Cancel for `events`, whose progress shows on the `shown` components."""
    def cancel_run(request: gr.Request) -> tuple[Any, ...]:
        """Stop this session's runs of `kind`, wait for them to stop, and say so (the video box just empties)."""
        session = session_of(request)
        if studio.cancels.cancel(session, kind) and not studio.cancels.wait_stopped(session, CANCEL_WAIT_S, kind):
            message = "Cancelling: the run stops at its next step."
        else:
            message = "Cancelled."
        gr.Info(message)
        return as_notes([message]), *[gr.skip()] * len(shown)

    # First Gradio drops the events (a queued job leaves the queue; a running one is stopped by
    # `stops_when_dropped`): the page runs a click's listeners one after the other, and `cancel_run` waits. The
    # flags then stop a running job even when the page has lost track of it.
    button.click(None, None, None, cancels=events if isinstance(events, list) else [events])
    # `shown` among the outputs: a dropped event's status on them can end as "error" in the page (its stream
    # closes under it), a red badge on a box that only lost a cancelled run; `cancel_run` ends after the run has
    # stopped, so its "complete" is the last word on them, and their values stay as they are (gr.skip).
    button.click(cancel_run, None, [notes, *shown], queue=False, api_visibility="private")


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
            if studio.cancels.cancel(session_of(request)):
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
