"""A tablet PIN for staff, and TOTP secrets sealed at rest (a wider column for the sealed form)

Revision ID: 0014_core_tablet_pin
Revises: 0013_core_outcome_report
Create Date: 2026-12-03 16:10:00

Plain secrets already stored are sealed here when the key is in the environment (GLIA_MFA_KEY, else
GLIA_SECRET_KEY, as core.mfa.secret_key chooses); otherwise core.mfa seals each one the first time it
is used, so upgrading never needs the key.
"""
import os
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0014_core_tablet_pin'
down_revision: Union[str, None] = '0013_core_outcome_report'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # plain ADD COLUMNs (no table rebuild: much refers to "user"); the default fills existing rows
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('tablet_pin_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('pin_failures', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('mfa_factor', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=200), existing_nullable=False)
    _seal_plain_secrets()


def _seal_plain_secrets() -> None:
    from core.mfa import SEALED, derive_key, seal

    material = os.environ.get("GLIA_MFA_KEY") or os.environ.get("GLIA_SECRET_KEY")
    if not material:
        return  # sealed lazily, on first use
    key = derive_key(material.encode())
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, user_id, secret FROM mfa_factor")).all()
    for row in rows:
        if not row.secret.startswith(SEALED):
            bind.execute(sa.text("UPDATE mfa_factor SET secret = :s WHERE id = :id"),
                         {"s": seal(row.secret, row.user_id, key), "id": row.id})


def downgrade() -> None:
    # sealed secrets no longer fit the narrower column: a downgrade removes the factors (users enrol again)
    op.execute("DELETE FROM mfa_recovery_code")
    op.execute("DELETE FROM mfa_factor")
    op.execute('UPDATE "user" SET mfa_enabled_at = NULL')
    with op.batch_alter_table('mfa_factor', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=64), existing_nullable=False)
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('pin_failures')
        batch_op.drop_column('tablet_pin_hash')
