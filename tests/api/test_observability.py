"""Request ids, structured logs, the access log and /metrics in one process (the TestClient): X-Request-ID is
honoured or generated and returned on every answer, errors included; JSON log lines parse and carry the
request's id; the access log writes one line per request; /metrics shows the back office's metrics and needs
its token when one is set."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.logs import bind_context, configure_logging, get_logger, log_context
from shoprec.service import Services, telemetry
from shoprec.service.testing import ReadyPlatform
from shoprec.settings import LogSettings, MetricsSettings

probe = APIRouter()
probe_log = logging.getLogger("shoprec.tests.probe")


@probe.get("/probe/log")
def _log_something() -> dict[str, str]:  # a sync route: runs in a thread, in a copy of the request's context
    bind_context(platform="probe-shop")
    probe_log.warning("inside the request")
    return {"ok": "yes"}


@probe.get("/probe/boom")
def _boom() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """JSON lines with the access log on, captured; the process's logging restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("shoprec.access").level)
    stream = io.StringIO()
    configure_logging(LogSettings(level="warning", format="json", access_log=True), stream=stream)
    yield stream
    for h in list(root.handlers):
        if h not in saved[0]:
            root.removeHandler(h)
    for h in saved[0]:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(saved[1])
    logging.getLogger("shoprec.access").setLevel(saved[2])


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _client(services: Services, key: str, **settings_changes: object) -> TestClient:
    settings = dataclasses.replace(services.settings, **settings_changes) if settings_changes else services.settings
    services.settings = settings
    app = create_app(settings, services.config, services=services)
    app.include_router(probe)
    return TestClient(app, headers={"X-API-Key": key}, raise_server_exceptions=False)


def test_a_valid_request_id_is_honoured_and_returned(services: Services, shop: ReadyPlatform) -> None:
    with _client(services, shop.api_key) as client:
        answer = client.get("/v1/health/live", headers={"X-Request-ID": "trace-42/abc"})
        assert answer.headers["x-request-id"] == "trace-42/abc"
        listed = client.get(f"/v1/users/{shop.user_ids[0]}/recommendations", headers={"X-Request-ID": "r-1"})
        assert listed.status_code == 200 and listed.headers["x-request-id"] == "r-1"


def test_a_request_id_is_generated_when_absent_or_invalid(services: Services, shop: ReadyPlatform) -> None:
    with _client(services, shop.api_key) as client:
        ids = {client.get("/v1/health/live").headers["x-request-id"] for _ in range(3)}
        assert len(ids) == 3 and all(len(i) == 32 for i in ids)  # a new one each time
        for bad in (b"x" * 129, b"tab\there", "é-accent".encode()):
            answer = client.get("/v1/health/live", headers={"X-Request-ID": bad})  # type: ignore[dict-item]
            assert len(answer.headers["x-request-id"]) == 32 and answer.headers["x-request-id"].isalnum()
        assert client.get("/v1/health/live", headers={"X-Request-ID": "y" * 128}).headers["x-request-id"] == "y" * 128


def test_errors_carry_the_request_id_too(services: Services, shop: ReadyPlatform, logs: io.StringIO) -> None:
    with _client(services, shop.api_key) as client:
        assert client.get("/v1/nothing", headers={"X-Request-ID": "e-404"}).headers["x-request-id"] == "e-404"
        denied = client.get("/v1/users/u/recommendations", headers={"X-API-Key": "wrong", "X-Request-ID": "e-401"})
        assert denied.status_code == 401 and denied.headers["x-request-id"] == "e-401"
        crashed = client.get("/probe/boom", headers={"X-Request-ID": "e-500"})
        assert crashed.status_code == 500 and crashed.headers["x-request-id"] == "e-500"
        assert crashed.json()["error"] == "internal_error"
    logged = [line for line in _lines(logs) if line.get("request_id") == "e-500"]
    assert any(line["logger"] == "shoprec.access" and line["status"] == 500 for line in logged)
    assert any(line["level"] == "error" for line in logged)  # the unexpected error's own line carries the id


def test_json_log_lines_carry_the_request_id(services: Services, shop: ReadyPlatform, logs: io.StringIO) -> None:
    with _client(services, shop.api_key) as client:
        assert client.get("/probe/log", headers={"X-Request-ID": "json-1"}).status_code == 200
    lines = _lines(logs)  # every line is one JSON object
    inside = [line for line in lines if line["event"] == "inside the request"]
    assert len(inside) == 1
    assert inside[0]["request_id"] == "json-1" and inside[0]["level"] == "warning"
    assert inside[0]["logger"] == "shoprec.tests.probe" and inside[0]["platform"] == "probe-shop"
    probe_log.warning("after the request")
    after = [line for line in _lines(logs) if line["event"] == "after the request"]
    assert "request_id" not in after[0] and "platform" not in after[0]  # the request's context ended with it


