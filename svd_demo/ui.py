"""The Gradio interface: the only module (with app.py) that imports gradio.

Handlers are thin: they turn component values into `VideoParams`, call the `Studio`, and turn its results and
errors into component updates. Every GPU event shares one concurrency id with limit 1, so one GPU runs one job at a
time whatever the tab; everything cheap (validation, the preview) runs outside that queue.
"""

import html
import logging
import uuid
from dataclasses import fields
from typing import Any

import gradio as gr

from svd_demo.errors import UserFacingError
from svd_demo.models import svd_choices, svd_defaults
from svd_demo.params import EXTRA_FORMATS, SPECS, Spec, VideoParams
from svd_demo.settings import Settings
from svd_demo.studio import Studio
from svd_demo.tiny_models import is_tiny_model

log = logging.getLogger("svd_demo")

GPU_QUEUE = "gpu"  # the one concurrency id of every event that runs a model
CSS = """
.banner {padding: 0.5em 1em; border-radius: 8px; background: var(--color-accent-soft);}
footer {visibility: hidden}
"""


class UploadedImage(gr.Image):
    """An image input that hands the uploaded file to our loader untouched.

    gr.Image opens every upload with PIL before returning its path, so a corrupt file, an SVG or a decompression
    bomb would get Gradio's generic 400 instead of our message; and its RGB conversion would drop transparency and
    clip 16-bit images. `images.load_image` does all of that properly.
    """

    def preprocess(self, payload: Any) -> str | None:
        if payload is None or (payload.url or "").startswith("data:"):
            return super().preprocess(payload)  # inline base64 from API callers: Gradio writes it to a file
        return str(payload.path) if payload.path else None


def _user_error(exc: BaseException) -> gr.Error:
    """What the person sees: our own messages verbatim (escaped: they may quote user text), never internals."""
    if isinstance(exc, UserFacingError):
        return gr.Error(html.escape(str(exc)), print_exception=False)
    error_id = uuid.uuid4().hex[:8]
    log.exception("Unexpected error %s", error_id)
    return gr.Error(f"Something went wrong on the server (error {error_id}). Please try again; if it keeps "
                    "happening, report the error id.", print_exception=False)


def _component(spec: Spec, value: Any = None, **kwargs: Any) -> gr.components.Component:
    """A component for a parameter spec: its label, range, step, default and help come from `params.SPECS`."""
    value = spec.default if value is None else value
    common = {"label": spec.label, "info": spec.help, **kwargs}
    if spec.kind is bool:
        return gr.Checkbox(value=value, **common)
    if spec.choices:
        return gr.Radio(choices=list(spec.choices), value=value, **common)
    if spec.name == "seed":
        return gr.Number(value=value, precision=0, minimum=spec.minimum, maximum=spec.maximum, **common)
    return gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=value, **common)


def _banner(settings: Settings, device: str) -> str:
    notes = []
    if device == "cpu":
        notes.append("**Running on the CPU:** generation will be very slow (many minutes per clip with real "
                     "models). A CUDA GPU is strongly recommended.")
    if is_tiny_model(settings.svd_model):
        notes.append("**Random weights:** the loaded models are tiny test models, so the videos are noise. "
                     "Start with `--svd-model` pointing at a real model for real results.")
    return "\n\n".join(notes)


# The video parameters in the order the handler receives them (after `image` and `svd_model`).
VIDEO_INPUTS = [name for name in SPECS]


