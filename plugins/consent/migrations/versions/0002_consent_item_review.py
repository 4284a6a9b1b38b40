"""consent item review: clinician clearances of changed screening answers, BP acknowledgements bound
to the reading they were given for

Revision ID: 0002_consent_item_review
Revises: 0001_consent
Create Date: 2026-12-01 22:30:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op

from core.audit import immutable_trigger_sql


revision: str = '0002_consent_item_review'
down_revision: Union[str, None] = '0001_consent'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _append_only(table: str) -> None:
    for statement in immutable_trigger_sql(op.get_bind().dialect.name, table):
        op.execute(statement)


def upgrade() -> None:
    op.create_table('consent_item_clearance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('item_code', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('item_label', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('yes_screening_id', sa.Integer(), nullable=False),
    sa.Column('no_screening_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('clinician_user_id', sa.Integer(), nullable=False),
    sa.Column('clinician_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('signed_at', core.models.UTCDateTime(), nullable=False),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=45), nullable=False),
    sa.Column('text_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['clinician_user_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['no_screening_id'], ['consent_screening.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['yes_screening_id'], ['consent_screening.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_id', 'yes_screening_id', 'item_code')
    )
    with op.batch_alter_table('consent_item_clearance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_item_clearance_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_item_clearance_patient_id'), ['patient_id'], unique=False)
    _append_only('consent_item_clearance')

    # SQLite rebuilds the table to add the foreign key, which drops its append-only triggers:
    # they are dropped first and put back afterwards on both databases
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS consent_acknowledgement_no_update")
        op.execute("DROP TRIGGER IF EXISTS consent_acknowledgement_no_delete")
    with op.batch_alter_table('consent_acknowledgement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vital_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('systolic', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('diastolic', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_consent_acknowledgement_vital_id', 'vital_sign', ['vital_id'], ['id'])
    if op.get_bind().dialect.name == "sqlite":
        _append_only('consent_acknowledgement')


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS consent_acknowledgement_no_update")
        op.execute("DROP TRIGGER IF EXISTS consent_acknowledgement_no_delete")
    with op.batch_alter_table('consent_acknowledgement', schema=None) as batch_op:
        batch_op.drop_constraint('fk_consent_acknowledgement_vital_id', type_='foreignkey')
        batch_op.drop_column('diastolic')
        batch_op.drop_column('systolic')
        batch_op.drop_column('vital_id')
    if op.get_bind().dialect.name == "sqlite":
        _append_only('consent_acknowledgement')

    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_item_clearance_no_change ON consent_item_clearance")
        op.execute("DROP FUNCTION IF EXISTS consent_item_clearance_append_only()")
    with op.batch_alter_table('consent_item_clearance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_item_clearance_patient_id'))
        batch_op.drop_index(batch_op.f('ix_consent_item_clearance_clinic_id'))
    op.drop_table('consent_item_clearance')
