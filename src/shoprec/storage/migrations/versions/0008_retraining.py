"""Continuous retraining: per-platform policies (with their schedule state) and the promotion-gate decisions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _platform_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name=f"fk_{table}_platform_id_platforms")


def upgrade() -> None:
    op.create_table(
        "retrain_policies",
        sa.Column("platform_id", sa.Integer, autoincrement=False),
        sa.Column("custom", sa.Boolean, nullable=False),
        sa.Column("every_hours", sa.Double, nullable=True),
        sa.Column("after_events", sa.BigInteger, nullable=True),
        sa.Column("margin", sa.Double, nullable=True),
        sa.Column("metric", sa.String(32), nullable=True),
        sa.Column("holdout_fraction", sa.Double, nullable=True),
        sa.Column("action", sa.String(16), nullable=True),
        sa.Column("model", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("event_mark", sa.BigInteger, nullable=True),
        sa.Column("model_at", sa.Double, nullable=True),
        sa.Column("triggered_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("platform_id", name="pk_retrain_policies"),
        _platform_fk("retrain_policies"),
        **OPTIONS,
    )
    op.create_table(
        "retrain_decisions",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("candidate_model_id", sa.String(32), nullable=True),
        sa.Column("active_model_id", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("margin", sa.Double, nullable=False),
        sa.Column("candidate_metrics", sa.JSON, nullable=True),
        sa.Column("active_metrics", sa.JSON, nullable=True),
        sa.Column("holdout", sa.JSON, nullable=True),
        sa.Column("experiment_id", sa.String(32), nullable=True),
        sa.Column("cause", sa.String(16), nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_decisions"),
        _platform_fk("retrain_decisions"),
        **OPTIONS,
    )
    op.create_index("ix_retrain_decisions_platform_id_created_at", "retrain_decisions", ["platform_id", "created_at"])


def downgrade() -> None:
    for table in ("retrain_decisions", "retrain_policies"):
        op.drop_table(table)
