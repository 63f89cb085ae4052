"""How a run goes on a page: on a thread of its own, with a cancel flag that Cancel, a closed tab or a dropped
API call sets (`stops_when_dropped`), streaming live previews as it denoises (`with_previews`), and with the
studio's errors turned into what a person may read (`errors_for_user`)."""

import asyncio
import contextvars
import functools
import inspect
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import gradio as gr

from svd_demo.core.errors import UserFacingError
from svd_demo.core.params import LIVE_PREVIEW, VideoParams, parse_bool
from svd_demo.engine.preview import PreviewSink, write_preview
from svd_demo.files.outputs import private_output_dir
from svd_demo.studio import zerogpu
from svd_demo.studio.studio import CancelFlag, Studio
from svd_demo.web.gradio_overrides import Refusal

log = logging.getLogger("svd_demo")

T = TypeVar("T")

GPU_QUEUE = "gpu"  # the one concurrency id of every event that runs a model
INTERPOLATE_QUEUE = "interpolate"
UPSCALE_RUNS = "upscale"  # the Upscale tab's Cancel stops these runs only (they queue with the GPU's)


def user_error(exc: BaseException) -> gr.Error:
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
def errors_for_user() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise user_error(exc) from exc


def session_of(request: gr.Request | None) -> str:
    return (request.session_hash if request else None) or uuid.uuid4().hex


_RUN_FLAG: contextvars.ContextVar[CancelFlag | None] = contextvars.ContextVar("svd_demo_run_flag", default=None)


_END = object()


def run_token(studio: Studio, request: gr.Request | None, kind: str = GPU_QUEUE) -> Any:
    """This run's cancel flag (made by `stops_when_dropped`), registered under its session: the Cancel button
    and the end of the session reach it there."""
    return studio.cancels.token(session_of(request), _RUN_FLAG.get(), kind)


def stops_when_dropped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, a blocking handler or a generator of updates, run so that its run stops when Gradio drops the event.

    Gradio runs a plain handler in a worker thread, and dropping the event only cancels the asyncio task waiting
    for that thread: the thread, holding the GPU, would go on to the end. So the handler runs in a thread that this
    coroutine waits for, with a cancel flag of its own (`run_token` hands it to the studio):
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


def gpu_kwargs(progress: gr.Progress | None, token: Any, share: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Progress and cancel for a GPU call; none on ZeroGPU, whose worker process cannot call back into this one."""
    if zerogpu.on_zerogpu():
        return {}
    if progress is None:
        return {"cancel": token}
    start, end = share
    return {"progress": lambda f, text: progress(start + (end - start) * f, desc=text), "cancel": token}


def fit_zerogpu(studio: Studio, source: Any, params: VideoParams, model_ref: str | None,
                 size: tuple[int, int] | None = None) -> VideoParams:
    """On ZeroGPU, cut a job to the Space's time limit (saying so) or refuse it before it starts."""
    if not zerogpu.on_zerogpu():
        return params
    with errors_for_user():
        params, notice = zerogpu.prepare(studio, source, params, model_ref, studio.settings.zerogpu_seconds, size)
    if notice:
        gr.Warning(notice)
    return params


def live_previews(values: Mapping[str, Any]) -> bool:
    """Whether this run streams previews: asked for, and not on ZeroGPU (its worker cannot call back here)."""
    with errors_for_user():
        return parse_bool(values.get(LIVE_PREVIEW.name, LIVE_PREVIEW.default), LIVE_PREVIEW.name) \
            and not zerogpu.on_zerogpu()


@functools.cache
def _preview_dir() -> Path:
    """Where live previews are written: a private temporary folder of this process. Not the output folder: its
    files are served where they are (not copied into Gradio's cache), and a preview is deleted while the run goes
    on, so Gradio must have a copy of its own."""
    return private_output_dir(prefix="svd-demo-previews-")


def with_previews(studio: Studio, live: bool, run: Callable[[PreviewSink | None], T],
                   skipped: int) -> Generator[tuple[Any, ...], None, T]:
    """`run(sink)`, yielding an update for each live preview as it comes (`skipped` unchanged outputs, then the
    preview's file) and returning its result: `result = yield from with_previews(...)`.

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