def build_demo(settings: Settings, studio: Studio | None = None) -> gr.Blocks:
    """The whole app. Nothing is loaded here: models load on the first request (or at launch with --preload)."""
    studio = studio or Studio(settings)
    frames_default, fps_default = svd_defaults(settings.svd_model)

    with gr.Blocks(title="SVD Studio", delete_cache=_delete_cache(settings)) as demo:
        gr.Markdown("# SVD Studio\nAnimate a photo with Stable Video Diffusion, on your own GPU or a Space.")
        banner = _banner(settings, studio.cache.device)
        if banner:
            gr.Markdown(banner, elem_classes="banner")

        # Video settings are shared by the image and the text tab: one set of components, not a copy per tab.
        with gr.Sidebar(label="Video settings", open=True):
            svd_model = gr.Dropdown(choices=svd_choices(settings.svd_model), value=settings.svd_model,
                                    label="Video model", allow_custom_value=True,
                                    info="SVD makes 14 frames, SVD-XT 25. A hub id or a local folder also works.")
            controls: dict[str, gr.components.Component] = {}
            for name in ("resolution", "aspect_mode", "num_frames", "motion_bucket_id", "fps"):
                value = {"num_frames": frames_default, "fps": fps_default}.get(name)
                controls[name] = _component(SPECS[name], value)
            with gr.Accordion("Advanced", open=False):
                for name in ("seed", "randomize_seed", "num_inference_steps", "noise_aug_strength",
                             "min_guidance_scale", "max_guidance_scale", "decode_chunk_size", "playback_fps",
                             "loop"):
                    controls[name] = _component(SPECS[name])
                extra_formats = gr.CheckboxGroup(choices=list(EXTRA_FORMATS), value=[], label="Also write",
                                                 info="MP4 is always written.")
        video_inputs = [controls[name] for name in VIDEO_INPUTS]
        svd_model.change(lambda ref: [gr.update(value=v) for v in svd_defaults(ref)], inputs=svd_model,
                         outputs=[controls["num_frames"], controls["fps"]], queue=False, api_visibility="private")

        with gr.Tabs():
            with gr.Tab("Image to video", id="image_to_video"):
                with gr.Row():
                    with gr.Column():
                        image = UploadedImage(label="Input image", type="filepath", image_mode=None,
                                         sources=["upload", "clipboard"], height=320)
                        prepared = gr.Image(label="What the model will see", interactive=False, height=240,
                                            format="png")
                        with gr.Row():
                            generate = gr.Button("Generate", variant="primary")
                            cancel = gr.Button("Cancel", variant="stop")
                    with gr.Column():
                        video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False)
                        seed_used = gr.Number(label="Seed used", precision=0, interactive=False)
                        notices = gr.Markdown()
                        files = gr.File(label="Files (video, extra formats, parameters JSON)", file_count="multiple",
                                        interactive=False)

        def preview(image_path: str | None, resolution: float, aspect_mode: str) -> tuple[Any, str]:
            if not image_path:
                return None, ""
            try:
                prep, loaded = studio.prepare(image_path, int(resolution), aspect_mode)
            except UserFacingError as exc:
                return None, f"⚠️ {html.escape(str(exc))}"
            w, h = prep.image.size
            return prep.image, _notes([f"The video will be {w}x{h}.", *loaded.notices, *prep.notices])

        gr.on([image.change, controls["resolution"].release, controls["aspect_mode"].change], preview,
              inputs=[image, controls["resolution"], controls["aspect_mode"]], outputs=[prepared, notices],
              api_name="prepare_image", concurrency_id="cpu", concurrency_limit=4, show_progress="minimal")

        def image_to_video(image: str | None, svd_model: str, seed: float, randomize_seed: bool,
                           resolution: float, aspect_mode: str, num_frames: float, num_inference_steps: float,
                           motion_bucket_id: float, fps: float, noise_aug_strength: float,
                           min_guidance_scale: float, max_guidance_scale: float, decode_chunk_size: float,
                           playback_fps: float, loop: str, extra_formats: list[str], request: gr.Request,
                           progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's idiom)
                           ) -> tuple[Any, ...]:
            """Animate an image; returns the MP4, the seed used, the prepared image, notices and all files."""
            values = locals()
            params = _params(tuple(values[name] for name in [*VIDEO_INPUTS, "extra_formats"]))
            session = request.session_hash or uuid.uuid4().hex
            try:
                with studio.cancels.token(session) as token:
                    result = studio.image_to_video(image, params, model_ref=svd_model or None,
                                                   progress=lambda f, text: progress(f, desc=text), cancel=token)
            except Exception as exc:
                raise _user_error(exc) from exc
            for change in result.record.get("memory_changes", []):
                gr.Warning(change)
            out_files = [str(result.files.video), *map(str, result.files.extras.values()), str(result.files.sidecar)]
            return str(result.files.video), result.seed, result.prepared, _notes(result.notices), out_files

        def _params(values: tuple[Any, ...]) -> VideoParams:
            named = dict(zip([*VIDEO_INPUTS, "extra_formats"], values, strict=True))
            try:
                return VideoParams.from_raw(named)
            except UserFacingError as exc:
                raise gr.Error(html.escape(str(exc)), print_exception=False) from exc

        def validate(image: str | None, svd_model: str, *values: Any) -> list[dict]:
            """Runs before the queue: a missing image or a bad number is refused without waiting for the GPU."""
            checks = [gr.validate(bool(image), "Please upload an image first."), gr.validate(True, "")]
            try:
                _params(values)
                problem = ""
            except gr.Error as exc:
                problem = exc.message
            return checks + [gr.validate(not problem, problem) for _ in values]

        gen_event = generate.click(
            image_to_video,
            inputs=[image, svd_model, *video_inputs, extra_formats],
            outputs=[video, seed_used, prepared, notices, files],
            api_name="image_to_video", concurrency_id=GPU_QUEUE, concurrency_limit=1, validator=validate,
        )

        def cancel_run(request: gr.Request) -> None:
            if studio.cancels.cancel(request.session_hash or ""):
                gr.Info("Cancelling: the run stops at the next step.")

        # The flag stops a running job at its next step; `cancels` drops this session's job if it is still queued.
        cancel.click(cancel_run, None, None, queue=False, api_visibility="private", cancels=[gen_event])
    return demo


def _notes(lines: list[str] | tuple[str, ...]) -> str:
    return "\n".join(f"- {html.escape(line)}" for line in lines)


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
        "allowed_paths": [str(settings.output_dir)],
        "css": CSS,
        "footer_links": ["api"],
    }


def settings_fields() -> list[str]:
    return [f.name for f in fields(Settings)]
