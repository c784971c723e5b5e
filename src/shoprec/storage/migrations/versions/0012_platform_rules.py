"""A platform's saved default business rules (platform_rules).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_rules",
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("platform_id", name="pk_platform_rules"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_platform_rules_platform_id_platforms"),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin", mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("platform_rules")
