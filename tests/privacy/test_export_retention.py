"""Export (GET /v1/users/{id}/export), retention purges (on demand and scheduled) and the artifact rewrite."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from privhelpers import SECRET, client_for, dump_tables, make_services

from shoprec.cli.main import _register, cli
from shoprec.data.records import EventRecord, Identity, UserRecord
from shoprec.errors import ConfigError, DataError
from shoprec.privacy.artifacts import TOMBSTONE, clear_user_rows, erase_users
from shoprec.service import Services
from shoprec.service.retention import RetentionSchedule
from shoprec.storage import PlatformRepo
from shoprec.types import EventType

DAY = 86_400.0


def _events(user: str, items: list[str], ages_days: list[float]) -> list[EventRecord]:
    now = time.time()
    return [EventRecord(user, i, EventType.VIEW, now - age * DAY) for i, age in zip(items, ages_days, strict=True)]


def test_export_holds_everything_about_the_user(services: Services) -> None:
    key = services.platforms.create("shop-a")
    services.platforms.create("shop-b")
    services.data.upsert_users("shop-a", [UserRecord("u1", {"tier": "gold"}, identity=Identity("email", "a@b.test"))])
    services.data.upsert_users("shop-b", [UserRecord("x9", identity=Identity("email", "A@B.test "))])
    services.data.add_events("shop-a", _events("u1", ["i1", "i2"], [2, 1]) + _events("u2", ["i3"], [1]))
    services.privacy.link("shop-a", "shop-b")
    services.privacy.link("shop-b", "shop-a")
    with client_for(services, key) as client:
        rec = client.get("/v1/users/u1/recommendations", params={"k": 1}).json()
        client.post("/v1/feedback", json={"recommendation_id": rec["recommendation_id"],
                                          "item_id": rec["items"][0]["item_id"], "type": "like"})
        services.recommend.log.flush()
        answer = client.get("/v1/users/u1/export")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["user_id"] == "u1" and body["attributes"] == {"tier": "gold"}
        assert [e["item_id"] for e in body["events"]][:2] == ["i1", "i2"] and len(body["events"]) == 3
        assert body["identities"][0]["type"] == "email" and len(body["identities"][0]["hash"]) == 64
        assert body["identities"][0]["linked_platforms"] == ["shop-b"]
        assert "a@b.test" not in answer.text
        assert [f["type"] for f in body["feedback"]] == ["like"]
        assert [r["recommendation_id"] for r in body["recommendations"]] == [rec["recommendation_id"]]
        assert client.get("/v1/users/nobody/export").status_code == 404
        assert client.get("/v1/users/x9/export").status_code == 404  # another platform's user


def test_purge_on_demand_deletes_only_old_events(tmp_path: Path) -> None:
    services = make_services(tmp_path, retention_days=30.0)
    try:
        for name in ("shop-a", "shop-b"):
            services.platforms.create(name)
            services.data.add_events(name, _events("u1", ["i1", "i2", "i3"], [400, 31, 1]))
        result = services.privacy.purge("shop-a")
        assert result.purged == {"shop-a": 2} and result.days == 30.0
        assert services.privacy.purge().purged == {"shop-a": 0, "shop-b": 2}
        with services.engine.connect() as conn:
            assert PlatformRepo(conn, services.platforms.platform_id("shop-a")).count_events() == 1
        assert services.privacy.purge(days=0.5).purged == {"shop-a": 1, "shop-b": 1}
        with pytest.raises(DataError, match="unknown platform"):
            services.privacy.purge("nope")
    finally:
        services.close()


def test_purge_without_a_retention_period_is_a_config_error(services: Services) -> None:
    with pytest.raises(ConfigError, match="SHOPREC_RETENTION_DAYS"):
        services.privacy.purge()


def test_the_schedule_purges_at_start_and_repeats(tmp_path: Path) -> None:
    calls: list[float] = []
    schedule = RetentionSchedule(lambda: calls.append(time.monotonic()), interval_s=0.05).start()
    time.sleep(0.3)
    schedule.stop()
    assert len(calls) >= 3  # at start, then every interval


def test_the_app_purges_on_start_when_retention_is_set(tmp_path: Path) -> None:
    services = make_services(tmp_path, retention_days=10.0)
    try:
        key = services.platforms.create("shop")
        services.data.add_events("shop", _events("u1", ["i1", "i2"], [50, 1]))
        platform_id = services.platforms.platform_id("shop")

        def events() -> int:
            with services.engine.connect() as conn:
                return PlatformRepo(conn, platform_id).count_events()

        assert events() == 2
        with client_for(services, key):  # the app's start-up starts the schedule, which purges at once
            deadline = time.time() + 5
            while events() > 1 and time.time() < deadline:
                time.sleep(0.02)
        assert events() == 1
    finally:
        services.close()


def test_cli_erase_purge_link_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for name, value in (("SHOPREC_DATABASE_URL", url), ("SHOPREC_SECRET_KEY", SECRET),
                        ("SHOPREC_MODEL_DIR", str(tmp_path / "models"))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHOPREC_REDIS_URL", raising=False)
    services = make_services(tmp_path, url=url)
    for name in ("a", "b"):
        services.platforms.create(name)
    services.data.add_events("a", _events("cli-user", ["i1", "i2"], [100, 1]))
    services.data.add_events("a", _events("other", ["i1", "i2"], [1, 1]))
    services.store.train("a", "itemknn", activate=True, evaluate=False)
    services.close()
    _register()
    runner = CliRunner()

    def run(*args: str) -> dict[str, object]:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert run("platform", "link", "--platform", "a", "--with", "b")["linked"] is False
    assert run("platform", "link", "a", "b")["linked"] is True
    assert run("platform", "unlink", "--platform", "b", "--with", "a")["linked"] is False
    assert run("export-user", "--platform", "a", "cli-user")["user_id"] == "cli-user"
    assert run("purge", "--platform", "a", "--days", "30")["purged"] == {"a": 1}
    erased = run("erase-user", "--platform", "a", "cli-user")
    assert erased["deleted"]["events"] == 1 and erased["artifacts_rewritten"] == 1
    services = make_services(tmp_path, url=url)
    try:
        assert "cli-user" not in dump_tables(services.engine)
        assert not [p for p in (tmp_path / "models").rglob("*") if p.is_file() and b"cli-user" in p.read_bytes()]
    finally:
        services.close()
    again = runner.invoke(cli, ["erase-user", "--platform", "a", "cli-user"])
    assert again.exit_code != 0


def test_clear_user_rows_zeroes_factor_rows_and_drops_item_lists() -> None:
    arrays = {"user_factors": np.ones((3, 2), np.float32), "item_factors": np.ones((3, 2), np.float32),
              "user_items": np.array([1, 2, 3, 4, 5], np.int32), "user_offsets": np.array([0, 2, 4, 5], np.int64)}
    out = clear_user_rows(arrays, n_users=3, rows=[1])
    assert out["user_factors"].tolist() == [[1, 1], [0, 0], [1, 1]]
    assert out["item_factors"].tolist() == arrays["item_factors"].tolist()
    assert out["user_items"].tolist() == [1, 2, 5] and out["user_offsets"].tolist() == [0, 2, 2, 3]


def test_erase_users_writes_a_new_artifact_and_leaves_the_old(services: Services) -> None:
    services.platforms.create("shop")
    services.data.add_events("shop", _events("u1", ["i1", "i2"], [1, 1]) + _events("u2", ["i2", "i3"], [1, 1]))
    trained = services.store.train("shop", "als", {"embedding_size": 4, "epochs": 2}, evaluate=False)
    old = Path(trained.path)
    assert erase_users(old, ["nobody"]) is None
    new = erase_users(old, ["u1"])
    assert new is not None and new.parent == old.parent and old.exists()
    ids = json.loads((new / "idmaps.json").read_text())["users"]
    assert ids == [TOMBSTONE.format(index=0), "u2"]
    from safetensors.numpy import load_file

    assert not load_file(str(new / "weights.safetensors"))["user_factors"][0].any()
