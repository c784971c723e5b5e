"""shoprec.client against a live `shoprec serve` process (tests/client/conftest.py): every route family, typed
results, errors carrying the API's body, and retries after a dropped connection that store nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from urllib.parse import urlparse

import pytest
from clienthelpers import DroppingProxy, Live

from shoprec.client import (
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    Retries,
    Unauthorized,
)
from shoprec.client.models import ItemOut, JobOut, RecommendationOut, WriteOut

FAST = Retries(attempts=4, backoff_s=0.05)


def _user() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


def _events_of(api: Client, user: str) -> Counter[tuple[str, str]]:
    return Counter((e["item_id"], e["type"]) for e in api.export_user(user)["events"])


def test_health_platforms_items_users_events(live: Live) -> None:
    with Client(live.base, live.api_key, retries=FAST) as api, \
            Client(live.base, live.admin_key, platform="shop", retries=FAST) as admin:
        assert api.live() == {"status": "ok"} and api.ready()["status"] == "ok"
        created = admin.create_platform(f"second-{uuid.uuid4().hex[:6]}")
        assert created.api_key.startswith("sk_")
        wrote = api.put_items([{"item_id": "mug-1", "title": "Blue mug", "category": "kitchen/mugs", "price": 9.5}])
        assert isinstance(wrote, WriteOut) and wrote.accepted == 1
        item = api.get_item("mug-1")
        assert isinstance(item, ItemOut) and item.title == "Blue mug" and item.price == 9.5
        user = _user()
        assert api.post_users([{"user_id": user, "tier": "gold"}]).accepted == 1
        events = api.post_events([{"user_id": user, "item_id": "mug-1", "type": "view"},
                                  {"user_id": user, "item_id": live.item_ids[0], "type": "purchase"}])
        assert events.accepted == 2 and events.duplicates == 0
        got = api.get_user(user)
        assert got.attributes["tier"] == "gold" and {e.item_id for e in got.recent_events} >= {"mug-1"}
        assert _events_of(api, user) == Counter({("mug-1", "view"): 1, (live.item_ids[0], "purchase"): 1})
        api.delete_item("mug-1")
        with pytest.raises(NotFound) as missing:
            api.get_item("mug-1")
        assert missing.value.status == 404 and missing.value.code == "not_found" and "mug-1" in missing.value.message
        api.erase_user(user)
        with pytest.raises(NotFound):
            api.get_user(user)


def test_recommendations_explain_session_and_feedback(live: Live) -> None:
    with Client(live.base, live.api_key, retries=FAST) as api:
        user = live.user_ids[0]
        top = api.recommend(user, k=5, exclude=[live.item_ids[1]])
        assert isinstance(top, RecommendationOut) and len(top.items) == 5
        assert live.item_ids[1] not in [i.item_id for i in top.items]
        page = api.recommend(user, k=5, offset=5, recommendation_id=top.recommendation_id)
        assert page.recommendation_id == top.recommendation_id and page.offset == 5
        why = api.explain(user, top.items[0].item_id)
        assert why.item_id == top.items[0].item_id and why.reason
        similar = api.similar_items(live.item_ids[0], k=3)
        assert len(similar.items) == 3 and live.item_ids[0] not in [i.item_id for i in similar.items]
        session = api.recommend_session([{"item_id": live.item_ids[2], "type": "view"}], k=4)
        assert len(session.items) == 4
        fed = api.feedback(top.recommendation_id, top.items[0].item_id, "click")
        assert fed.event_stored and fed.item_id == top.items[0].item_id


def test_business_rules(live: Live) -> None:
    with Client(live.base, live.api_key, retries=FAST) as api:
        user, pinned = live.user_ids[0], live.item_ids[3]
        top = api.recommend(user, k=4, pin=f"{pinned}:1", boost="price < 1000000: 0.1")
        assert top.items[0].item_id == pinned and top.items[0].reason["type"] == "pinned"
        like = api.similar_items(live.item_ids[0], k=3, pin=[f"{pinned}:2"], max_per_category=3)
        assert like.items[1].item_id == pinned and like.items[1].reason["type"] == "pinned"
        saved = api.set_rules({"max_per_category": 2, "pin": [f"{pinned}:2"]})
        assert saved.max_per_category == 2 and api.rules().pin == [f"{pinned}:2"]
        assert api.recommend(user, k=4).items[1].item_id == pinned  # the saved default applies
        assert api.clear_rules().pin == []
        with pytest.raises(InvalidRequest) as bad:
            api.recommend(user, k=4, filter='colour == "red"')
        assert bad.value.code == "bad_expression" and bad.value.errors[0].field == "filter"


def test_list_types(live: Live) -> None:
    with Client(live.base, live.api_key, retries=FAST) as api:
        user, cart = live.user_ids[0], live.item_ids[:2]
        assert len(api.trending(4, window="7d").items) == 4
        assert len(api.buy_again(user, 3).items) == 3  # a fallback fills what the user's purchases do not
        together = api.bought_together(cart, 3)
        assert len(together.items) == 3 and not set(cart) & {i.item_id for i in together.items}
        assert len(api.new_arrivals(user, 3, days=30).items) == 3
        with pytest.raises(NotFound) as unknown:
            api.bought_together(["no-such-item"], 3)
        assert unknown.value.status == 404 and "no-such-item" in str(unknown.value.body)


def test_models_jobs_experiments_retraining(live: Live) -> None:
    with Client(live.base, live.api_key, retries=FAST) as api:
        models = {m.model_id: m for m in api.list_models()}
        active = next(m.model_id for m in models.values() if m.active)
        assert live.popular_id in models
        assert api.activate_model(live.popular_id).active
        assert api.activate_model(active).active
        job = api.train("popular")
        assert isinstance(job, JobOut) and job.status == "queued"  # no worker runs here
        assert job.job_id in [j.job_id for j in api.list_jobs(status=["queued", "running"])]
        assert api.get_job(job.job_id).kind == job.kind
        assert api.cancel_job(job.job_id).status == "cancelled"
        with pytest.raises(Conflict) as finished:
            api.cancel_job(job.job_id)
        assert finished.value.body["error"] == "conflict"

        exp = api.create_experiment(f"ab-{uuid.uuid4().hex[:6]}", [
            {"name": "control", "model_id": active, "share": 0.5},
            {"name": "popular", "model_id": live.popular_id, "share": 0.5}])
        assert exp.experiment_id in [e.experiment_id for e in api.list_experiments()]
        assert api.get_experiment(exp.experiment_id).name == exp.name
        assert {v["name"] for v in api.experiment_results(exp.experiment_id).variants} == {"control", "popular"}
        assert api.stop_experiment(exp.experiment_id).status == "stopped"

        policy = api.set_retraining_policy({"every_hours": 24, "model": "popular"})
        assert policy.every_hours == 24 and api.retraining_policy().source == "platform"
        assert api.reset_retraining_policy().source != "platform"
        assert isinstance(api.retraining_decisions(limit=5), list)
        run = api.retrain_now()
        assert run.queued and run.platform == "shop"
        for queued in api.list_jobs(status="queued"):
            api.cancel_job(queued.job_id)


def test_keys_audit_and_the_events_scope(live: Live) -> None:
    with Client(live.base, live.api_key, retries=FAST) as api:
        made = api.create_key(["events"], name="storefront")
        assert made.scopes == ["events"] and made.api_key.startswith("sk_")
        assert made.key_id in [k.key_id for k in api.list_keys()]
        with Client(live.base, made.api_key, retries=FAST) as page:
            user = _user()
            assert page.post_events([{"user_id": user, "item_id": live.item_ids[0], "type": "view"}]).accepted == 1
            for attempt in (lambda: page.recommend(user), lambda: page.get_item(live.item_ids[0]),
                            lambda: page.list_keys(), lambda: page.post_users([{"user_id": user}]),
                            lambda: page.feedback("r", live.item_ids[0], "click")):
                with pytest.raises(Forbidden) as refused:
                    attempt()
                assert refused.value.status == 403 and refused.value.code == "forbidden"
        rotated = api.rotate_key(made.key_id)
        assert rotated.scopes == ["events"] and rotated.key_id != made.key_id
        api.revoke_key(rotated.key_id)
        actions = [a.action for a in api.audit(limit=20)]
        assert "key.create" in " ".join(actions) or actions  # the audit log names the key actions
        assert any("revoke" in a for a in actions)


def test_a_wrong_key_raises_with_the_api_401_body(live: Live) -> None:
    with Client(live.base, "sk_not-a-key", retries=FAST) as api, pytest.raises(Unauthorized) as wrong:
        api.recommend(live.user_ids[0])
    error = wrong.value
    assert error.status == 401 and error.code == "unauthorized" and "X-API-Key" in error.message
    assert error.body == {"error": "unauthorized", "message": error.message, "errors": []}
    assert error.request_id and "401 unauthorized" in str(error)


def test_a_retry_after_a_dropped_connection_stores_each_event_once(live: Live) -> None:
    proxy = DroppingProxy(urlparse(live.base).port or 80, b"POST /v1/events", drops=1)
    try:
        user = _user()
        with Client(proxy.url, live.api_key, retries=FAST) as api:
            wrote = api.post_events([{"user_id": user, "item_id": live.item_ids[i], "type": "view"}
                                     for i in range(3)])
            assert proxy.dropped == 1  # the first answer was lost after the server stored the events
            assert wrote.accepted == 3 and wrote.duplicates == 0  # the first answer, replayed to the retry
            assert _events_of(api, user) == Counter({(live.item_ids[i], "view"): 1 for i in range(3)})
    finally:
        proxy.close()


def test_a_write_without_a_key_is_not_sent_twice_after_a_lost_answer(live: Live) -> None:
    proxy = DroppingProxy(urlparse(live.base).port or 80, b"POST /v1/platforms", drops=1)
    name = f"once-{uuid.uuid4().hex[:6]}"
    try:
        with Client(proxy.url, live.admin_key, retries=FAST) as admin, pytest.raises(ConnectionFailed) as lost:
            admin.create_platform(name)
        assert proxy.dropped == 1 and "after 1 tries" in str(lost.value)
    finally:
        proxy.close()
    with Client(live.base, live.admin_key, platform=name) as admin:  # it was created, once: it has one key
        assert [k.scopes for k in admin.list_keys()] == [["read", "write", "admin", "train", "events"]]


def test_async_client_twin(live: Live) -> None:
    proxy = DroppingProxy(urlparse(live.base).port or 80, b"POST /v1/events", drops=1)
    user = _user()

    async def run() -> None:
        async with AsyncClient(proxy.url, live.api_key, retries=FAST) as api:
            wrote = await api.post_events([{"user_id": user, "item_id": live.item_ids[4], "type": "cart"}])
            assert proxy.dropped == 1 and wrote.accepted == 1
            top = await api.recommend(user, k=3)
            assert len(top.items) == 3 and top.items[0].reason["level"]
            assert (await api.get_item(live.item_ids[4])).item_id == live.item_ids[4]
        async with AsyncClient(live.base, "sk_wrong", retries=FAST) as wrong:
            with pytest.raises(Unauthorized) as refused:
                await wrong.list_models()
            assert refused.value.body["error"] == "unauthorized"

    try:
        asyncio.run(run())
    finally:
        proxy.close()
    with Client(live.base, live.api_key) as api:
        assert _events_of(api, user) == Counter({(live.item_ids[4], "cart"): 1})
