"""End to end in a real browser: the app as a subprocess on tiny models, driven by Chromium through Playwright.

Upload a photo, generate a small clip, check the page plays it and logged no errors, visit every tab and
interpolate the result, then make a clip between two photos on the Keyframes tab (and a loop). Every wait is
bounded; on failure a full-page screenshot, the browser console and the server log are saved (to
`$SVD_DEMO_ARTIFACTS` when set, else the test's tmp dir) and named in the message. With `$SVD_DEMO_ARTIFACTS` set,
a screenshot of each tab is saved on success too.

Needs `pip install playwright` and Debian's Chromium (`apt-get install -y chromium`); Playwright's own browser
download is not used. `SVD_DEMO_CHROMIUM` overrides the browser path. Run alone with `pytest -m browser`.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import pytest
from helpers import free_port, stop_process, wait_until_served
from optional_deps import missing

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

REPO = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SVD_DEMO_CHROMIUM", "/usr/bin/chromium")
# Chromium's background services (updates, sync, QUIC probes) would try the network: CI and dev boxes have none.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 90  # python app.py until it answers HTTP
STEP_S = 20  # one UI step: a preview, a tab switch, loading a video
GENERATE_S = 120  # Generate (first request loads the tiny pipeline) until the video plays
INTERPOLATE_S = 60
# Console errors that are not ours: (regex on "message text + source URL", why it is harmless). Empty on purpose:
# with Gradio 6.31 in Chromium the page logs no errors at all, and every request it makes (fonts and favicon
# included) goes to the app itself, with no 4xx. Gradio's own console *warnings* ("Method not implemented.", twice,
# when an image is uploaded) are kept in the log but are not errors, so they are not checked.
IGNORED_CONSOLE: list[tuple[re.Pattern[str], str]] = []


def _install_hint() -> str:
    return ("The browser test needs the Playwright Python package (in the tests extra) and Debian's Chromium: "
            "`apt-get install -y chromium` (Playwright's own browser download is not used; set SVD_DEMO_CHROMIUM "
            f"to use another Chromium than {CHROMIUM})")


def _require_browser() -> None:
    """Skip with the reason on a machine without the browser stack; fail in CI, which installs it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing(f"playwright is not installed. {_install_hint()}")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"No Chromium at {CHROMIUM}. {_install_hint()}")


@dataclass
class Server:
    url: str
    output_dir: pathlib.Path
    log_path: pathlib.Path
    process: subprocess.Popen = field(repr=False)

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


