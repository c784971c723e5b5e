"""Privacy tables behind a tenant-scoped repository: identity hashes, platform links (consents), retrain
flags, and the per-user erase / export reads and the retention purge.

Like PlatformRepo, a PrivacyRepo is built with (connection, platform key) and every query is filtered by
that platform. The cross-platform reads are `linked_user_pairs` and `link_state`, which answer only for a
link both platforms consented to. Raw identities never reach this module: callers pass keyed hashes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, ScopedRepo, _chunks, find_platform

IdentityRow = tuple[str, str, str]  # (user external id, identity type, identity hash)


class PrivacyRepo(ScopedRepo):
    """The privacy rows of ONE platform, over a connection (one transaction)."""

    def _count_deleted(self, stmt: sa.Delete | sa.Update) -> int:
        """Run a DELETE (or UPDATE); how many rows it changed."""
        return int(cast("sa.CursorResult[Any]", self.conn.execute(stmt)).rowcount)

    def user_key(self, external_id: str) -> int | None:
        u = T.users
        row = self.conn.execute(self._scope(u, u.c.id).where(u.c.external_id == external_id)).first()
        return None if row is None else int(row[0])

    # ---------------------------------------------------------------- identities
    def set_identities(self, rows: Sequence[IdentityRow], now: float) -> int:
        """Store (user, type, hash) for existing users of this platform; a user's hash of a type is replaced."""
        i = T.identities
        written = 0
        for user, kind, digest in {(r[0], r[1]): r for r in rows}.values():
            key = self.user_key(user)
            if key is None:
                continue
            self.conn.execute(self._delete(i).where(i.c.user_id == key, i.c.identity_type == kind))
            self.conn.execute(sa.insert(i), [{"platform_id": self.platform_id, "user_id": key, "identity_type": kind,
                                             "identity_hash": digest, "created_at": now}])
            written += 1
        return written

    def user_identities(self, user_key: int) -> list[dict[str, Any]]:
        i = T.identities
        query = self._scope(i, i.c.identity_type, i.c.identity_hash, i.c.created_at).where(i.c.user_id == user_key)
        return [dict(r._mapping) for r in self.conn.execute(query.order_by(i.c.identity_type))]

    # ---------------------------------------------------------------- links
    def consent(self, partner_id: int, now: float) -> bool:
        """Record this platform's consent to link with `partner_id`; False when it was already given."""
        link = T.platform_links
        if self.conn.execute(self._scope(link, link.c.id).where(link.c.partner_id == partner_id)).first():
            return False
        self.conn.execute(sa.insert(link), [{"platform_id": self.platform_id, "partner_id": partner_id,
                                             "created_at": now}])
        return True

    def withdraw(self, partner_id: int) -> bool:
        """Withdraw this platform's consent to link with `partner_id` (the link ends); False when none was given."""
        link = T.platform_links
        return bool(self._count_deleted(self._delete(link).where(link.c.partner_id == partner_id)))

    def linked_platforms(self) -> list[str]:
        """Names of the platforms linked with this one by both sides' consent."""
        link, p = T.platform_links, T.platforms
        back = sa.select(link.c.platform_id).where(link.c.partner_id == self.platform_id)
        query = (self._scope(link, p.c.name).join(p, p.c.id == link.c.partner_id)
                 .where(link.c.partner_id.in_(back)).order_by(p.c.name))
        return [str(n) for (n,) in self.conn.execute(query)]

    def linked_platforms_holding(self, hashes: Sequence[str]) -> dict[str, list[str]]:
        """identity hash -> names of the consented linked platforms that hold a user with that hash."""
        names = self.linked_platforms()
        if not hashes or not names:
            return {}
        i, p = T.identities, T.platforms
        query = (sa.select(i.c.identity_hash, p.c.name).distinct().select_from(i.join(p, p.c.id == i.c.platform_id))
                 .where(p.c.name.in_(names), i.c.identity_hash.in_(sorted(set(hashes)))).order_by(p.c.name))
        out: dict[str, list[str]] = {}
        for digest, name in self.conn.execute(query):
            out.setdefault(str(digest), []).append(str(name))
        return out

    # ---------------------------------------------------------------- retrain flags
    def flag_retrain(self, reason: str, now: float) -> None:
        f = T.retrain_flags
        self.conn.execute(self._delete(f))
        self.conn.execute(sa.insert(f), [{"platform_id": self.platform_id, "reason": reason[:T.MAX_REASON_LENGTH],
                                          "flagged_at": now}])

    def retrain_flag(self) -> dict[str, Any] | None:
        f = T.retrain_flags
        row = self.conn.execute(self._scope(f, f.c.reason, f.c.flagged_at)).first()
        return None if row is None else dict(row._mapping)

    def clear_retrain_flag(self) -> None:
        self.conn.execute(self._delete(T.retrain_flags))

    def model_paths(self) -> list[tuple[str, str, str | None]]:
        """(model_id, artifact reference, sha256) of every model of this platform."""
        m = T.models
        return [(str(i), str(p), h) for i, p, h in self.conn.execute(self._scope(m, m.c.model_id, m.c.path, m.c.sha256)
                                                                     .order_by(m.c.id))]

    def set_model_path(self, model_id: str, path: str, sha256: str | None = None) -> None:
        m = T.models
        self.conn.execute(sa.update(m).where(m.c.platform_id == self.platform_id, m.c.model_id == model_id)
                          .values(path=path, sha256=sha256))

    # ---------------------------------------------------------------- one user's data
    def recommendation_ids(self, external_id: str) -> list[str]:
        r = T.recommendations
        query = self._scope(r, r.c.recommendation_id).where(r.c.user_external_id == external_id)
        return [str(x) for (x,) in self.conn.execute(query.order_by(r.c.id))]

    def export_user(self, external_id: str) -> dict[str, Any] | None:
        """Everything stored about a user of this platform (ids as stored), or None when there is no such user."""
        u, ev, it, r, fb = T.users, T.events, T.items, T.recommendations, T.feedback
        row = self.conn.execute(self._scope(u, u.c.id, u.c.attributes, u.c.created_at, u.c.updated_at)
                                .where(u.c.external_id == external_id)).first()
        rec_ids = self.recommendation_ids(external_id)
        if row is None and not rec_ids:
            return None
        events: list[dict[str, Any]] = []
        identities: list[dict[str, Any]] = []
        if row is not None:
            cols = [it.c.external_id.label("item_id"), ev.c.event_type.label("type"), ev.c.value, ev.c.timestamp,
                    ev.c.session_id, ev.c.context, ev.c.text]
            query = (self._scope(ev, *cols).join(it, it.c.id == ev.c.item_id)
                     .where(ev.c.user_id == row.id).order_by(ev.c.timestamp, ev.c.id))
            events = [dict(e._mapping) for e in self.conn.execute(query)]
            identities = self.user_identities(int(row.id))
        recs = [dict(x._mapping) for part in _chunks(rec_ids) for x in self.conn.execute(
            self._scope(r, r.c.recommendation_id, r.c.model, r.c["items"], r.c.created_at)
            .where(r.c.recommendation_id.in_(part)).order_by(r.c.id))]
        feedback = [dict(x._mapping) for part in _chunks(rec_ids) for x in self.conn.execute(
            self._scope(fb, fb.c.recommendation_id, fb.c.item_external_id.label("item_id"),
                        fb.c.feedback_type.label("type"), fb.c.timestamp)
            .where(fb.c.recommendation_id.in_(part)).order_by(fb.c.id))]
        exposures = self.user_exposures(external_id)
        return {"attributes": (row.attributes or {}) if row is not None else {},
                "created_at": row.created_at if row is not None else None,
                "updated_at": row.updated_at if row is not None else None,
                "events": events, "identities": identities, "recommendations": recs, "feedback": feedback,
                "experiment_exposures": exposures}

    def erase_user(self, external_id: str) -> dict[str, Any] | None:
        """Delete the user's feedback, recommendation log rows, identities, events and row; returns what was
        deleted (counts and the recommendation ids, for the caches), or None when nothing named the user."""
        ev, i, u, r, fb = T.events, T.identities, T.users, T.recommendations, T.feedback
        key = self.user_key(external_id)
        rec_ids = self.recommendation_ids(external_id)
        if key is None and not rec_ids:
            return None
        counts = {"events": 0, "identities": 0, "recommendations": 0, "feedback": 0, "users": 0,
                  "experiment_exposures": self._anonymise_exposures(external_id)}
        for part in _chunks(rec_ids):
            counts["feedback"] += self._count_deleted(self._delete(fb).where(fb.c.recommendation_id.in_(part)))
            counts["recommendations"] += self._count_deleted(self._delete(r).where(r.c.recommendation_id.in_(part)))
        if key is not None:
            counts["identities"] = self._count_deleted(self._delete(i).where(i.c.user_id == key))
            counts["events"] = self._count_deleted(self._delete(ev).where(ev.c.user_id == key))
            counts["users"] = self._count_deleted(self._delete(u).where(u.c.id == key))
        return {"deleted": counts, "recommendation_ids": rec_ids}

    def _anonymise_exposures(self, external_id: str) -> int:
        """Replace the user's id in experiment exposures by one random token (per erasure): the experiment's
        counts (users, impressions, outcomes) stay as they were, but nothing names the user any more."""
        x = T.experiment_exposures
        token = "erased:" + uuid.uuid4().hex
        stmt = (sa.update(x).where(x.c.platform_id == self.platform_id, x.c.user_external_id == external_id)
                .values(user_external_id=token))
        return self._count_deleted(stmt)

    def user_exposures(self, external_id: str) -> list[dict[str, Any]]:
        """The experiment exposures of a user (experiment, variant, list, shown items, time)."""
        x = T.experiment_exposures
        query = self._scope(x, x.c.experiment_id, x.c.variant, x.c.recommendation_id, x.c["items"], x.c.created_at)
        return [dict(r._mapping) for r in self.conn.execute(query.where(x.c.user_external_id == external_id)
                                                            .order_by(x.c.id))]

    # ---------------------------------------------------------------- retention
    def purge_events(self, before: float) -> int:
        """Delete this platform's events with a timestamp before `before`; returns how many."""
        ev = T.events
        return self._count_deleted(self._delete(ev).where(ev.c.timestamp < before))


