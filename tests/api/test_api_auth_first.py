"""Authentication before any work (issue 21, security): the key is checked before the body is read; failed
authentications are limited per client address across every path and worker; a weak admin key stops
`shoprec serve`; a revocation reaches every worker within a second; anonymous readiness names no tenant; a
platform cannot erase a user it does not have."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.api.auth import UNAUTHORIZED
from shoprec.api.workers import anonymous_body, guarded_protocol
from shoprec.errors import ConfigError
from shoprec.service import Services
from shoprec.service.cache import RedisCache
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform, local_services
from shoprec.settings import MAX_BATCH_BYTES, MAX_EVENT_BYTES, ServingConfig, check_admin_key

REDIS_URL = "redis://127.0.0.1:6379/0"
CLI = [sys.executable, "-c", "from shoprec.cli.main import main; main()"]


def _client(services: Services, **headers: str) -> TestClient:
    app = create_app(services.settings, services.config, services=services)
    return TestClient(app, headers=headers, raise_server_exceptions=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["app", "connection"])
def server(services: Services, request: pytest.FixtureRequest) -> Iterator[int]:
    """The app under a real uvicorn server in a thread (raw sockets can then send part of a request): with
    uvicorn's own protocol (AuthFirst refuses in the app) and with `shoprec serve`'s (shoprec.api.workers:
    an anonymous body is refused by the connection)."""
    port = _free_port()
    app = create_app(services.settings, services.config, services=services)
    http = guarded_protocol(5.0) if request.param == "connection" else "auto"
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                        http=http))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def _partial_request(port: int, headers: str, sent: bytes, length: int) -> tuple[bytes, float]:
    """Send the head of a POST announcing `length` body bytes and only `sent` of them; the answer and the
    seconds it took (the socket gives up after 10 s: a server reading the whole body would still wait)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.monotonic()
        s.sendall((f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
                   f"Content-Length: {length}\r\n\r\n").encode() + sent)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return answer, time.monotonic() - start


# ---------------------------------------------------------------------------- auth before the body
def test_an_anonymous_body_is_refused_before_it_is_read(server: int) -> None:
    length = 15 * 1024 * 1024  # under the body limit: only the missing key can refuse it
    answer, took = _partial_request(server, "", b"[{},{},", length)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b'"error":"unauthorized"' in answer.replace(b" ", b"")
    assert b"connection: close" in answer.lower()  # the server does not read the rest to reuse the connection
    assert took < 5


def test_the_connections_refusal_is_the_apps_401(server: int) -> None:
    answer, _ = _partial_request(server, "", b"[{},", 1000)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert json.loads(body) == {"error": "unauthorized", "message": UNAUTHORIZED, "errors": []}
    assert b"x-request-id: " in head.lower() and b"content-type: application/json" in head.lower()


@pytest.mark.parametrize(("url", "headers", "refused"), [
    (b"/v1/events", [(b"content-length", b"12")], True),
    (b"/v1/events?x=1", [(b"transfer-encoding", b"chunked")], True),
    (b"/v1%2Fevents", [(b"content-length", b"12")], True),  # the path as the app decodes it
    (b"/v1/events", [(b"content-length", b"12"), (b"x-api-key", b"sk_any")], False),  # AuthFirst checks it
    (b"/v1/events", [(b"content-length", b"0")], False),  # no body: the app answers
    (b"/v1/events", [], False),
    (b"/v1/health/ready", [(b"content-length", b"12")], False),  # unkeyed routes
    (b"/dashboard/login", [(b"content-length", b"12")], False),
])
def test_which_requests_the_connection_refuses(url: bytes, headers: list[tuple[bytes, bytes]],
                                               refused: bool) -> None:
    assert anonymous_body(url, headers) is refused


