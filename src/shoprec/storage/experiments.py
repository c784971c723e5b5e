"""Experiment rows behind a tenant-scoped repository: experiments, exposures (served lists), credits.

Like ServingRepo, an ExperimentRepo is built with (connection, platform key) and every query is
filtered by that platform, so one platform can never read or stop another's experiment.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import ScopedRepo

_EXPERIMENT_COLUMNS = ("experiment_id", "name", "variants", "start_at", "end_at", "stopped_at", "created_at")


class ExperimentRepo(ScopedRepo):
    """The experiment rows of ONE platform, over a connection (one transaction)."""

    # ---------------------------------------------------------------- experiments
    def add(self, experiment_id: str, name: str, variants: list[dict[str, Any]], start_at: float,
            end_at: float | None, now: float) -> None:
        self.conn.execute(sa.insert(T.experiments), [{
            "platform_id": self.platform_id, "experiment_id": experiment_id, "name": name, "variants": variants,
            "start_at": start_at, "end_at": end_at, "stopped_at": None, "created_at": now}])

    def list_all(self) -> list[dict[str, Any]]:
        e = T.experiments
        query = self._scope(e, *(e.c[c] for c in _EXPERIMENT_COLUMNS)).order_by(e.c.id)
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def get(self, experiment_id: str) -> dict[str, Any] | None:
        e = T.experiments
        query = self._scope(e, *(e.c[c] for c in _EXPERIMENT_COLUMNS)).where(e.c.experiment_id == experiment_id)
        row = self.conn.execute(query).first()
        return None if row is None else dict(row._mapping)

    def stop(self, experiment_id: str, now: float) -> None:
        e = T.experiments
        self.conn.execute(sa.update(e).where(e.c.platform_id == self.platform_id, e.c.experiment_id == experiment_id,
                                             e.c.stopped_at.is_(None)).values(stopped_at=now))

    # ---------------------------------------------------------------- exposures
    def add_exposure(self, experiment_id: str, variant: str, recommendation_id: str, user: str, items: list[str],
                     now: float) -> None:
        self.conn.execute(sa.insert(T.experiment_exposures), [{
            "platform_id": self.platform_id, "experiment_id": experiment_id, "variant": variant,
            "recommendation_id": recommendation_id, "user_external_id": user, "items": items,
            "n_shown": len(items), "created_at": now}])

    def exposure(self, recommendation_id: str) -> dict[str, Any] | None:
        x = T.experiment_exposures
        cols = [x.c.experiment_id, x.c.variant, x.c.recommendation_id, x.c["items"], x.c.created_at]
        row = self.conn.execute(self._scope(x, *cols).where(x.c.recommendation_id == recommendation_id)).first()
        return None if row is None else dict(row._mapping)

    def user_exposures(self, user: str, since: float, until: float) -> list[dict[str, Any]]:
        """The user's exposures created in [since, until], newest first."""
        x = T.experiment_exposures
        cols = [x.c.experiment_id, x.c.variant, x.c.recommendation_id, x.c["items"], x.c.created_at]
        query = (self._scope(x, *cols).where(x.c.user_external_id == user, x.c.created_at >= since,
                                             x.c.created_at <= until)
                 .order_by(x.c.created_at.desc(), x.c.id.desc()))
        return [dict(r._mapping) for r in self.conn.execute(query)]

    # ---------------------------------------------------------------- credits
    def add_credits(self, rows: list[dict[str, Any]]) -> None:
        """Rows: experiment_id, variant, recommendation_id, item_external_id, position, outcome, event_type,
        timestamp."""
        if rows:
            self.conn.execute(sa.insert(T.experiment_credits), [{**r, "platform_id": self.platform_id} for r in rows])

    # ---------------------------------------------------------------- results
    def exposure_counts(self, experiment_id: str) -> dict[str, dict[str, int]]:
        """variant -> {"lists", "impressions", "users"}."""
        x = T.experiment_exposures
        query = (self._scope(x, x.c.variant, sa.func.count(), sa.func.sum(x.c.n_shown),
                             sa.func.count(sa.distinct(x.c.user_external_id)))
                 .where(x.c.experiment_id == experiment_id).group_by(x.c.variant))
        return {str(v): {"lists": int(n), "impressions": int(s or 0), "users": int(u)}
                for v, n, s, u in self.conn.execute(query)}

    def credit_counts(self, experiment_id: str) -> dict[str, dict[str, int]]:
        """variant -> outcome -> distinct (list, item) pairs credited with that outcome."""
        c = T.experiment_credits
        distinct = (self._scope(c, c.c.variant, c.c.outcome, c.c.recommendation_id, c.c.item_external_id)
                    .where(c.c.experiment_id == experiment_id).distinct().subquery())
        query = sa.select(distinct.c.variant, distinct.c.outcome, sa.func.count()).group_by(
            distinct.c.variant, distinct.c.outcome)
        out: dict[str, dict[str, int]] = {}
        for variant, outcome, n in self.conn.execute(query):
            out.setdefault(str(variant), {})[str(outcome)] = int(n)
        return out

    def position_counts(self, experiment_id: str, outcome: str) -> dict[str, dict[int, int]]:
        """variant -> position -> credited (list, item) pairs with `outcome` (where in the list users act)."""
        c = T.experiment_credits
        distinct = (self._scope(c, c.c.variant, c.c.position, c.c.recommendation_id, c.c.item_external_id)
                    .where(c.c.experiment_id == experiment_id, c.c.outcome == outcome).distinct().subquery())
        query = sa.select(distinct.c.variant, distinct.c.position, sa.func.count()).group_by(
            distinct.c.variant, distinct.c.position)
        out: dict[str, dict[int, int]] = {}
        for variant, position, n in self.conn.execute(query):
            out.setdefault(str(variant), {})[int(position)] = int(n)
        return out
