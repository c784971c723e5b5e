"""Retraining rows behind a tenant-scoped repository: a platform's policy (with its schedule state) and its
promotion-gate decisions. Like ServingRepo, a RetrainRepo is built with (connection, platform key) and every
query is filtered by that platform.

`newest_event_id` and `count_events_after` are the cheap event counts the schedule needs: the first reads the
end of the events table's primary key (one index lookup), the second walks the primary key range above a mark
(`id > mark`), stopping after `limit` rows, so a check costs at most the events it counts.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, ScopedRepo, _upsert

POLICY_FIELDS = ("every_hours", "after_events", "margin", "metric", "holdout_fraction", "action", "model", "params")
STATE_FIELDS = ("event_mark", "model_at", "triggered_at")
_DECISION_COLUMNS = ("id", "candidate_model_id", "active_model_id", "decision", "reason", "metric", "margin",
                     "candidate_metrics", "active_metrics", "holdout", "experiment_id", "cause", "created_at")


def platforms_with_policy(conn: Executor) -> dict[str, int]:
    """Every platform with a retraining policy of its own that has a trigger: name -> key."""
    p = T.retrain_policies
    query = (sa.select(T.platforms.c.name, T.platforms.c.id).join(p, p.c.platform_id == T.platforms.c.id)
             .where(p.c.custom.is_(True), sa.or_(p.c.every_hours.is_not(None), p.c.after_events.is_not(None)))
             .order_by(T.platforms.c.id))
    return {str(name): int(key) for name, key in conn.execute(query)}


class RetrainRepo(ScopedRepo):
    """The retraining rows of ONE platform, over a connection (one transaction)."""

    # ---------------------------------------------------------------- policy and schedule state
    def policy_row(self) -> dict[str, Any] | None:
        p = T.retrain_policies
        row = self.conn.execute(self._scope(p, *p.c)).first()
        return None if row is None else dict(row._mapping)

    def put_policy(self, values: dict[str, Any] | None, now: float) -> None:
        """Store the platform's own policy (`values`: POLICY_FIELDS), or go back to the deployment default
        (None); the schedule state is kept."""
        p = T.retrain_policies
        row = {"platform_id": self.platform_id, "custom": values is not None, "updated_at": now,
               **{f: (values or {}).get(f) for f in POLICY_FIELDS}}
        self.conn.execute(_upsert(self.conn, p, ["platform_id"], ["custom", "updated_at", *POLICY_FIELDS]), [row])

    def put_state(self, now: float, **state: Any) -> None:
        """Set schedule state fields (STATE_FIELDS), creating a default-policy row when the platform has none."""
        p = T.retrain_policies
        if self.policy_row() is None:
            row = {"platform_id": self.platform_id, "custom": False, "updated_at": now,
                   **{f: None for f in POLICY_FIELDS}, **{f: None for f in STATE_FIELDS}, **state}
            self.conn.execute(_upsert(self.conn, p, ["platform_id"], list(state)), [row])
        else:
            self.conn.execute(self._update(p).values(**state))

    def claim_trigger(self, now: float, seen: float | None) -> bool:
        """Set triggered_at = now if it is still `seen` (what the caller read): True for exactly one caller
        when several schedulers check at once."""
        p = T.retrain_policies
        same = p.c.triggered_at.is_(None) if seen is None else p.c.triggered_at == seen
        result = cast("sa.CursorResult[Any]", self.conn.execute(self._update(p).where(same).values(triggered_at=now)))
        return bool(result.rowcount == 1)

    # ---------------------------------------------------------------- events and models
    def newest_event_id(self) -> int:
        """The highest events.id of ANY platform (0 for none): a mark that `count_events_after` counts from."""
        value = self.conn.execute(sa.select(sa.func.max(T.events.c.id))).scalar()
        return int(value or 0)

    def count_events_after(self, mark: int, limit: int) -> int:
        """This platform's events with id > mark, counted up to `limit` (a primary-key range scan)."""
        e = T.events
        inner = self._scope(e, e.c.id).where(e.c.id > mark).limit(max(int(limit), 1)).subquery()
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(inner)).scalar() or 0)

    def newest_model_at(self) -> float | None:
        """created_at of the platform's newest model (None without models)."""
        m = T.models
        value = self.conn.execute(self._scope(m, sa.func.max(m.c.created_at))).scalar()
        return None if value is None else float(value)

    # ---------------------------------------------------------------- decisions
    def add_decision(self, values: dict[str, Any]) -> int:
        result = cast("sa.CursorResult[Any]", self.conn.execute(
            sa.insert(T.retrain_decisions).values(platform_id=self.platform_id, **values)))
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` decisions, newest first."""
        d = T.retrain_decisions
        query = (self._scope(d, *(d.c[c] for c in _DECISION_COLUMNS))
                 .order_by(d.c.created_at.desc(), d.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in self.conn.execute(query)]