def test_a_wrong_key_is_refused_before_the_body_is_read(server: int) -> None:
    answer, _ = _partial_request(server, "X-API-Key: sk_wrong\r\n", b"[{", 15 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 401"), answer


def test_a_valid_key_still_posts_events(server: int, shop: ReadyPlatform) -> None:
    r = httpx.post(f"http://127.0.0.1:{server}/v1/events", headers={"X-API-Key": shop.api_key},
                   json=[{"user_id": "u-auth-first", "item_id": shop.item_ids[0], "type": "view"}])
    assert r.status_code < 300, r.text


def test_the_default_body_limit_fits_the_largest_legal_batch() -> None:
    config = ServingConfig()
    assert config.max_body_bytes == MAX_BATCH_BYTES >= config.max_events * MAX_EVENT_BYTES
    assert config.max_body_bytes < 64 * 1024 * 1024


# ---------------------------------------------------------------------------- failed-authentication limit
def test_failed_keys_on_any_route_block_the_client_even_with_the_right_key(tmp_path: Path) -> None:
    services = local_services(tmp_path / "a", auth_failures=3, auth_block_s=30.0)
    try:
        key = services.platforms.create("shop")
        with _client(services) as c:
            assert c.get("/v1/models", headers={"X-API-Key": key}).status_code == 200
            assert c.get("/v1/models", headers={"X-API-Key": "guess-1"}).status_code == 401
            assert c.get("/dashboard", headers={"X-API-Key": "guess-2"}).status_code == 401  # another path
            third = c.get("/v1/health/ready", headers={"X-API-Key": "guess-3"})
            assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 29
            assert third.json()["error"] == "rate_limited"
            blocked = c.get("/v1/models", headers={"X-API-Key": key})  # the right key too, while blocked
            assert blocked.status_code == 429 and "Retry-After" in blocked.headers
            admin = c.get("/v1/models", headers={"X-API-Key": TEST_ADMIN_KEY, "X-Platform": "shop"})
            assert admin.status_code == 429
            assert c.get("/v1/health/live").status_code == 200  # no credential: not an attempt
    finally:
        services.close()


def test_the_block_is_shared_by_workers_through_the_database(tmp_path: Path) -> None:
    workers = [local_services(tmp_path, auth_failures=2, auth_block_s=30.0) for _ in range(2)]
    try:
        key = workers[0].platforms.create("shop")
        with _client(workers[0]) as first, _client(workers[1]) as second:
            assert second.get("/v1/models", headers={"X-API-Key": key}).status_code == 200
            for guess in ("a", "b"):
                first.get("/v1/models", headers={"X-API-Key": guess})
            time.sleep(0.6)  # the other worker reads the blocked clients at most every 0.5 s
            assert second.get("/v1/models", headers={"X-API-Key": key}).status_code == 429
    finally:
        for w in workers:
            w.close()


@pytest.mark.redis
def test_the_block_is_shared_by_workers_through_redis(tmp_path: Path, redis_prefix: str) -> None:
    workers = [local_services(tmp_path, cache=RedisCache(REDIS_URL, redis_prefix), auth_failures=2)
               for _ in range(2)]
    try:
        key = workers[0].platforms.create("shop")
        with _client(workers[0]) as first, _client(workers[1]) as second:
            for guess in ("a", "b"):
                first.get("/v1/models", headers={"X-API-Key": guess})
            assert first.get("/v1/models", headers={"X-API-Key": key}).status_code == 429
            time.sleep(0.6)
            assert second.get("/v1/models", headers={"X-API-Key": key}).status_code == 429
    finally:
        for w in workers:
            w.close()


def test_failed_dashboard_logins_count_toward_the_same_limit(tmp_path: Path) -> None:
    services = local_services(tmp_path, auth_failures=2)
    try:
        with _client(services) as c:
            for _ in range(2):
                r = c.post("/dashboard/login", data={"key": "wrong", "next": "/dashboard"})
                assert r.status_code == 401
            assert c.get("/dashboard", headers={"X-API-Key": TEST_ADMIN_KEY}).status_code == 429
            assert c.post("/dashboard/login", data={"key": TEST_ADMIN_KEY}).status_code == 429
    finally:
        services.close()


# ---------------------------------------------------------------------------- weak admin key
@pytest.mark.parametrize("key", ["change-me", "admin", "password", "short-key-123", "CHANGE-ME"])
def test_a_weak_admin_key_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="too weak"):
        check_admin_key(ServingConfig(admin_key=key))
    check_admin_key(ServingConfig(admin_key=key, allow_weak_admin_key=True))  # development: allowed


def test_a_strong_or_no_admin_key_passes() -> None:
    check_admin_key(ServingConfig(admin_key=TEST_ADMIN_KEY))
    check_admin_key(ServingConfig(admin_key=None))


