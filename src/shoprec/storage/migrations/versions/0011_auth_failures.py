"""Failed authentications per client address (auth_failures), shared by the API workers without Redis.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("window_start", sa.Double, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("blocked_until", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("client", name="pk_auth_failures"),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin", mysql_engine="InnoDB",
    )
    op.create_index("ix_auth_failures_blocked_until", "auth_failures", ["blocked_until"])


def downgrade() -> None:
    op.drop_index("ix_auth_failures_blocked_until", table_name="auth_failures")
    op.drop_table("auth_failures")
