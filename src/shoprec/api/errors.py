"""Every error answer is JSON {"error", "message", "errors": [{"index", "field", "reason", "message"}]}.

Bad input is a 4xx naming the field and the record index: 400 malformed JSON, 401 no or unknown key,
403 another platform or a missing scope, 404 unknown id, 409 a state conflict (cancelling a finished job),
413 batch too large, 422 invalid records, 429 rate limit or a full job queue. A database that is
down is a 503; anything unexpected is logged and answered 500 in the same shape (never a traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shoprec.errors import ConfigError, DataError, StorageError
from shoprec.service.errors import Conflict, Forbidden, NotFound, QueueFull, RecordErrors, TooLarge

log = logging.getLogger(__name__)


def error_response(status: int, error: str, message: str, errors: list[dict[str, Any]] | None = None
                   ) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "message": message, "errors": errors or []})


def _detail(err: dict[str, Any]) -> dict[str, Any]:
    """A pydantic error -> {index, field, reason, message}: loc ("body", 3, "item_id") is record 3, item_id."""
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    index = next((p for p in loc if isinstance(p, int)), None)
    names = [str(p) for p in loc if not isinstance(p, int)]
    return {"index": index, "field": ".".join(names) or None, "reason": err.get("type", "invalid"),
            "message": str(err.get("msg", "invalid value"))}


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON",
                              [_detail(e) for e in errors])
    too_long = [e for e in errors if e.get("type") == "too_long" and tuple(e.get("loc", ())) == ("body",)]
    if too_long:
        return error_response(413, "too_large", str(too_long[0].get("msg")), [_detail(e) for e in too_long])
    details = [_detail(e) for e in errors[:100]]
    first = details[0]
    where = f"record {first['index']}, " if first["index"] is not None else ""
    return error_response(422, "invalid_request", f"{where}field {first['field']}: {first['message']}", details)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


def _shoprec(status: int, error: str) -> Any:
    def handler(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RecordErrors):
            return error_response(status, error, str(exc), [e.to_dict() for e in exc.errors])
        return error_response(status, error, str(exc))
    return handler


def _queue_full(request: Request, exc: Exception) -> JSONResponse:
    """429 with the reason and Retry-After (whole seconds)."""
    assert isinstance(exc, QueueFull)
    response = error_response(429, "queue_full", str(exc))
    response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return response


def _storage(request: Request, exc: Exception) -> JSONResponse:
    """503 without the database's address or the driver's message (which may quote stored values of any
    platform): those go to the server log only."""
    log.warning("storage error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "storage_unavailable", "the database could not complete this request; "
                          "retry later (details are in the server log)")


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; see the server log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(TooLarge, _shoprec(413, "too_large"))
    app.add_exception_handler(RecordErrors, _shoprec(422, "invalid_records"))
    app.add_exception_handler(NotFound, _shoprec(404, "not_found"))
    app.add_exception_handler(Forbidden, _shoprec(403, "forbidden"))
    app.add_exception_handler(Conflict, _shoprec(409, "conflict"))
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(ConfigError, _shoprec(422, "invalid_config"))
    app.add_exception_handler(DataError, _shoprec(422, "invalid_request"))
    app.add_exception_handler(StorageError, _storage)
    app.add_exception_handler(Exception, _unexpected)
