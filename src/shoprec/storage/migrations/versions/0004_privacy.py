"""Identity hashes, platform links, erasure bookkeeping.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def _platform_fk(table: str, column: str = "platform_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["platforms.id"], name=f"fk_{table}_{column}_platforms")


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("identity_type", sa.String(16), nullable=False),
        sa.Column("identity_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identities"),
        _platform_fk("identities"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_identities_user_id_users"),
        sa.UniqueConstraint("platform_id", "user_id", "identity_type",
                            name="uq_identities_platform_id_user_id_identity_type"),
        **OPTIONS,
    )
    op.create_index("ix_identities_identity_hash", "identities", ["identity_hash"])
    op.create_index("ix_identities_user_id", "identities", ["user_id"])
    op.create_table(
        "platform_links",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("partner_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_platform_links"),
        _platform_fk("platform_links"),
        _platform_fk("platform_links", "partner_id"),
        sa.UniqueConstraint("platform_id", "partner_id", name="uq_platform_links_platform_id_partner_id"),
        **OPTIONS,
    )
    op.create_index("ix_platform_links_partner_id", "platform_links", ["partner_id"])
    op.create_table(
        "retrain_flags",
        sa.Column("platform_id", sa.Integer, autoincrement=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("flagged_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("platform_id", name="pk_retrain_flags"),
        _platform_fk("retrain_flags"),
        **OPTIONS,
    )


def downgrade() -> None:
    # dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first)
    for table in ("retrain_flags", "platform_links", "identities"):
        op.drop_table(table)
