"""Session safety: dose limits, dosing time and overrides, discharge judgement

Revision ID: 0003_core_session_safety
Revises: 0002_core_indexes
Create Date: 2026-12-01 22:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0003_core_session_safety'
down_revision: Union[str, None] = '0002_core_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MODALITY = sa.Enum('iv_ketamine', 'im_ketamine', 'esketamine_nasal', 'sublingual', name='modality',
                   native_enum=False, length=20, create_constraint=False)


def upgrade() -> None:
    op.create_table(
        'dose_limit',
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.Column('modality', MODALITY, nullable=False),
        sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('usual_min', sa.Float(), nullable=False),
        sa.Column('usual_max', sa.Float(), nullable=False),
        sa.Column('ceiling', sa.Float(), nullable=False),
        sa.Column('allowed_doses', sa.JSON(), nullable=False),
        sa.Column('min_observation_minutes', sa.Integer(), nullable=False),
        sa.Column('updated_at', core.models.UTCDateTime(), nullable=True),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
        sa.ForeignKeyConstraint(['updated_by_id'], ['user.id'], ),
        sa.PrimaryKeyConstraint('clinic_id', 'modality'),
    )
    # existing sessions keep empty strings and NULLs: no dosing time was recorded before this
    with op.batch_alter_table('treatment_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dosed_at', core.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('lot_number', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('dose_override_reason', sqlmodel.sql.sqltypes.AutoString(length=1000),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('dose_override_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('discharge_ready_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('ready_minutes', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_treatment_session_dose_override_by_id_user', 'user',
                                    ['dose_override_by_id'], ['id'])
        batch_op.create_foreign_key('fk_treatment_session_discharge_ready_by_id_user', 'user',
                                    ['discharge_ready_by_id'], ['id'])

    with op.batch_alter_table('side_effect', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('side_effect', schema=None) as batch_op:
        batch_op.drop_column('resolved')

    with op.batch_alter_table('treatment_session', schema=None) as batch_op:
        batch_op.drop_constraint('fk_treatment_session_discharge_ready_by_id_user', type_='foreignkey')
        batch_op.drop_constraint('fk_treatment_session_dose_override_by_id_user', type_='foreignkey')
        batch_op.drop_column('ready_minutes')
        batch_op.drop_column('discharge_ready_by_id')
        batch_op.drop_column('dose_override_by_id')
        batch_op.drop_column('dose_override_reason')
        batch_op.drop_column('lot_number')
        batch_op.drop_column('dosed_at')

    op.drop_table('dose_limit')