def test_the_access_log_has_one_line_per_request(services: Services, shop: ReadyPlatform, logs: io.StringIO
                                                 ) -> None:
    with _client(services, shop.api_key) as client:
        for i in range(3):
            client.get(f"/v1/users/{shop.user_ids[i]}/recommendations", headers={"X-Request-ID": f"acc-{i}"})
        client.get("/probe/log", headers={"X-Request-ID": "acc-probe"})
        client.get("/no/such/path", headers={"X-Request-ID": "acc-404"})
    access = [line for line in _lines(logs) if line["logger"] == "shoprec.access"]
    by_id = {line["request_id"]: line for line in access}
    assert len(access) == len(by_id) == 5
    first = by_id["acc-0"]
    assert first["method"] == "GET" and first["route"] == "/v1/users/{user_id}/recommendations"
    assert first["status"] == 200 and isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert first["platform"] == "shop"  # bound by the authentication of a platform key
    assert by_id["acc-probe"]["platform"] == "probe-shop"  # bound by the route: the platform when known
    assert by_id["acc-404"]["route"] == "unmatched" and by_id["acc-404"]["path"] == "/no/such/path"
    assert by_id["acc-404"]["status"] == 404


def test_no_access_log_unless_configured(services: Services, shop: ReadyPlatform) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers)
    configure_logging(LogSettings(level="info", format="json", access_log=False), stream=stream)
    try:
        with _client(services, shop.api_key) as client:
            client.get("/v1/health/live")
    finally:
        for h in list(root.handlers):
            if h not in saved:
                root.removeHandler(h)
        root.setLevel(logging.WARNING)
    assert not [line for line in _lines(stream) if line["logger"] == "shoprec.access"]


def test_text_logs_keep_the_cli_format_with_context() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers)
    configure_logging(LogSettings(level="info"), stream=stream)
    try:
        with log_context(platform="shop", job_id="job-7"):
            logging.getLogger("shoprec.service.jobs").info("training %s", "started")
            get_logger("shoprec.worker").info("epoch done", epoch=3)
        logging.getLogger("shoprec.x").debug("not at info")
        configure_logging(LogSettings(level="info"), stream=stream)  # again: one handler, not two
        logging.getLogger("shoprec.y").warning("once")
    finally:
        for h in list(root.handlers):
            if h not in saved:
                root.removeHandler(h)
        root.setLevel(logging.WARNING)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "INFO shoprec.service.jobs: training started job_id=job-7 platform=shop"
    assert lines[1].startswith("INFO shoprec.worker: epoch done ") and "epoch=3" in lines[1]
    assert "job_id=job-7" in lines[1]
    assert lines[2:] == ["WARNING shoprec.y: once"]


def test_metrics_show_the_back_office_series(services: Services, shop: ReadyPlatform) -> None:
    telemetry.JOBS.labels(kind="train", status="succeeded").inc()
    telemetry.MODEL_LOADS.labels(platform="shop", outcome="loaded").inc()
    with _client(services, shop.api_key) as client:
        text = client.get("/metrics").text
    assert 'shoprec_jobs_total{kind="train",status="succeeded"}' in text
    assert 'shoprec_model_loads_total{outcome="loaded",platform="shop"}' in text
    assert "# TYPE shoprec_retrain_decisions_total counter" in text or "shoprec_retrain_decisions" in text
    assert f'shoprec_model_info{{model_id="{shop.trained.model_id}",platform="shop"}} 1.0' in text


def test_metrics_need_the_token_when_one_is_set(services: Services, shop: ReadyPlatform) -> None:
    services.config = dataclasses.replace(services.config, admin_key="the-admin-key-0123456789abcdef")
    services.platforms.admin_key = services.config.admin_key
    with _client(services, shop.api_key, metrics=MetricsSettings(token="s3cret")) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and "Bearer" in refused.json()["message"]
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": shop.api_key}).status_code == 401  # a platform key
        ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "shoprec_request_seconds" in ok.text
        assert client.get("/metrics", headers={"X-API-Key": "the-admin-key-0123456789abcdef"}).status_code == 200
        assert client.get("/v1/health/live", headers={"X-API-Key": ""}).status_code == 200  # health stays open
