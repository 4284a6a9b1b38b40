"""Scheduling: chairs, opening hours, closures, course plans and each session's booking

Revision ID: 0010_core_scheduling
Revises: 0009_core_clinic_tablet
Create Date: 2026-12-03 08:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0010_core_scheduling'
down_revision: Union[str, None] = '0009_core_clinic_tablet'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # existing clinics keep planning around federal holidays (the default a US clinic expects)
    with op.batch_alter_table('clinic', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('closed_on_federal_holidays', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))

    op.create_table('chair',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
                    sa.Column('active', sa.Boolean(), nullable=False),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('clinic_id', 'name', name='uq_chair_clinic_name'))
    op.create_index(op.f('ix_chair_clinic_id'), 'chair', ['clinic_id'], unique=False)
    op.create_table('opening_hours',
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('weekday', sa.Integer(), nullable=False),
                    sa.Column('opens', sa.Time(), nullable=False),
                    sa.Column('closes', sa.Time(), nullable=False),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.PrimaryKeyConstraint('clinic_id', 'weekday'))
    op.create_table('clinic_closure',
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('day', sa.Date(), nullable=False),
                    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.PrimaryKeyConstraint('clinic_id', 'day'))
    op.create_table('course_plan',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('patient_id', sa.Integer(), nullable=False),
                    sa.Column('modality', sa.Enum('iv_ketamine', 'im_ketamine', 'esketamine_nasal', 'sublingual',
                                                  name='modality', native_enum=False, length=20,
                                                  create_constraint=False), nullable=False),
                    sa.Column('pattern', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
                    sa.Column('interval_weeks', sa.Integer(), nullable=True),
                    sa.Column('provider_id', sa.Integer(), nullable=False),
                    sa.Column('chair_id', sa.Integer(), nullable=True),
                    sa.Column('created_by_id', sa.Integer(), nullable=False),
                    sa.Column('created_at', core.models.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['chair_id'], ['chair.id']),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.ForeignKeyConstraint(['created_by_id'], ['user.id']),
                    sa.ForeignKeyConstraint(['patient_id'], ['patient.id']),
                    sa.ForeignKeyConstraint(['provider_id'], ['provider.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index(op.f('ix_course_plan_clinic_id'), 'course_plan', ['clinic_id'], unique=False)
    op.create_index(op.f('ix_course_plan_patient_id'), 'course_plan', ['patient_id'], unique=False)
    op.create_table('session_booking',
                    sa.Column('treatment_id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('chair_id', sa.Integer(), nullable=True),
                    sa.Column('minutes', sa.Integer(), nullable=False),
                    sa.Column('plan_id', sa.Integer(), nullable=True),
                    sa.ForeignKeyConstraint(['chair_id'], ['chair.id']),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.ForeignKeyConstraint(['plan_id'], ['course_plan.id']),
                    sa.ForeignKeyConstraint(['treatment_id'], ['treatment_session.id']),
                    sa.PrimaryKeyConstraint('treatment_id'))
    op.create_index(op.f('ix_session_booking_chair_id'), 'session_booking', ['chair_id'], unique=False)
    op.create_index(op.f('ix_session_booking_clinic_id'), 'session_booking', ['clinic_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_session_booking_clinic_id'), table_name='session_booking')
    op.drop_index(op.f('ix_session_booking_chair_id'), table_name='session_booking')
    op.drop_table('session_booking')
    op.drop_index(op.f('ix_course_plan_patient_id'), table_name='course_plan')
    op.drop_index(op.f('ix_course_plan_clinic_id'), table_name='course_plan')
    op.drop_table('course_plan')
    op.drop_table('clinic_closure')
    op.drop_table('opening_hours')
    op.drop_index(op.f('ix_chair_clinic_id'), table_name='chair')
    op.drop_table('chair')
    with op.batch_alter_table('clinic', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('closed_on_federal_holidays')
