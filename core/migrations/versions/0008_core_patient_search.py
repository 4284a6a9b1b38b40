"""Patient search terms: each word of a patient's names and MRN, so search reads an index, not every patient

Revision ID: 0008_core_patient_search
Revises: 0007_core_page_indexes
Create Date: 2026-12-02 15:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from core import search

revision: str = '0008_core_patient_search'
down_revision: Union[str, None] = '0007_core_page_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    term = op.create_table('patient_search_term',
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('term', sa.String(length=100).with_variant(sa.String(length=100, collation='C'), 'postgresql'),
              nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('clinic_id', 'term', 'patient_id')
    )
    op.create_index(op.f('ix_patient_search_term_patient_id'), 'patient_search_term', ['patient_id'], unique=False)
    # the terms of the patients already there (the same words the app writes from now on)
    conn = op.get_bind()
    patient = sa.table('patient', *(sa.column(n) for n in ('id', 'clinic_id', *search.FIELDS)))
    rows = []
    for p in conn.execute(sa.select(patient)):
        rows += search.rows_for(p.clinic_id, p.id, *(getattr(p, f) for f in search.FIELDS))
        if len(rows) >= 20_000:
            conn.execute(term.insert(), rows)
            rows = []
    if rows:
        conn.execute(term.insert(), rows)


def downgrade() -> None:
    op.drop_index(op.f('ix_patient_search_term_patient_id'), table_name='patient_search_term')
    op.drop_table('patient_search_term')
