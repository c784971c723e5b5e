"""The Python API (shoprec.Recommender): planted answers on synthetic DataFrames, errors naming the id or row,
a save/load round trip that gives the same lists, and the serving path's filters and reasons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shoprec
from shoprec.errors import ConfigError, DataError
from shoprec.service.errors import NotFound

GROUPS, PER_GROUP = 3, 6


def _frames(seed: int = 0, per_user: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three groups of users who each use only their group's items (user u is in group u % 3)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(90):
        g = u % GROUPS
        for t, j in enumerate(rng.permutation(PER_GROUP)[:per_user]):
            rows.append((f"u{u}", f"i{g}{j}", "purchase" if t == 0 else "view", 1_700_000_000 + u * 100 + t))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{g}{j}" for g in range(GROUPS) for j in range(PER_GROUP)],
                          "title": [f"Item {g}{j}" for g in range(GROUPS) for j in range(PER_GROUP)],
                          "category": [f"Cat {g}" for g in range(GROUPS) for _ in range(PER_GROUP)],
                          "price": [float(10 + j) for _ in range(GROUPS) for j in range(PER_GROUP)],
                          "brand": [f"B{j % 3}" for _ in range(GROUPS) for j in range(PER_GROUP)]})
    return events, items


@pytest.fixture(scope="module")
def fitted() -> shoprec.Recommender:
    events, items = _frames()
    return shoprec.Recommender("ease").fit(events, items)


def _seen(user: str) -> set[str]:
    events, _ = _frames()
    return set(events[events.user_id == user].item_id)


def test_recommend_plants_the_group_items_first(fitted: shoprec.Recommender) -> None:
    for user in ("u0", "u1", "u2", "u40"):
        group = int(user[1:]) % GROUPS
        recs = fitted.recommend(user, k=3)
        assert recs.item_ids == [i for i in recs.item_ids if i.startswith(f"i{group}")]  # own group's items
        assert not set(recs.item_ids) & _seen(user)  # seen and purchased items are left out
        assert recs[0].reason.type == "history" and set(recs[0].reason.because_of or ()) <= _seen(user)
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_filters_and_include_seen(fitted: shoprec.Recommender) -> None:
    assert all(i.startswith("i1") for i in fitted.recommend("u0", k=4, category="Cat 1").item_ids)
    assert all(int(i[-1]) <= 1 for i in fitted.recommend("u0", k=5, max_price=11).item_ids)
    first = fitted.recommend("u0", k=1).item_ids[0]
    assert first not in fitted.recommend("u0", k=5, exclude=[first]).item_ids
    events, _ = _frames()
    mine = events[events.user_id == "u0"]
    bought, viewed = set(mine[mine.event_type == "purchase"].item_id), set(mine[mine.event_type == "view"].item_id)
    again = set(fitted.recommend("u0", k=6, include_seen=True).item_ids)
    assert viewed <= again and not bought & again  # viewed items may come back; purchases stay out
    with pytest.raises(DataError, match=r"min_price \(5\) is above max_price \(1\)"):
        fitted.recommend("u0", min_price=5, max_price=1)


def test_to_pandas(fitted: shoprec.Recommender) -> None:
    frame = fitted.recommend("u3", k=4).to_pandas()
    assert list(frame.columns) == ["rank", "item_id", "score", "reason", "level", "because_of", "text"]
    assert frame["rank"].tolist() == [1, 2, 3, 4] and frame.level.iloc[0] == "personal"


def test_history_similar_and_explain(fitted: shoprec.Recommender) -> None:
    recs = fitted.recommend_for_history(["i20", "i21"], k=3)
    assert all(i.startswith("i2") for i in recs.item_ids) and not {"i20", "i21"} & set(recs.item_ids)
    assert recs[0].reason.level == "session"
    similar = fitted.similar_items("i10", k=4)
    assert all(i.startswith("i1") for i in similar.item_ids) and "i10" not in similar.item_ids
    top = fitted.recommend("u0", k=1)[0]
    why = fitted.explain("u0", top.item_id)
    assert why.score == pytest.approx(top.score) and why.reason.because_of == top.reason.because_of


def test_unknown_ids_are_named(fitted: shoprec.Recommender) -> None:
    with pytest.raises(NotFound, match="no user 'nobody'"):
        fitted.recommend("nobody")
    with pytest.raises(NotFound, match="no item 'x9'"):
        fitted.similar_items("x9")
    with pytest.raises(NotFound, match="no item 'x9'"):
        fitted.recommend_for_history(["i00", "x9"])
    with pytest.raises(NotFound, match="no user 'nobody'"):
        fitted.explain("nobody", "i00")
    with pytest.raises(NotFound, match="no item 'x9'"):
        fitted.explain("u0", "x9")


def test_business_rules_as_the_api_applies_them(fitted: shoprec.Recommender) -> None:
    from shoprec.rules import RuleError

    plain = fitted.recommend("u0", k=3)
    assert {i[1] for i in plain.item_ids} == {"0"}  # u0's own group only
    capped = fitted.recommend("u0", k=3, max_per_category=1)
    assert sorted(i[1] for i in capped.item_ids) == ["0", "1", "2"]  # one per category
    assert any("max_per_category" in (r.reason.rules or ()) for r in capped)  # the reason names the rule
    pinned = fitted.recommend("u0", k=3, pin="i25:1")
    assert pinned.item_ids[0] == "i25" and pinned[0].reason.type == "pinned"
    cheap = fitted.recommend("u0", k=3, filter="price < 12")
    assert cheap.item_ids and all(int(i[-1]) <= 1 for i in cheap.item_ids)
    visitor = fitted.recommend_for_history(["i00"], k=3, filter='category in ["Cat 1"]')
    assert visitor.item_ids and all(i.startswith("i1") for i in visitor.item_ids)
    one_each = fitted.recommend("u0", k=3, max_per_brand=1)  # the in-process catalog knows the brands
    assert len(one_each) == 3 and len({int(i[-1]) % 3 for i in one_each.item_ids}) == 3
    brand = fitted.recommend("u0", k=3, filter='brand == "B1"')
    assert brand.item_ids and all(int(i[-1]) % 3 == 1 for i in brand.item_ids)
    similar = fitted.similar_items("i00", k=3, filter='category == "Cat 2"')
    assert similar.item_ids and all(i.startswith("i2") for i in similar.item_ids)
    with pytest.raises(ConfigError, match="unknown argument 'colour'"):
        fitted.recommend("u0", colour="red")
    with pytest.raises(RuleError, match="colour"):
        fitted.recommend("u0", filter='colour == "red"')
    with pytest.raises(RuleError, match="ghost"):
        fitted.recommend("u0", pin="ghost:1")


def test_bad_frames_name_the_row_and_field() -> None:
    events, items = _frames()
    bad = events.astype({"timestamp": object})
    bad.loc[4, "timestamp"] = "yesterday"
    with pytest.raises(DataError, match=r"DataFrame 'events': 1 bad row.*row 5, field timestamp"):
        shoprec.Recommender("ease").fit(bad, items)
    with pytest.raises(DataError, match="no 'event_type' column"):
        shoprec.Recommender("ease").fit(events.drop(columns=["event_type"]))
    with pytest.raises(DataError, match="row 2, field price"):
        shoprec.Recommender("ease").fit(events, items.assign(price=["1", "cheap", *["2"] * (len(items) - 2)]))
    with pytest.raises(DataError, match="not fitted"):
        shoprec.Recommender("ease").recommend("u0")
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        shoprec.Recommender("nope")


def test_the_file_schema_aliases_and_timestamp_forms() -> None:
    events, _ = _frames()
    alias = events.rename(columns={"event_type": "type"})
    alias["type"] = alias["type"].replace({"view": "page_view"})
    alias["timestamp"] = pd.to_datetime(alias["timestamp"], unit="s")
    a = shoprec.Recommender("ease").fit(alias)
    b = shoprec.Recommender("ease").fit(events)
    assert a.recommend("u5", k=4).item_ids == b.recommend("u5", k=4).item_ids
    numbered = events.assign(user_id=events.user_id.str[1:].astype(int))  # integer ids are read as their text
    c = shoprec.Recommender("ease").fit(numbered)
    assert c.recommend(5, k=4).item_ids == c.recommend("5", k=4).item_ids == b.recommend("u5", k=4).item_ids


def test_save_load_round_trip(fitted: shoprec.Recommender, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "rec")
    loaded = shoprec.Recommender.load(path)
    for user in ("u0", "u7", "u11"):
        assert loaded.recommend(user, k=5) == fitted.recommend(user, k=5)
    assert loaded.similar_items("i03", k=4) == fitted.similar_items("i03", k=4)
    assert not any(p.suffix in (".pkl", ".pickle") for p in path.rglob("*"))
    fitted.save(path)  # a saved recommender is replaced whole
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="not a saved shoprec Recommender: not overwriting"):
        fitted.save(tmp_path / "other")
    with pytest.raises(DataError, match=r"no recommender\.json"):
        shoprec.Recommender.load(tmp_path / "other")


def test_evaluate_returns_the_protocol_metrics(fitted: shoprec.Recommender) -> None:
    metrics = fitted.evaluate(ks=(5, 10))  # 3 events per user: loo leaves 1 to train on, no co-occurrence
    assert metrics["n_users_evaluated"] == 90 and 0.0 < metrics["HR@5"] <= metrics["HR@10"] <= 1.0
    assert {"NDCG@5", "NDCG@10", "MRR"} <= set(metrics)
    events, items = _frames(per_user=5)  # 3 training events per user: the held-out item is in the user's group
    planted = shoprec.Recommender("itemknn").evaluate(events, items, ks=(5,))
    assert planted["HR@5"] == 1.0 and planted["n_users_evaluated"] == 90


def test_import_shoprec_stays_light() -> None:
    code = ("import sys, shoprec; heavy = [m for m in ('shoprec.library', 'sqlalchemy', 'torch', 'pandas') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
