"""Session safety: dose limits, dosing time and overrides, discharge judgement

Revision ID: 0003_core_session_safety
Revises: 0002_core_indexes
Create Date: 2026-12-01 22:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op


revision: str = '0003_core_session_safety'
down_revision: Union[str, None] = '0002_core_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
