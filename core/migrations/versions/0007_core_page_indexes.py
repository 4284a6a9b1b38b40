"""Indexes that keep the busiest pages fast at 100,000 patients (issue 11): open item-9 alerts,
active patients by name, each patient's next visit, Spravato sessions owing a REMS form

Revision ID: 0007_core_page_indexes
Revises: 0006_core_mfa
Create Date: 2026-12-02 15:45:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0007_core_page_indexes'
down_revision: Union[str, None] = '0006_core_mfa'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_outcome_score_open_alerts', 'outcome_score', ['clinic_id', 'taken_at'],
                    sqlite_where=sa.text('alert = 1 AND reviewed_at IS NULL'),
                    postgresql_where=sa.text('alert AND reviewed_at IS NULL'))
    op.create_index('ix_patient_clinic_active_name', 'patient',
                    ['clinic_id', 'archived', 'legal_last_name', 'legal_first_name', 'id'])
    op.create_index('ix_treatment_session_clinic_patient_scheduled', 'treatment_session',
                    ['clinic_id', 'patient_id', 'scheduled_at'])
    op.create_index('ix_treatment_session_clinic_modality_status', 'treatment_session',
                    ['clinic_id', 'modality', 'status'])


def downgrade() -> None:
    op.drop_index('ix_treatment_session_clinic_modality_status', table_name='treatment_session')
    op.drop_index('ix_treatment_session_clinic_patient_scheduled', table_name='treatment_session')
    op.drop_index('ix_patient_clinic_active_name', table_name='patient')
    op.drop_index('ix_outcome_score_open_alerts', table_name='outcome_score')
