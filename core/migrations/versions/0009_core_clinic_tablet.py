"""The clinic a user last worked in (opened at sign-in), and the tablet lock of a sign-in session

Revision ID: 0009_core_clinic_tablet
Revises: 0008_core_patient_search
Create Date: 2026-12-02 15:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0009_core_clinic_tablet'
down_revision: Union[str, None] = '0008_core_patient_search'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # existing memberships keep NULL: until a user switches clinic, sign-in opens the first by name
    with op.batch_alter_table('membership', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('last_used_at', core.models.UTCDateTime(), nullable=True))

    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tablet_patient_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_user_session_tablet_patient_id_patient', 'patient',
                                    ['tablet_patient_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.drop_constraint('fk_user_session_tablet_patient_id_patient', type_='foreignkey')
        batch_op.drop_column('tablet_patient_id')

    with op.batch_alter_table('membership', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('last_used_at')
