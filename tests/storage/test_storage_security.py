"""Migration 0003 (key ids, scopes, audit log) on every backend, and the audit log's writer and reader."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from shoprec.errors import DataError
from shoprec.service.audit import list_audit, record_audit
from shoprec.storage import get_or_create_platform, make_engine, migrate
from shoprec.storage import tables as T
from shoprec.storage.engine import downgrade


def test_upgrade_from_0002_keeps_existing_keys_with_every_scope(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    try:
        migrate(engine, "0002")
        keys = sa.table("api_keys", sa.column("platform_id"), sa.column("key_hash"), sa.column("created_at"),
                        sa.column("revoked"))
        with engine.begin() as conn:
            pid = get_or_create_platform(conn, "old-shop")
            conn.execute(sa.insert(keys), [{"platform_id": pid, "key_hash": h * 64, "created_at": 1.0,
                                            "revoked": False} for h in "ab"])
        migrate(engine, "0003")  # (not head: later revisions are other areas' business)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(T.api_keys.c.key_id, T.api_keys.c.scopes)).all()
        assert len(rows) == 2 and len({r[0] for r in rows}) == 2
        assert all(r[0].startswith("key_") and r[1] == "read,write,admin" for r in rows)
        downgrade(engine, "0002")
        migrate(engine, "0003")
    finally:
        engine.dispose()


def test_record_and_list_audit(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        pid = get_or_create_platform(conn, platform)
        record_audit(conn, platform_id=pid, action="user.erase", actor="key_0123", subject="hash-1",
                     details={"events": 3})
        record_audit(conn, platform_id=None, action="deployment.check", actor="admin")
    mine = list_audit(engine, platform)
    assert [(r.action, r.actor, r.subject, r.details, r.platform) for r in mine] == [
        ("user.erase", "key_0123", "hash-1", {"events": 3}, platform)]
    assert abs(mine[0].created_at - time.time()) < 60
    everything = list_audit(engine, limit=10_000)
    assert {"user.erase", "deployment.check"} <= {r.action for r in everything}
    assert [r.id for r in everything] == sorted((r.id for r in everything), reverse=True)


def test_audit_rolls_back_with_the_callers_transaction(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        pid = get_or_create_platform(conn, platform)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record_audit(conn, platform_id=pid, action="key.revoke", actor="admin", subject="key_x")
        raise RuntimeError("the action failed")
    assert list_audit(engine, platform) == []


def test_audit_bad_arguments(engine: sa.Engine) -> None:
    with pytest.raises(DataError, match="unknown platform"):
        list_audit(engine, "no-such-platform")
    with pytest.raises(DataError, match="limit"):
        list_audit(engine, limit=0)
    with engine.begin() as conn, pytest.raises(ValueError, match="action"):
        record_audit(conn, platform_id=None, action="x" * 65, actor="admin")


def test_every_revision_downgrades_and_upgrades_again_on_each_backend(scratch_url: str) -> None:
    """head -> base -> head: every downgrade works on SQLite, PostgreSQL and MariaDB (MariaDB refuses to drop
    an index that a foreign key needs, so downgrades drop whole tables)."""
    from shoprec.storage import current_revision

    engine = make_engine(scratch_url)
    try:
        migrate(engine)
        head = current_revision(engine)
        downgrade(engine, "base")
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == head
    finally:
        engine.dispose()