def test_serve_refuses_to_start_with_a_weak_admin_key(tmp_path: Path) -> None:
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "SHOPREC_MODEL_DIR": str(tmp_path / "models"), "SHOPREC_ADMIN_KEY": "change-me"}
    env.pop("SHOPREC_ALLOW_WEAK_ADMIN_KEY", None)
    run = subprocess.run([*CLI, "serve", "--port", str(_free_port())], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "too weak" in errors[0] and "SHOPREC_ALLOW_WEAK_ADMIN_KEY" in errors[0], run.stderr


# ---------------------------------------------------------------------------- revocation
def test_a_revocation_reaches_another_worker_within_a_second_without_redis(tmp_path: Path) -> None:
    workers = [local_services(tmp_path) for _ in range(2)]
    try:
        workers[0].platforms.create("shop")
        new = workers[0].platforms.create_key("shop", ["read"])
        assert workers[1].platforms.authenticate(new.key) is not None  # cached by worker 1
        workers[0].platforms.revoke_key("shop", new.key_id)
        time.sleep(0.6)
        assert workers[1].platforms.authenticate(new.key, cached_only=True) is None
        assert workers[1].platforms.authenticate(new.key) is None
    finally:
        for w in workers:
            w.close()


def test_revocation_by_the_cli_reaches_both_serve_workers_within_a_second(tmp_path: Path) -> None:
    from shoprec.api.workers import reuse_port_supported

    if not reuse_port_supported():
        pytest.skip("SO_REUSEPORT missing")
    port = _free_port()
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "SHOPREC_MODEL_DIR": str(tmp_path / "models"), "SHOPREC_JOBS_EMBEDDED_WORKER": "0",
           "SHOPREC_METRICS_MULTIPROCESS_DIR": str(tmp_path / "metrics"),
           "SHOPREC_AUTH_FAILURES": "1000"}  # the revoked key's 401s are failures too: keep them under the limit
    env.pop("SHOPREC_REDIS_URL", None)
    env.pop("SHOPREC_ADMIN_KEY", None)
    created = subprocess.run([*CLI, "platform", "create", "shop", "--json"], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
    key = json.loads(created.stdout)["api_key"]
    key_id = json.loads(subprocess.run([*CLI, "platform", "key", "list", "-p", "shop", "--json"], env=env,
                                       capture_output=True, text=True, timeout=120, check=True).stdout)[0]["key_id"]
    proc = subprocess.Popen([*CLI, "serve", "--workers", "2", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/v1/health/live", timeout=1).status_code == 200:
                    break
            time.sleep(0.3)

        def ask() -> int:  # a new connection each time: SO_REUSEPORT spreads them over the workers
            with httpx.Client(timeout=10) as c:
                return c.get(base + "/v1/models", headers={"X-API-Key": key}).status_code

        warm = [ask() for _ in range(40)]  # both workers cache the key
        assert set(warm) == {200}
        subprocess.run([*CLI, "platform", "key", "revoke", "-p", "shop", key_id], env=env, capture_output=True,
                       timeout=120, check=True)
        time.sleep(1.0)
        after = [ask() for _ in range(40)]
        assert set(after) == {401}, after
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------- no tenant data to anonymous callers
def test_anonymous_readiness_names_no_platform_or_model(services: Services, shop: ReadyPlatform) -> None:
    with _client(services) as c:
        anonymous = c.get("/v1/health/ready")
        assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
        platform_key = c.get("/v1/health/ready", headers={"X-API-Key": shop.api_key})
        assert platform_key.json() == {"status": "ok"}  # a tenant's key does not see the others either
        detailed = c.get("/v1/health/ready", headers={"X-API-Key": TEST_ADMIN_KEY}).json()
        assert detailed["models"]["shop"] == shop.trained.model_id and detailed["revision"]


def test_anonymous_unreadiness_gives_a_generic_reason(services: Services, shop: ReadyPlatform,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from shoprec.service.models import LoadFailure

    failure: Any = LoadFailure(model_id="m-secret", reason="artifact of shop missing", serving="popular")
    monkeypatch.setattr(services.models, "check_all", lambda: {"shop": failure})
    with _client(services) as c:
        anonymous = c.get("/v1/health/ready")
        assert anonymous.status_code == 503 and "shop" not in anonymous.text and "m-secret" not in anonymous.text
        assert anonymous.json()["status"] == "unavailable"
        detailed = c.get("/v1/health/ready", headers={"X-API-Key": TEST_ADMIN_KEY})
        assert detailed.status_code == 503 and detailed.json()["failures"]["shop"]["model_id"] == "m-secret"


def test_metrics_always_answer_the_admin_key(services: Services) -> None:
    from dataclasses import replace

    from shoprec.settings import MetricsSettings

    services.settings = replace(services.settings, metrics=MetricsSettings(token="metrics-token"))
    with _client(services) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": TEST_ADMIN_KEY}).status_code == 200


# ---------------------------------------------------------------------------- erasure of another platform's user
def test_erasing_a_user_the_platform_does_not_have_is_404(services: Services, shop: ReadyPlatform) -> None:
    other_key = services.platforms.create("other")
    victim = shop.user_ids[0]
    with _client(services, **{"X-API-Key": other_key}) as c:
        c.get(f"/v1/users/{victim}/recommendations")  # "other" logs a list for that id (its own row)
        assert c.delete(f"/v1/users/{victim}").status_code == 404
    with _client(services, **{"X-API-Key": shop.api_key}) as c:
        exported = c.get(f"/v1/users/{victim}/export")
        assert exported.status_code == 200 and exported.json()["events"]


# ---------------------------------------------------------------------------- the database store, every backend
def test_failures_are_counted_and_blocked_in_every_database(engine: Any) -> None:
    from shoprec.service.ratelimit import DatabaseAuthFailures, FailedAuthLimiter

    client = f"10.0.0.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"
    limiter = FailedAuthLimiter(DatabaseAuthFailures(engine, limit=3, window_s=60.0, block_s=30.0))
    assert limiter.fail(client) == 0.0 and limiter.fail(client) == 0.0
    assert 29 < limiter.fail(client) <= 30  # the third failure blocks
    other = FailedAuthLimiter(DatabaseAuthFailures(engine, limit=3, window_s=60.0, block_s=30.0))
    other.refresh()  # another worker reads the blocked clients
    assert 29 < other.blocked_for(client) <= 30 and other.blocked_for("10.9.9.9") == 0.0
    expired = FailedAuthLimiter(DatabaseAuthFailures(engine, limit=3, window_s=0.1, block_s=30.0))
    fresh = f"{client}-w"
    assert expired.fail(fresh) == 0.0 and expired.fail(fresh) == 0.0
    time.sleep(0.15)  # the window is over: the count starts again
    assert expired.fail(fresh) == 0.0
