"""Initial schema: platforms, users, items, events (every row carries its platform).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "platforms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_platforms"),
        sa.UniqueConstraint("name", name="uq_platforms_name"),
        **OPTIONS,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_users_platform_id_platforms"),
        sa.UniqueConstraint("platform_id", "external_id", name="uq_users_platform_id_external_id"),
        **OPTIONS,
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", LONG_TEXT, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("brand", sa.Text, nullable=False),
        sa.Column("price", sa.Double, nullable=True),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_items_platform_id_platforms"),
        sa.UniqueConstraint("platform_id", "external_id", name="uq_items_platform_id_external_id"),
        **OPTIONS,
    )
    op.create_table(
        "events",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("session_id", sa.String(256), nullable=True),
        sa.Column("context", sa.JSON, nullable=True),
        sa.Column("text", LONG_TEXT, nullable=True),
        sa.Column("dedupe_key", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_events_platform_id_platforms"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_events_user_id_users"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_events_item_id_items"),
        sa.UniqueConstraint("platform_id", "dedupe_key", name="uq_events_platform_id_dedupe_key"),
        **OPTIONS,
    )
    op.create_index("ix_events_user_id_timestamp", "events", ["user_id", "timestamp"])
    op.create_index("ix_events_item_id", "events", ["item_id"])


def downgrade() -> None:
    # dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first)
    for table in ("events", "items", "users", "platforms"):
        op.drop_table(table)
