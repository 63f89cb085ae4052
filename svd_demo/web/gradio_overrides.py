"""Every override of Gradio's own behaviour, fenced here: what they change, and why, is in each docstring.

They reach into Gradio's internals (a component's `preprocess`, `Blocks.preprocess_data`, the queue's `push`), which
Gradio does not promise to keep: they are written for the version requirements.txt pins, and
tests/unit/test_gradio_overrides.py fails on any other, so that an upgrade is a decision (re-read each override against
the new Gradio, then move the pin).
"""

import base64
import binascii
import math
import os
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import gradio as gr
import pydantic
from gradio.context import LocalContext
from gradio.exceptions import InvalidPathError
from gradio.utils import NamedString
from gradio_client import utils as client_utils

from svd_demo.core.errors import InputError
from svd_demo.core.params import parse_bool, shown

GRADIO_VERSION = "6.31.0"
"""The Gradio these overrides are written for (requirements.txt pins it)."""
WORD_JOINER = "\u2060"

_MARKUP_START = re.compile(r"([<&])(?=[A-Za-z0-9/!?#])")


def page_safe(text: str) -> str:
    """`text` as written, in a form that no page can take for markup.

    Gradio shows gr.Error messages as (sanitized) HTML, and API clients get the very same string. html.escape made
    the page right and the API wrong (`&#x27;` around every quoted file name); an invisible word joiner after each
    `<` or `&` that could start a tag or an entity keeps both right: the page shows the text, the API gets it.
    """
    return _MARKUP_START.sub(r"\1" + WORD_JOINER, text)


class Refusal(gr.Error):
    """A message for the person or program that sent the request, shown as is (and as plain text, see page_safe).

    Its str() is the message: Gradio answers a refusal at queue join (HTTP 400) with str(error), which for gr.Error
    is the message's repr, quotes and backslashes included.
    """

    def __init__(self, message: str) -> None:
        # duration None: the toast stays until closed (it is often the only place the message shows in full).
        super().__init__(page_safe(message), duration=None, print_exception=False)

    def __str__(self) -> str:
        return self.message


# Gradio writes a .pyi stub beside the module of every component subclass when the class is created, which would
# put files into the installed package at run time (left behind by an uninstall, one shadowed a later editable
# install). So the inputs below are Gradio's own components whose `preprocess` is replaced on the instance.


def uploaded_image(name: str, **kwargs: Any) -> gr.Image:
    """An image input that hands the uploaded file to our loader untouched.

    gr.Image opens every upload with PIL before returning its path, so a corrupt file, an SVG or a decompression
    bomb would get Gradio's generic 400 instead of our message; and its RGB conversion would drop transparency and
    clip 16-bit images. `images.load_image` does all of that properly.
    """
    image = gr.Image(**kwargs)
    image.preprocess = partial(_uploaded_path, name)
    return image


def _uploaded_path(name: str, payload: Any) -> str | bytes | None:
    if payload is None:
        return None
    if (payload.url or "").startswith("data:"):
        return _inline_file(payload.url, name)
    return str(payload.path) if payload.path else None


def _inline_file(url: str, name: str) -> bytes:
    """The bytes of a file sent inline (a base64 `data:` URL), held to the server's --max-file-size from the URL's
    length before anything is decoded. Kept in memory, never written: a refused request leaves nothing behind.
    (Gradio's own path decodes it with PIL first, a decompression bomb included, and re-encodes it as WebP.)"""
    header, _, body = url.partition(",")
    limit = getattr(LocalContext.blocks.get(None), "max_file_size", None)
    size = len(body) * 3 // 4  # what base64 text of this length decodes to, padding aside
    if limit is not None and size > limit:
        raise Refusal(f"`{name}` was sent inline (a data: URL) of {size / 1e6:.1f} MB; this server takes files of "
                       f"at most {limit / 1e6:.1f} MB (--max-file-size). Send a smaller file.")
    if not header.endswith(";base64"):
        raise Refusal(f"`{name}` was sent inline (a data: URL) without base64 encoding. Send the file instead "
                       "(gradio_client's handle_file()).")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Refusal(f"`{name}` was sent inline (a data: URL) that is not valid base64 ({exc}). Send the file "
                       "instead (gradio_client's handle_file()).") from None


