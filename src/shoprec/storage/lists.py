"""The reads behind the list types (shoprec.service.lists): windowed counts, a person's purchases, co-purchases
and the newest items of ONE platform. Each is a single grouped query over indexed columns; the service caches
what is shared by every request (trending counts) and reads the rest per request."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import ScopedRepo, _chunks

PURCHASE = "purchase"


class ListsRepo(ScopedRepo):
    """List-type reads of one platform, over a connection."""

    def _events(self, *columns: Any) -> sa.Select[Any]:
        """`_scope` of the events by another index than the platform's: `platform_id + 0` keeps a planner without
        statistics (SQLite's) from reading every event of the platform through its unique index instead of the
        item or user index the query names (as ServingRepo.item_event_counts does)."""
        ev = T.events
        return sa.select(*columns).select_from(ev).where(ev.c.platform_id + 0 == self.platform_id)

    def window_counts(self, event_types: Collection[str], since: float, split: float, until: float
                      ) -> dict[str, tuple[int, int]]:
        """item id -> (distinct people with an event of `event_types` in [split, until], the same in [since, split)).

        People rather than events, so that one visitor reloading a page does not make an item trend. A scan of the
        platform's events in table order (`_events`): 20x faster on SQLite than through the platform's index."""
        ev, it = T.events, T.items
        recent = sa.func.count(sa.distinct(sa.case((ev.c.timestamp >= split, ev.c.user_id))))
        before = sa.func.count(sa.distinct(sa.case((ev.c.timestamp < split, ev.c.user_id))))
        query = (self._events(it.c.external_id, recent, before).join(it, it.c.id == ev.c.item_id)
                 .where(ev.c.timestamp >= since, ev.c.timestamp <= until, ev.c.event_type.in_(sorted(event_types)))
                 .group_by(it.c.external_id))
        return {str(i): (int(r), int(p)) for i, r, p in self.conn.execute(query)}

    def user_purchases(self, user: str) -> list[tuple[str, int, float]]:
        """(item id, times bought, newest purchase time) of every item the user bought (the user as stored)."""
        ev, it, us = T.events, T.items, T.users
        query = (self._scope(ev, it.c.external_id, sa.func.count(), sa.func.max(ev.c.timestamp))
                 .join(it, it.c.id == ev.c.item_id).join(us, us.c.id == ev.c.user_id)
                 .where(us.c.external_id == user, us.c.platform_id == self.platform_id, ev.c.event_type == PURCHASE)
                 .group_by(it.c.external_id))
        return [(str(i), int(n), float(ts)) for i, n, ts in self.conn.execute(query)]

    def co_purchases(self, items: Sequence[str]) -> list[tuple[str, str, int]]:
        """(cart item id, other item id, distinct people who bought both) for every other item bought by someone
        who bought a cart item. A person's purchases are one basket (the events carry no order id).

        Three indexed reads rather than one self-join (which SQLite's planner ran as a scan of every purchase:
        15 s on Beauty): the cart's item keys, the people who bought them (events by item), those people's
        purchases (events by user); the pairs are counted here."""
        ev, it = T.events, T.items
        keys: dict[int, str] = {}
        for part in _chunks(sorted(set(items))):
            query = self._scope(it, it.c.id, it.c.external_id).where(it.c.external_id.in_(part))
            keys.update((int(k), str(e)) for k, e in self.conn.execute(query))
        buyers: set[int] = set()
        for part in _chunks(sorted(keys)):
            query = self._events(ev.c.user_id).where(ev.c.item_id.in_(part), ev.c.event_type == PURCHASE)
            buyers.update(int(u) for (u,) in self.conn.execute(query.distinct()))
        baskets: dict[int, set[int]] = {}
        for part in _chunks(sorted(buyers)):
            query = self._events(ev.c.user_id, ev.c.item_id).where(ev.c.user_id.in_(part),
                                                                     ev.c.event_type == PURCHASE)
            for user, item in self.conn.execute(query.distinct()):
                baskets.setdefault(int(user), set()).add(int(item))
        pairs: dict[tuple[int, int], int] = {}
        for basket in baskets.values():
            for a in basket & keys.keys():
                for b in basket:
                    if b != a:
                        pairs[a, b] = pairs.get((a, b), 0) + 1
        names = dict(keys)
        others = sorted({b for _, b in pairs} - names.keys())
        for part in _chunks(others):
            names.update((int(k), str(e)) for k, e in self.conn.execute(
                self._scope(it, it.c.id, it.c.external_id).where(it.c.id.in_(part))))
        return [(names[a], names[b], n) for (a, b), n in pairs.items()]

    def items_created_since(self, since: float) -> list[tuple[str, float]]:
        """(item id, created_at) of the items first stored at or after `since`."""
        it = T.items
        query = self._scope(it, it.c.external_id, it.c.created_at).where(it.c.created_at >= since)
        return [(str(i), float(c)) for i, c in self.conn.execute(query)]
