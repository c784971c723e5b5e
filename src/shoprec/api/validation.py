"""Checks every /v1 route makes of a request before its body is validated, and the shared record parse.

- `check_request` (an app-wide dependency): a query parameter the route does not declare is refused (422
  `invalid_request` naming it and the valid ones: `?price_min=5` is a typo for min_price, not a filter to
  ignore).
- `parsed_records`: the records of a REST batch parsed as a file's lines are (shoprec.api.schemas), or one
  422 naming every refused record's index and field.

It reads headers and the query string only; the body is never read here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from shoprec.api.errors import ApiError
from shoprec.data.records import Record, Rejected
from shoprec.errors import ConfigError
from shoprec.service.errors import RecordError, RecordErrors

T = TypeVar("T")
_known: dict[int, frozenset[str]] = {}  # id(route) -> its query parameters


def _query_names(route: APIRoute) -> frozenset[str]:
    names = _known.get(id(route))
    if names is None:
        found: set[str] = set()
        todo: list[Dependant] = [route.dependant]
        while todo:  # the route's own parameters and those of every dependency (auth, ...)
            dep = todo.pop()
            found.update(p.alias for p in dep.query_params)
            todo.extend(dep.dependencies)
        names = _known[id(route)] = frozenset(found)
    return names


def check_request(request: Request) -> None:
    """Unknown query parameters (422) on every /v1 route."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.path.startswith("/v1/"):
        return
    names = _query_names(route)
    unknown = sorted({k for k in request.query_params if k not in names})
    if unknown:
        valid = ", ".join(sorted(names)) or "none"
        raise ApiError(422, "invalid_request",
                       f"unknown query parameter {unknown[0]!r} (valid here: {valid})",
                       [{"index": None, "field": name, "reason": "unknown_parameter",
                         "message": f"not a query parameter of this route (valid: {valid})"} for name in unknown])


@contextmanager
def model_params() -> Iterator[None]:
    """A ConfigError of a model's parameters (an unknown name, a value over its cap) as a 422 naming `params`
    (the model name itself is checked by the schema)."""
    try:
        yield
    except ConfigError as exc:
        raise RecordErrors([RecordError(None, "params", "bad_model_params", str(exc))]) from None


def parsed_records(items: Sequence[T], parse: Callable[[T, int], Record]) -> list[Record]:
    """`parse(item, index)` of every item; RecordErrors (422) naming each refused one when any is refused."""
    out = [parse(item, i) for i, item in enumerate(items)]
    refused = [RecordError(r.source.line, r.field, r.reason, r.detail or r.reason)
               for r in out if isinstance(r, Rejected)]
    if refused:
        raise RecordErrors(refused[:100])
    return out
