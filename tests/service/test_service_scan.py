"""The int8 scan: its candidates always hold the exact top n (ties too), and lists served through it are the
lists full scoring gives."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import shoprec.service.scanned as scanned_module
from shoprec.explain import Reason
from shoprec.rules import Plan, Rules
from shoprec.service import Filters
from shoprec.service.answers import RecommendedItem
from shoprec.service.scan import Int8Scan
from shoprec.service.testing import local_services, synthetic_platform


def _exact_top(vectors: np.ndarray, query: np.ndarray, allowed: np.ndarray, n: int) -> set[int]:
    """Every allowed item scoring at least the n-th best allowed score (float64), ties included."""
    scores = vectors.astype(np.float64) @ query.astype(np.float64)
    ok = np.flatnonzero(allowed)
    if len(ok) <= n:
        return set(ok.tolist())
    nth = np.sort(scores[ok])[::-1][n - 1]
    return set(ok[scores[ok] >= nth].tolist())


def _reason(item: RecommendedItem) -> Reason:
    return replace(item.reason, model_id=None)  # two stores, two model ids


def _vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)) * rng.lognormal(0, 1, size=(n, 1))  # norms over two orders of magnitude
    v[rng.integers(0, n, 5)] = 0.0  # rows of zeros
    v[1:n // 10:2] = v[0:n // 10 - 1:2]  # duplicated rows: exact ties
    return v.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_candidates_hold_the_exact_top_n_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = int(rng.choice([3, 16, 64, 257]))
    vectors = _vectors(rng, 3000, d)
    scan = Int8Scan.build(vectors)
    assert scan is not None
    for _ in range(20):
        query = (rng.normal(size=d) * rng.choice([1e-3, 1.0, 50.0])).astype(np.float32)
        allowed = rng.random(3000) > rng.choice([0.0, 0.5, 0.99])
        n = int(rng.choice([1, 10, 50, 200]))
        found = scan.candidates(query, allowed, n)
        assert found is not None
        assert np.all(np.diff(found) > 0) and allowed[found].all()
        assert _exact_top(vectors, query, allowed, n) <= set(found.tolist())


def test_candidates_are_few_and_degenerate_queries_are_safe() -> None:
    rng = np.random.default_rng(7)
    vectors = _vectors(rng, 5000, 64)
    scan = Int8Scan.build(vectors)
    assert scan is not None
    allowed = np.ones(5000, dtype=bool)
    sizes = [len(scan.candidates(rng.normal(size=64).astype(np.float32), allowed, 50)) for _ in range(20)]
    assert 50 <= np.median(sizes) < 500  # the point of the scan: a few hundred of 5,000 are scored exactly
    assert len(scan.candidates(np.zeros(64, dtype=np.float32), allowed, 50)) == 5000  # all scores tie at 0
    assert scan.candidates(np.full(64, np.nan, dtype=np.float32), allowed, 50) is None
    few = np.zeros(5000, dtype=bool)
    few[[3, 9]] = True
    assert scan.candidates(rng.normal(size=64).astype(np.float32), few, 50).tolist() == [3, 9]


def test_no_exact_int8_product_means_no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    vectors = _vectors(np.random.default_rng(1), 100, 8)
    assert Int8Scan.build(vectors) is not None
    broken = vectors.copy()
    broken[4, 2] = np.inf
    assert Int8Scan.build(broken) is None  # no bound holds for a non-finite vector
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: (a.float() @ b.float()).round().int() + 1)  # inexact
    assert Int8Scan.build(vectors) is None

    def missing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("_int_mm not implemented for this backend")

    monkeypatch.setattr(torch, "_int_mm", missing)
    assert Int8Scan.build(vectors) is None


def test_auto_mode_keeps_the_scan_only_where_it_is_not_much_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    import shoprec.service.scan as scan_module

    vectors = _vectors(np.random.default_rng(2), 2000, 32)
    scan_ms, full_ms = scan_module.timing(Int8Scan(vectors), vectors, rounds=3)
    assert scan_ms > 0 and full_ms > 0
    assert Int8Scan.build(vectors, "off") is None
    assert Int8Scan.build(vectors, "on") is not None
    for timed, kept in (((0.5, 1.0), True), ((1.4, 1.0), True), ((3.2, 1.0), False)):  # AVX2-only CPUs: ~3x
        monkeypatch.setattr(scan_module, "timing", lambda scan, v, timed=timed: timed)
        assert (Int8Scan.build(vectors, "auto") is not None) == kept, timed
    monkeypatch.setattr(scan_module, "timing", lambda scan, v: (3.2, 1.0))
    assert Int8Scan.build(vectors, "on") is not None  # "on" is not timed
    with pytest.raises(ValueError, match="scan mode"):
        Int8Scan.build(vectors, "fast")


def test_scan_setting_comes_from_the_environment_and_is_checked(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from shoprec.errors import ConfigError
    from shoprec.service import ServingConfig

    assert ServingConfig().scan == "auto"
    monkeypatch.setenv("SHOPREC_SCAN", " OFF ")
    assert ServingConfig.from_env().scan == "off"
    monkeypatch.setenv("SHOPREC_SCAN", "sometimes")
    with pytest.raises(ConfigError, match="SHOPREC_SCAN"):
        ServingConfig.from_env()
    monkeypatch.delenv("SHOPREC_SCAN")
    off = local_services(tmp_path, scan_min_items=1, scan="off")
    try:
        synthetic_platform(off, "shop", users=40, items=100, model="als", params={"embedding_size": 8, "epochs": 2})
        assert off.models.get("shop").scan is None
    finally:
        off.close()


def test_served_lists_through_the_scan_are_the_full_scoring_lists(tmp_path: Path) -> None:
    config = {"page_depth": 20, "list_depth": 40, "max_k": 20}
    scanned = local_services(tmp_path / "a", scan_min_items=1, scan="on", **config)
    full = local_services(tmp_path / "b", scan_min_items=10**9, **config)
    try:
        shops = [synthetic_platform(s, "shop", users=120, items=300, model="als",
                                    params={"embedding_size": 16, "epochs": 5}) for s in (scanned, full)]
        assert scanned.models.get("shop").scan is not None and full.models.get("shop").scan is None
        category = shops[0].data.items[0].category.split(" > ")[0]
        for user in [*shops[0].user_ids[:40], "new-user"]:
            for filters in (None, Filters(category=category), Filters(exclude=tuple(shops[0].item_ids[:30]))):
                a = scanned.recommend.recommend("shop", user, k=20, filters=filters).items
                b = full.recommend.recommend("shop", user, k=20, filters=filters).items
                assert [i.item_id for i in a] == [i.item_id for i in b], (user, filters)
                assert [_reason(i) for i in a] == [_reason(i) for i in b]
                assert np.allclose([i.score for i in a], [i.score for i in b], atol=1e-5)
    finally:
        scanned.close()
        full.close()


def _rules(shop: object) -> dict[str, Rules]:
    items = shop.data.items  # type: ignore[attr-defined]
    top = Counter(i.category.split(" > ")[0] for i in items).most_common(3)
    (first, _), (second, _), (third, _) = top
    pinned = items[7].item_id
    return {
        "cap": Rules.parse(max_per_category=2),
        "cap-deep": Rules.parse(max_per_category=1, max_per_brand=1),
        "boost": Rules.parse(boost=[f'category == "{second}": 0.3', f'category == "{third}": -0.5']),
        "boost-cap": Rules.parse(boost=[f'category == "{second}": 1'], max_per_category=3),
        "all": Rules.parse(filter=f'category != "{first}"', boost=[f'category == "{second}": 0.2'],
                           pin=f"{pinned}:3", max_per_category=2),
        "diversity": Rules.parse(diversity=0.5, max_per_category=3),
    }


@pytest.mark.parametrize("full_share", [4, 10**9], ids=["deepened-to-full", "deepened-by-search"])
def test_lists_with_rules_through_the_scan_are_the_full_scoring_lists(tmp_path: Path, full_share: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Boosts, caps and diversity reorder the model's list beyond its top n: the scan's candidates must still
    hold every item the rules could place (a short pool is deepened, never filled from popularity instead)."""
    monkeypatch.setattr(scanned_module, "FULL_SHARE", full_share)
    resumed: Counter[str] = Counter()  # how the rules reached below a scanned level's floor
    rank = Plan.rank

    def counted(self: Plan, *args: object, **kwargs: object) -> object:
        if kwargs.get("resume"):
            resumed["below"] += 1
        return rank(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Plan, "rank", counted)
    config = {"page_depth": 20, "list_depth": 40, "max_k": 20}
    scanned = local_services(tmp_path / "a", scan_min_items=1, scan="on", **config)
    full = local_services(tmp_path / "b", scan_min_items=10**9, **config)
    try:
        shops = [synthetic_platform(s, "shop", users=120, items=600, model="als",
                                    params={"embedding_size": 16, "epochs": 5}) for s in (scanned, full)]
        assert scanned.models.get("shop").scan is not None and full.models.get("shop").scan is None
        for name, rules in _rules(shops[0]).items():
            levels: Counter[str | None] = Counter()
            for user in shops[0].user_ids[:30]:
                a = scanned.recommend.recommend("shop", user, k=20, filters=Filters(rules=rules)).items
                b = full.recommend.recommend("shop", user, k=20, filters=Filters(rules=rules)).items
                assert [i.item_id for i in a] == [i.item_id for i in b], (name, user)
                assert [_reason(i) for i in a] == [_reason(i) for i in b], (name, user)
                assert np.allclose([i.score for i in a], [i.score for i in b], atol=1e-5)
                levels.update(i.reason.level for i in a)
            assert levels["personal"] > 0, name
        assert resumed["below"] > 0  # the caps walked below the floor, and the walk went on there
    finally:
        scanned.close()
        full.close()


@pytest.mark.parametrize("config", [{"scan_min_items": 1, "scan": "on"}, {"ann_threshold": 10, "ann_candidates": 30}],
                         ids=["scan", "ann"])
def test_filters_leaving_only_items_newer_than_the_model_fall_back(tmp_path: Path, config: dict) -> None:
    """No candidate of the model passes the filters (a category of items added after training): the list
    comes from the fallbacks instead of failing."""
    from shoprec.data.records import ItemRecord

    if "ann_threshold" in config:
        pytest.importorskip("faiss")
    svc = local_services(tmp_path, **config)
    try:
        shop = synthetic_platform(svc, "shop", model="als", params={"embedding_size": 8, "epochs": 3})
        svc.data.upsert_items("shop", [ItemRecord(item_id=f"fresh{i}", title=f"Fresh {i}", category="Fresh")
                                       for i in range(5)])
        answer = svc.recommend.recommend("shop", shop.user_ids[0], k=5, filters=Filters(category="Fresh"))
        assert sorted(i.item_id for i in answer.items) == [f"fresh{i}" for i in range(5)]
        assert {i.reason.level for i in answer.items} == {"popular_category"}
    finally:
        svc.close()
