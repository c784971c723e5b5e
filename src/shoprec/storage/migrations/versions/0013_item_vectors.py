"""The shop's own named item vectors (item_vectors) and each name's fixed dimension (item_vector_spaces).

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _platform_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name=f"fk_{table}_platform_id_platforms")


def upgrade() -> None:
    op.create_table(
        "item_vector_spaces",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_item_vector_spaces"),
        _platform_fk("item_vector_spaces"),
        sa.UniqueConstraint("platform_id", "name", name="uq_item_vector_spaces_platform_id_name"),
        **OPTIONS,
    )
    op.create_table(
        "item_vectors",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_item_vectors"),
        _platform_fk("item_vectors"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_item_vectors_item_id_items"),
        sa.UniqueConstraint("platform_id", "item_id", "name", name="uq_item_vectors_platform_id_item_id_name"),
        **OPTIONS,
    )
    op.create_index("ix_item_vectors_item_id", "item_vectors", ["item_id"])


def downgrade() -> None:
    # dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first)
    for table in ("item_vectors", "item_vector_spaces"):
        op.drop_table(table)
