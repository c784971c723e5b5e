"""When the client tries a call again (shoprec.client._core.wait_before_retry), on real httpx answers and
errors: what may have reached the server is repeated only when repeating it is harmless."""

from __future__ import annotations

import httpx
import pytest

from shoprec.client import ApiError, InvalidRequest, RateLimited, Retries, ServerError
from shoprec.client import _routes as r
from shoprec.client._core import api_error, wait_before_retry

POLICY = Retries(attempts=3, backoff_s=0.1, max_retry_after_s=30)
SENT = httpx.RemoteProtocolError("Server disconnected without sending a response.")
NOT_SENT = httpx.ConnectError("connection refused")


def _answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": "x", "message": "m", "errors": []})


def test_a_write_with_a_key_is_retried_after_a_lost_answer_a_plain_write_is_not() -> None:
    events = r.post_events([{"user_id": "u", "item_id": "i", "type": "view"}], None)
    platform = r.create_platform("p")
    assert wait_before_retry(events, 0, POLICY, error=SENT) is not None
    assert wait_before_retry(platform, 0, POLICY, error=SENT) is None  # it may have been created
    assert wait_before_retry(platform, 0, POLICY, error=NOT_SENT) is not None  # nothing reached the server
    assert wait_before_retry(platform, 0, POLICY, response=_answer(502)) is None
    assert wait_before_retry(events, 0, POLICY, response=_answer(502)) is not None
    assert wait_before_retry(events, 2, POLICY, error=SENT) is None  # the last try


def test_the_key_and_event_ids_are_chosen_once_per_call() -> None:
    call = r.post_events([{"user_id": "u", "item_id": "i", "type": "view"},
                          {"user_id": "u", "item_id": "j", "type": "view", "event_id": "mine"}], None)
    assert call.idempotency_key and len(call.idempotency_key) == 32
    ids = [e["event_id"] for e in call.json]
    assert ids[1] == "mine" and ids[0] and ids[0] != "mine"
    again = r.post_events([{"user_id": "u", "item_id": "i", "type": "view"}], "chosen")
    assert again.idempotency_key == "chosen"


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for() -> None:
    read = r.list_models()
    assert wait_before_retry(read, 0, POLICY, response=_answer(429, **{"Retry-After": "2"})) == 2.0
    assert wait_before_retry(read, 0, POLICY, response=_answer(503, **{"Retry-After": "120"})) is None
    assert wait_before_retry(read, 0, POLICY, response=_answer(404)) is None
    key_busy = r.feedback("rec", "i", "click", None)
    assert wait_before_retry(key_busy, 0, POLICY, response=_answer(409, **{"Retry-After": "1"})) == 1.0
    assert wait_before_retry(r.cancel_job("j"), 0, POLICY, response=_answer(409)) is None
    assert wait_before_retry(r.ready(), 0, POLICY, response=_answer(503)) is None  # an answer, not an error


@pytest.mark.parametrize(("status", "cls"), [(422, InvalidRequest), (429, RateLimited), (503, ServerError),
                                             (418, ApiError)])
def test_errors_carry_the_api_body(status: int, cls: type[ApiError]) -> None:
    body = {"error": "invalid_request", "message": "record 3, field item_id: missing",
            "errors": [{"index": 3, "field": "item_id", "reason": "missing", "message": "missing"}]}
    error = api_error(httpx.Response(status, json=body, headers={"X-Request-ID": "req-1", "Retry-After": "4"}))
    assert type(error) is cls and error.status == status and error.body == body and error.request_id == "req-1"
    assert error.errors[0].index == 3 and error.errors[0].field == "item_id" and error.retry_after == 4.0
    assert "item_id (record 3): missing" in str(error)


def test_an_answer_that_is_not_the_api_s_still_raises_clearly() -> None:
    error = api_error(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(error, ServerError) and error.code == "http_502" and "Bad Gateway" in error.message
