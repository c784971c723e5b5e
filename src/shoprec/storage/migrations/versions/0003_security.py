"""API key scopes, names and rate limits; the audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ALL_SCOPES = "read,write,admin"  # what every key could do before scopes existed


def upgrade() -> None:
    _api_key_columns()
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(256), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_audit_log_platform_id_platforms"),
        **OPTIONS,
    )
    op.create_index("ix_audit_log_platform_id_created_at", "audit_log", ["platform_id", "created_at"])


def _api_key_columns() -> None:
    """api_keys gains key_id (public, unique), name, scopes and revoked_at; existing keys keep every scope."""
    op.add_column("api_keys", sa.Column("key_id", sa.String(32), nullable=True))
    op.add_column("api_keys", sa.Column("name", sa.String(64), nullable=True))
    op.add_column("api_keys", sa.Column("scopes", sa.String(64), nullable=True))
    op.add_column("api_keys", sa.Column("revoked_at", sa.Double, nullable=True))
    keys = sa.table("api_keys", sa.column("id", sa.Integer), sa.column("key_id", sa.String),
                    sa.column("scopes", sa.String))
    conn = op.get_bind()
    for (row_id,) in conn.execute(sa.select(keys.c.id)).all():
        conn.execute(sa.update(keys).where(keys.c.id == row_id)
                     .values(key_id="key_" + secrets.token_hex(8), scopes=ALL_SCOPES))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("key_id", existing_type=sa.String(32), nullable=False)
        batch.alter_column("scopes", existing_type=sa.String(64), nullable=False)
    op.create_index("ix_api_keys_key_id", "api_keys", ["key_id"], unique=True)


def downgrade() -> None:
    op.drop_table("audit_log")  # with its index (MySQL refuses to drop an index its foreign key uses)
    op.drop_index("ix_api_keys_key_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        for column in ("revoked_at", "scopes", "name", "key_id"):
            batch.drop_column(column)