def link_state(conn: Executor, platform_a: str, platform_b: str) -> dict[str, bool]:
    """Which side consented to the link of two platforms: {"a": bool, "b": bool}."""
    link = T.platform_links
    a, b = find_platform(conn, platform_a), find_platform(conn, platform_b)

    def given(src: int | None, dst: int | None) -> bool:
        if src is None or dst is None:
            return False
        query = sa.select(link.c.id).where(link.c.platform_id == src, link.c.partner_id == dst)
        return conn.execute(query).first() is not None

    return {"a": given(a, b), "b": given(b, a)}


def linked_user_pairs(conn: Executor, platform_a: str, platform_b: str) -> list[tuple[str, str]]:
    """(user id on A, user id on B) of the users whose identity hashes are equal, for a link both platforms
    consented to (ids as stored: pseudonyms when pseudonymising); [] without a consented link."""
    state = link_state(conn, platform_a, platform_b)
    a, b = find_platform(conn, platform_a), find_platform(conn, platform_b)
    if not (state["a"] and state["b"]) or a is None or b is None or a == b:
        return []
    ia, ib = T.identities.alias("ia"), T.identities.alias("ib")
    ua, ub = T.users.alias("ua"), T.users.alias("ub")
    query = (sa.select(ua.c.external_id, ub.c.external_id).distinct()
             .select_from(ia.join(ib, sa.and_(ia.c.identity_hash == ib.c.identity_hash,
                                              ia.c.identity_type == ib.c.identity_type))
                          .join(ua, ua.c.id == ia.c.user_id).join(ub, ub.c.id == ib.c.user_id))
             .where(ia.c.platform_id == a, ib.c.platform_id == b)
             .order_by(ua.c.external_id, ub.c.external_id))
    return [(str(x), str(y)) for x, y in conn.execute(query)]
