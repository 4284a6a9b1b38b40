"""consent attestation: the clinician's signed statement that they explained the treatment, and the
PDF issued when the consent became complete

Consents signed before this revision were issued at signing, with their PDF on consent_signed; they
are left as they are and stay valid (a document that was issued is never re-rendered or re-judged).
New consents keep an empty pdf and pdf_sha256 on consent_signed: relaxing NOT NULL on SQLite means
rebuilding consent_signed, which consent_revocation and consent_signed itself reference.

Revision ID: 0003_consent_attestation
Revises: 0002_consent_item_review
Create Date: 2026-12-02 02:10:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op

from core.audit import immutable_trigger_sql


revision: str = '0003_consent_attestation'
down_revision: Union[str, None] = '0002_consent_item_review'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('consent_attestation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('consent_id', sa.Integer(), nullable=False),
    sa.Column('clinician_user_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('clinician_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('credentials', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('statement', sa.Text(), nullable=False),
    sa.Column('attested_at', core.models.UTCDateTime(), nullable=False),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=45), nullable=False),
    sa.Column('statement_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('document_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['clinician_user_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['consent_id'], ['consent_signed.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('consent_id')
    )
    with op.batch_alter_table('consent_attestation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_attestation_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_attestation_patient_id'), ['patient_id'], unique=False)
    for statement in immutable_trigger_sql(op.get_bind().dialect.name, 'consent_attestation'):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_attestation_no_change ON consent_attestation")
        op.execute("DROP FUNCTION IF EXISTS consent_attestation_append_only()")
    with op.batch_alter_table('consent_attestation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_attestation_patient_id'))
        batch_op.drop_index(batch_op.f('ix_consent_attestation_clinic_id'))
    op.drop_table('consent_attestation')
