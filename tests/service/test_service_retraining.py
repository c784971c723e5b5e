"""Continuous retraining (shoprec.service.retraining) on real databases: policy validation, the schedule (by new
events, by time, once per condition), the promotion gate on a time-based holdout (a personalised model beats a
popularity model on a synthetic shop with planted taste groups; the margin decides; the experiment action starts
an A/B test), and the recorded decisions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord
from shoprec.errors import DataError
from shoprec.evaluation.stored import Reindexed
from shoprec.models.base import Query, create_model
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.errors import RecordErrors
from shoprec.service.promotion import MIN_HOLDOUT_EVENTS, holdout_cutoff, judge, metric_key
from shoprec.service.retraining import TRIGGER_GRACE_S
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform, synthetic_platform
from shoprec.settings import Settings
from shoprec.storage import tables as T
from shoprec.types import EventType


@pytest.fixture
def svc(db_url: str, engine: sa.Engine, tmp_path: Path) -> Iterator[Services]:
    """Services over the backend's scratch database (SQLite, PostgreSQL, MariaDB)."""
    settings = Settings(database_url=db_url, model_dir=tmp_path / "models")
    services = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0), engine=engine)
    yield services
    services.close()


def shop(services: Services, name: str, model: str | None = "popular") -> ReadyPlatform:
    return synthetic_platform(services, name, users=100, items=50, model=model)


def new_events(services: Services, ready: ReadyPlatform, n: int, start: float | None = None) -> None:
    """n view events of known users on known items, after everything else (unique timestamps)."""
    start = time.time() + 1 if start is None else start
    users, items = ready.user_ids, ready.item_ids
    services.data.add_events(ready.name, [
        EventRecord(user_id=users[i % len(users)], item_id=items[(7 * i) % len(items)], event_type=EventType.VIEW,
                    timestamp=start + i) for i in range(n)])


def audit_actors(services: Services, subject: str) -> list[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(T.audit_log.c.actor).where(T.audit_log.c.subject == subject,
                                                                 T.audit_log.c.action == "model.activate"))
        return [r[0] for r in rows]


# ---------------------------------------------------------------- policy
BAD_POLICIES: list[tuple[dict[str, Any], str]] = [
    ({"every_hours": 0}, "every_hours"),
    ({"every_hours": float("nan")}, "every_hours"),
    ({"after_events": 0}, "after_events"),
    ({"after_events": 2.5}, "after_events"),
    ({"after_events": True}, "after_events"),
    ({"after_events": 5, "margin": 1.5}, "margin"),
    ({"after_events": 5, "margin": -0.1}, "margin"),
    ({"after_events": 5, "action": "deploy"}, "action"),
    ({"after_events": 5, "metric": "auc@10"}, "metric"),
    ({"after_events": 5, "metric": "ndcg@0"}, "metric"),
    ({"after_events": 5, "holdout_fraction": 1.0}, "holdout_fraction"),
    ({"after_events": 5, "model": "nonsense"}, "model"),
    ({"after_events": 5, "params": {"k": 3}}, "params"),
    ({"after_events": 5, "model": "itemknn", "params": {"no_such_parameter": 3}}, "params"),
]


@pytest.mark.parametrize(("values", "field"), BAD_POLICIES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_POLICIES)])
def test_a_bad_policy_is_refused_naming_the_field_and_nothing_changes(services: Services, values: dict[str, Any],
                                                                      field: str) -> None:
    services.platforms.create("p")
    services.retraining.set_policy("p", every_hours=12, after_events=None)
    args = {"every_hours": None, "after_events": None, **values}
    with pytest.raises(RecordErrors) as info:
        services.retraining.set_policy("p", **args)
    assert info.value.errors[0].field == field, str(info.value)
    assert field in str(info.value)
    assert services.retraining.policy("p").every_hours == 12


def test_policy_is_the_default_until_the_platform_sets_its_own(services: Services) -> None:
    services.platforms.create("p")
    default = services.retraining.policy("p")
    assert (default.source, default.enabled, default.margin, default.metric) == ("default", False, 0.02, "ndcg@10")
    own = services.retraining.set_policy("p", every_hours=None, after_events=500, margin=0.1, action="experiment",
                                         model="itemknn", params={"neighbors": 20}, metric="HR@20")
    assert (own.source, own.enabled, own.after_events, own.margin, own.action) == ("platform", True, 500, 0.1,
                                                                                   "experiment")
    assert (own.model, own.params, own.metric, own.holdout_fraction) == ("itemknn", {"neighbors": 20}, "hr@20", 0.1)
    off = services.retraining.set_policy("p", every_hours=None, after_events=None)
    assert (off.source, off.enabled, off.margin) == ("platform", False, 0.02)  # margin back to the default
    assert services.retraining.reset_policy("p").source == "default"
    with pytest.raises(DataError, match="unknown platform 'nope'"):
        services.retraining.policy("nope")


