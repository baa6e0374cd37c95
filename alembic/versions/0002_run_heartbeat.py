"""run heartbeat: runs.heartbeat_at and runs.worker for stale-run detection and recovery

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("worker", sa.Text(), nullable=True))
        batch_op.create_check_constraint(
            "heartbeat_at_nonneg", "heartbeat_at IS NULL OR heartbeat_at >= 0"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_heartbeat_at_nonneg"), type_="check")
        batch_op.drop_column("worker")
        batch_op.drop_column("heartbeat_at")
