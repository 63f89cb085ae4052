"""A limit on the size of every request body, in front of the whole app (an ASGI middleware; no gradio import).

Gradio holds `--max-file-size` for uploads, but a JSON body is read whole before any handler sees it: a 400 MB
base64 image inline in a call cost 1.9 GB of RAM before it was refused. Bodies above the limit get HTTP 413,
from their Content-Length when they declare one, else as soon as the bytes received pass it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_OVERHEAD_BYTES = 1_000_000
"""Room for the rest of a call's JSON (the other parameters) beside one inline file."""


def body_limit(max_file_size: int) -> int:
    """The largest body for a server whose files are at most `max_file_size` bytes: one file sent inline as base64
    (4 bytes of text per 3 of file) in a call, or uploaded with its multipart headers."""
    return max_file_size * 4 // 3 + JSON_OVERHEAD_BYTES


class RequestBodyLimit:
    """ASGI middleware: HTTP 413 for a request body above `max_bytes`."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = refused = False

        async def counted() -> Message:
            # Past the limit the app is told the client left (its body parser would answer a raised error with
            # its own 400), and the 413 is sent here, unless the app has started an answer already.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the client has its 413; whatever the app says after it is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        text = (f"The request is larger than this server takes ({self.max_bytes / 1e6:.1f} MB). Upload files with "
                "POST /gradio_api/upload (or gradio_client's handle_file()), within --max-file-size.").encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(text)).encode())]})
        await send({"type": "http.response.body", "body": text})