def test_metric_names() -> None:
    assert metric_key("ndcg@10") == ("NDCG@10", 10)
    assert metric_key(" Recall@20 ") == ("Recall@20", 20)
    assert metric_key("mrr") == ("MRR", 10)
    with pytest.raises(RecordErrors, match="field metric"):
        metric_key("ndcg")


# ---------------------------------------------------------------- schedule
def test_due_after_n_new_events_once_per_condition(svc: Services, platform: str) -> None:
    ready = shop(svc, platform)
    rt = svc.retraining
    assert platform not in rt.due()  # off by default
    rt.set_policy(platform, every_hours=None, after_events=5)
    new_events(svc, ready, 4)
    assert platform not in rt.due()
    new_events(svc, ready, 1, start=time.time() + 100)
    assert platform in rt.due()
    assert platform not in rt.due()  # claimed: it fires once while its retrain is pending
    new_events(svc, ready, 10, start=time.time() + 200)
    assert platform not in rt.due()
    decision = rt.retrain(platform, cause="schedule")
    assert decision.decision in ("promote", "keep") and decision.cause == "schedule"
    assert platform not in rt.due()  # the retrain saw those events: counting starts again
    new_events(svc, ready, 5, start=time.time() + 300)
    assert platform in rt.due()


def test_due_by_time_since_the_newest_model(svc: Services, platform: str) -> None:
    shop(svc, platform)
    rt = svc.retraining
    rt.set_policy(platform, every_hours=2, after_events=None)
    now = time.time()
    assert platform not in rt.due(now + 3600)
    assert platform in rt.due(now + 2 * 3600 + 1)
    assert platform not in rt.due(now + 2 * 3600 + 2)
    assert platform in rt.due(now + 2 * 3600 + 1 + rt.trigger_timeout_s)  # a claim whose job was lost expires


def test_due_asks_busy_and_releases_a_claim_whose_job_is_gone(svc: Services, platform: str) -> None:
    shop(svc, platform)
    rt = svc.retraining
    rt.set_policy(platform, every_hours=1, after_events=None)
    queued: set[str] = set()
    rt.busy = lambda p: p in queued
    later = time.time() + 2 * 3600
    assert platform in rt.due(later)
    queued.add(platform)
    assert platform not in rt.due(later + TRIGGER_GRACE_S + 1)  # its job is queued
    queued.clear()
    assert platform not in rt.due(later + 1)  # within the grace period after the claim
    assert platform in rt.due(later + TRIGGER_GRACE_S + 1)  # claimed, but no job: fires again


def test_a_model_trained_outside_the_schedule_restarts_the_count(svc: Services, platform: str) -> None:
    ready = shop(svc, platform)
    rt = svc.retraining
    rt.set_policy(platform, every_hours=None, after_events=3)
    new_events(svc, ready, 2)
    assert platform not in rt.due()
    svc.store.train(platform, "popular", evaluate=False)  # e.g. `shoprec train`
    assert platform not in rt.due()
    new_events(svc, ready, 2, start=time.time() + 100)
    assert platform not in rt.due()  # counted from the new model on: 2 < 3
    new_events(svc, ready, 1, start=time.time() + 200)
    assert platform in rt.due()


def test_nothing_to_retrain_is_never_due(svc: Services, platform: str) -> None:
    ready = shop(svc, platform, model=None)
    svc.retraining.set_policy(platform, every_hours=0.001, after_events=1)
    new_events(svc, ready, 3)
    assert platform not in svc.retraining.due(time.time() + 3600)


# ---------------------------------------------------------------- gate
def test_gate_promotes_a_personalised_model_over_popularity(svc: Services, platform: str) -> None:
    shop(svc, platform, model="popular")
    active = svc.store.active(platform)
    assert active is not None
    candidate = svc.store.train(platform, "itemknn", evaluate=False)
    decision = svc.retraining.gate(platform, candidate.model_id)
    assert decision.decision == "promote", decision.reason
    assert (decision.candidate_model_id, decision.active_model_id) == (candidate.model_id, active[0])
    cand, act = decision.value("candidate"), decision.value("active")
    assert cand is not None and act is not None and cand > act * 1.2
    assert decision.candidate_metrics and decision.active_metrics
    assert decision.candidate_metrics["users_evaluated"] == decision.active_metrics["users_evaluated"] > 0
    assert decision.holdout and decision.holdout["events"] > 0 and decision.holdout["cutoff"] > 0
    assert "shadow fit" in decision.holdout["candidate_saw"] and "ndcg@10" in decision.reason
    assert svc.store.active(platform)[0] == candidate.model_id  # type: ignore[index]
    assert audit_actors(svc, candidate.model_id) == ["retrain"]
    assert svc.retraining.history(platform, 5)[0] == decision