def uploaded_file(**kwargs: Any) -> gr.File:
    """A file input that hands on the uploaded file's path, and nothing else: gr.File(type="filepath") also
    creates an empty temporary file in Gradio's cache on every call and leaves it there."""
    box = gr.File(**kwargs)
    box._process_single_file = partial(_uploaded_file_path, box)
    return box


def _uploaded_file_path(box: gr.File, payload: Any) -> Any:
    if box.file_types and not client_utils.is_valid_file(payload.path, box.file_types):
        raise Refusal(f"Upload one of these kinds of file: {', '.join(box.file_types)}.")
    return NamedString(payload.path)


def named(component: gr.Slider | gr.Number, param: str) -> Any:
    """The component, its range errors naming `param` (the handler's parameter, as the API calls it).

    Gradio's own checks answer "Value 100 is greater than maximum value 25." or "Could not preprocess input
    component at index 2", which does not say which of a dozen numbers sent to the API was wrong; this one names the
    parameter, as the rest of our checks do. With precision 0 a fraction is refused, not rounded (Gradio rounds:
    2.5 seeds became 2).
    """
    component.preprocess = partial(_number_in_range, component, param, component.preprocess)
    return component


def _number_in_range(component: gr.Slider | gr.Number, param: str, gradio_preprocess: Callable[[Any], Any],
                     payload: float | None) -> float | int | None:
    number = isinstance(payload, (int, float)) and not isinstance(payload, bool) and math.isfinite(payload)
    whole = component.precision == 0
    if not number or not component.minimum <= payload <= component.maximum or (whole and payload != int(payload)):
        kind = "a whole number" if whole else "a finite number"
        low, high = range_end(component.minimum), range_end(component.maximum)
        raise Refusal(f"`{param}` must be {kind} from {low} to {high}; got {shown(payload)}.")
    return gradio_preprocess(payload)


def range_end(value: float) -> int | float:
    """A range's end as people write it: 100, not 100.0."""
    return int(value) if float(value).is_integer() else value



# ------------------------------------------------------------------------ inputs Gradio passes on or answers vaguely

_FILE_COMPONENTS = (gr.Image, gr.Video, gr.File)


def _checked_input(component: gr.components.Component, name: str, value: Any) -> Any:
    """`value` as Gradio may take it, or a Refusal naming the API parameter, the value and what is allowed.

    Left to Gradio, "false" checks a box (a non-empty string), [1, 2] becomes the prompt "[1, 2]", a file sent as a
    path string gets pydantic's text (or, where no validator runs, no message at all) and a wrong choice is not
    said to be which parameter's. Numbers check themselves (`named`), as they know their range.
    """
    if isinstance(component, gr.Checkbox):
        try:
            return parse_bool(value, name)
        except InputError as exc:
            raise Refusal(str(exc)) from None
    if isinstance(component, _FILE_COMPONENTS):
        is_file = isinstance(value, dict) and (value.get("meta") or {}).get("_type") == "gradio.FileData"
        if value is None or (is_file and (value.get("path") or value.get("url"))):
            return value  # whether it was really uploaded here, Gradio checks (see AppBlocks)
        raise Refusal(f"`{name}` must be an uploaded file: upload it first (POST /gradio_api/upload, or "
                       f"gradio_client's handle_file()) and send the file reference it returns; got {shown(value)}. "
                       "The server opens no path named in a request.")
    allowed = [choice for _, choice in getattr(component, "choices", None) or []]
    if isinstance(component, gr.CheckboxGroup):
        if (isinstance(value, list) and all(isinstance(v, str) and v in allowed for v in value)
                and len(set(value)) == len(value)):
            return value
        raise Refusal(f"`{name}` must be a list of {', '.join(map(str, allowed))} (each at most once, or an empty "
                       f"list); got {shown(value)}.")
    if isinstance(component, gr.Dropdown) and component.allow_custom_value:
        if value is None or isinstance(value, str):
            return value
        raise Refusal(f"`{name}` must be text: one of {', '.join(map(str, allowed))}, or another hub id or "
                       f"folder; got {shown(value)}.")
    if isinstance(component, (gr.Radio, gr.Dropdown)):
        if any(type(value) is type(choice) and value == choice for choice in allowed):
            return value
        raise Refusal(f"`{name}` must be one of {', '.join(map(str, allowed))}; got {shown(value)}.")
    if isinstance(component, gr.Textbox) and not (value is None or isinstance(value, str)):
        raise Refusal(f"`{name}` must be text; got {shown(value)}.")
    return value


