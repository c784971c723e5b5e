"""SHOPREC_PSEUDONYMIZE_USERS: user ids are stored as per-platform keyed hashes; callers keep their own ids."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from privhelpers import SECRET, client_for, dump_artifacts, dump_tables, make_services

from shoprec.errors import ConfigError
from shoprec.privacy import Privacy
from shoprec.service.testing import synthetic_platform
from shoprec.settings import Settings


def test_raw_user_ids_are_absent_and_the_api_works_end_to_end(tmp_path: Path) -> None:
    services = make_services(tmp_path, pseudonymize_users=True)
    try:
        shop = synthetic_platform(services, "shop", model=None)
        ingested = shop.user_ids[:20]
        user = "shopper-0042"
        with client_for(services, shop.api_key) as client:
            now = time.time()
            events = [{"user_id": user, "item_id": i, "type": "purchase", "timestamp": now - 50 + n}
                      for n, i in enumerate(shop.item_ids[:3])]
            assert client.post("/v1/events", json=events).status_code == 200
            assert client.post("/v1/users", json=[{"user_id": user, "attributes": {"tier": "gold"}}]).status_code \
                == 200
            services.store.train("shop", "itemknn", activate=True, evaluate=False)
            got = client.get(f"/v1/users/{user}")
            assert got.status_code == 200 and got.json()["user_id"] == user
            assert [e["item_id"] for e in got.json()["recent_events"]] == shop.item_ids[:3]
            assert got.json()["attributes"] == {"tier": "gold"}
            recs = client.get(f"/v1/users/{user}/recommendations", params={"k": 5})
            assert recs.status_code == 200, recs.text
            body = recs.json()
            assert "personal" in {i["reason"]["level"] for i in body["items"]}  # the model knows the pseudonym
            assert not {i["item_id"] for i in body["items"]} & set(shop.item_ids[:3])  # history excluded
            page = client.get(f"/v1/users/{user}/recommendations",
                              params={"k": 2, "offset": 2, "recommendation_id": body["recommendation_id"]})
            assert page.status_code == 200
            fb = client.post("/v1/feedback", json={"recommendation_id": body["recommendation_id"],
                                                   "item_id": body["items"][0]["item_id"], "type": "click"})
            assert fb.status_code == 200 and fb.json()["event_stored"]
            assert len(client.get(f"/v1/users/{user}").json()["recent_events"]) == 4  # one user, not a new one
            exported = client.get(f"/v1/users/{user}/export").json()
            assert exported["user_id"] == user and exported["stored_user_id"] != user
            assert client.get("/v1/users/nobody").status_code == 404
        services.recommend.log.flush()
        dump = dump_tables(services.engine)
        files = dump_artifacts(services)
        for raw in [user, *ingested]:
            assert f"'{raw}'" not in dump and f'"{raw}"'.encode() not in files
        stored = services.privacy.privacy.user_id("shop", user)
        assert f"'{stored}'" in dump and len(stored) == 64
        assert services.privacy.privacy.user_id("other-shop", user) != stored  # per platform
        with client_for(services, shop.api_key) as client:
            assert client.delete(f"/v1/users/{user}").status_code == 204  # erasure by the caller's id
        assert stored not in dump_tables(services.engine)
        assert stored.encode() not in dump_artifacts(services)
    finally:
        services.close()


def test_pseudonymizing_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SHOPREC_SECRET_KEY"):
        Privacy.from_settings(Settings(pseudonymize_users=True))
    assert Privacy(SECRET).user_id("shop", "u1") == "u1"  # off: ids are stored as given


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_PSEUDONYMIZE_USERS", "1")
    monkeypatch.setenv("SHOPREC_RETENTION_DAYS", "30")
    settings = Settings.from_env()
    assert settings.pseudonymize_users and settings.retention_days == 30.0
    monkeypatch.setenv("SHOPREC_RETENTION_DAYS", "-2")
    with pytest.raises(ConfigError, match="SHOPREC_RETENTION_DAYS"):
        Settings.from_env()
