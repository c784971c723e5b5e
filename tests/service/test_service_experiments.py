"""Experiments: validation, stable assignment, serving the variant's model, attribution and results."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scipy.stats import norm

from shoprec.data.records import EventRecord
from shoprec.errors import ConfigError, DataError
from shoprec.service import Services, ServingConfig
from shoprec.service.errors import NotFound, RecordErrors
from shoprec.service.experiment_stats import two_proportion_p, wilson
from shoprec.service.experiments import bucket
from shoprec.service.testing import ReadyPlatform, create_test_experiment, local_services, synthetic_platform
from shoprec.types import EventType


def _two_variants(services: Services, shop: ReadyPlatform) -> list[dict]:
    popular = services.store.train("shop", "popular", evaluate=False).model_id
    return [{"name": "knn", "model_id": shop.trained.model_id, "share": 0.5},
            {"name": "pop", "model_id": popular, "share": 0.5}]


def test_bad_experiments_are_refused_naming_the_field(services: Services, shop: ReadyPlatform) -> None:
    variants = _two_variants(services, shop)
    cases = [
        ([{**variants[0], "share": 0.7}, variants[1]], "variants.share"),
        ([variants[0], {**variants[1], "model_id": "nope"}], "variants.1.model_id"),
        ([variants[0], {**variants[1], "name": "knn"}], "variants.1.name"),
        ([{**variants[0], "share": 1.0}], "variants"),
    ]
    for bad, field in cases:
        with pytest.raises(RecordErrors) as info:
            services.experiments.create("shop", "x", bad)
        assert field in {e.field for e in info.value.errors}
    with pytest.raises(RecordErrors, match="end"):
        services.experiments.create("shop", "x", variants, start=time.time() + 100, end=time.time() + 50)
    with pytest.raises(DataError, match="name"):
        services.experiments.create("shop", "  ", variants)
    services.experiments.create("shop", "first", variants)
    with pytest.raises(RecordErrors, match="overlaps"):
        services.experiments.create("shop", "second", variants)
    assert [e.name for e in services.experiments.list("shop")] == ["first"]


def test_model_of_another_platform_is_refused(services: Services, shop: ReadyPlatform) -> None:
    other = synthetic_platform(services, "other", users=20, items=15, model="popular")
    variants = [{"name": "a", "model_id": shop.trained.model_id, "share": 0.5},
                {"name": "b", "model_id": other.trained.model_id, "share": 0.5}]
    with pytest.raises(RecordErrors, match=r"variants\.1\.model_id"):
        services.experiments.create("shop", "x", variants)


def test_users_get_their_variants_model_stably(services: Services, shop: ReadyPlatform) -> None:
    exp = services.experiments.create("shop", "knn vs pop", _two_variants(services, shop))
    seen = {}
    for user in shop.user_ids[:40]:
        answer = services.recommend.recommend("shop", user, k=5)
        assert answer.experiment == exp.experiment_id
        assert answer.model == {"knn": "itemknn", "pop": "popular"}[answer.variant]
        seen[user] = answer.variant
        expected = "knn" if bucket(exp.experiment_id, user) < 0.5 else "pop"
        assert answer.variant == expected
    assert set(seen.values()) == {"knn", "pop"}
    again = {u: services.recommend.recommend("shop", u, k=5).variant for u in shop.user_ids[:40]}
    assert again == seen
    services.experiments.stop("shop", exp.experiment_id)
    after = services.recommend.recommend("shop", shop.user_ids[0], k=5)
    assert after.experiment is None and after.model == "itemknn"
    assert services.experiments.get("shop", exp.experiment_id).status == "stopped"


def test_feedback_and_window_events_are_credited_to_list_position_and_variant(services: Services,
                                                                            shop: ReadyPlatform) -> None:
    exp = services.experiments.create("shop", "credit", _two_variants(services, shop))
    user = shop.user_ids[0]
    answer = services.recommend.recommend("shop", user, k=5)
    first, third = answer.items[0].item_id, answer.items[2].item_id
    now = time.time()
    # an event carrying the recommendation_id, and a later purchase of another shown item without it
    services.data.add_events("shop", [
        EventRecord(user_id=user, item_id=first, event_type=EventType.CLICK, timestamp=now,
                    context={"recommendation_id": answer.recommendation_id}),
        EventRecord(user_id=user, item_id=third, event_type=EventType.PURCHASE, timestamp=now + 1),
        EventRecord(user_id=user, item_id=third, event_type=EventType.PURCHASE, timestamp=now + 2),  # counted once
        EventRecord(user_id=user, item_id=first, event_type=EventType.CLICK, timestamp=now + 7200),  # too late
    ])
    results = services.experiments.results("shop", exp.experiment_id)
    variant = next(v for v in results.variants if v.name == answer.variant)
    assert (variant.lists, variant.impressions, variant.clicks, variant.purchases) == (1, 5, 2, 1)
    assert variant.clicks_by_position == {"0": 1, "2": 1}
    assert variant.ctr.value == pytest.approx(0.4)
    low, high = variant.ctr.ci95
    assert low < 0.4 < high


def test_results_compare_against_the_control(services: Services, shop: ReadyPlatform) -> None:
    exp = services.experiments.create("shop", "empty", _two_variants(services, shop))
    results = services.experiments.results("shop", exp.experiment_id)
    vs_control = results.variants[1].vs_control
    assert results.control == "knn" and vs_control is not None and vs_control.ctr_p_value is None


def test_experiments_are_private_to_their_platform(services: Services, shop: ReadyPlatform) -> None:
    synthetic_platform(services, "other", users=20, items=15, model="popular")
    exp_id = create_test_experiment(services, "other")
    for call in (services.experiments.get, services.experiments.stop, services.experiments.results):
        with pytest.raises(NotFound):
            call("shop", exp_id)
    assert services.experiments.list("shop") == []


def test_wilson_and_z_test_match_known_values() -> None:
    low, high = wilson(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    assert wilson(0, 0) == (0.0, 1.0)
    p = two_proportion_p(120, 1000, 90, 1000)  # pooled 0.105, se 0.01371, z 2.188
    assert p is not None and 2 * norm.sf(0.03 / (0.105 * 0.895 * 0.002) ** 0.5) == pytest.approx(p, rel=1e-9)
    assert two_proportion_p(0, 10, 0, 10) is None


def test_the_attribution_window_is_configurable(tmp_path: Path) -> None:
    services = local_services(tmp_path, attribution_window_s=0.0)
    try:
        shop = synthetic_platform(services, "shop", users=30, items=20)
        exp = services.experiments.create("shop", "w", _two_variants(services, shop))
        user = shop.user_ids[0]
        item = services.recommend.recommend("shop", user, k=3).items[0].item_id
        services.data.add_events("shop", [EventRecord(user_id=user, item_id=item, event_type=EventType.CLICK,
                                                      timestamp=time.time() + 5)])
        assert sum(v.clicks for v in services.experiments.results("shop", exp.experiment_id).variants) == 0
    finally:
        services.close()
    with pytest.raises(ConfigError, match="attribution_window_s"):
        ServingConfig(attribution_window_s=-1.0)
