"""Request guards in front of every route (an ASGI middleware, so new routes are covered too):

- body size: 413 over ServingConfig.max_body_bytes (SHOPREC_MAX_BODY_BYTES), at once when Content-Length
  says so, else while a chunked body arrives;
- text the databases cannot store: a NUL character or an unpaired UTF-16 surrogate in the path, the query,
  a header or a JSON body is refused with 422 naming where it was (for a body: the record and field),
  instead of reaching PostgreSQL (which refuses NUL) or MariaDB (which refuses such JSON) as a 503.

When a body is refused the app is told the client went away, and the guard answers in its place.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoprec.api import errors

# JSON escapes the databases cannot store: NUL or a high surrogate without its low partner (_NUL_OR_HIGH),
# and low surrogates, alone (a 6-byte match) or after their high partner (a 12-byte match; fine) (_LOW).
# Both start with a literal backslash-u, so an ordinary body costs one fast pass in C.
_H, _L = rb"[dD][89abAB][0-9a-fA-F]{2}", rb"[dD][c-fC-F][0-9a-fA-F]{2}"
_NUL_OR_HIGH = re.compile(rb"\\u(?:0000|" + _H + rb"(?!\\u" + _L + rb"))")
_LOW = re.compile(rb"\\u(?:" + _H + rb"\\u)?" + _L)
_OVERLAP = 12  # bytes of the previous chunk searched again, for an escape split between chunks
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
REASON = "NUL characters and unpaired surrogates cannot be stored"


def _has_bad_escape(data: bytes) -> bool:
    """True when JSON text `data` escapes NUL or a surrogate without its partner (\\u0000, \\ud800 alone),
    where the backslash is not itself escaped ("\\\\u0000" is a backslash and the text "u0000")."""
    if any(_escapes(data, m.start()) for m in _NUL_OR_HIGH.finditer(data)):
        return True
    return any(m.end() - m.start() == 6 and _escapes(data, m.start()) for m in _LOW.finditer(data))


def _escapes(data: bytes, start: int) -> bool:
    """Whether the backslash at `start` begins an escape: an even run of backslashes before it."""
    before = start
    while before > 0 and data[before - 1] == 0x5C:
        before -= 1
    return (start - before) % 2 == 0


def bad_text(value: str) -> bool:
    """True when `value` holds a character no database here stores (NUL, a lone surrogate)."""
    return _BAD_TEXT.search(value) is not None


class RequestGuard:
    """The size and text checks above; `default_limit` applies until the app's services exist."""

    def __init__(self, app: ASGIApp, default_limit: int) -> None:
        self.app, self.default_limit = app, default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services if "app" in scope else None
        limit = services.config.max_body_bytes if services is not None else self.default_limit
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        where = _bad_outside_body(scope)
        if where is not None:
            await _unstorable(where, None, None)(scope, receive, send)
            return
        if length in (None, "0") and "transfer-encoding" not in headers:  # no body (most reads): nothing to guard
            await self.app(scope, receive, send)
            return
        content_type = headers.get("content-type", "application/json").lower()
        await _Guarded(self.app, limit, "json" in content_type).run(scope, receive, send)


def _bad_outside_body(scope: Scope) -> str | None:
    """Where the path, query or headers hold unstorable text, or None."""
    if bad_text(scope.get("path", "")):
        return "the path"
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if bad_text(name) or bad_text(value):
            return f"query parameter {name!r}"
    for name, value in scope.get("headers", []):
        if b"\x00" in value:
            return f"header {name.decode('latin-1')}"
    return None


class _Guarded:
    """One request: counts and scans the body as the app reads it; answers 413/422 in the app's place."""

    def __init__(self, app: ASGIApp, limit: int, scan: bool) -> None:
        self.app, self.limit, self.scan = app, limit, scan
        self.seen, self.tail, self.body = 0, b"", bytearray()
        self.refusal: Any = None  # the response to send instead of the app's
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            if self.refusal is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            await self._inspect(message, receive)
            return {"type": "http.disconnect"} if self.refusal is not None else message

        async def guarded(message: Message) -> None:
            if self.refusal is None:
                self.started = self.started or message["type"] == "http.response.start"
                await send(message)
            elif message["type"] == "http.response.start" and not self.started:
                self.started = True
                await self.refusal(scope, receive, send)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if self.refusal is None or self.started:
                raise
            self.started = True
            await self.refusal(scope, receive, send)

    async def _inspect(self, message: Message, receive: Receive) -> None:
        chunk: bytes = message.get("body", b"")
        self.seen += len(chunk)
        if self.seen > self.limit:
            self.refusal = _too_large(self.limit)
            return
        if not self.scan:
            return
        self.body += chunk
        if _has_bad_escape(self.tail + chunk):
            more = message.get("more_body", False)
            while more and self.seen <= self.limit:  # read the rest, to name the record and field
                rest = await receive()
                self.seen += len(rest.get("body", b""))
                self.body += rest.get("body", b"")
                more = rest.get("more_body", False)
            self.refusal = _too_large(self.limit) if self.seen > self.limit else _locate(bytes(self.body))
        self.tail = (self.tail + chunk)[-_OVERLAP:]


def _locate(body: bytes) -> Any:
    """The 422 for a body holding unstorable text, naming the first record and field that holds it."""
    try:
        data = json.loads(body)
    except ValueError:
        return _unstorable("the request body", None, None)
    found = _find(data, ())
    if found is None:  # pragma: no cover - the scan saw an escape that json did not decode as such
        return _unstorable("the request body", None, None)
    parts = list(found)
    index = parts.pop(0) if parts and isinstance(parts[0], int) else None
    field = ".".join(str(p) for p in parts) or None
    where = (f"record {index}, " if index is not None else "") + (f"field {field}" if field else "the body")
    return _unstorable(where, index, field)


def _find(value: Any, path: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if isinstance(value, str):
        return path if bad_text(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            if bad_text(k):
                return (*path, k)
            hit = _find(v, (*path, k))
            if hit is not None:
                return hit
    if isinstance(value, list):
        for i, v in enumerate(value):
            hit = _find(v, (*path, i))
            if hit is not None:
                return hit
    return None


def _too_large(limit: int) -> Any:
    return errors.error_response(413, "too_large", f"request body over {limit:,} bytes")


def _unstorable(where: str, index: int | None, field: str | None) -> Any:
    def shown(text: str) -> str:  # the offending characters themselves cannot go into a JSON answer
        clean = _BAD_TEXT.sub("\ufffd", text)
        return clean if len(clean) <= 200 else clean[:200] + "..."

    detail = {"index": index, "field": None if field is None else shown(field), "reason": "unstorable_text",
              "message": REASON}
    return errors.error_response(422, "invalid_request", f"{shown(where)}: {REASON}", [detail])
