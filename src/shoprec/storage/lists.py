"""The reads behind the list types (shoprec.service.lists): windowed counts, a person's purchases, co-purchases
and the newest items of ONE platform. Each is a single grouped query over indexed columns; the service caches
what is shared by every request (trending counts) and reads the rest per request."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import ScopedRepo, _chunks

PURCHASE = "purchase"


class ListsRepo(ScopedRepo):
    """List-type reads of one platform, over a connection."""

    def window_counts(self, event_types: Collection[str], since: float, split: float, until: float
                      ) -> dict[str, tuple[int, int]]:
        """item id -> (distinct people with an event of `event_types` in [split, until], the same in [since, split)).

        People rather than events, so that one visitor reloading a page does not make an item trend."""
        ev, it = T.events, T.items
        recent = sa.func.count(sa.distinct(sa.case((ev.c.timestamp >= split, ev.c.user_id))))
        before = sa.func.count(sa.distinct(sa.case((ev.c.timestamp < split, ev.c.user_id))))
        query = (self._scope(ev, it.c.external_id, recent, before).join(it, it.c.id == ev.c.item_id)
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
        who bought a cart item. A person's purchases are one basket (the events carry no order id)."""
        ev, it = T.events, T.items
        cart, other = ev.alias("cart_events"), ev.alias("other_events")
        cart_item, other_item = it.alias("cart_items"), it.alias("other_items")
        out: list[tuple[str, str, int]] = []
        for part in _chunks(sorted(set(items))):
            query = (sa.select(cart_item.c.external_id, other_item.c.external_id,
                               sa.func.count(sa.distinct(other.c.user_id)))
                     .select_from(cart.join(cart_item, cart_item.c.id == cart.c.item_id)
                                  .join(other, other.c.user_id == cart.c.user_id)
                                  .join(other_item, other_item.c.id == other.c.item_id))
                     .where(cart.c.platform_id == self.platform_id, cart_item.c.platform_id == self.platform_id,
                            other.c.platform_id == self.platform_id, cart.c.event_type == PURCHASE,
                            other.c.event_type == PURCHASE, cart_item.c.external_id.in_(part),
                            other.c.item_id != cart.c.item_id)
                     .group_by(cart_item.c.external_id, other_item.c.external_id))
            out.extend((str(a), str(b), int(n)) for a, b, n in self.conn.execute(query))
        return out

    def items_created_since(self, since: float) -> list[tuple[str, float]]:
        """(item id, created_at) of the items first stored at or after `since`."""
        it = T.items
        query = self._scope(it, it.c.external_id, it.c.created_at).where(it.c.created_at >= since)
        return [(str(i), float(c)) for i, c in self.conn.execute(query)]
