"""serving.cors_origins (Starlette's CORSMiddleware outside the key check) and the tracker script the API
serves at /static/shoprec-tracker.js."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.errors import ConfigError
from shoprec.service import Services, ServingConfig
from shoprec.service.testing import ReadyPlatform

SHOP = "https://shop.example"
PREFLIGHT = {"Origin": SHOP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "x-api-key,idempotency-key,content-type"}


def _client(services: Services, origins: tuple[str, ...]) -> TestClient:
    config = dataclasses.replace(services.config, cors_origins=origins)
    return TestClient(create_app(services.settings, config, services=services), raise_server_exceptions=False)


def test_a_listed_origin_may_post_events_from_a_page(services: Services, shop: ReadyPlatform) -> None:
    with _client(services, (SHOP,)) as c:
        pre = c.options("/v1/events", headers=PREFLIGHT)  # no key: answered before the key check
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == SHOP
        assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
        sent = c.post("/v1/events", headers={"Origin": SHOP, "X-API-Key": shop.api_key},
                      json=[{"user_id": "u", "item_id": shop.item_ids[0], "type": "view"}])
        assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == SHOP
        wrong = c.post("/v1/events", headers={"Origin": SHOP, "X-API-Key": "sk_nope"}, json=[])
        assert wrong.status_code == 401 and wrong.headers["access-control-allow-origin"] == SHOP  # readable
        other = c.options("/v1/events", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_origins_no_cors_headers(services: Services, shop: ReadyPlatform) -> None:
    with _client(services, ()) as c:
        pre = c.options("/v1/events", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in pre.headers


def test_a_bad_origin_is_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match="cors_origins"):
        ServingConfig(cors_origins=("https://shop.example/path",))
    assert ServingConfig(cors_origins=("*", "http://127.0.0.1:8080")).cors_origins[0] == "*"


def test_the_api_serves_the_tracker(services: Services, shop: ReadyPlatform) -> None:
    with _client(services, ()) as c:
        script = c.get("/static/shoprec-tracker.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "Idempotency-Key" in script.text and "keepalive" in script.text
