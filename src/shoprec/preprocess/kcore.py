"""Iterative k-core filtering and id compaction, on index arrays and Interactions."""

from __future__ import annotations

import numpy as np

from shoprec.data.idmap import IdMap
from shoprec.data.interactions import Interactions
from shoprec.errors import ConfigError


def kcore_mask(user: np.ndarray, item: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Rows kept by the iterative k-core: every kept user has >= `min_user` kept events and every kept
    item >= `min_item` (events are counted, duplicates included; 0 disables a side). Iterates to a fixed point.
    """
    if min_user < 0 or min_item < 0:
        raise ConfigError(f"k-core thresholds must be >= 0, got users={min_user} items={min_item}")
    keep = np.ones(len(user), dtype=bool)
    n_users = int(user.max()) + 1 if len(user) else 0
    n_items = int(item.max()) + 1 if len(item) else 0
    while True:
        before = int(keep.sum())
        if min_user:
            counts = np.bincount(user[keep], minlength=n_users)
            keep &= counts[user] >= min_user
        if min_item:
            counts = np.bincount(item[keep], minlength=n_items)
            keep &= counts[item] >= min_item
        if int(keep.sum()) == before:
            return keep


def kcore(interactions: Interactions, min_user: int, min_item: int) -> Interactions:
    """The k-core of `interactions` (id maps are kept; see `compact_ids` to drop empty users/items)."""
    return interactions.subset(kcore_mask(interactions.user, interactions.item, min_user, min_item))


def compact_ids(interactions: Interactions) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Drop users and items without events from the id maps (order kept).

    Returns (interactions with new maps, old index of each new user, old index of each new item).
    """
    old_users = np.flatnonzero(np.bincount(interactions.user, minlength=interactions.n_users))
    old_items = np.flatnonzero(np.bincount(interactions.item, minlength=interactions.n_items))
    new_user = np.full(interactions.n_users, -1, dtype=np.int32)
    new_user[old_users] = np.arange(len(old_users))
    new_item = np.full(interactions.n_items, -1, dtype=np.int32)
    new_item[old_items] = np.arange(len(old_items))
    out = Interactions(
        user=new_user[interactions.user], item=new_item[interactions.item],
        users=IdMap.from_list(interactions.users.externals(old_users)),
        items=IdMap.from_list(interactions.items.externals(old_items)),
        weight=interactions.weight, value=interactions.value, timestamp=interactions.timestamp,
        event_type=interactions.event_type,
    )
    return out, old_users, old_items
