"""The synthetic generator: determinism, record shape, funnel, multi-platform overlap, and learnable structure."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import pairwise

import numpy as np
import pytest

from shoprec.data.records import EventRecord, ItemRecord, UserRecord
from shoprec.data.synthetic import NOISE_KINDS, SOURCE_FILE, SyntheticConfig, SyntheticData, generate, platform_name
from shoprec.errors import ConfigError, DataError
from shoprec.models.base import Query
from shoprec.models.popular import Popular, PopularConfig
from shoprec.ranking import target_ranks
from shoprec.types import EventType


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(SyntheticConfig())


@pytest.fixture(scope="module")
def multi() -> SyntheticData:
    return generate(SyntheticConfig(n_users=200, n_items=120, n_platforms=3, overlap=0.4, noise_rate=0.03, seed=7))


def _fingerprint(d: SyntheticData) -> list[str]:
    return [repr(r) for p in d.platforms.values() for r in p.records()]


# ------------------------------------------------------------------------------ determinism and config
def test_same_seed_gives_identical_data_and_different_seeds_differ():
    cfg = SyntheticConfig(n_users=60, n_items=50, n_platforms=2, noise_rate=0.05, seed=3)
    a, b = generate(cfg), generate(cfg)
    assert _fingerprint(a) == _fingerprint(b)
    assert np.array_equal(a.taste, b.taste)
    c = generate(SyntheticConfig(n_users=60, n_items=50, n_platforms=2, noise_rate=0.05, seed=4))
    assert _fingerprint(a) != _fingerprint(c)
    assert [i.title for i in a.platform().items] != [i.title for i in c.platform().items]


def test_noise_does_not_change_the_clean_data():
    clean = generate(SyntheticConfig(n_users=80, n_items=60, seed=5))
    noisy = generate(SyntheticConfig(n_users=80, n_items=60, seed=5, noise_rate=0.1))
    strip = [(e.user_id, e.item_id, e.event_type, e.timestamp, e.value) for e in clean.platform().events]
    assert strip == [(e.user_id, e.item_id, e.event_type, e.timestamp, e.value) for e in noisy.platform().events]
    assert not clean.platform().noise
    assert len(noisy.platform().noise) == round(0.1 * len(noisy.platform().events))


@pytest.mark.parametrize(("params", "field"), [
    ({"n_users": 0}, "n_users"), ({"overlap": 1.5}, "overlap"), ({"p_cart": -0.1}, "p_cart"),
    ({"n_items": 5, "n_categories": 10}, "n_items"), ({"n_brands": 10_000}, "n_brands"),
    ({"sessions_per_user": 0.5}, "sessions_per_user"), ({"days": 0.01}, "days"),
])
def test_bad_config_names_the_field(params, field):
    with pytest.raises(ConfigError, match=field):
        SyntheticConfig(**params)


def test_default_size_is_small():
    p = generate().platform()  # speed is not a unit test's business (no wall-clock assertion)
    assert (len(p.users), len(p.items)) == (500, 300)


def test_unknown_platform_is_a_data_error(data):
    with pytest.raises(DataError, match="shop-z"):
        data.platform("shop-z")


def test_platform_names_are_stable():
    assert [platform_name(i) for i in (0, 1, 25, 26, 27)] == ["shop-a", "shop-b", "shop-z", "shop-aa", "shop-ab"]


# ------------------------------------------------------------------------------ records
def test_records_are_canonical_with_sources(data):
    p = data.platform()
    stream = list(p.records())
    assert len(stream) == len(p.items) + len(p.users) + len(p.events)
    assert [r.source.line for r in stream] == list(range(1, len(stream) + 1))
    assert {r.source.file for r in stream} == {SOURCE_FILE}
    kinds = [type(r) for r in stream]
    assert kinds == [ItemRecord] * len(p.items) + [UserRecord] * len(p.users) + [EventRecord] * len(p.events)


def test_items_have_readable_titles_category_paths_and_prices(data):
    items = data.platform().items
    assert len({i.item_id for i in items}) == len(items)
    assert len({i.title for i in items}) > 0.95 * len(items)
    for item in items:
        assert item.title.startswith(item.brand + " ")
        assert ", " in item.title and str(item.attributes["type"]) in item.title
        assert item.category in data.categories and " > " in item.category
        assert item.price is not None and item.price > 0
        assert item.description
    assert len({i.category for i in items}) == data.config.n_categories
    assert len({i.brand for i in items}) > 1


def test_timestamps_increase_within_the_time_range(data):
    cfg = data.config
    events = data.platform().events
    ts = np.array([e.timestamp for e in events])
    assert np.all(np.diff(ts) >= 0)
    assert ts.min() >= cfg.start_time and ts.max() <= cfg.end_time
    assert ts.max() - ts.min() > 0.5 * cfg.days * 86400  # spread over the range, not bunched


def test_sessions_follow_view_cart_purchase_with_drop_off(data):
    by_session: dict[str, list[EventRecord]] = defaultdict(list)
    for e in data.platform().events:
        by_session[e.session_id or ""].append(e)
    for events in by_session.values():
        seen: set[tuple[str, EventType]] = set()
        for e in events:
            if e.event_type == EventType.CART:
                assert (e.item_id, EventType.VIEW) in seen
            if e.event_type == EventType.PURCHASE:
                assert (e.item_id, EventType.CART) in seen
            if e.event_type == EventType.RATING:
                assert (e.item_id, EventType.PURCHASE) in seen and e.value in {1.0, 2.0, 3.0, 4.0, 5.0}
            seen.add((e.item_id, e.event_type))
    counts = data.platform().event_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > counts["rating"] > 0


def test_noise_events_carry_the_planted_defects(multi):
    p = multi.platform("shop-b")
    noise = p.noise
    assert len(noise) >= len(NOISE_KINDS)
    stream_ids = {id(r) for r in p.records()}
    assert all(id(e) in stream_ids for e in noise)
    assert any(e.user_id == "" for e in noise)
    assert any(e.item_id == "" for e in noise)
    assert any(math.isnan(e.timestamp) for e in noise)
    assert any(e.timestamp > multi.config.end_time + 365 * 86400 for e in noise)
    assert any(e.item_id == "POST" for e in noise)
    assert any(e.event_type == EventType.PURCHASE and e.value is not None and e.value <= 0 for e in noise)
    assert any(e.context is not None and e.context["price"] <= 0 for e in noise)
    clean = {(e.user_id, e.item_id, e.event_type, e.timestamp, e.value, e.session_id) for e in p.events}
    assert any((e.user_id, e.item_id, e.event_type, e.timestamp, e.value, e.session_id) in clean and e.context is None
               for e in noise)  # exact duplicates


def test_to_interactions_matches_the_records(data):
    inter, catalog = data.to_interactions()
    p = data.platform()
    assert len(inter) == len(p.events)
    assert inter.n_users == len(p.users) and inter.n_items == len(p.items) == len(catalog)
    assert catalog.items == inter.items
    for row in (0, len(inter) // 2, len(inter) - 1):
        e = p.events[row]
        assert inter.users.external(int(inter.user[row])) == e.user_id
        assert inter.items.external(int(inter.item[row])) == e.item_id
        assert EventType.from_code(int(inter.event_type[row])) == e.event_type
        assert inter.timestamp[row] == int(e.timestamp)
    j = int(inter.item[0])
    assert catalog.title[j] == p.items[j].title and catalog.category[j] == p.items[j].category
    rated = inter.event_type == EventType.RATING.code
    assert np.all(np.isfinite(inter.value[rated])) and np.all(np.isnan(inter.value[~rated]))


# ------------------------------------------------------------------------------ platforms
def test_platforms_share_people_by_overlap(multi):
    cfg = multi.config
    names = multi.platform_names
    assert names == ["shop-a", "shop-b", "shop-c"]
    users = {n: {u.user_id for u in multi.platform(n).users} for n in names}
    assert all(len(u) == cfg.n_users for u in users.values())
    earlier = users["shop-a"] | users["shop-b"]
    assert len(users["shop-b"] & users["shop-a"]) == round(cfg.overlap * cfg.n_users)
    assert len(users["shop-c"] & earlier) == round(cfg.overlap * cfg.n_users)
    assert len({i.item_id for n in names for i in multi.platform(n).items}) == 3 * cfg.n_items


def test_shared_people_keep_their_tastes_across_platforms(multi):
    top = {}
    for name in ("shop-a", "shop-b"):
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for e in multi.platform(name).events:
            counts[e.user_id][e.item_id] += 1
        cat_of = {i.item_id: i.category for i in multi.platform(name).items}
        top[name] = {u: Counter({cat_of[i]: n for i, n in c.items()}).most_common(1)[0][0]
                     for u, c in counts.items()}
    shared = sorted(set(top["shop-a"]) & set(top["shop-b"]))
    others = np.random.default_rng(0).permutation(shared)
    agree = np.mean([top["shop-a"][u] == top["shop-b"][u] for u in shared])
    chance = np.mean([top["shop-a"][u] == top["shop-b"][v] for u, v in zip(shared, others, strict=True)])
    assert len(shared) > 30
    assert agree > 2 * chance + 0.05  # a person's favourite category on shop-b is their one on shop-a


# ------------------------------------------------------------------------------ learnable structure
def test_users_choose_their_latent_categories(data):
    p = data.platform()
    cat_index = {c: k for k, c in enumerate(data.categories)}
    item_cat = {i.item_id: cat_index[i.category] for i in p.items}
    person = {u: k for k, u in enumerate(data.person_ids)}
    hits = []
    for user, events in _by_user(p.events).items():
        counts = np.bincount([item_cat[e.item_id] for e in events], minlength=len(data.categories))
        hits.append(data.taste[person[user], counts.argmax()] >= np.sort(data.taste[person[user]])[-3])
    assert np.mean(hits) > 0.6  # the most visited category is one of the user's top-3 tastes


def test_purchases_within_a_category_follow_the_typical_order(data):
    p = data.platform()
    stage = {i.item_id: (i.category, int(i.attributes["stage"])) for i in p.items}
    pairs = []
    for events in _by_user(p.events).values():
        last_stage: dict[str, int] = {}
        for e in events:
            if e.event_type == EventType.PURCHASE:
                cat, s = stage[e.item_id]
                if cat in last_stage:
                    pairs.append(s > last_stage[cat])
                last_stage[cat] = s
    assert len(pairs) > 30
    assert np.mean(pairs) > 0.6  # accessories come after the main item far more often than not


def test_category_popularity_and_transitions_beat_random_on_held_out_sessions(data):
    """Hold out each user's last session; predict its first item from the earlier history."""
    inter, catalog = data.to_interactions()
    train_mask, queries, targets = _hold_out_last_sessions(data)
    train = inter.subset(train_mask)
    exclude = [q.history for q in queries]
    hr = {}
    for name, cfg in (("popular", PopularConfig()), ("per_category", PopularConfig(per_category=True))):
        model = Popular(cfg).fit(train, catalog)
        hr[name] = float(np.mean(target_ranks(model.score(queries), targets, exclude=exclude) < 10))
    hr["transitions"] = float(np.mean(target_ranks(_transition_scores(train, queries), targets, exclude=exclude) < 10))
    random_hr = 10 / inter.n_items
    assert len(queries) > 300
    assert hr["per_category"] > 4 * random_hr
    assert hr["per_category"] > hr["popular"] + 0.05
    assert hr["transitions"] > 3 * random_hr
    assert hr["transitions"] > hr["popular"]  # sequential structure: the last item tells what comes next