def test_gate_keeps_a_clearly_worse_model_inactive_with_the_reason(svc: Services, platform: str) -> None:
    shop(svc, platform, model="itemknn")
    active = svc.store.active(platform)
    candidate = svc.store.train(platform, "popular", evaluate=False)
    decision = svc.retraining.gate(platform, candidate.model_id)
    assert decision.decision == "keep", decision.reason
    assert "worse than the active model by more than the margin of 2.0%" in decision.reason
    assert svc.store.active(platform) == active
    [stored] = svc.retraining.history(platform, 10)
    assert stored.decision == "keep" and stored.reason == decision.reason


def test_the_margin_decides(svc: Services, platform: str) -> None:
    shop(svc, platform, model="itemknn")
    candidate = svc.store.train(platform, "popular", evaluate=False)
    svc.retraining.set_policy(platform, every_hours=None, after_events=None, margin=0.95)
    decision = svc.retraining.gate(platform, candidate.model_id)
    cand, act = decision.value("candidate"), decision.value("active")
    assert cand is not None and act is not None and act * 0.05 <= cand < act  # worse, but within 95%
    assert decision.decision == "promote" and decision.margin == 0.95


def test_judge_boundaries() -> None:
    assert judge(0.98, 1.0, "ndcg@10", 0.02)[0]
    assert not judge(0.9799, 1.0, "ndcg@10", 0.02)[0]
    assert judge(0.5, 0.5, "ndcg@10", 0.0)[0]
    assert not judge(0.4999, 0.5, "ndcg@10", 0.0)[0]
    assert judge(0.0, 0.0, "ndcg@10", 0.0)[0]
    assert not judge(None, 0.5, "ndcg@10", 0.5)[0]


def test_experiment_action_starts_an_ab_test_instead_of_promoting(svc: Services, platform: str) -> None:
    shop(svc, platform, model="popular")
    active = svc.store.active(platform)
    assert active is not None
    svc.retraining.set_policy(platform, every_hours=None, after_events=None, action="experiment")
    candidate = svc.store.train(platform, "itemknn", evaluate=False)
    decision = svc.retraining.gate(platform, candidate.model_id)
    assert decision.decision == "experiment" and decision.experiment_id, decision.reason
    experiment = svc.experiments.get(platform, decision.experiment_id)
    assert experiment.status == "running"
    assert {(v.name, v.model_id) for v in experiment.variants} == {("active", active[0]),
                                                                  ("candidate", candidate.model_id)}
    assert svc.store.active(platform) == active  # not promoted
    other = svc.store.train(platform, "itemknn", {"neighbors": 10}, evaluate=False)
    second = svc.retraining.gate(platform, other.model_id)  # one experiment at a time: kept, saying why
    assert second.decision == "keep" and "experiment could not start" in second.reason


def test_without_an_active_model_the_candidate_is_promoted(svc: Services, platform: str) -> None:
    shop(svc, platform, model=None)
    candidate = svc.store.train(platform, "popular", evaluate=False)
    decision = svc.retraining.gate(platform, candidate.model_id)
    assert decision.decision == "promote" and decision.active_model_id is None and "no active model" in decision.reason
    assert svc.store.active(platform)[0] == candidate.model_id  # type: ignore[index]


def test_retrain_trains_the_active_config_as_a_new_inactive_model_then_gates_it(svc: Services, platform: str) -> None:
    shop(svc, platform, model="itemknn")
    before = {m.model_id for m in svc.store.list_models(platform)}
    messages: list[str] = []
    decision = svc.retraining.retrain(platform, progress=messages.append)
    new = [m for m in svc.store.list_models(platform) if m.model_id not in before]
    assert [m.model_id for m in new] == [decision.candidate_model_id]
    assert new[0].name == "itemknn" and decision.decision in ("promote", "keep")
    assert any("retraining itemknn" in m for m in messages) and any("decision:" in m for m in messages)


def test_retrain_uses_the_policy_model_and_records_a_failure(svc: Services, platform: str) -> None:
    shop(svc, platform, model=None)
    with pytest.raises(DataError, match="no active model to retrain"):
        svc.retraining.retrain(platform)
    [failed] = svc.retraining.history(platform, 10)
    assert failed.decision == "failed" and "no active model" in failed.reason and failed.candidate_model_id is None
    svc.retraining.set_policy(platform, every_hours=None, after_events=None, model="popular")
    decision = svc.retraining.retrain(platform)
    assert decision.decision == "promote"
    assert [d.decision for d in svc.retraining.history(platform, 10)] == ["promote", "failed"]


