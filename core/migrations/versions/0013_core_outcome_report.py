"""Signed outcome reports (measurement-based care), append-only below the app as well

Revision ID: 0013_core_outcome_report
Revises: 0012_core_portal
Create Date: 2026-12-03 12:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op

from core.audit import immutable_trigger_sql


revision: str = '0013_core_outcome_report'
down_revision: Union[str, None] = '0012_core_portal'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('outcome_report',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('patient_id', sa.Integer(), nullable=False),
                    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
                    sa.Column('pdf', sa.LargeBinary(), nullable=False),
                    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
                    sa.Column('summary', sa.JSON(), nullable=False),
                    sa.Column('signed_by_id', sa.Integer(), nullable=False),
                    sa.Column('signed_at', core.models.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.ForeignKeyConstraint(['patient_id'], ['patient.id']),
                    sa.ForeignKeyConstraint(['signed_by_id'], ['user.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index(op.f('ix_outcome_report_clinic_id'), 'outcome_report', ['clinic_id'], unique=False)
    op.create_index(op.f('ix_outcome_report_patient_id'), 'outcome_report', ['patient_id'], unique=False)
    for statement in immutable_trigger_sql(op.get_bind().dialect.name, 'outcome_report'):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS outcome_report_append_only() CASCADE")
    op.drop_index(op.f('ix_outcome_report_patient_id'), table_name='outcome_report')
    op.drop_index(op.f('ix_outcome_report_clinic_id'), table_name='outcome_report')
    op.drop_table('outcome_report')
