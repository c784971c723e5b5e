"""Idempotent ingest: the client's `event_id` of an event (unique per platform; NULL for events without one)
and the stored answers of write requests sent with an Idempotency-Key header.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    # a nullable column: existing events have no event_id; a unique index allows many NULLs on every backend
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("event_id", sa.String(128), nullable=True))
        batch.create_unique_constraint("uq_events_platform_id_event_id", ["platform_id", "event_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("lease_until", sa.Double, nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("body", LONG_TEXT, nullable=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_idempotency_keys_platform_id_platforms"),
        sa.UniqueConstraint("platform_id", "idempotency_key", name="uq_idempotency_keys_platform_id_idempotency_key"),
        **OPTIONS,
    )
    op.create_index("ix_idempotency_keys_platform_id_expires_at", "idempotency_keys", ["platform_id", "expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_platform_id_event_id", type_="unique")
        batch.drop_column("event_id")
