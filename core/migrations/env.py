"""Alembic environment shared by core and every plugin (see core/migrate.py)."""
from alembic import context

from core.migrate import run_env

run_env(context)
