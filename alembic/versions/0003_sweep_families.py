"""sweep families: studies, sweeps, sweep_points and family_reports (the stored family of trials that
selection statistics — Deflated Sharpe, PBO, SPA/StepM — correct for). Adds tables only: no existing row changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('studies',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('data_hash', sa.Text(), nullable=False),
    sa.Column('strategy', sa.Text(), nullable=False),
    sa.Column('symbol', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("length(data_hash) = 64 AND ltrim(data_hash, '0123456789abcdef') = ''", name=op.f('ck_studies_data_hash_hex64')),
    sa.CheckConstraint('created_at >= 0', name=op.f('ck_studies_created_at_nonneg')),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_studies_name_nonempty')),
    sa.CheckConstraint('length(strategy) > 0', name=op.f('ck_studies_strategy_nonempty')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_studies'))
    )
    op.create_table('sweeps',
    sa.Column('sweep_id', sa.Text(), nullable=False),
    sa.Column('study', sa.Text(), nullable=False),
    sa.Column('data_hash', sa.Text(), nullable=False),
    sa.Column('base_config_json', sa.Text(), nullable=False),
    sa.Column('grid_json', sa.Text(), nullable=False),
    sa.Column('n_points', sa.Integer(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("length(data_hash) = 64 AND ltrim(data_hash, '0123456789abcdef') = ''", name=op.f('ck_sweeps_data_hash_hex64')),
    sa.CheckConstraint("length(sweep_id) = 64 AND ltrim(sweep_id, '0123456789abcdef') = ''", name=op.f('ck_sweeps_sweep_id_hex64')),
    sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name=op.f('ck_sweeps_status_enum')),
    sa.CheckConstraint('created_at >= 0', name=op.f('ck_sweeps_created_at_nonneg')),
    sa.CheckConstraint('n_points >= 0', name=op.f('ck_sweeps_n_points_nonneg')),
    sa.CheckConstraint('updated_at >= created_at', name=op.f('ck_sweeps_updated_after_created')),
    sa.ForeignKeyConstraint(['study'], ['studies.name'], name=op.f('fk_sweeps_study_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_study'), ['study'], unique=False)

    op.create_table('family_reports',
    sa.Column('report_key', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('study', sa.Text(), nullable=False),
    sa.Column('sweep_id', sa.Text(), nullable=True),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('family_hash', sa.Text(), nullable=False),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('report_json', sa.Text(), nullable=False),
    sa.Column('methodology_version', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("(scope <> 'sweep' OR sweep_id IS NOT NULL) AND (scope <> 'study' OR sweep_id IS NULL)", name=op.f('ck_family_reports_scope_coherence')),
    sa.CheckConstraint("length(family_hash) = 64 AND ltrim(family_hash, '0123456789abcdef') = ''", name=op.f('ck_family_reports_family_hash_hex64')),
    sa.CheckConstraint("length(report_key) = 64 AND ltrim(report_key, '0123456789abcdef') = ''", name=op.f('ck_family_reports_report_key_hex64')),
    sa.CheckConstraint("scope IN ('sweep', 'study')", name=op.f('ck_family_reports_scope_enum')),
    sa.CheckConstraint('created_at >= 0', name=op.f('ck_family_reports_created_at_nonneg')),
    sa.CheckConstraint('length(methodology_version) > 0', name=op.f('ck_family_reports_methodology_version_nonempty')),
    sa.CheckConstraint('n_trials >= 1', name=op.f('ck_family_reports_n_trials_positive')),
    sa.CheckConstraint('seed >= 0 AND seed <= 4294967295', name=op.f('ck_family_reports_seed_uint32')),
    sa.ForeignKeyConstraint(['study'], ['studies.name'], name=op.f('fk_family_reports_study_studies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.sweep_id'], name=op.f('fk_family_reports_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_key', name=op.f('pk_family_reports'))
    )
    with op.batch_alter_table('family_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_reports_study'), ['study'], unique=False)
        batch_op.create_index(batch_op.f('ix_family_reports_sweep_id'), ['sweep_id'], unique=False)

    op.create_table('sweep_points',
    sa.Column('sweep_id', sa.Text(), nullable=False),
    sa.Column('point_index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.Column('run_hash', sa.Text(), nullable=True),
    sa.Column('skip_reason', sa.Text(), nullable=True),
    sa.CheckConstraint('point_index >= 0', name=op.f('ck_sweep_points_point_index_nonneg')),
    sa.CheckConstraint('run_hash IS NULL OR skip_reason IS NULL', name=op.f('ck_sweep_points_skipped_has_no_run')),
    sa.ForeignKeyConstraint(['run_hash'], ['runs.run_hash'], name=op.f('fk_sweep_points_run_hash_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.sweep_id'], name=op.f('fk_sweep_points_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'point_index', name=op.f('pk_sweep_points'))
    )
    with op.batch_alter_table('sweep_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweep_points_run_hash'), ['run_hash'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sweep_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweep_points_run_hash'))

    op.drop_table('sweep_points')
    with op.batch_alter_table('family_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_family_reports_sweep_id'))
        batch_op.drop_index(batch_op.f('ix_family_reports_study'))

    op.drop_table('family_reports')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_study'))

    op.drop_table('sweeps')
    op.drop_table('studies')
