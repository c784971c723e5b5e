"""Durable jobs: attempts, the claiming worker and its lease, start/finish times, cancellation, progress, the
submitter; the `train` API key scope.

Jobs queued or running before this revision ran in a thread of an API worker that is gone: they are marked
failed with that reason (running them all now could start hundreds of trainings at once); submit them again.

Keys: training needs the new `train` scope. It is given to each platform's *full* key only, the key that held
every scope because it was the platform's own key: a key made before scopes existed (no `key.create` audit
record: every key was then a full key) or the key `platform create` made with its platform (its `key.create`
audit record directly follows the platform's `platform.create` record). A key created later with
`--scopes read,write,admin` does not silently gain `train`; create a key with the scope to train.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FULL_SCOPES = "read,write,admin"  # what a platform's full key held before `train` existed
ABANDONED = ("abandoned: queued before jobs became durable (migration 0009), when training ran inside an API "
             "worker that has since stopped; submit it again")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("worker", sa.String(128), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.Double, nullable=True))
        batch.add_column(sa.Column("started_at", sa.Double, nullable=True))
        batch.add_column(sa.Column("finished_at", sa.Double, nullable=True))
        batch.add_column(sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("progress", sa.Text, nullable=True))
        batch.add_column(sa.Column("actor", sa.String(128), nullable=True))
    op.create_index("ix_jobs_status_platform_id", "jobs", ["status", "platform_id"])
    jobs = sa.table("jobs", sa.column("status", sa.String), sa.column("error", sa.Text),
                    sa.column("finished_at", sa.Double), sa.column("updated_at", sa.Double))
    now = time.time()
    conn = op.get_bind()
    conn.execute(sa.update(jobs).where(jobs.c.status.in_(["queued", "running"]))
                 .values(status="failed", error=ABANDONED, finished_at=now, updated_at=now))
    _train_scope(conn)


def _train_scope(conn: sa.Connection) -> None:
    keys = sa.table("api_keys", sa.column("id", sa.Integer), sa.column("platform_id", sa.Integer),
                    sa.column("key_id", sa.String), sa.column("scopes", sa.String))
    audit = sa.table("audit_log", sa.column("id", sa.Integer), sa.column("platform_id", sa.Integer),
                     sa.column("action", sa.String), sa.column("subject", sa.String))
    created = {str(subject): (int(row_id), platform_id) for row_id, platform_id, subject in conn.execute(
        sa.select(audit.c.id, audit.c.platform_id, audit.c.subject).where(audit.c.action == "key.create"))}
    for row_id, key_id in conn.execute(sa.select(keys.c.id, keys.c.key_id)
                                       .where(keys.c.scopes == FULL_SCOPES)).all():
        record = created.get(str(key_id))
        if record is not None:
            audit_id, platform_id = record
            before = conn.execute(sa.select(audit.c.action).where(audit.c.platform_id == platform_id,
                                                                  audit.c.id < audit_id)
                                  .order_by(audit.c.id.desc()).limit(1)).scalar()
            if before != "platform.create":
                continue  # a key created later with every scope of its time: no silent `train`
        conn.execute(sa.update(keys).where(keys.c.id == row_id).values(scopes=FULL_SCOPES + ",train"))


def downgrade() -> None:
    keys = sa.table("api_keys", sa.column("scopes", sa.String), sa.column("revoked", sa.Boolean))
    conn = op.get_bind()
    for scopes in ("read,write,admin,train", "read,write,train", "read,admin,train", "write,admin,train",
                   "read,train", "write,train", "admin,train"):
        conn.execute(sa.update(keys).where(keys.c.scopes == scopes).values(scopes=scopes.removesuffix(",train")))
    # a key that could only train cannot be expressed before this revision: it is revoked
    conn.execute(sa.update(keys).where(keys.c.scopes == "train").values(scopes="read", revoked=True))
    op.drop_index("ix_jobs_status_platform_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("actor", "progress", "cancel_requested", "finished_at", "started_at", "lease_until", "worker",
                       "attempts"):
            batch.drop_column(column)
