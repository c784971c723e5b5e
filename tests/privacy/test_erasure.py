"""Erasure: DELETE /v1/users/{id} and `shoprec erase-user` remove everything naming the user, at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from privhelpers import client_for, dump_artifacts, dump_redis, dump_tables, make_services

from shoprec.data.records import EventRecord, Identity, UserRecord
from shoprec.service import Services
from shoprec.service.audit import list_audit
from shoprec.service.cache import RedisCache
from shoprec.service.testing import ReadyPlatform, synthetic_platform
from shoprec.storage import tables as T
from shoprec.storage.privacy import PrivacyRepo
from shoprec.types import EventType

TARGET = "erase-me-7f3a9c"
EMAIL = "Target.Person@Example.org"


def _seed_target(services: Services, platform: str, items: list[str]) -> None:
    """The target user with an identity and a few events, then a trained, active model that knows them."""
    now = time.time()
    services.data.upsert_users(platform, [UserRecord(TARGET, {"tier": "gold"}, identity=Identity("email", EMAIL))])
    services.data.add_events(platform, [EventRecord(TARGET, item, EventType.PURCHASE, now - 100 + i)
                                        for i, item in enumerate(items[:4])])
    services.store.train(platform, "itemknn", activate=True, evaluate=False)


def _expose(services: Services, platform: str, rec_id: str) -> None:
    """An experiment exposure of the target (as ExperimentService writes them for a running experiment)."""
    x = T.experiment_exposures
    with services.engine.begin() as conn:
        conn.execute(sa.insert(x), [{"platform_id": services.platforms.platform_id(platform), "experiment_id": "exp1",
                                     "variant": "control", "recommendation_id": rec_id, "user_external_id": TARGET,
                                     "items": ["i1"], "n_shown": 1, "created_at": time.time()}])


def _erase_everywhere(services: Services, cache: RedisCache, shop: ReadyPlatform) -> None:
    platform = shop.name
    _seed_target(services, platform, shop.item_ids)
    with client_for(services, shop.api_key) as client:
        answer = client.get(f"/v1/users/{TARGET}/recommendations", params={"k": 5})
        assert answer.status_code == 200, answer.text
        rec_id = answer.json()["recommendation_id"]
        fb = client.post("/v1/feedback", json={"recommendation_id": rec_id, "item_id": answer.json()["items"][0]
                                               ["item_id"], "type": "click"})
        assert fb.status_code == 200, fb.text
        client.get(f"/v1/users/{TARGET}/recommendations", params={"k": 5})  # the history cached again
        services.recommend.log.flush()
        _expose(services, platform, rec_id)
        before = dump_tables(services.engine)
        assert TARGET in before and TARGET in dump_redis(cache)
        assert TARGET.encode() in dump_artifacts(services)
        assert EMAIL not in before and EMAIL.lower() not in before  # only the hash of the identity is stored

        response = client.delete(f"/v1/users/{TARGET}")
        assert response.status_code == 204, response.text

        assert TARGET not in dump_tables(services.engine)
        assert TARGET not in dump_redis(cache)
        with services.engine.connect() as conn:  # the experiment keeps its exposure, under a random token
            kept = conn.execute(sa.select(T.experiment_exposures.c.user_external_id)).scalars().all()
        assert len(kept) == 1 and kept[0].startswith("erased:")
        assert TARGET.encode() not in dump_artifacts(services)
        # a replayed erasure changes nothing and is a clean 404
        snapshot = dump_tables(services.engine)
        replay = client.delete(f"/v1/users/{TARGET}")
        assert replay.status_code == 404 and replay.json()["error"] == "not_found"
        assert dump_tables(services.engine) == snapshot
        # the platform serves on: the erased id is a new user now (no personal list from the old model row)
        again = client.get(f"/v1/users/{TARGET}/recommendations", params={"k": 5})
        assert again.status_code == 200 and again.json()["items"]
        assert "personal" not in {i["reason"]["level"] for i in again.json()["items"]}
        other = client.get(f"/v1/users/{shop.user_ids[0]}/recommendations", params={"k": 5})
        assert other.status_code == 200 and other.json()["items"]
    audit = list_audit(services.engine, platform)
    erasures = [a for a in audit if a.action == "user.erase"]
    assert len(erasures) == 1 and TARGET not in str(erasures[0])
    details = erasures[0].details
    assert details is not None and details["deleted"]["events"] == 5  # 4 purchases + the click stored from feedback
    with services.engine.connect() as conn:
        flag = PrivacyRepo(conn, services.platforms.platform_id(platform)).retrain_flag()
    assert flag is not None and flag["reason"] == "user erased"
    services.store.train(platform, "itemknn", evaluate=False)  # a retrain clears the flag
    with services.engine.connect() as conn:
        assert PrivacyRepo(conn, services.platforms.platform_id(platform)).retrain_flag() is None


@pytest.mark.redis
def test_erasure_removes_the_user_everywhere_sqlite(tmp_path: Path, redis_cache: RedisCache) -> None:
    services = make_services(tmp_path, cache=redis_cache)
    try:
        shop = synthetic_platform(services, "shop", model=None)
        _erase_everywhere(services, redis_cache, shop)
    finally:
        services.close()


@pytest.mark.redis
@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_erasure_removes_the_user_everywhere_servers(backend: str, tmp_path: Path, redis_cache: RedisCache) -> None:
    from shoprec.storage.testing import ServerUnavailable, scratch_database

    try:
        with scratch_database(backend) as url:
            services = make_services(tmp_path, url=url, cache=redis_cache)
            try:
                shop = synthetic_platform(services, "shop", model=None)
                _erase_everywhere(services, redis_cache, shop)
            finally:
                services.close()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


def test_erasure_rolls_back_when_the_database_fails(services: Services) -> None:
    """Nothing half-done: a failing transaction leaves the rows and the artifact as they were."""
    shop = synthetic_platform(services, "shop", model=None)
    _seed_target(services, "shop", shop.item_ids)
    files = dump_artifacts(services)
    with services.engine.begin() as conn:  # a trigger-free way to make the transaction fail: a missing table
        conn.execute(sa.text("ALTER TABLE retrain_flags RENAME TO retrain_flags_gone"))
    try:
        with pytest.raises(Exception):  # noqa: B017 - a StorageError from the driver
            services.privacy.erase("shop", TARGET)
    finally:
        with services.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE retrain_flags_gone RENAME TO retrain_flags"))
    assert TARGET in dump_tables(services.engine)
    assert dump_artifacts(services) == files
