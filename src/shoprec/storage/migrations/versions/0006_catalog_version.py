"""An index that makes the catalog's version (its newest item update) one index lookup.

Every serving worker checks each platform's catalog version about twice a second; without this index the
check scanned every item of the platform (~100 ms for a 1M-item catalog).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_platform_id_updated_at", "items", ["platform_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_items_platform_id_updated_at", table_name="items")
