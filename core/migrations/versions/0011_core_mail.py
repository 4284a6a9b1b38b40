"""Mail: every outgoing message (log and outbox) and portal invitations

Revision ID: 0011_core_mail
Revises: 0010_core_scheduling
Create Date: 2026-12-03 12:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0011_core_mail'
down_revision: Union[str, None] = '0010_core_scheduling'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('mail_message',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('patient_id', sa.Integer(), nullable=True),
                    sa.Column('to_address', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
                    sa.Column('kind', sa.Enum('invitation', 'confirmation', 'reminder', 'questionnaire', 'document',
                                              name='mailkind', native_enum=False, length=20,
                                              create_constraint=False), nullable=False),
                    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
                    sa.Column('body', sa.Text(), nullable=False),
                    sa.Column('attachment_name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
                    sa.Column('attachment_type', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
                    sa.Column('attachment', sa.LargeBinary(), nullable=True),
                    sa.Column('status', sa.Enum('queued', 'sent', 'failed', 'outbox', name='mailstatus',
                                                native_enum=False, length=12, create_constraint=False),
                              nullable=False),
                    sa.Column('attempts', sa.Integer(), nullable=False),
                    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
                    sa.Column('next_attempt_at', core.models.UTCDateTime(), nullable=True),
                    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
                    sa.Column('created_at', core.models.UTCDateTime(), nullable=False),
                    sa.Column('sent_at', core.models.UTCDateTime(), nullable=True),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.ForeignKeyConstraint(['patient_id'], ['patient.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('dedupe_key'))
    op.create_index('ix_mail_message_clinic_created', 'mail_message', ['clinic_id', 'created_at'], unique=False)
    op.create_index('ix_mail_message_status_next', 'mail_message', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_mail_message_patient_id'), 'mail_message', ['patient_id'], unique=False)
    op.create_table('portal_invitation',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('clinic_id', sa.Integer(), nullable=False),
                    sa.Column('patient_id', sa.Integer(), nullable=False),
                    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
                    sa.Column('created_by_id', sa.Integer(), nullable=True),
                    sa.Column('created_at', core.models.UTCDateTime(), nullable=False),
                    sa.Column('expires_at', core.models.UTCDateTime(), nullable=False),
                    sa.Column('used_at', core.models.UTCDateTime(), nullable=True),
                    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id']),
                    sa.ForeignKeyConstraint(['created_by_id'], ['user.id']),
                    sa.ForeignKeyConstraint(['patient_id'], ['patient.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('token_hash'))
    op.create_index(op.f('ix_portal_invitation_clinic_id'), 'portal_invitation', ['clinic_id'], unique=False)
    op.create_index(op.f('ix_portal_invitation_patient_id'), 'portal_invitation', ['patient_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_portal_invitation_patient_id'), table_name='portal_invitation')
    op.drop_index(op.f('ix_portal_invitation_clinic_id'), table_name='portal_invitation')
    op.drop_table('portal_invitation')
    op.drop_index(op.f('ix_mail_message_patient_id'), table_name='mail_message')
    op.drop_index('ix_mail_message_status_next', table_name='mail_message')
    op.drop_index('ix_mail_message_clinic_created', table_name='mail_message')
    op.drop_table('mail_message')
