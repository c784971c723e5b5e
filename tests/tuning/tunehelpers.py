"""Synthetic data with a planted optimum for tuning tests."""

from __future__ import annotations

import numpy as np

from shoprec.data import Interactions

DAY = 86_400
OLD_DAYS = (0, 100)  # old events happen in these days
RECENT_START = 1000  # recent events happen in days 1000..1005
BASE = 1_600_000_000  # unix seconds of day 0


def recency_data(n_users: int = 60, seed: int = 0) -> Interactions:
    """Old favourites vs. recently popular items: every user's last events are recent items.

    Each user has 8 events on 30 'old' items (days 0..100), then 6 events on 40 'new' items (days
    1000..1005). All-time popularity ranks unseen old items first (NDCG@10 near 0 on the next-item
    targets); the popular model with `recent_days` between ~6 and ~900 counts only the new items and
    wins clearly: the planted optimum.
    """
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    new_p = np.linspace(2.0, 1.0, 40)
    new_p /= new_p.sum()
    for u in range(n_users):
        old = rng.choice(30, size=8, replace=False)
        new = rng.choice(40, size=6, replace=False, p=new_p)
        t_old = np.sort(rng.integers(OLD_DAYS[0] * DAY, OLD_DAYS[1] * DAY, size=8))
        t_new = np.sort(rng.integers(RECENT_START * DAY, (RECENT_START + 5) * DAY, size=6))
        users += [f"u{u}"] * 14
        items += [f"old{i}" for i in old] + [f"new{i}" for i in new]
        times += list(t_old) + list(t_new)
    return Interactions.from_ids(users, items, timestamp=BASE + np.array(times))


def rating_data(n_users: int = 40, n_items: int = 30, seed: int = 0) -> Interactions:
    """Ratings from a rank-2 model plus noise, about half of all pairs rated."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    mask = rng.random((n_users, n_items)) < 0.5
    u, i = np.nonzero(mask)
    r = np.clip(np.round(3 + (p[u] * q[i]).sum(1) + rng.normal(0, 0.3, len(u))), 1, 5)
    return Interactions.from_ids([f"u{x}" for x in u], [f"i{x}" for x in i], value=r,
                                 timestamp=np.arange(len(u)), event_type=np.full(len(u), 6))


def write_events_csv(data: Interactions, path: object) -> None:
    """The events as an events-csv file (user_id,item_id,event_type,timestamp)."""
    lines = ["user_id,item_id,event_type,timestamp"]
    for u, i, t in zip(data.user, data.item, data.timestamp, strict=True):
        lines.append(f"{data.users.external(int(u))},{data.items.external(int(i))},purchase,{int(t)}")
    from pathlib import Path

    Path(str(path)).write_text("\n".join(lines) + "\n", encoding="utf-8")
