"""Per-key rate limits (in process and shared through Redis), request size limits, and key revocation
as seen by a second worker (in-process caches: within AUTH_TTL_S; Redis: at once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.api.limits import _has_bad_escape
from shoprec.errors import ConfigError
from shoprec.service import Services
from shoprec.service import platform as platform_module
from shoprec.service.cache import RedisCache
from shoprec.service.config import ServingConfig, parse_rate_limit
from shoprec.service.ratelimit import LocalRateLimiter
from shoprec.service.testing import local_services
from shoprec.storage import PlatformRepo, find_platform

REDIS_URL = "redis://127.0.0.1:6379/0"


def _client(services: Services, key: str) -> TestClient:
    app = create_app(services.settings, services.config, services=services)
    return TestClient(app, headers={"X-API-Key": key}, raise_server_exceptions=False)


@pytest.mark.parametrize(("text", "expected"), [("100/s", (100, 1.0)), ("6000/min", (6000, 60.0)),
                                                ("5/h", (5, 3600.0)), ("7", (7, 1.0)), ("0", None), (None, None),
                                                ("off", None)])
def test_parse_rate_limit(text: str | None, expected: tuple[int, float] | None) -> None:
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("text", ["fast", "10/fortnight", "-1/s", "1.5/s"])
def test_bad_rate_limit_fails_at_startup(text: str) -> None:
    with pytest.raises(ConfigError, match="rate limit"):
        ServingConfig(rate_limit=text)


def test_token_bucket_refills() -> None:
    limiter = LocalRateLimiter(2, 0.2)  # 2 per 0.2 s: 10 tokens a second
    assert limiter.acquire("k") == 0.0 and limiter.acquire("k") == 0.0
    wait = limiter.acquire("k")
    assert 0 < wait <= 0.1
    assert limiter.acquire("other") == 0.0  # one bucket per key
    time.sleep(wait + 0.02)
    assert limiter.acquire("k") == 0.0


def test_rate_limit_in_process_answers_429_with_retry_after(tmp_path: Path) -> None:
    services = local_services(tmp_path, rate_limit="3/min")
    try:
        key, other = services.platforms.create("shop"), services.platforms.create("shop")
        with _client(services, key) as c, _client(services, other) as c2:
            assert [c.get("/v1/models").status_code for _ in range(3)] == [200, 200, 200]
            limited = c.get("/v1/models")
            assert limited.status_code == 429
            assert limited.json()["error"] == "rate_limited" and "key_" in limited.json()["message"]
            assert 1 <= int(limited.headers["Retry-After"]) <= 20
            assert c2.get("/v1/models").status_code == 200  # each key has its own bucket
            assert c.get("/v1/health/live").status_code == 200  # health needs no key and is not limited
    finally:
        services.close()


@pytest.mark.redis
def test_rate_limit_in_redis_is_shared_by_workers(tmp_path: Path, redis_prefix: str) -> None:
    workers = [local_services(tmp_path, cache=RedisCache(REDIS_URL, redis_prefix), rate_limit="3/min")
               for _ in range(2)]
    try:
        key = workers[0].platforms.create("shop")
        with _client(workers[0], key) as w0, _client(workers[1], key) as w1:
            codes = [w0.get("/v1/models").status_code, w1.get("/v1/models").status_code,
                     w0.get("/v1/models").status_code, w1.get("/v1/models").status_code]
            assert codes == [200, 200, 200, 429]
            assert int(w1.get("/v1/models").headers["Retry-After"]) >= 1
    finally:
        for w in workers:
            w.close()


def test_no_rate_limit_by_default(tmp_path: Path) -> None:
    services = local_services(tmp_path)
    try:
        key = services.platforms.create("shop")
        with _client(services, key) as c:
            assert {c.get("/v1/models").status_code for _ in range(30)} == {200}
    finally:
        services.close()


# ------------------------------------------------------------------------------ sizes
def test_body_size_limit_is_a_setting(tmp_path: Path) -> None:
    services = local_services(tmp_path, max_body_bytes=2_000)
    try:
        key = services.platforms.create("shop")
        events = [{"user_id": f"u{i}", "item_id": "i1", "type": "view"} for i in range(100)]
        with _client(services, key) as c:
            assert c.post("/v1/events", json=events[:5]).status_code == 200
            big = c.post("/v1/events", json=events)
            assert big.status_code == 413 and "2,000 bytes" in big.json()["message"]

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
                yield b"["
                for i in range(100):
                    yield (b"," if i else b"") + b'{"user_id": "u", "item_id": "i1", "type": "view"}'
                yield b"]"

            chunked = c.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
            assert chunked.status_code == 413, chunked.text
        with services.engine.connect() as conn:  # the refused bodies wrote nothing
            assert PlatformRepo(conn, find_platform(conn, "shop")).count_events() == 5
    finally:
        services.close()


def test_bad_max_body_bytes_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_MAX_BODY_BYTES", "lots")
    with pytest.raises(ConfigError, match="SHOPREC_MAX_BODY_BYTES"):
        ServingConfig.from_env()
    monkeypatch.setenv("SHOPREC_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("SHOPREC_RATE_LIMIT", "20/s")
    config = ServingConfig.from_env()
    assert config.max_body_bytes == 1000 and config.rate_limit == "20/s"


def test_server_workers_limit_their_cpu_threads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch
    from threadpoolctl import threadpool_info

    from shoprec.api.app import app_from_env

    for bad in ("many", "0"):
        monkeypatch.setenv("SHOPREC_SERVE_THREADS", bad)
        with pytest.raises(ConfigError, match=r"SHOPREC_SERVE_THREADS|threads"):
            ServingConfig.from_env()
    monkeypatch.setenv("SHOPREC_SERVE_THREADS", "1")
    monkeypatch.setenv("SHOPREC_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    before = torch.get_num_threads()
    try:
        app_from_env()
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        torch.set_num_threads(before)
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=before)


def test_too_many_events_and_too_long_ids_are_4xx(tmp_path: Path) -> None:
    services = local_services(tmp_path)
    try:
        key = services.platforms.create("shop")
        with _client(services, key) as c:
            many = c.post("/v1/events", json=[{"user_id": "u", "item_id": "i", "type": "view"}] * 10_001)
            assert many.status_code == 413 and many.json()["error"] == "too_large"
            long_id = c.post("/v1/events", json=[{"user_id": "u" * 257, "item_id": "i", "type": "view"}])
            assert long_id.status_code == 422 and long_id.json()["errors"][0]["field"] == "user_id"
            assert c.get("/v1/users/" + "u" * 257).status_code == 422
            assert c.get("/v1/jobs/" + "j" * 65).status_code == 422
            assert c.delete("/v1/keys/" + "k" * 33).status_code == 422
    finally:
        services.close()


# ------------------------------------------------------------------------------ revocation across workers
def test_revocation_reaches_other_in_process_workers_within_the_ttl(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform_module, "AUTH_TTL_S", 0.3)
    workers = [local_services(tmp_path) for _ in range(2)]
    try:
        workers[0].platforms.create("shop")
        new = workers[0].platforms.create_key("shop", ["read"])
        assert workers[1].platforms.authenticate(new.key) is not None  # cached by worker 1
        workers[0].platforms.revoke_key("shop", new.key_id)
        assert workers[0].platforms.authenticate(new.key) is None  # this worker: at once
        time.sleep(0.35)
        assert workers[1].platforms.authenticate(new.key) is None  # the other: within the TTL
    finally:
        for w in workers:
            w.close()


@pytest.mark.redis
def test_revocation_with_redis_is_seen_by_every_worker_at_once(tmp_path: Path, redis_prefix: str) -> None:
    workers = [local_services(tmp_path, cache=RedisCache(REDIS_URL, redis_prefix)) for _ in range(2)]
    try:
        workers[0].platforms.create("shop")
        new = workers[0].platforms.create_key("shop", "read,write")
        assert workers[1].platforms.authenticate(new.key) is not None
        workers[0].platforms.revoke_key("shop", new.key_id)
        assert workers[1].platforms.authenticate(new.key) is None
    finally:
        for w in workers:
            w.close()


# ------------------------------------------------------------------------------ unstorable text
def test_nul_and_lone_surrogates_are_422_naming_record_and_field(tmp_path: Path) -> None:
    services = local_services(tmp_path)
    try:
        key = services.platforms.create("shop")
        with _client(services, key) as c:
            raw = b'[{"item_id": "ok"}, {"item_id": "i2", "attributes": {"note": "a\\u0000b"}}]'
            bad = c.put("/v1/items", content=raw, headers={"Content-Type": "application/json"})
            assert bad.status_code == 422, bad.text
            assert bad.json()["errors"][0] == {"index": 1, "field": "attributes.note", "reason": "unstorable_text",
                                               "message": "NUL characters and unpaired surrogates cannot be stored"}
            json_type = {"Content-Type": "application/json"}
            lone = c.post("/v1/users", content=b'[{"user_id": "\\udc00x"}]', headers=json_type)
            assert lone.status_code == 422 and lone.json()["errors"][0]["field"] == "user_id"
            assert c.get("/v1/items/a%00b").status_code == 422
            assert c.get("/v1/items/x", params={"q": "\x00"}).json()["message"].startswith("query parameter 'q'")
            # a paired surrogate (an escaped emoji) and an escaped backslash before u0000 are ordinary text
            fine = b'[{"item_id": "e", "title": "\\ud83d\\uded2 cart", "description": "\\\\u0000 literally"}]'
            assert c.put("/v1/items", content=fine, headers={"Content-Type": "application/json"}).status_code == 200
            item = c.get("/v1/items/e").json()
            assert item["title"] == "\U0001f6d2 cart" and item["description"] == "\\u0000 literally"
            assert c.get("/v1/items/i2").status_code == 404  # the refused batch wrote nothing
    finally:
        services.close()


@pytest.mark.parametrize(("raw", "bad"), [
    (rb'"a\u0000"', True), (rb'"a\\u0000"', False), (rb'"a\\\u0000"', True), (rb'"\ud83d\uded2"', False),
    (rb'"\ud83d"', True), (rb'"\uded2"', True), (rb'"\uD800x"', True), (rb'"\u00e9"', False),
    (rb'"\\ud800"', False), (rb'"\ud83d\ud83d\uded2"', True), (rb'"\\\\u0000"', False)])
def test_unstorable_escape_scan(raw: bytes, bad: bool) -> None:
    assert _has_bad_escape(raw) is bad
