"""Model store, hot swap across workers, background jobs, and Redis-shared state between workers."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from shoprec.data.records import EventRecord
from shoprec.errors import ConfigError
from shoprec.service import Services
from shoprec.service.cache import RedisCache
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform
from shoprec.worker.testing import run_queued

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_train_registers_evaluates_and_activates(services: Services, shop: ReadyPlatform) -> None:
    result = services.store.train("shop", "popular", {}, activate=False)
    assert result.metrics["NDCG@10"] >= 0 and "HR@10" in result.metrics
    assert Path(result.path).is_dir() and str(services.settings.model_dir) in result.path
    listed = {m.model_id: m for m in services.store.list_models("shop")}
    assert listed[result.model_id].active is False
    assert listed[shop.trained.model_id].active is True
    with pytest.raises(ConfigError):
        services.store.train("shop", "no-such-model")


def test_train_fits_under_the_given_feature_hooks(services: Services, shop: ReadyPlatform) -> None:
    """Feature hooks change what the model learns: popularity by purchases alone differs from the default
    weighting of every event type, and the stored model records the hooks."""
    import numpy as np

    from shoprec.models.base import Query, load_model

    plain = services.store.train("shop", "popular", {"weighted": True}, evaluate=False)
    bought = services.store.train("shop", "popular", {"weighted": True}, evaluate=False, features={
        "weight.view": 0.0, "weight.click": 0.0, "weight.cart": 0.0, "weight.purchase": 1.0})
    assert bought.features is not None and bought.features["weight.view"] == 0.0 and plain.features is None
    plain_scores, bought_scores = (load_model(Path(r.path)).score([Query(user=None)])[0] for r in (plain, bought))
    assert not np.allclose(plain_scores, bought_scores)
    listed = {m.model_id: m for m in services.store.list_models("shop")}
    config = listed[bought.model_id].config
    assert config is not None and config["features"]["weight.purchase"] == 1.0


def test_activation_swaps_the_served_model(services: Services, shop: ReadyPlatform) -> None:
    user = shop.user_ids[0]
    assert services.recommend.recommend("shop", user, k=3).model == "itemknn"
    other = services.store.train("shop", "popular", {})
    services.models.activate("shop", other.model_id)
    answer = services.recommend.recommend("shop", user, k=3)
    assert answer.model == "popular"
    assert [m.model_id for m in services.store.list_models("shop") if m.active] == [other.model_id]


def test_a_worker_keeps_serving_while_it_loads_a_new_model(tmp_path: Path) -> None:
    worker_a = local_services(tmp_path)
    worker_b = local_services(tmp_path, model_poll_s=0.05)  # another worker on the same database
    try:
        shop = synthetic_platform(worker_a, "shop")
        assert worker_b.recommend.recommend("shop", shop.user_ids[0], k=3).model == "itemknn"
        other = worker_a.store.train("shop", "popular", {}, activate=True)
        deadline = time.monotonic() + 10
        models = set()
        while time.monotonic() < deadline:
            answer = worker_b.recommend.recommend("shop", shop.user_ids[0], k=3)
            assert len(answer.items) == 3
            models.add(answer.model)
            if answer.model == "popular":
                break
            time.sleep(0.02)
        assert "popular" in models, "worker b never switched to the activated model"
        assert worker_b.models.loaded()["shop"] == other.model_id
    finally:
        worker_a.close()
        worker_b.close()


def test_background_training_job(services: Services, shop: ReadyPlatform) -> None:
    before = services.recommend.recommend("shop", shop.user_ids[0], k=3).model
    assert before == "itemknn"
    job = services.jobs.submit_training("shop", "popular", {}, activate=True)
    assert job.status == "queued"
    assert run_queued(services) == 1
    done = services.jobs.get("shop", job.job_id)
    assert done.status == "succeeded", done
    assert done.result is not None and done.result["model"] == "popular"
    # activate=True goes through the promotion gate: popularity is clearly worse than the active item-kNN on the
    # newest events, so it is kept inactive, with the decision and its reason in the job's result
    assert done.result["active"] is False and done.result["decision"]["decision"] == "keep"
    assert "below" in done.result["decision"]["reason"] or "worse" in done.result["decision"]["reason"]
    assert services.recommend.recommend("shop", shop.user_ids[0], k=3).model == "itemknn"
    failing = services.jobs.submit_training("shop", "itemknn", {"neighbors": 5}, activate=False)
    run_queued(services)
    assert services.jobs.wait("shop", failing.job_id, timeout=5).status == "succeeded"
    with pytest.raises(ConfigError):
        services.jobs.submit_training("shop", "itemknn", {"no_such_param": 1}, activate=False)


@pytest.mark.redis
def test_workers_share_history_through_redis(tmp_path: Path) -> None:
    prefix = f"shoprec-test-{uuid.uuid4().hex[:10]}:"
    try:
        probe = RedisCache(REDIS_URL, prefix)
    except Exception as exc:  # StorageError when no server
        pytest.skip(f"Redis at {REDIS_URL} unavailable: {exc}")
    # a long in-process TTL: only a shared cache can make worker b see worker a's write at once
    workers = [local_services(tmp_path, cache=RedisCache(REDIS_URL, prefix), cache_ttl_s=3600.0) for _ in range(2)]
    a, b = workers
    try:
        shop = synthetic_platform(a, "shop")
        assert b.recommend.recommend("shop", "visitor", k=3).items[0].reason.level == "popular"
        a.data.add_events("shop", [EventRecord("visitor", shop.item_ids[4], "view", time.time() - 1)])
        warm = b.recommend.recommend("shop", "visitor", k=3)
        assert warm.items[0].reason.level == "session"
        assert warm.items[0].reason.because_of == (shop.item_ids[4],)
        page = a.recommend.recommend("shop", "visitor", k=3, offset=3, recommendation_id=warm.recommendation_id)
        assert not {i.item_id for i in page.items} & {i.item_id for i in warm.items}
    finally:
        probe.clear_prefix()
        probe.close()
        for w in workers:
            w.close()
