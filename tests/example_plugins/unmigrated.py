"""A plugin whose model has no migration: startup must stop and say how to create one."""
from __future__ import annotations

from sqlmodel import Field, SQLModel

from core.hookspecs import hookimpl


class UnmigratedNote(SQLModel, table=True):
    __tablename__ = "unmigrated_note"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    text: str = Field(default="", max_length=200)


@hookimpl
def register_models():
    return [UnmigratedNote]
