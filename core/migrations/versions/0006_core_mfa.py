"""A second factor for staff: TOTP secrets, recovery codes, the clinic's all-staff setting

Revision ID: 0006_core_mfa
Revises: 0005_core_audit_seal
Create Date: 2026-12-02 06:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0006_core_mfa'
down_revision: Union[str, None] = '0005_core_audit_seal'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('clinic', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('mfa_all_staff', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('mfa_enabled_at', core.models.UTCDateTime(), nullable=True))

    op.create_table('mfa_factor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', core.models.UTCDateTime(), nullable=False),
    sa.Column('confirmed_at', core.models.UTCDateTime(), nullable=True),
    sa.Column('last_step', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mfa_factor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mfa_factor_user_id'), ['user_id'], unique=False)

    op.create_table('mfa_recovery_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('used_at', core.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mfa_recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mfa_recovery_code_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mfa_recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mfa_recovery_code_user_id'))
    op.drop_table('mfa_recovery_code')
    with op.batch_alter_table('mfa_factor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mfa_factor_user_id'))
    op.drop_table('mfa_factor')
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('mfa_enabled_at')
    with op.batch_alter_table('clinic', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('mfa_all_staff')
