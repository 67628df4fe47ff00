"""Two pure ASGI middlewares every service runs in front of its routes.

``RequestGuard`` refuses oversized and non-JSON bodies before any parsing; ``UnexpectedErrors``
turns an unhandled exception into a logged 500 problem without closing the connection.
Both answer problem+json (``chassis.errors``).
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.errors import TOO_LARGE, UNEXPECTED, UNSUPPORTED_MEDIA_TYPE, problem

log = logging.getLogger("chassis.errors")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestGuard:
    """Pure ASGI middleware: refuses oversized and non-JSON request bodies before any parsing.

    A declared ``Content-Length`` over ``max_body_bytes`` is a 413 at once, without reading
    the body; a body sent without one (chunked) is counted as it is read and refused as
    soon as it passes the limit. A body that is not ``application/json`` (or ``+json``)
    is a 415. All are problem+json.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            headers = {name: value for name, value in scope["headers"] if name in _GUARDED_HEADERS}
            refusal = self._refusal(headers)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = self._counting(receive)
        await self.app(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body; ours renders it.
                    raise StarletteHTTPException(413, TOO_LARGE)
            return message

        return counting_receive

    def _refusal(self, headers: dict[bytes, bytes]) -> JSONResponse | None:
        declared = 0
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                return problem(400, "The Content-Length header is not a number.", code="bad_content_length")
            if declared > self.max_body_bytes:
                return problem(413, TOO_LARGE, code="body_too_large", max_bytes=self.max_body_bytes)
        has_body = declared > 0 or b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if has_body and not _is_json(headers.get(b"content-type", b"")):
            return problem(415, UNSUPPORTED_MEDIA_TYPE, code="unsupported_media_type")
        return None


_GUARDED_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"content-type"})


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


class UnexpectedErrors:
    """Pure ASGI middleware: an unhandled exception becomes a logged 500 problem, and stops there.

    Starlette's outermost error middleware would answer the same 500 and then re-raise,
    and uvicorn closes the connection of a request that raised: the gateway, which keeps
    connections to the service alive, may already have sent the next request on it and
    answers that one 502. Swallowing the exception once the 500 is sent keeps the
    connection usable. An exception after the response started still propagates (the
    connection must be closed: the response is cut short).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            await problem(500, UNEXPECTED)(scope, receive, send)
