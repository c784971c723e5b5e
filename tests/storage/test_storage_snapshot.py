"""Snapshot: database -> Interactions + ItemCatalog."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.errors import DataError
from shoprec.storage import PlatformRepo, get_or_create_platform, load_interactions
from shoprec.types import EventType

T0 = 1_700_000_000.0
EVENTS = [  # (user, item, type, timestamp, value)
    ("alice", "mug", EventType.VIEW, T0 + 0.7, None),
    ("bob", "pan", EventType.PURCHASE, T0 + 5, 2.0),
    ("alice", "pan", EventType.CART, T0 + 9, 1.0),
    ("carol", "mug", EventType.RATING, T0 + 12, 4.5),
    ("alice", "mug", EventType.PURCHASE, T0 + 20, 3.0),
]


@pytest.fixture
def stored(engine: sa.Engine, platform: str) -> str:
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        repo.upsert_items([
            ItemRecord("pan", title="Steel Pan", description="28 cm", category="Home > Kitchen", brand="Forge",
                       price=29.9, currency="EUR", attributes={"attribute_ids": [3, 7], "material": "steel"}),
            ItemRecord("mug", title="Mug", price=None, available=False),
            ItemRecord("lamp", title="Lamp (never bought)"),
        ])
        repo.add_events([EventRecord(u, i, t, ts, v) for u, i, t, ts, v in EVENTS])
    return platform


def test_round_trip_arrays_and_id_maps(engine: sa.Engine, stored: str) -> None:
    inter, catalog = load_interactions(engine, stored)
    assert len(inter) == len(EVENTS)
    assert inter.users.externals(inter.user) == [e[0] for e in EVENTS]
    assert inter.items.externals(inter.item) == [e[1] for e in EVENTS]
    assert inter.items.to_list() == ["pan", "mug", "lamp"]  # catalog order, events' items included
    assert inter.items is catalog.items
    assert [EventType.from_code(int(c)) for c in inter.event_type] == [e[2] for e in EVENTS]
    assert inter.timestamp.tolist() == [math.floor(e[3]) for e in EVENTS]
    assert np.isnan(inter.value[0]) and inter.value[1:].tolist() == [2.0, 1.0, 4.5, 3.0]
    assert inter.weight.tolist() == [1.0] * len(EVENTS)
    assert (inter.user.dtype, inter.item.dtype, inter.timestamp.dtype) == (np.int32, np.int32, np.int64)


def test_catalog_content(engine: sa.Engine, stored: str) -> None:
    _, catalog = load_interactions(engine, stored)
    pan, mug = catalog.items.index("pan"), catalog.items.index("mug")
    assert catalog.title[pan] == "Steel Pan" and catalog.category[pan] == "Home > Kitchen"
    assert catalog.brand[pan] == "Forge" and catalog.description[pan] == "28 cm"
    assert catalog.price_of(pan) == pytest.approx(29.9) and catalog.price_of(mug) is None
    assert catalog.available.tolist() == [True, False, True]
    assert catalog.attributes[pan]["material"] == "steel"
    assert catalog.attribute_ids[pan].tolist() == [3, 7] and len(catalog.attribute_ids[mug]) == 0
    assert "Steel Pan" in catalog.text(pan) and "Forge" in catalog.text(pan)


def test_event_type_filter_keeps_the_id_maps(engine: sa.Engine, stored: str) -> None:
    full, _ = load_interactions(engine, stored)
    bought, _ = load_interactions(engine, stored, event_types=["purchase", EventType.RATING])
    assert len(bought) == 3
    assert bought.users == full.users and bought.items == full.items
    assert {EventType.from_code(int(c)) for c in bought.event_type} == {EventType.PURCHASE, EventType.RATING}


def test_weights_per_event_type(engine: sa.Engine, stored: str) -> None:
    weights = {"view": 0.1, "cart": 0.5, "purchase": 1.0, EventType.RATING: 2.0}
    inter, _ = load_interactions(engine, stored, weights=weights)
    assert inter.weight.tolist() == pytest.approx([0.1, 1.0, 0.5, 2.0, 1.0])
    with pytest.raises(DataError, match="no weight for event type 'rating'"):
        load_interactions(engine, stored, weights={"view": 1, "cart": 1, "purchase": 1})


def test_unknown_platform_and_bad_event_type(engine: sa.Engine, stored: str) -> None:
    with pytest.raises(DataError, match=rf"unknown platform 'nope-x' \(known: .*{stored}"):
        load_interactions(engine, "nope-x")
    with pytest.raises(DataError, match="unknown event type 'bogus'"):
        load_interactions(engine, stored, event_types=["bogus"])


def test_empty_platform(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        get_or_create_platform(conn, platform)
    inter, catalog = load_interactions(engine, platform)
    assert len(inter) == 0 and inter.n_items == 0 and len(catalog) == 0


def test_streamed_chunks_give_the_same_snapshot(engine: sa.Engine, stored: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    whole, _ = load_interactions(engine, stored)
    original = PlatformRepo.event_rows
    monkeypatch.setattr(PlatformRepo, "event_rows", lambda self, types=None, chunk=2: original(self, types, chunk))
    chunked, _ = load_interactions(engine, stored)
    for name in ("user", "item", "timestamp", "event_type", "weight"):
        assert getattr(chunked, name).tolist() == getattr(whole, name).tolist()
    assert np.array_equal(chunked.value, whole.value, equal_nan=True)
