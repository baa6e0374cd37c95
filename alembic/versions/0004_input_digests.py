"""input digests: input_digests, what an input's exact content resolved to (a data file's data_hash, a raw
config's canonical config), so that an identical resubmission finds its run without loading the data. Adds a
table only: no existing row changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('input_digests',
    sa.Column('digest', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("kind IN ('data_file', 'config')", name=op.f('ck_input_digests_kind_enum')),
    sa.CheckConstraint("length(digest) = 64 AND ltrim(digest, '0123456789abcdef') = ''", name=op.f('ck_input_digests_digest_hex64')),
    sa.CheckConstraint('recorded_at >= 0', name=op.f('ck_input_digests_recorded_at_nonneg')),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_input_digests'))
    )


def downgrade() -> None:
    op.drop_table('input_digests')