def _by_user(events: list[EventRecord]) -> dict[str, list[EventRecord]]:
    out: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        out[e.user_id].append(e)
    return out


def _hold_out_last_sessions(d: SyntheticData) -> tuple[np.ndarray, list[Query], np.ndarray]:
    inter, _ = d.to_interactions()
    session = np.array([e.session_id for e in d.platform().events])
    order, bounds = inter.sequence_rows()
    train = np.ones(len(inter), dtype=bool)
    queries, targets = [], []
    for u in range(inter.n_users):
        rows = order[bounds[u]:bounds[u + 1]]
        last = session[rows] == session[rows[-1]]
        if last.all():
            continue
        train[rows[last]] = False
        queries.append(Query(user=u, history=inter.item[rows[~last]]))
        targets.append(inter.item[rows[np.argmax(last)]])
    return train, queries, np.array(targets)


def _transition_scores(train, queries: list[Query]) -> np.ndarray:
    """Counts of item -> next item in the training sequences, from each query's last item (+ popularity)."""
    n = train.n_items
    counts = np.zeros((n, n))
    for seq in train.to_sequences():
        moves = seq[:-1] != seq[1:]
        np.add.at(counts, (seq[:-1][moves], seq[1:][moves]), 1.0)
    popularity = np.bincount(train.item, minlength=n) / max(len(train), 1)
    return np.stack([counts[q.history[-1]] + popularity for q in queries]).astype(np.float32)


def test_the_session_after_a_purchase_often_looks_at_its_accessories(data):
    p = data.platform()
    index = {item.item_id: k for k, item in enumerate(p.items)}
    with_accessories = [k for k, c in enumerate(p.companions) if len(c)]
    rng = np.random.default_rng(0)
    hits, chance = [], []
    for events in _by_user(p.events).values():
        sessions: dict[str, list[EventRecord]] = defaultdict(list)
        for e in events:
            sessions[e.session_id or ""].append(e)
        ordered = list(sessions.values())
        for before, after in pairwise(ordered):
            bought = [index[e.item_id] for e in before if e.event_type == EventType.PURCHASE]
            if not bought or not len(p.companions[bought[-1]]):
                continue
            viewed = {index[e.item_id] for e in after}
            other = with_accessories[int(rng.integers(len(with_accessories)))]
            hits.append(bool(viewed & set(p.companions[bought[-1]].tolist())))
            chance.append(bool(viewed & set(p.companions[other].tolist())))
    assert len(hits) > 50
    assert np.mean(hits) > 0.25 and np.mean(hits) > 4 * np.mean(chance)
