"""Portal: patients' change requests and the clinic's questionnaire rule

Revision ID: 0012_core_portal
Revises: 0011_core_mail
Create Date: 2026-12-03 12:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0012_core_portal'
down_revision: Union[str, None] = '0011_core_mail'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('portal_change_request',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('patient_id', sa.Integer(), nullable=False),
                    sa.Column('treatment_id', sa.Integer(), nullable=False),
                    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
                    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
                    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
                    sa.Column('created_at', core.models.UTCDateTime(), nullable=False),
                    sa.Column('handled_at', core.models.UTCDateTime(), nullable=True),
                    sa.Column('handled_by_id', sa.Integer(), nullable=True),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.ForeignKeyConstraint(['handled_by_id'], ['user.id']),
                    sa.ForeignKeyConstraint(['patient_id'], ['patient.id']),
                    sa.ForeignKeyConstraint(['treatment_id'], ['treatment_session.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_portal_change_request_open', 'portal_change_request', ['clinic_id', 'handled_at'], unique=False)
    op.create_index(op.f('ix_portal_change_request_clinic_id'), 'portal_change_request', ['clinic_id'], unique=False)
    op.create_index(op.f('ix_portal_change_request_patient_id'), 'portal_change_request', ['patient_id'], unique=False)
    op.create_index(op.f('ix_portal_change_request_treatment_id'), 'portal_change_request', ['treatment_id'],
                    unique=False)
    op.create_table('questionnaire_policy',
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('instruments', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
                    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
                    sa.Column('every_n', sa.Integer(), nullable=False),
                    sa.Column('days_before', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.PrimaryKeyConstraint('clinic_id'))


def downgrade() -> None:
    op.drop_table('questionnaire_policy')
    op.drop_index(op.f('ix_portal_change_request_treatment_id'), table_name='portal_change_request')
    op.drop_index(op.f('ix_portal_change_request_patient_id'), table_name='portal_change_request')
    op.drop_index(op.f('ix_portal_change_request_clinic_id'), table_name='portal_change_request')
    op.drop_index('ix_portal_change_request_open', table_name='portal_change_request')
    op.drop_table('portal_change_request')
