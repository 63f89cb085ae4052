"""The UI's handlers as plain functions of (studio, values), called without a server; the signatures Gradio reads."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import gradio as gr
import pytest
from helpers import FAST

from svd_demo.core.params import INTERPOLATION_SPECS, SPECS
from svd_demo.files.media import probe_video
from svd_demo.web import handlers, runs, ui

TEXT_FAST = {"sdxl_steps": 2, "resolution": 256, "randomize_seed": False, "seed": 3}


def test_a_bound_handler_has_one_parameter_per_input_then_request_and_progress(studio):
    names = ["image", *handlers.VIDEO_INPUTS]
    bound = runs.stops_when_dropped(handlers.bound(handlers.image_to_video, studio, names, gr.Progress()))
    parameters = list(inspect.signature(bound).parameters.values())
    assert [p.name for p in parameters] == [*names, "request", "progress"]
    assert parameters[-2].annotation is gr.Request and isinstance(parameters[-1].default, gr.Progress)
    assert bound.__name__ == "image_to_video" and bound.__doc__ == handlers.image_to_video.__doc__
    assert inspect.isasyncgenfunction(runs.stops_when_dropped(handlers.bound(handlers.text_to_video, studio, names)))


def test_every_event_receives_its_inputs_under_the_names_its_handler_uses(tiny_settings, studio):
    demo = ui.build_demo(tiny_settings, studio)
    events = {fn.api_name: fn for fn in demo.fns.values()
              if fn.concurrency_id in (runs.GPU_QUEUE, runs.INTERPOLATE_QUEUE)}
    # Every handler of the video settings also gets the page's marker (a session state, not an API parameter).
    assert list(events["image_to_video"].input_parameter_names) == ["image", *handlers.VIDEO_INPUTS, "live_preview",
                                                                     handlers.PAGE]
    assert list(events["extend_this_video"].input_parameter_names) == ["video", *handlers.VIDEO_INPUTS, handlers.PAGE]
    assert list(events["interpolate"].input_parameter_names) == ["video", *INTERPOLATION_SPECS]
    for fn in events.values():
        assert len(fn.input_parameter_names) == len(fn.inputs) and None not in fn.input_parameter_names, fn.api_name


def test_image_to_video_and_extend_without_a_server(studio, photo):
    (video, seed, prepared, notes, files, preview), = handlers.image_to_video(studio, {"image": str(photo), "seed": 4,
                                                                                 **FAST})  # one update: no preview
    assert (probe_video(video).num_frames, seed, prepared.size) == (4, 4, (256, 144))
    assert "Cropped" in notes and files[-1].endswith(".json")
    longer, *_ = handlers.extend_video(studio, {"video": video, **FAST})
    assert probe_video(longer).num_frames == 4 + 3


def test_compare_seeds_without_a_server(studio, photo):
    gallery = handlers.compare_seeds(studio, {"image": str(photo), "num_seeds": 2, "seed": 5, **FAST})
    assert [caption for _, caption in gallery] == ["seed 5", "seed 6"]


def test_text_to_video_yields_the_still_first(studio):
    updates = list(handlers.text_to_video(studio, {"prompt": "a boat", **FAST, **TEXT_FAST}))
    assert len(updates) == 2 and updates[0][1] is None and updates[0][0] == updates[1][0]
    assert probe_video(updates[1][1]).num_frames == 4 and updates[1][2] == 3


def test_interpolate_and_prepare_image_without_a_server(studio, photo):
    (video, *_), = handlers.image_to_video(studio, {"image": str(photo), **FAST})
    out, notes, files = handlers.interpolate(studio, {"video": video, "factor": 3})
    assert probe_video(out).num_frames == 10 and "became 10 frames" in notes and Path(files[1]).is_file()
    with pytest.raises(gr.Error, match=r"Unknown interpolation backend 'rife'"):  # the API's Dropdown refuses it first
        handlers.interpolate(studio, {"video": video, "backend": "rife"})
    image, notes = handlers.prepare_image(studio, {"image_path": str(photo), "resolution": 512,
                                                   "aspect_mode": "native"})
    assert image.size == (512, 384) and "512x384" in notes


def test_bad_values_reach_the_user_as_our_message(studio, photo):
    with pytest.raises(gr.Error, match="`num_frames` must be between"):
        list(handlers.image_to_video(studio, {"image": str(photo), "num_frames": 0}))
    with pytest.raises(gr.Error, match="Please write a prompt"):
        handlers.text_to_image(studio, {"prompt": " "})
    with pytest.raises(gr.Error, match="upload a video"):
        handlers.interpolate(studio, {"video": None})


def test_validators_put_a_problem_on_the_parameters_it_names():
    names = ["image", *handlers.VIDEO_INPUTS]
    values = {name: SPECS[name].default if name in SPECS else None for name in names}
    answers = dict(zip(names, handlers.input_validator(handlers.image_run_problems, names)(
        *{**values, "image": "x.png", "min_guidance_scale": 5, "max_guidance_scale": 2}.values()), strict=True))
    assert {name for name, answer in answers.items() if not answer["is_valid"]} == {"min_guidance_scale",
                                                                                    "max_guidance_scale"}
    assert handlers.needs_image({"image": None}) == {"image": "Please upload an image first."}
    assert handlers.prompt_problems({"prompt": "a boat"}) == {}


def test_every_run_clears_its_last_notes_at_once(tiny_settings, studio):
    """A run that fails must not leave the previous run's note under its error: each run's trigger first empties
    the notes it writes, without queueing."""
    import gradio as gr

    from svd_demo.web.ui import build_demo

    demo = build_demo(tiny_settings, studio)
    runs = [fn for fn in demo.fns.values() if fn.api_name in ("interpolate", "image_to_video", "text_to_video",
                                                               "text_to_image", "extend_video")]
    assert len(runs) == 5
    for run in runs:
        notes = [block for block in run.outputs if isinstance(block, gr.Markdown)]
        clears = [fn for fn in demo.fns.values() if fn.targets == run.targets and fn is not run and not fn.queue
                  and set(fn.outputs) == set(notes)]
        assert notes and len(clears) == 1, run.api_name
        assert clears[0].fn() in ("", [""])


def test_every_video_player_keeps_a_portrait_clip_within_the_window(tiny_settings, studio):
    import gradio as gr

    from svd_demo.web.ui import build_demo, launch_kwargs

    players = [b for b in build_demo(tiny_settings, studio).blocks.values() if isinstance(b, gr.Video)]
    assert len(players) == 6 and all("player" in (p.elem_classes or []) for p in players)  # 6: Upscale, Keyframes
    # The style sheet the page is launched with caps the players' video element by the window's height and
    # scales the clip into that box whole, so a portrait clip shows entirely above the fold.
    rules = {selector.strip(): body for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}",
                                                                     launch_kwargs(tiny_settings)["css"])}
    assert ".player video" in rules, rules
    declarations = dict(part.split(":", 1) for part in rules[".player video"].split(";") if part.strip())
    declarations = {name.strip(): value.strip() for name, value in declarations.items()}
    height = re.fullmatch(r"(\d+(?:\.\d+)?)vh", declarations.get("max-height", ""))
    assert height and 0 < float(height.group(1)) <= 100, declarations
    assert declarations.get("object-fit") == "contain", declarations


def test_extend_leaves_what_the_model_will_see_to_the_input_photo(studio, photo):
    (video, *_), = handlers.image_to_video(studio, {"image": str(photo), **FAST})
    longer, seed, prepared, notes, files = handlers.extend_video(studio, {"video": video, **FAST})
    assert prepared == gr.skip() and probe_video(longer).num_frames == 4 + 3


def test_a_clip_picked_in_compare_seeds_puts_its_seed_in_the_settings():
    picked = gr.SelectData(None, {"index": 1, "value": {"video": {"path": "x.mp4"}, "caption": "seed 6"}})
    assert handlers.take_seed(picked) == (6, False)
    assert handlers.take_seed(gr.SelectData(None, {"index": 0, "value": {"caption": None}})) == (gr.skip(), gr.skip())


def test_the_newest_video_for_upscaling_includes_the_interpolated_one(tiny_settings, studio):
    demo = ui.build_demo(tiny_settings, studio)
    sources = [[c.label for c in fn.inputs] for fn in demo.fns.values() if fn.fn is ui._newest_video]
    assert any(labels[-1] == "Interpolated" and labels.count("Video") == 3 for labels in sources)


def test_sliders_say_their_range_since_the_number_box_clamps_silently(tiny_settings, studio):
    demo = ui.build_demo(tiny_settings, studio)
    steps = [b for b in demo.blocks.values() if isinstance(b, gr.Slider) and b.label == "Steps"]
    assert steps and all(s.info.endswith("(1-100)") for s in steps)
