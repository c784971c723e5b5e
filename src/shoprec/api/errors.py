"""The one error format and vocabulary of every route (docs/serving.md "Errors").

Every error answer is JSON {"error": CODE, "message": "...", "errors": [{"index", "field", "reason",
"message"}]}: `error` is one of CODES (one code per kind of mistake, whatever the route), `message` one
sentence for a person, `errors` the records / fields / parameters at fault (`index`: the record of a batch,
null elsewhere; `field`: the field, query parameter or path parameter; `reason`: a snake_case code).

A database that is down is a 503; anything unexpected is logged and answered 500 in the same shape (never a
traceback).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shoprec.errors import ConfigError, DataError, StorageError
from shoprec.rules import RuleError
from shoprec.service.errors import Conflict, Forbidden, NotFound, QueueFull, RecordErrors, TooLarge

log = logging.getLogger(__name__)

CODES: dict[str, tuple[int, str]] = {
    "malformed_json": (400, "the body is not valid JSON"),
    "unauthorized": (401, "no API key, or one that is unknown, revoked or expired"),
    "forbidden": (403, "the key may not do this: another platform, or a scope it lacks"),
    "not_found": (404, "no such platform, item, user, model, job, experiment, recommendation or route"),
    "method_not_allowed": (405, "the route exists, not with this method"),
    "conflict": (409, "the state forbids it (cancelling a finished job, stopping a stopped experiment, ...)"),
    "too_large": (413, "the body is over the byte limit, or a batch over its record limit"),
    "unsupported_media_type": (415, "a body without Content-Type: application/json"),
    "invalid_request": (422, "a record, field, query or path parameter is wrong; `errors` names each one"),
    "bad_expression": (422, "a business rule is wrong (filter, boost, pin, max_per_category, max_per_brand, "
                            "diversity): `errors` names the parameter, the reason (bad_expression, unknown_field, "
                            "unknown_item, bad_pin, bad_cap, out_of_range, too_many) and the position in the "
                            "expression"),
    "rate_limited": (429, "too many requests (or failed authentications); Retry-After says when to retry"),
    "queue_full": (429, "the platform has its maximum of jobs queued or running; Retry-After says when"),
    "internal_error": (500, "a bug: logged with the request id"),
    "storage_unavailable": (503, "the database could not complete the request; retry later"),
}
"""Every `error` code an answer can carry: code -> (HTTP status, when it is used)."""

_BY_STATUS = {status: code for code, (status, _) in reversed(CODES.items())}


class ErrorDetail(BaseModel):
    index: int | None = Field(description="the record of a batch (0-based); null when not about one record")
    field: str | None = Field(description="the field, query parameter or path parameter at fault")
    reason: str = Field(description="a snake_case code, e.g. missing, unknown_parameter, bad_timestamp")
    message: str
    position: int | None = Field(default=None, description="bad_expression only: the 0-based character offset "
                                                           "in the expression where it goes wrong")


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="one of: " + ", ".join(CODES))
    message: str
    errors: list[ErrorDetail] = Field(default_factory=list)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring these error statuses with the ErrorOut body (for a route decorator)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        codes = [c for c, (s, _) in CODES.items() if s == status]
        out[status] = {"model": ErrorOut, "description": "; ".join(f"{c}: {CODES[c][1]}" for c in codes)}
    return out


def declare_responses(app: FastAPI) -> None:
    """Declare in the OpenAPI schema, on every /v1 operation, the error answers it can give with the ErrorOut
    body, from what the operation takes: any 422 (a bad or unknown parameter) and 503; one that reads
    X-API-Key 401, 403, 404 (its X-Platform, an id in the body) and 429; one with a body 400, 413 and 415;
    one with a path parameter 404. Routes
    declare their other ones (409) in their decorators. Done on the generated schema, so a new route is
    covered without doing anything."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}))
        components["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        components["ErrorOut"].pop("$defs", None)
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for operation in operations.values():
                params = operation.get("parameters", [])
                statuses = [422, 503]
                if any(p.get("in") == "header" and p.get("name", "").lower() == "x-api-key" for p in params):
                    statuses += [401, 403, 404, 429]  # 404: the X-Platform of an admin key, an id in the body
                if "requestBody" in operation:
                    statuses += [400, 413, 415]
                if any(p.get("in") == "path" for p in params):
                    statuses.append(404)
                answers = operation.setdefault("responses", {})
                for status in statuses:
                    codes = [c for c, (s, _) in CODES.items() if s == status]
                    answers[str(status)] = ({
                        "description": "; ".join(f"{c}: {CODES[c][1]}" for c in codes),
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}})
        _key_rules(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


NO_NUL = "^[^\\x00]*$"


def _key_rules(node: Any) -> None:
    """Two rules the generated schema leaves out: no string may hold NUL (every string schema without a
    pattern gets NO_NUL); and pydantic writes a dict whose keys have a pattern as `patternProperties`, which
    lets keys that do NOT match through while pydantic refuses them: `propertyNames` + `additionalProperties`."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(node):
            node["pattern"] = NO_NUL  # shoprec.api.limits refuses NUL in any string (no database stores one)
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
            (pattern, value), = patterns.items()
            del node["patternProperties"]
            node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
            node["additionalProperties"] = value
        for child in node.values():
            _key_rules(child)
    elif isinstance(node, list):
        for child in node:
            _key_rules(child)


class ApiError(Exception):
    """An error answer raised by the API layer itself (a status and a code of CODES)."""

    def __init__(self, status: int, error: str, message: str, errors: list[dict[str, Any]] | None = None
                 ) -> None:
        assert error in CODES and CODES[error][0] == status, (status, error)
        super().__init__(message)
        self.status, self.error, self.message, self.errors = status, error, message, errors or []


def error_response(status: int, error: str, message: str, errors: list[dict[str, Any]] | None = None
                   ) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "message": message, "errors": errors or []})


_TYPE_TAG = re.compile(r"^(constrained-)?(str|int|float|bool|datetime|date|list|dict|literal|none|is-instance"
                       r"|function-[a-z]+|json-or-python|nullable|tagged-union|union)(\[.*\])?$", re.I)


def _detail(err: dict[str, Any]) -> dict[str, Any]:
    """A pydantic error -> {index, field, reason, message}: loc ("body", 3, "item_id") is record 3, item_id
    (the member of a union that pydantic names after a field, "item_id.constrained-str", is left out)."""
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")
           and not (isinstance(p, str) and _TYPE_TAG.match(p.strip("`")))]
    index = next((p for p in loc if isinstance(p, int)), None)
    names = [str(p) for p in loc if not isinstance(p, int)]
    return {"index": index, "field": ".".join(names) or None, "reason": err.get("type", "invalid"),
            "message": str(err.get("msg", "invalid value"))}


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def unsupported_media_type(request: Request, body: object) -> ApiError | None:
    """The 415 of a body that FastAPI left as bytes because it was not declared JSON (None otherwise):
    FastAPI's strict content type reads only application/json (or +json) bodies as JSON, and the route would
    otherwise answer "Input should be a valid list". Like every body check, it comes after authentication."""
    if request.method not in BODY_METHODS or not isinstance(body, bytes | bytearray) or not body:
        return None
    sent = request.headers.get("content-type")
    if is_json(sent):
        return None
    got = f"got Content-Type {sent!r}" if sent else "the request has no Content-Type"
    return ApiError(415, "unsupported_media_type", f"send the body as JSON with Content-Type: application/json "
                    f"({got})")


_NOUNS = {"events": "events", "items": "items", "users": "users"}


def _shape(request: Request, errors: list[dict[str, Any]]) -> str | None:
    """A plain sentence when the body as a whole has the wrong shape (an object where a list is expected)."""
    whole = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    if not whole:
        return None
    err = whole[0]
    got = type(err.get("input")).__name__
    got = {"dict": "an object", "list": "an array", "str": "a string", "int": "a number", "float": "a number",
           "NoneType": "nothing", "bytes": "a non-JSON body"}.get(got, got)
    if err.get("type") == "list_type":
        noun = _NOUNS.get(request.url.path.rstrip("/").rsplit("/", 1)[-1], "records")
        hint = ": wrap it in [...]" if got == "an object" else ""
        return f"expected a JSON array of {noun}, got {got}{hint}"
    if err.get("type") in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a JSON object, got {got}"
    if err.get("type") == "missing":
        return "the request needs a JSON body"
    return None


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    wrong_type = unsupported_media_type(request, exc.body)
    if wrong_type is not None:
        return _api(request, wrong_type)
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON",
                              [_detail(e) for e in errors])
    too_long = [e for e in errors if e.get("type") == "too_long" and tuple(e.get("loc", ())) == ("body",)]
    if too_long:
        return error_response(413, "too_large", str(too_long[0].get("msg")), [_detail(e) for e in too_long])
    details = [_detail(e) for e in errors[:100]]
    shape = _shape(request, errors)
    if shape is not None:
        return error_response(422, "invalid_request", shape, details)
    first = details[0]
    where = f"record {first['index']}, " if first["index"] is not None else ""
    name = first["field"] or "body"
    kind = {"query": "query parameter ", "path": "path parameter ", "header": "header "}.get(
        str((errors[0].get("loc") or ("",))[0]), "field ")
    return error_response(422, "invalid_request", f"{where}{kind}{name}: {first['message']}", details)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _BY_STATUS.get(exc.status_code, "invalid_request" if 400 <= exc.status_code < 500 else "internal_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _api(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.message, exc.errors)


def _shoprec(status: int, error: str) -> Any:
    def handler(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RecordErrors):
            return error_response(status, error, str(exc), [e.to_dict() for e in exc.errors])
        return error_response(status, error, str(exc))
    return handler


def _rule(request: Request, exc: Exception) -> JSONResponse:
    """422 bad_expression naming the rule's parameter, the reason, the position and the field or item at fault."""
    assert isinstance(exc, RuleError)
    detail: dict[str, Any] = {"index": None, "field": exc.param, "reason": exc.reason, "message": str(exc)}
    if exc.position is not None:
        detail["position"] = exc.position
    return error_response(422, "bad_expression", str(exc), [detail])


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
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(TooLarge, _shoprec(413, "too_large"))
    app.add_exception_handler(RecordErrors, _shoprec(422, "invalid_request"))
    app.add_exception_handler(NotFound, _shoprec(404, "not_found"))
    app.add_exception_handler(Forbidden, _shoprec(403, "forbidden"))
    app.add_exception_handler(Conflict, _shoprec(409, "conflict"))
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(ConfigError, _shoprec(422, "invalid_request"))
    app.add_exception_handler(DataError, _shoprec(422, "invalid_request"))
    app.add_exception_handler(RuleError, _rule)
    app.add_exception_handler(StorageError, _storage)
    app.add_exception_handler(Exception, _unexpected)
