"""A platform's saved default business rules behind a tenant-scoped repository (one JSON row per platform).

The rules are stored as the checked JSON of shoprec.rules.Rules.to_json (expression texts, never SQL): the
service parses them again when it reads them, and nothing of them is ever put into a query.
"""

from __future__ import annotations

from typing import Any

from shoprec.storage import tables as T
from shoprec.storage.repo import ScopedRepo, _upsert


class RulesRepo(ScopedRepo):
    """The saved rules of ONE platform, over a connection (one transaction)."""

    def get(self) -> tuple[dict[str, Any], float] | None:
        """(rules JSON, updated_at), or None when the platform has none saved."""
        r = T.platform_rules
        row = self.conn.execute(self._scope(r, r.c.rules, r.c.updated_at)).first()
        return None if row is None else (dict(row[0]), float(row[1]))

    def put(self, rules: dict[str, Any], now: float) -> None:
        r = T.platform_rules
        row = {"platform_id": self.platform_id, "rules": rules, "updated_at": now}
        self.conn.execute(_upsert(self.conn, r, ["platform_id"], ["rules", "updated_at"]), [row])

    def delete(self) -> bool:
        """Forget the saved rules; whether there were any."""
        result: Any = self.conn.execute(self._delete(T.platform_rules))
        return bool(result.rowcount)
