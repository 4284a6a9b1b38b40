"""Spravato REMS: the clinic's certified setting id, patient enrollments, submitted monitoring forms

Revision ID: 0004_core_rems
Revises: 0003_core_session_safety
Create Date: 2026-12-02 10:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op

from core.audit import immutable_trigger_sql


revision: str = '0004_core_rems'
down_revision: Union[str, None] = '0003_core_session_safety'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

APPEND_ONLY = ("rems_enrollment", "rems_monitoring_form")


def upgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rems_setting_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False,
                                      server_default=''))

    op.create_table('rems_enrollment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('enrolled_on', sa.Date(), nullable=False),
    sa.Column('corrects_id', sa.Integer(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', core.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['corrects_id'], ['rems_enrollment.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rems_enrollment', schema=None) as batch_op:
        batch_op.create_index('ix_rems_enrollment_clinic_patient', ['clinic_id', 'patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rems_enrollment_clinic_id'), ['clinic_id'], unique=False)

    op.create_table('rems_monitoring_form',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('treatment_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('csv', sa.Text(), nullable=False),
    sa.Column('csv_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', core.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['treatment_id'], ['treatment_session.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('treatment_id')
    )
    with op.batch_alter_table('rems_monitoring_form', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rems_monitoring_form_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rems_monitoring_form_patient_id'), ['patient_id'], unique=False)

    for table in APPEND_ONLY:  # enrollments and submitted forms refuse UPDATE/DELETE below the app
        for statement in immutable_trigger_sql(op.get_bind().dialect.name, table):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only() CASCADE")
    with op.batch_alter_table('rems_monitoring_form', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rems_monitoring_form_patient_id'))
        batch_op.drop_index(batch_op.f('ix_rems_monitoring_form_clinic_id'))
    op.drop_table('rems_monitoring_form')

    with op.batch_alter_table('rems_enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rems_enrollment_clinic_id'))
        batch_op.drop_index('ix_rems_enrollment_clinic_patient')
    op.drop_table('rems_enrollment')

    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('rems_setting_id')