@contextmanager
def _serve(models: pathlib.Path, tmp_path: pathlib.Path, svd_model: str | None = None,
           hub_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`python app.py` on the tiny models (or the video model `svd_model`, with `hub_env` for the hub client), on a
    free port; killed whatever happens."""
    work = tmp_path / "server"
    (work / "gradio-tmp").mkdir(parents=True)
    output_dir, log_path = tmp_path / "outputs", tmp_path / "server.log"
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(work / "gradio-tmp"), "PYTHONUNBUFFERED": "1", **(hub_env or {})}
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SVD_DEMO_AUTH", "SVD_DEMO_SHARE", "SVD_DEMO_PRELOAD"):
        env.pop(name, None)  # the command line below decides; a developer's own settings must not leak in
    from svd_demo_testing.tiny_models import save_tiny_upscalers

    upscaler = save_tiny_upscalers(work / "upscalers")["srvgg"]  # the Upscale tab runs on it (no download)
    command = [sys.executable, str(REPO / "app.py"), "--svd-model", svd_model or str(models / "svd"),
               "--sdxl-model", str(models / "sdxl"), "--port", str(port), "--output-dir", str(output_dir),
               "--upscale-model", str(upscaler)]
    with open(log_path, "wb") as log:
        # cwd outside the repo: Gradio writes its example cache (.gradio/) into the working directory.
        process = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}/", output_dir, log_path, process)
    try:
        wait_until_served(srv.url, process, SERVER_START_S, log_path)
        yield srv
    finally:
        stop_process(process, 10)


# JS: the <video> inside the visible block whose label is exactly `label` once it has loaded a clip that plays
# (its duration); or, as soon as the page shows an error instead (an "Error" badge, a validation message or an
# error toast), what it says, so a broken run fails at once rather than after the whole wait.
VIDEO_READY_JS = """label => {
    const labels = [...document.querySelectorAll('[data-testid="block-label"]')]
        .filter(el => el.textContent.trim() === label && el.offsetParent !== null);
    for (const el of labels) {
        const video = el.closest('.block')?.querySelector('video');
        if (video && video.readyState >= 1 && Number.isFinite(video.duration) && video.duration > 0) {
            return {duration: video.duration};
        }
    }
    const shown = sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null)
        .map(e => e.innerText.trim().replace(/\\s+/g, ' ')).filter(Boolean);
    const errors = [...shown('[data-testid="status-tracker"] .error'), ...shown('.validation-error'),
                    ...shown('[data-testid="toast-body"].error, .toast-body.error')];
    return errors.length ? {errors} : false;
}"""


class Journal:
    """What happened in the page, in order: the current step, console messages and page errors."""

    def __init__(self) -> None:
        self.step = "starting"
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.ignored: list[str] = []
        self.t0 = time.monotonic()

    def at(self, step: str) -> None:
        self.step = step
        self.lines.append(f"[{time.monotonic() - self.t0:6.1f}s] STEP {step}")

    def console(self, msg) -> None:
        where = msg.location or {}
        text = f"console.{msg.type}: {msg.text} ({where.get('url', '')}:{where.get('lineNumber', '')})"
        self.lines.append(f"[{time.monotonic() - self.t0:6.1f}s] {text}")
        if msg.type == "error":
            source = f"{msg.text} {where.get('url', '')}"
            reason = next((why for pattern, why in IGNORED_CONSOLE if pattern.search(source)), None)
            (self.ignored if reason else self.errors).append(text + (f"  [ignored: {reason}]" if reason else ""))

    def page_error(self, exc) -> None:
        text = f"pageerror: {exc}"
        self.lines.append(f"[{time.monotonic() - self.t0:6.1f}s] {text}")
        self.errors.append(text)

    def request_failed(self, request) -> None:
        self.lines.append(f"[{time.monotonic() - self.t0:6.1f}s] request failed: {request.method} {request.url} "
                          f"({request.failure})")


def _artifacts_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    root = os.environ.get("SVD_DEMO_ARTIFACTS")
    directory = pathlib.Path(root) / "test_browser" if root else tmp_path / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _block(page, label: str):
    """The visible Gradio block (component box) whose label is exactly `label`."""
    title = page.locator('[data-testid="block-label"]', has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return page.locator("div.block").filter(has=title).filter(visible=True)


def _small_settings(settings, journal: Journal, steps: int = 2) -> None:
    """Resolution 256, 4 frames and `steps` steps in the shared settings column (Steps is under Advanced)."""
    _set_slider(settings, "Resolution (long side, px)", 256, journal)
    _set_slider(settings, "Frames", 4, journal)
    # An accordion's button is named by its label plus its arrow icon ("Advanced ▼").
    settings.get_by_role("button", name=re.compile(r"^\s*Advanced\b")).click()
    _set_slider(settings, "Steps", steps, journal)


def _set_slider(scope, label: str, value: int, journal: Journal, attempts: int = 5) -> None:
    """Type into the number box Gradio puts beside every slider, until the slider itself shows the value.

    Retried: a component that has just appeared (e.g. in an accordion being opened) can still be mounting, and a
    mount that finishes after the typing resets it to its initial value.
    """
    from playwright.sync_api import expect

    box = scope.get_by_label(f"number input for {label}", exact=True)
    slider = scope.get_by_label(f"range slider for {label}", exact=True)
    for attempt in range(attempts):
        box.fill(str(value))
        box.press("Enter")
        box.blur()
        try:
            expect(slider).to_have_value(str(value), timeout=1000)
            expect(box).to_have_value(str(value), timeout=1000)
            return
        except AssertionError:
            journal.lines.append(f"  {label!r} did not keep {value} (try {attempt + 1} of {attempts})")
            if attempt == attempts - 1:
                raise AssertionError(f"the {label!r} slider did not keep the value {value} after {attempts} tries "
                                     f"(it shows {slider.input_value()!r}, its box {box.input_value()!r})") from None


# JS: what the visible blocks labelled `label` hold, for a failure message.
VIDEO_STATE_JS = """label => [...document.querySelectorAll('[data-testid="block-label"]')]
    .filter(el => el.textContent.trim() === label && el.offsetParent !== null)
    .map(el => {
        const video = el.closest('.block')?.querySelector('video');
        return video ? {src: video.currentSrc || video.src, readyState: video.readyState, duration: video.duration,
                        error: video.error && video.error.code} : 'no <video> element';
    })"""


# JS: from now on, record every picture the "Live preview" block shows (each is there for a fraction of a second).
WATCH_PREVIEWS_JS = """() => {
    window.__previews = [];
    const record = () => document.querySelectorAll('[data-testid="block-label"]').forEach(label => {
        if (label.textContent.trim() !== 'Live preview') return;
        const img = label.closest('.block')?.querySelector('img');
        if (img && img.src && !window.__previews.includes(img.src)) window.__previews.push(img.src);
    });
    new MutationObserver(record).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                         attributeFilter: ['src']});
}"""


def _wait_video(page, label: str, timeout_s: float) -> float:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        handle = page.wait_for_function(VIDEO_READY_JS, arg=label, timeout=timeout_s * 1000, polling=250)
    except PlaywrightTimeout:
        state = page.evaluate(VIDEO_STATE_JS, label)
        raise AssertionError(f"no playable video in {label!r} after {timeout_s:g} s; the page shows: "
                             f"{state or 'no visible block with that label'}") from None
    result = handle.json_value()
    if "errors" in result:
        toasts = _toasts(page)
        raise AssertionError(f"the page shows an error instead of a video in {label!r}: {result['errors']}"
                             + (f"; messages: {toasts}" if toasts else " (and no message: see the server log)"))
    return float(result["duration"])


def _toasts(page) -> str:
    try:
        texts = page.locator('[data-testid="toast-body"], .validation-error').all_inner_texts()
    except Exception:  # the page may be gone; this is only for the message
        return ""
    return " | ".join(" ".join(t.split()) for t in texts)


def _run_studio(page, server: Server, photo: pathlib.Path, journal: Journal, shots: pathlib.Path | None) -> None:
    from playwright.sync_api import expect

    def shot(name: str) -> None:
        if shots is not None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    journal.at("open the page")
    page.goto(server.url, wait_until="domcontentloaded", timeout=STEP_S * 1000)
    heading = page.get_by_role("heading", name="Video settings", exact=True)
    expect(heading).to_be_visible(timeout=STEP_S * 1000)
    # The left column with the shared settings: the innermost column that holds its heading.
    settings = page.locator("div.column").filter(has=heading).last

    journal.at("random weights on a CPU: the banner says so, and the page starts from the quick settings")
    expect(page.get_by_text("Quick settings:", exact=False)).to_be_visible(timeout=STEP_S * 1000)
    expect(settings.get_by_label("number input for Resolution (long side, px)", exact=True)).to_have_value("256")
    expect(settings.get_by_label("number input for Frames", exact=True)).to_have_value("6")

    journal.at("small settings: resolution 256, 4 frames, 2 steps")
    _small_settings(settings, journal)

    journal.at("upload the photo")
    _block(page, "Input image").locator("input[type=file]").set_input_files(str(photo))
    journal.at("wait for the 'What the model will see' preview")
    expect(_block(page, "What the model will see").locator("img")).to_be_visible(timeout=STEP_S * 1000)
    image_panel = page.get_by_role("tabpanel").filter(visible=True)
    expect(image_panel.get_by_text("The video will be 256x144.")).to_be_visible(timeout=STEP_S * 1000)
    shot("image_to_video-before")
    expect(image_panel.get_by_label("Seed used", exact=True)).to_be_hidden()  # no "0" before there is a seed

    journal.at(f"Generate, then wait up to {GENERATE_S} s for the 'Video' element to play (duration > 0)")
    image_panel.get_by_role("button", name="Generate", exact=True).click()
    duration = _wait_video(page, "Video", GENERATE_S)
    assert duration > 0

    journal.at("check 'Seed used' and the files written")
    seed_box = image_panel.get_by_label("Seed used", exact=True)
    expect(seed_box).to_be_visible(timeout=STEP_S * 1000)
    seed_text = seed_box.input_value()
    assert re.fullmatch(r"\d+", seed_text), f"'Seed used' is {seed_text!r}, not a seed"
    src = _block(page, "Video").locator("video").get_attribute("src") or ""
    assert f"-s{seed_text}-" in src, f"the video shown ({src}) is not the one for seed {seed_text}"
    sidecars = [json.loads(p.read_text()) for p in server.output_dir.glob("*-video-*.json")]
    assert len(sidecars) == 1, f"expected one video sidecar in {server.output_dir}, found {len(sidecars)}"
    params = sidecars[0]["parameters"]
    wanted = {"seed": int(seed_text), "resolution": 256, "num_frames": 4, "num_inference_steps": 2}
    got = {key: params.get(key) for key in wanted}
    assert got == wanted, f"the run used {got}, the page asked for {wanted}"
    shot("image_to_video-after")

    journal.at("change the steps and the seed, then restore both by dropping the clip on the sidebar")
    _set_slider(settings, "Steps", 9, journal)
    settings.get_by_role("button", name=re.compile(r"^\s*Restore settings from a video\b")).click()
    clip = next(server.output_dir.glob("*-video-*.mp4"))
    page.locator("#restore-settings input[type=file]").set_input_files(str(clip))
    expect(settings.get_by_text(f"Restored the settings of {clip.name}")).to_be_visible(timeout=STEP_S * 1000)
    expect(settings.get_by_label("number input for Steps", exact=True)).to_have_value("2")
    expect(settings.get_by_label("Seed", exact=True)).to_have_value(seed_text)
    expect(settings.get_by_label("Randomize seed", exact=True)).not_to_be_checked()
    shot("restored-settings")

    journal.at("Generate again with 7 steps: live previews show under the video while it denoises (steps 3 and 6)")
    _set_slider(settings, "Steps", 7, journal)
    page.evaluate(WATCH_PREVIEWS_JS)
    image_panel.get_by_role("button", name="Generate", exact=True).click()
    expect(_block(page, "Video").locator("video")).not_to_have_attribute("src", src, timeout=GENERATE_S * 1000)
    assert _wait_video(page, "Video", GENERATE_S) > 0
    previews = page.evaluate("() => window.__previews")
    assert any(".webp" in url for url in previews), f"no live preview was shown during the run: {previews}"
    expect(_block(page, "Live preview").locator("img")).to_have_count(0, timeout=STEP_S * 1000)  # cleared at the end
    _set_slider(settings, "Steps", 2, journal)

    journal.at("Extend: continue the clip from its last frame")
    image_panel.get_by_role("button", name="Extend: continue from the last frame", exact=True).click()
    expect(_block(page, "Video").locator("video")).to_have_attribute("src", re.compile(r"-extended-"),
                                                                      timeout=GENERATE_S * 1000)
    assert _wait_video(page, "Video", GENERATE_S) > duration  # 4 + 3 frames at the same rate play longer

    journal.at("switch to 'Text to image to video'")
    page.get_by_role("tab", name="Text to image to video", exact=True).click()
    text_panel = page.get_by_role("tabpanel").filter(visible=True)
    expect(text_panel.get_by_label("Prompt", exact=True)).to_be_visible(timeout=STEP_S * 1000)
    journal.at("write a prompt, make a still, then 'Animate this still'")
    text_panel.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    text_panel.get_by_role("button", name="Still only", exact=True).click()
    expect(_block(page, "Still").locator("img")).to_be_visible(timeout=GENERATE_S * 1000)
    text_panel.get_by_role("button", name="Animate this still", exact=True).click()
    assert _wait_video(page, "Video", GENERATE_S) > 0  # the text tab's own video: the image tab's is hidden now
    journal.at("Extend the text tab's video twice (4 + 3 + 3 frames)")
    extend = text_panel.get_by_role("button", name="Extend: continue from the last frame", exact=True)
    extend.click()
    text_video = text_panel.locator("video")
    expect(text_video).to_have_attribute("src", re.compile(r"-extended-"), timeout=GENERATE_S * 1000)
    once = text_video.get_attribute("src")
    extend.click()
    expect(text_video).not_to_have_attribute("src", once, timeout=GENERATE_S * 1000)
    shot("text_to_video")

    journal.at("switch to 'Frame interpolation', take the last generated video")
    page.get_by_role("tab", name="Frame interpolation", exact=True).click()
    expect(heading).to_be_hidden(timeout=STEP_S * 1000)  # the video settings do not apply here
    interp_panel = page.get_by_role("tabpanel").filter(visible=True)
    interp_panel.get_by_role("button", name="Use the last generated video", exact=True).click()
    _wait_video(page, "Original", STEP_S)
    _set_slider(interp_panel, "Factor", 2, journal)

    journal.at(f"Interpolate, then wait up to {INTERPOLATE_S} s for the 'Interpolated' element to play")
    interp_panel.get_by_role("button", name="Interpolate", exact=True).click()
    _wait_video(page, "Interpolated", INTERPOLATE_S)
    # The newest video is the text tab's, extended twice (10 frames), not the image tab's (7).
    expect(interp_panel.get_by_text(re.compile(r"10 frames at .* fps became \d+ frames"))).to_be_visible(
        timeout=STEP_S * 1000)
    shot("interpolate")

    journal.at("switch to 'Upscale', take the last generated video, upscale it 2x")
    page.get_by_role("tab", name="Upscale", exact=True).click()
    expect(heading).to_be_hidden(timeout=STEP_S * 1000)
    upscale_panel = page.get_by_role("tabpanel").filter(visible=True)
    upscale_panel.get_by_role("button", name="Use the last generated video", exact=True).click()
    expect(upscale_panel.get_by_text(re.compile(r"\.mp4"))).to_be_visible(timeout=STEP_S * 1000)
    upscale_panel.get_by_role("button", name="Upscale", exact=True).click()
    _wait_video(page, "Upscaled video", INTERPOLATE_S)
    # The newest video is the interpolated one (10 frames made 19), not the last clip generated.
    expect(upscale_panel.get_by_text(re.compile(r"19 frames: 256x144 became 512x288"))).to_be_visible(
        timeout=STEP_S * 1000)
    shot("upscale")

    journal.at("switch to 'Keyframes': start and end photo side by side, each shown as the model will see it")
    from PIL import Image

    end_photo = photo.with_name("portrait_end.png")
    Image.new("RGB", (300, 400), (20, 90, 200)).save(end_photo)  # portrait: framed to the start's 16:9
    page.get_by_role("tab", name="Keyframes", exact=True).click()
    expect(heading).to_be_visible(timeout=STEP_S * 1000)  # the shared video settings apply here
    keyframes_panel = page.get_by_role("tabpanel").filter(visible=True)
    _block(page, "Start photo (first frame)").locator("input[type=file]").set_input_files(str(photo))
    expect(_block(page, "Start, as the model will see it").locator("img")).to_be_visible(timeout=STEP_S * 1000)
    expect(keyframes_panel.get_by_text(re.compile(r"Add the end photo"))).to_be_visible(timeout=STEP_S * 1000)
    _block(page, "End photo (last frame)").locator("input[type=file]").set_input_files(str(end_photo))
    expect(_block(page, "End, as the model will see it").locator("img")).to_be_visible(timeout=STEP_S * 1000)
    expect(keyframes_panel.get_by_text(re.compile(r"framed to the start photo's 256x144 with the same aspect "
                                                  r"mode"))).to_be_visible(timeout=STEP_S * 1000)
    journal.at(f"Generate between the photos, then wait up to {GENERATE_S} s for its video to play")
    keyframes_panel.get_by_role("button", name="Generate between the photos", exact=True).click()
    keyframes_video = keyframes_panel.locator("video")
    expect(keyframes_video).to_have_attribute("src", re.compile(r"keyframes-"), timeout=GENERATE_S * 1000)
    assert _wait_video(page, "Video", GENERATE_S) > 0
    first = keyframes_video.get_attribute("src")
    journal.at("switch the loop on (the end photo is no longer needed) and generate again")
    keyframes_panel.get_by_text("Loop back to the start", exact=True).click()  # the checkbox's own label
    keyframes_panel.get_by_role("button", name="Generate between the photos", exact=True).click()
    expect(keyframes_video).not_to_have_attribute("src", first, timeout=GENERATE_S * 1000)
    expect(keyframes_panel.get_by_text("Loop: the clip ends on the start photo.").first).to_be_visible(
        timeout=STEP_S * 1000)
    shot("keyframes")
    page.get_by_role("tab", name="Image to video", exact=True).click()
    expect(heading).to_be_visible(timeout=STEP_S * 1000)

    journal.at("check the console")
    page.wait_for_timeout(500)  # let late console messages (e.g. from the last media load) arrive
    if journal.errors:
        raise AssertionError("the page logged errors:\n" + "\n".join(journal.errors))
    journal.at("done")


MARKUP = "<b>bold</b> & &amp; it's"  # a tag, a bare ampersand, an entity and a quote, all to be shown as typed
WORD_JOINER = "\u2060"  # invisible; the app puts one after a "<" or "&" that could start a tag or an entity


def _run_markup_message(page, server: Server, photo: pathlib.Path, journal: Journal,
                        shots: pathlib.Path | None) -> None:
    """A message quoting text that looks like HTML shows that text, and renders none of it."""
    from playwright.sync_api import expect

    journal.at("open the page")
    page.goto(server.url, wait_until="domcontentloaded", timeout=STEP_S * 1000)
    heading = page.get_by_role("heading", name="Video settings", exact=True)
    expect(heading).to_be_visible(timeout=STEP_S * 1000)
    settings = page.locator("div.column").filter(has=heading).last
    journal.at(f"type the video model {MARKUP!r}")
    model = settings.get_by_label("Video model", exact=True)
    model.fill(MARKUP)
    model.press("Enter")
    model.blur()
    journal.at("upload the photo and Generate")
    _block(page, "Input image").locator("input[type=file]").set_input_files(str(photo))
    image_panel = page.get_by_role("tabpanel").filter(visible=True)
    expect(image_panel.get_by_text(re.compile(r"The video will be \d+x\d+\."))).to_be_visible(timeout=STEP_S * 1000)
    image_panel.get_by_role("button", name="Generate", exact=True).click()
    journal.at("wait for the error message")
    toast = page.locator('[data-testid="toast-body"]').filter(has_text="does not exist on this machine")
    expect(toast).to_be_visible(timeout=GENERATE_S * 1000)
    if shots is not None:
        page.screenshot(path=str(shots / "markup-message.png"), full_page=True)
    shown = toast.inner_text().replace(WORD_JOINER, "")
    assert f"'{MARKUP}'" in shown, f"the message does not show the model name as typed: {shown!r}"
    assert toast.locator("b").count() == 0, "the model name's <b> tag was rendered, not shown"
    journal.at("done")


HUB_MODEL = "tiny/svd"  # served by the stand-in hub: about 9.5 MB
HUB_RATE = 1_000_000  # bytes/s: the download takes about 10 s, long enough to be seen


def _run_first_download(page, server: Server, photo: pathlib.Path, journal: Journal,
                        shots: pathlib.Path | None) -> None:
    """The first Generate on a fresh machine: the progress over the video shows the download's bytes of the total,
    speed and time left while the model arrives, then the clip plays."""
    from playwright.sync_api import expect

    journal.at("open the page")
    page.goto(server.url, wait_until="domcontentloaded", timeout=STEP_S * 1000)
    heading = page.get_by_role("heading", name="Video settings", exact=True)
    expect(heading).to_be_visible(timeout=STEP_S * 1000)
    settings = page.locator("div.column").filter(has=heading).last
    journal.at("small settings: resolution 256, 4 frames, 2 steps")
    _small_settings(settings, journal)
    journal.at("upload the photo and Generate")
    _block(page, "Input image").locator("input[type=file]").set_input_files(str(photo))
    image_panel = page.get_by_role("tabpanel").filter(visible=True)
    expect(image_panel.get_by_text("The video will be 256x144.")).to_be_visible(timeout=STEP_S * 1000)
    image_panel.get_by_role("button", name="Generate", exact=True).click()
    journal.at("wait for the download's progress text")
    pattern = rf"Downloading {HUB_MODEL}: [\d.]+ of 9\.5 MB at [\d.]+ [kM]B/s, about \d+ s left"
    shown = page.get_by_text(re.compile(pattern))
    expect(shown.first).to_be_visible(timeout=GENERATE_S * 1000)
    journal.lines.append(f"shown: {shown.first.inner_text()}")
    if shots is not None:
        page.screenshot(path=str(shots / "first-download.png"), full_page=True)
    journal.at(f"wait up to {GENERATE_S} s for the 'Video' element to play")
    assert _wait_video(page, "Video", GENERATE_S) > 0
    journal.at("done")


def _browse(request, photo: pathlib.Path, tmp_path: pathlib.Path, scenario, from_hub: bool = False) -> None:
    """`scenario` in Chromium against app.py on the tiny models; `from_hub`: its video model `tiny/svd` comes from
    a stand-in hub (tests/fake_hub.py) with an empty model cache, as on a fresh machine."""
    _require_browser()  # before building the tiny models: a missing browser fails at once
    from fake_hub import StandInHub
    from playwright.sync_api import sync_playwright

    tiny_models_dir = request.getfixturevalue("tiny_models_dir")

    artifacts = _artifacts_dir(tmp_path)
    journal = Journal()
    journal.at(f"start app.py (up to {SERVER_START_S} s)")
    with ExitStack() as stack:
        svd_model, hub_env = None, None
        if from_hub:
            hub = stack.enter_context(StandInHub({HUB_MODEL: tiny_models_dir / "svd"}, bytes_per_s=HUB_RATE))
            svd_model, hub_env = HUB_MODEL, {
                "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
                "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
        server = stack.enter_context(_serve(tiny_models_dir, tmp_path, svd_model, hub_env))
        api = stack.enter_context(sync_playwright())
        _drive(api, server, photo, journal, artifacts, scenario)
    (artifacts / "console.log").write_text("\n".join(journal.lines) + "\n")
    print("\n".join(journal.lines))  # the steps with their times, shown with -rP or -s
    if journal.ignored:
        print("Ignored console errors (not ours):\n" + "\n".join(journal.ignored))


def test_studio_in_browser(request, photo, tmp_path):
    _browse(request, photo, tmp_path, _run_studio)


def test_a_message_quoting_markup_shows_it_as_text(request, photo, tmp_path):
    _browse(request, photo, tmp_path, _run_markup_message)


def test_a_first_run_shows_the_download(request, photo, tmp_path):
    _browse(request, photo, tmp_path, _run_first_download, from_hub=True)


def _drive(api, server: Server, photo: pathlib.Path, journal: Journal, artifacts: pathlib.Path, scenario) -> None:
    try:
        browser = api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
    except Exception as exc:
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}\n{_install_hint()}", pytrace=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(STEP_S * 1000)
        page.on("console", journal.console)
        page.on("pageerror", journal.page_error)
        page.on("requestfailed", journal.request_failed)
        shots = artifacts if os.environ.get("SVD_DEMO_ARTIFACTS") else None
        try:
            scenario(page, server, photo, journal, shots)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            return
        screenshot = artifacts / "failure.png"
        try:
            page.screenshot(path=str(screenshot), full_page=True, timeout=10_000)
        except Exception as shot_error:  # a crashed page: say so instead of hiding the real failure
            screenshot = pathlib.Path(f"(no screenshot: {shot_error})")
        console_log = artifacts / "console.log"
        console_log.write_text("\n".join(journal.lines) + "\n")
        server_log = artifacts / "server.log"
        shutil.copyfile(server.log_path, server_log)
        toasts = _toasts(page)
        pytest.fail(
            f"Browser test failed at step: {journal.step}\n{failure}\n"
            + (f"Messages on the page: {toasts}\n" if toasts else "")
            + f"Screenshot: {screenshot}\nConsole log: {console_log}\nServer log: {server_log}\n"
            f"Server log tail:\n{server.log_tail(1500)}",
            pytrace=False,
        )
    finally:
        browser.close()
