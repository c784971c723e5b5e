"""A/B experiments and their variants, exposures (served lists) and credited outcomes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _platform_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name=f"fk_{table}_platform_id_platforms")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("start_at", sa.Double, nullable=False),
        sa.Column("end_at", sa.Double, nullable=True),
        sa.Column("stopped_at", sa.Double, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        _platform_fk("experiments"),
        sa.UniqueConstraint("experiment_id", name="uq_experiments_experiment_id"),
        **OPTIONS,
    )
    op.create_index("ix_experiments_platform_id", "experiments", ["platform_id"])
    op.create_table(
        "experiment_exposures",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("recommendation_id", sa.String(32), nullable=False),
        sa.Column("user_external_id", sa.String(256), nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("n_shown", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_exposures"),
        _platform_fk("experiment_exposures"),
        **OPTIONS,
    )
    op.create_index("ix_experiment_exposures_platform_id_user_external_id_created_at", "experiment_exposures",
                    ["platform_id", "user_external_id", "created_at"])
    op.create_index("ix_experiment_exposures_recommendation_id", "experiment_exposures", ["recommendation_id"])
    op.create_index("ix_experiment_exposures_experiment_id", "experiment_exposures", ["experiment_id"])
    op.create_table(
        "experiment_credits",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("recommendation_id", sa.String(32), nullable=False),
        sa.Column("item_external_id", sa.String(256), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_credits"),
        _platform_fk("experiment_credits"),
        **OPTIONS,
    )
    op.create_index("ix_experiment_credits_experiment_id", "experiment_credits", ["experiment_id"])


def downgrade() -> None:
    op.drop_table("experiment_credits")
    op.drop_table("experiment_exposures")
    op.drop_table("experiments")