def test_the_cutoff_moves_after_the_active_model_when_enough_newer_events(svc: Services, platform: str) -> None:
    ready = shop(svc, platform, model="itemknn")
    active_row = svc.store.get_model(platform, svc.store.active(platform)[0])  # type: ignore[index]
    new_events(svc, ready, MIN_HOLDOUT_EVENTS + 10)  # after the active model was trained
    candidate = svc.store.train(platform, "itemknn", evaluate=False)
    decision = svc.retraining.gate(platform, candidate.model_id)
    assert decision.holdout and decision.holdout["cutoff"] >= active_row["created_at"]  # type: ignore[index]
    assert "moved to the active model's training time" in decision.holdout["cutoff_rule"]
    assert "active_saw_holdout_events" not in decision.holdout


def test_holdout_cutoff_rules() -> None:
    ts = np.arange(1000, dtype=np.float64) + 1_000_000
    cutoff, facts = holdout_cutoff(ts, 0.1, active_at=1_000_500)  # the active model is older than the holdout
    assert (cutoff, facts["events"]) == (1_000_900, 100) and "all after" in facts["cutoff_rule"]
    cutoff, facts = holdout_cutoff(ts, 0.1, active_at=2_000_000)  # trained after every event: it saw them all
    assert cutoff == 1_000_900 and facts["active_saw_holdout_events"] == 100 and "optimistic" in facts["cutoff_rule"]
    cutoff, facts = holdout_cutoff(ts, 0.1, active_at=1_000_990.5)  # 9 newer events: too few to move
    assert cutoff == 1_000_900 and facts["active_saw_holdout_events"] == 91
    cutoff, facts = holdout_cutoff(ts, 0.1, active_at=1_000_939.5)  # 60 newer: moved there
    assert cutoff == 1_000_940 and facts["events"] == 60
    with pytest.raises(DataError, match="too little time"):
        holdout_cutoff(np.full(10, 5.0), 0.1, 0.0)


def test_reindexed_scores_a_stored_model_in_the_evaluated_data_indices() -> None:
    from shoprec.data import IdMap, Interactions

    data = Interactions.from_ids(["u1", "u1", "u2", "u2", "u3"], ["a", "b", "b", "c", "a"])
    model = create_model("itemknn", {}).fit(data)
    users = IdMap(["u9", "u3", "u1", "u2"])  # other order, one user the model never saw
    items = IdMap(["c", "new", "b", "a"])  # other order, one item it does not know
    view = Reindexed(model, users, items)
    assert view.known_items == 3
    direct = model.score([Query(user=0, history=np.array([0, 1], dtype=np.int32))])[0]  # u1, history a, b
    seen = view.score([Query(user=2, history=np.array([3, 2, 1], dtype=np.int32))])[0]  # u1, history a, b, new
    assert seen[1] == -np.inf
    assert seen[[3, 2, 0]].tolist() == pytest.approx(direct[[0, 1, 2]].tolist())
    assert view.can_score(Query(user=0)) == model.can_score(Query(user=None))  # u9: anonymous to the model


def test_schedule_queues_jobs_and_releases_a_claim_it_could_not_queue(svc: Services, platform: str) -> None:
    ready = shop(svc, platform)
    rt = svc.retraining
    rt.set_policy(platform, every_hours=None, after_events=2)
    new_events(svc, ready, 2)
    queued: list[tuple[str, str, dict[str, Any]]] = []
    full = True

    def enqueue(p: str, kind: str, params: dict[str, Any]) -> None:
        if full:
            raise RuntimeError("queue full")
        queued.append((p, kind, params))

    rt.enqueue = enqueue
    mine = [p for p in rt.schedule() if p == platform]
    assert mine == [] and queued == []
    full = False
    assert platform in rt.schedule()  # the claim was released: it fires again
    assert (platform, "retrain", {"cause": "schedule"}) in queued
    assert platform not in rt.schedule()  # once
    seen: list[str] = []
    rt.on_decision = lambda d: seen.append(d.decision)
    result = rt.run_job(platform, {"cause": "schedule"})
    assert result["cause"] == "schedule" and seen == [result["decision"]]


def test_a_deployment_default_policy_applies_to_every_platform(db_url: str, engine: sa.Engine, tmp_path: Path,
                                                               platform: str) -> None:
    from shoprec.settings import RetrainSettings

    settings = Settings(database_url=db_url, model_dir=tmp_path / "models",
                        retraining=RetrainSettings(after_events=3))
    services = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY), engine=engine)
    try:
        ready = shop(services, platform)
        assert services.retraining.policy(platform).source == "default"
        assert platform not in services.retraining.due()  # the first look takes the mark
        services.retraining.set_policy(platform, every_hours=None, after_events=None)  # off for this one
        new_events(services, ready, 3)
        assert platform not in services.retraining.due()
        services.retraining.reset_policy(platform)  # the default again
        assert platform in services.retraining.due()
    finally:
        services.close()
