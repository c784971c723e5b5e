"""What the sync and async clients share: a request described once (Call), the retry decision, and the
exceptions that carry the API's error body. No I/O here: Client and AsyncClient do the sending.

Retries (docs/clients.md "Retries"): a call is retried, with exponential backoff and jitter, when the
connection could not be made, when it broke after the request was sent (only for calls that are safe to
repeat: reads, PUT/DELETE, and the writes that carry an Idempotency-Key), and on 429, 503 (and 500/502/504
for safe calls) honouring Retry-After. A write's Idempotency-Key and its events' event_ids are chosen once,
when the Call is built, so every try sends the same ones: the server does the work once.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from shoprec.client.models import ErrorDetail

T = TypeVar("T")
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # the server saw nothing


@dataclass(frozen=True)
class Retries:
    """How many times a call is tried, and how long to wait between tries."""

    attempts: int = 4  # tries in all (1: no retry)
    backoff_s: float = 0.25  # the first wait; doubled each retry, with +-50% jitter
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 60.0  # a Retry-After longer than this is not waited for: the error is raised

    def backoff(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return base * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request, built once and sent as many times as the retries need."""

    method: str
    route: str  # the path template of the schema, e.g. /v1/items/{item_id}
    path: str  # the filled path
    result: TypeAdapter[T] | None  # None: the answer has no body (204)
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None
    safe: bool = False  # may be sent again after the server may have seen it (set for SAFE_METHODS and keys)
    accept: frozenset[int] = frozenset()  # error statuses answered as results (readiness: 503)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def retry_safe(self) -> bool:
        return self.safe or self.method in SAFE_METHODS or self.idempotency_key is not None


class ShoprecError(Exception):
    """Every error the client raises."""


class ConnectionFailed(ShoprecError):
    """No answer after every try (connection refused or dropped, timeout); the last httpx error is __cause__."""


class ApiError(ShoprecError):
    """An error answer of the API: `status`, `code` (the API's `error`, e.g. "unauthorized"), `message`,
    `errors` (the records / fields at fault), `body` (the whole JSON answer), `request_id`, `retry_after`."""

    def __init__(self, status: int, code: str, message: str, errors: list[ErrorDetail], body: Any,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        self.status, self.code, self.message, self.errors = status, code, message, errors
        self.body, self.request_id, self.retry_after = body, request_id, retry_after
        where = "; ".join(f"{e.field or 'body'}{'' if e.index is None else f' (record {e.index})'}: {e.reason}"
                          for e in errors[:3])
        super().__init__(f"{status} {code}: {message}" + (f" [{where}]" if where else ""))


class InvalidRequest(ApiError):
    """400, 413, 415, 422: the request was wrong; `errors` names each record / field."""


class Unauthorized(ApiError):
    """401: no key, or one that is unknown, revoked or expired."""


class Forbidden(ApiError):
    """403: the key may not do this (another platform, a scope it lacks)."""


class NotFound(ApiError):
    """404: no such platform, item, user, model, job, experiment, recommendation or route."""


class Conflict(ApiError):
    """409: the state forbids it."""


class RateLimited(ApiError):
    """429 after the retries: `retry_after` says when to try again."""


class ServerError(ApiError):
    """5xx after the retries."""


_BY_STATUS: dict[int, type[ApiError]] = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         409: Conflict, 413: InvalidRequest, 415: InvalidRequest,
                                         422: InvalidRequest, 429: RateLimited}
_ERRORS = TypeAdapter(list[ErrorDetail])


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (only the delay-seconds form is sent by shoprec)."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def api_error(response: httpx.Response) -> ApiError:
    """The exception for an error answer, with the API's body (or the text of a body that is not the API's)."""
    status = response.status_code
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        try:
            errors = _ERRORS.validate_python(body.get("errors") or [])
        except ValidationError:
            errors = []
        return cls(status, body["error"], str(body.get("message", "")), errors, body,
                   response.headers.get("x-request-id"), retry_after(response))
    return cls(status, f"http_{status}", response.text[:500] or response.reason_phrase, [], body,
               response.headers.get("x-request-id"), retry_after(response))


def wait_before_retry(call: Call[Any], attempt: int, policy: Retries, response: httpx.Response | None = None,
                      error: Exception | None = None) -> float | None:
    """Seconds to wait before trying `call` again after try `attempt` (0-based), or None: do not retry."""
    if attempt + 1 >= policy.attempts:
        return None
    if error is not None:
        if isinstance(error, NOT_SENT) or call.retry_safe:
            return policy.backoff(attempt)
        return None
    assert response is not None
    status = response.status_code
    retryable = status in (429, 503) or (status in (500, 502, 504) and call.retry_safe) or (
        status == 409 and call.idempotency_key is not None and "retry-after" in response.headers)
    if not retryable or status in call.accept:
        return None
    after = retry_after(response)
    if after is not None and after > policy.max_retry_after_s:
        return None
    return after if after is not None else policy.backoff(attempt)


def new_key() -> str:
    """A fresh Idempotency-Key (or event_id)."""
    return uuid.uuid4().hex


def plain(record: Any) -> dict[str, Any]:
    """A record as JSON-able dict: a pydantic model (the generated ones) or a mapping."""
    if isinstance(record, BaseModel):
        dumped: dict[str, Any] = record.model_dump(mode="json", exclude_none=True, by_alias=True)
        return dumped
    if isinstance(record, Mapping):
        return dict(record)
    raise TypeError(f"expected a mapping or a pydantic model, got {type(record).__name__}")


def with_event_ids(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The events as dicts, each with an event_id (a new one where none was given): a retry, even with another
    Idempotency-Key, then never stores an event twice (the server counts it in `duplicates`)."""
    out = []
    for event in events:
        record = plain(event)
        if not record.get("event_id"):
            record["event_id"] = new_key()
        out.append(record)
    return out


def parse(call: Call[T], response: httpx.Response) -> T:
    """The typed result of a successful (or accepted) answer."""
    if call.result is None:
        return None  # type: ignore[return-value]
    return call.result.validate_json(response.content)