def _not_an_upload(block_fn: Any, values: list[Any], names: list[str | None], reason: str = "") -> Refusal:
    """The refusal for a file reference Gradio would not take (not uploaded here, or malformed). With several file
    inputs (the Keyframes tab's two photos), the one whose path Gradio's `reason` names is blamed."""
    files = [(i, component) for i, component in enumerate(block_fn.inputs)
             if isinstance(component, _FILE_COMPONENTS) and i < len(values) and isinstance(values[i], dict)]
    named = [(i, c) for i, c in files if _sent_path(values[i]) and _sent_path(values[i]) in reason]
    for i, component in named or files:
        name = (names[i] if i < len(names) else None) or component.label
        sent = values[i].get("path") or values[i].get("url")
        return Refusal(f"`{name}` must be a file uploaded to this server (POST /gradio_api/upload, or "
                        f"gradio_client's handle_file()); {shown(sent)} was not uploaded here.")
    return Refusal("A file sent with this request was not uploaded to this server. Upload it first (POST "
                    "/gradio_api/upload, or gradio_client's handle_file()).")


def _sent_path(value: dict[str, Any]) -> str:
    """The absolute path a file reference names, as Gradio's refusal quotes it ("" for a URL or none)."""
    path = value.get("path")
    return os.path.abspath(path) if isinstance(path, str) and path else ""


def _client_keys(session_hash: str | None, request: Any) -> set[str]:
    """Who sent a request: its browser session and its address. On a Space the app sees the Space proxy's
    address; the client's is the first of X-Forwarded-For there."""
    keys = {f"session:{session_hash}"} if session_hash else set()
    address = getattr(getattr(request, "client", None), "host", None)
    if os.environ.get("SPACE_ID") and request is not None:
        address = (request.headers.get("x-forwarded-for") or "").split(",")[0].strip() or address
    if address:
        keys.add(f"address:{address}")
    return keys


def _hold_to_max_size(queue: Any, per_client: int = 0) -> None:
    """Make Gradio's queue keep to its `max_size` (--queue-size) when many requests arrive at once, and let one
    client (session or address) have at most `per_client` requests waiting (0: no limit).

    Gradio checks the size, then awaits the event's validator, then adds the event: a burst all passes the check
    while the queue is still empty (16 of 16 accepted with a size of 2). Here a place is taken before the validator
    runs and given back when Gradio has added the event or refused it. Nothing is awaited between Gradio adding the
    event and the place being given back, so waiting events plus requests being admitted never exceed max_size.
    """
    push = queue.push
    admitting: list[set[str]] = []  # the client keys of each request being admitted

    def waiting(keys: set[str]) -> int:
        events = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        return sum(bool(keys & _client_keys(e.session_hash, e.request)) for e in events) + \
            sum(bool(keys & other) for other in admitting)

    async def push_within_max_size(body: Any, request: Any, username: str | None) -> tuple[bool, Any, str]:
        if queue.max_size is not None and len(queue) + len(admitting) >= queue.max_size:
            return (False, f"The queue is full: {queue.max_size} requests are waiting, the most this server takes "
                    "(--queue-size). Please try again in a minute.", "queue_full")
        keys = _client_keys(body.session_hash, request)
        if per_client and waiting(keys) >= per_client:
            return (False, f"You already have {per_client} requests waiting, the most one client may have here "
                    "(--max-queued-per-client). Wait for one of them to start, then send the next.", "error")
        admitting.append(keys)
        try:
            return await push(body, request, username)
        finally:
            admitting.remove(keys)

    queue.push = push_within_max_size


class AppBlocks(gr.Blocks):
    """gr.Blocks whose every input is checked before Gradio's own preprocessing, for browser and API alike, and
    whose queue keeps to its size under a burst. In public mode every queued event goes through the queue (no
    direct POST /run/...: it would skip the queue's limits) and one client may have only so many waiting."""

    public = False
    max_queued_per_client = 0

    def queue(self, *args: Any, **kwargs: Any) -> "AppBlocks":
        if self.public:
            kwargs["api_open"] = False
        super().queue(*args, **kwargs)
        _hold_to_max_size(self._queue, self.max_queued_per_client if self.public else 0)
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
            raise _not_an_upload(block_fn, checked, names, str(exc)) from exc
