"""The catalog view of the online path: catalog changes are seen at once, popularity is refreshed aside."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shoprec.ingest.records import EventRecord
from shoprec.service import Services, catalog
from shoprec.service.testing import ReadyPlatform
from shoprec.types import EventType


def test_popularity_is_refreshed_in_the_background_while_requests_keep_the_current_view(
        services: Services, shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    views = services.catalogs
    first = views.get("shop")
    item = shop.item_ids[-1]
    before = float(first.popularity[first.items.get(item)])
    services.data.add_events("shop", [EventRecord(user_id=f"fan{i}", item_id=item, event_type=EventType.PURCHASE,
                                                  timestamp=time.time())
                                      for i in range(200)])
    monkeypatch.setattr(catalog, "POPULARITY_REFRESH_S", 0.0)
    views.invalidate("shop")  # the next get checks now (the catalog itself did not change)
    assert views.get("shop") is first  # answered from the current view; the reload runs aside
    deadline = time.monotonic() + 10
    while views._views["shop"] is first and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = views._views["shop"]
    assert fresh is not first
    assert float(fresh.popularity[fresh.items.get(item)]) > before
    assert np.array_equal(fresh.servable, first.servable)


def test_a_catalog_change_is_seen_by_the_next_request(services: Services, shop: ReadyPlatform) -> None:
    views = services.catalogs
    first = views.get("shop")
    item = shop.item_ids[0]
    assert first.servable[first.items.get(item)]
    services.data.delete_item("shop", item)
    view = views.get("shop")
    assert view is not first and not view.servable[view.items.get(item)]
