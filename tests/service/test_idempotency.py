"""IdempotencyService on SQLite, PostgreSQL and MariaDB (the `engine` fixture): one answer per (platform, key),
replayed to retries; another body refused; a concurrent retry waits for the first answer, or gets 409; a failed
or abandoned first try is done again with the same arrival time; expired keys are forgotten and purged."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from shoprec.errors import DataError, StorageError
from shoprec.service.cache import LocalCache
from shoprec.service.idempotency import (
    Answer,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotencyService,
    check_key,
    request_hash,
)
from shoprec.service.platform import PlatformService
from shoprec.storage import find_platform, get_or_create_platform
from shoprec.storage import tables as T
from shoprec.storage.idempotency import IdempotencyRepo

ROUTE = "POST /v1/events"


class Counter:
    """A write that counts how often it was done and answers with the time it was given."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, now: float) -> tuple[int, Any]:
        self.calls.append(now)
        return 200, {"stored": len(self.calls), "now": now}


def _service(engine: sa.Engine, platform: str, **kw: float) -> IdempotencyService:
    with engine.begin() as conn:
        get_or_create_platform(conn, platform)
    return IdempotencyService(engine, PlatformService(engine, LocalCache(100)), ttl_s=kw.pop("ttl_s", 3600.0),
                              wait_s=kw.pop("wait_s", 5.0), **kw)


def test_a_retry_gets_the_first_answer_and_the_work_is_done_once(engine: sa.Engine, platform: str) -> None:
    svc, work = _service(engine, platform), Counter()
    first = svc.run(platform, "k-1", ROUTE, [{"user_id": "u"}], work)
    again = svc.run(platform, "k-1", ROUTE, [{"user_id": "u"}], work)
    assert first == Answer(200, {"stored": 1, "now": work.calls[0]})
    assert again == Answer(200, first.body, replayed=True)
    assert len(work.calls) == 1
    other = _service(engine, platform + "-b").run(platform + "-b", "k-1", ROUTE, [{"user_id": "u"}], work)
    assert not other.replayed and len(work.calls) == 2  # keys are per platform


def test_the_same_key_with_another_body_or_route_is_refused(engine: sa.Engine, platform: str) -> None:
    svc, work = _service(engine, platform), Counter()
    svc.run(platform, "k-2", ROUTE, [{"user_id": "u"}], work)
    with pytest.raises(IdempotencyKeyReused, match="'k-2' was used with another request body"):
        svc.run(platform, "k-2", ROUTE, [{"user_id": "v"}], work)
    with pytest.raises(IdempotencyKeyReused, match="was used for POST /v1/events"):
        svc.run(platform, "k-2", "PUT /v1/items", [{"user_id": "u"}], work)
    assert len(work.calls) == 1
    # key order and spacing are not a different body
    assert svc.run(platform, "k-3", ROUTE, {"a": 1, "b": 2}, work).replayed is False
    assert svc.run(platform, "k-3", ROUTE, {"b": 2, "a": 1}, work).replayed is True


def test_a_concurrent_retry_waits_for_the_answer_or_gets_409(engine: sa.Engine, platform: str) -> None:
    svc = _service(engine, platform)
    impatient = IdempotencyService(engine, svc.platforms, ttl_s=3600.0, wait_s=0.0)
    started, release = threading.Event(), threading.Event()
    answers: list[Answer] = []

    def slow(now: float) -> tuple[int, Any]:
        started.set()
        assert release.wait(30)
        return 200, {"done": True}

    first = threading.Thread(target=lambda: answers.append(svc.run(platform, "k-4", ROUTE, [1], slow)))
    first.start()
    assert started.wait(30)
    with pytest.raises(IdempotencyInProgress, match="'k-4' is still in progress"):
        impatient.run(platform, "k-4", ROUTE, [1], Counter())
    waiter = threading.Thread(target=lambda: answers.append(svc.run(platform, "k-4", ROUTE, [1], Counter())))
    waiter.start()
    release.set()
    first.join(30)
    waiter.join(30)
    assert sorted((a.replayed, a.body["done"]) for a in answers) == [(False, True), (True, True)]


def test_a_failed_try_is_done_again_with_the_same_arrival_time(engine: sa.Engine, platform: str) -> None:
    svc, work = _service(engine, platform), Counter()

    def database_down(now: float) -> tuple[int, Any]:
        work.calls.append(now)
        raise StorageError("the database went away")

    with pytest.raises(StorageError):
        svc.run(platform, "k-5", ROUTE, [1], database_down)
    with pytest.raises(IdempotencyKeyReused):  # the key still belongs to that request body
        svc.run(platform, "k-5", ROUTE, [2], work)
    answer = svc.run(platform, "k-5", ROUTE, [1], work)
    assert not answer.replayed and work.calls == [work.calls[0], work.calls[0]]


def test_a_refused_request_frees_its_key_for_the_corrected_body(engine: sa.Engine, platform: str) -> None:
    svc, work = _service(engine, platform), Counter()

    def invalid(now: float) -> tuple[int, Any]:
        raise DataError("record 0, field user_id: empty")

    with pytest.raises(DataError, match="field user_id"):
        svc.run(platform, "k-6", ROUTE, [{"user_id": ""}], invalid)
    assert svc.run(platform, "k-6", ROUTE, [{"user_id": "u"}], work).body["stored"] == 1


def test_an_abandoned_claim_is_taken_over_with_its_arrival_time(engine: sa.Engine, platform: str) -> None:
    """A worker killed while working under a key: its claim's lease runs out and the retry does the work, with
    the first try's arrival time (so events without a timestamp are duplicates of any it had stored)."""
    svc, work = _service(engine, platform), Counter()
    digest = request_hash(ROUTE, [1])
    with engine.begin() as conn:
        IdempotencyRepo(conn, find_platform(conn, platform) or 0).insert("k-7", ROUTE, digest, "dead-worker",
                                                                         now=1000.0, lease_s=5.0, ttl_s=1e12)
    answer = svc.run(platform, "k-7", ROUTE, [1], work)
    assert work.calls == [1000.0] and answer.body == {"stored": 1, "now": 1000.0}


def test_expired_keys_are_forgotten_and_purged(engine: sa.Engine, platform: str) -> None:
    svc, work = _service(engine, platform), Counter()
    with engine.begin() as conn:
        IdempotencyRepo(conn, find_platform(conn, platform) or 0).insert("old", ROUTE, "x" * 64, "gone", now=1000.0,
                                                                         lease_s=5.0, ttl_s=10.0)
    assert svc.run(platform, "old", ROUTE, [2], work).replayed is False  # expired: a new request, any body
    with engine.begin() as conn:
        IdempotencyRepo(conn, find_platform(conn, platform) or 0).insert("older", ROUTE, "x" * 64, "gone",
                                                                         now=1000.0, lease_s=5.0, ttl_s=10.0)
    _service(engine, platform).run(platform, "new", ROUTE, [3], work)  # a new process purges on its first claim
    t = T.idempotency_keys
    with engine.connect() as conn:
        keys = set(conn.execute(sa.select(t.c.idempotency_key).where(
            t.c.platform_id == find_platform(conn, platform))).scalars())
    assert keys == {"old", "new"}


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey", "ключ"])
def test_a_bad_key_is_refused_naming_the_header(key: str) -> None:
    with pytest.raises(DataError, match="header Idempotency-Key"):
        check_key(key)
