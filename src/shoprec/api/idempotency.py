"""The Idempotency-Key header of the write routes (POST /v1/events, PUT /v1/items, POST /v1/users,
POST /v1/feedback): the first answer is stored and a retry with the same key and body gets it again
(shoprec.service.idempotency; the contract is in docs/serving.md, "Retries and idempotency").

    def post_events(..., key: IdempotencyKeyDep) -> Response:
        return idempotent(request, services, platform, key, [e.model_dump(mode="json") for e in events],
                          lambda now: WriteOut(...))

A replayed answer carries the header `Idempotent-Replayed: true`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shoprec.api.errors import error_response
from shoprec.service import Services
from shoprec.service.idempotency import IdempotencyInProgress, IdempotencyKeyReused
from shoprec.storage.tables import MAX_IDEMPOTENCY_KEY_LENGTH

REPLAYED = "Idempotent-Replayed"
IdempotencyKeyDep = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH, pattern=r"^[\x20-\x7e]+$",
    description="A client-chosen id of this request (e.g. a UUID), the same for each retry: the first answer is "
                f"kept (serving.idempotency_ttl_s, 24 h by default) and a retry gets it again (header {REPLAYED}: "
                "true) without the work being done twice. The same key with another body is refused (422).")]


def idempotent(request: Request, services: Services, platform: str, key: str | None, body: Any,
               work: Callable[[float], BaseModel], status: int = 200) -> Response:
    """`work(now)`'s answer as JSON; with a key, done once per (platform, key) and replayed to retries.

    `now`: the request's arrival time (the first try's, for a retry that has to do the work again), the
    timestamp of events sent without one. `body`: the validated request body (JSON-able), hashed with the route."""
    if key is None:
        return JSONResponse(work(time.time()).model_dump(mode="json"), status_code=status)
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else request.url.path
    try:
        answer = services.idempotency.run(platform, key, f"{request.method} {path}", body,
                                          lambda now: (status, work(now).model_dump(mode="json")))
    except IdempotencyKeyReused as exc:  # named, so that clients (and the schema fuzzer) can tell this rule apart
        return error_response(422, "invalid_request", str(exc), [
            {"index": None, "field": "Idempotency-Key", "reason": "key_reused", "message": str(exc)}])
    except IdempotencyInProgress as exc:
        response = error_response(409, "conflict", str(exc))
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return response
    headers = {REPLAYED: "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)
