"""The keyed audit chain: a nonce and MAC on each audit row, positions and hashes in audit_seal

Rows written before this revision keep their unkeyed chain (prev_hash, hash) and are sealed
here, in id order, at the start of the keyed chain, so verify covers them from now on.

Revision ID: 0005_core_audit_seal
Revises: 0004_core_rems
Create Date: 2026-12-02 02:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op

from core.audit import immutable_trigger_sql


revision: str = '0005_core_audit_seal'
down_revision: Union[str, None] = '0004_core_rems'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('mac', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_event_nonce'), ['nonce'], unique=True)

    op.create_table('audit_seal',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sealed_at', core.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['audit_event.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id')
    )
    bind = op.get_bind()
    for statement in immutable_trigger_sql(bind.dialect.name, "audit_seal"):
        op.execute(statement)

    from core import audit_chain

    key = audit_chain.current_key()
    while audit_chain.seal(bind, key, floor=0, legacy=True) == audit_chain.BATCH:
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_seal_append_only() CASCADE")
    op.drop_table('audit_seal')
    with op.batch_alter_table('audit_event', schema=None, recreate='never') as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_nonce'))
        batch_op.drop_column('mac')
        batch_op.drop_column('nonce')
