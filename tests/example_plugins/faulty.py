"""A plugin that raises in its hooks, to prove one bad plugin cannot take a page down."""
from __future__ import annotations

from sqlalchemy import text

from core.db import get_session
from core.hookspecs import hookimpl
from core.models import PluginState


class FaultyError(RuntimeError):
    pass


@hookimpl
def nav_items(clinic, user):
    raise FaultyError("nav_items broke")


@hookimpl
def dashboard_widgets(clinic, user):
    """Writes a row first, then raises: the row must not survive."""
    session = get_session()
    session.add(PluginState(clinic_id=clinic.id, plugin="faulty", enabled=True, settings={"half": "written"}))
    session.flush()
    raise FaultyError("dashboard_widgets broke after writing")


@hookimpl
def patient_chart_panels(clinic, patient, user):
    """A failed statement: on PostgreSQL it aborts the transaction, and the chart must still be served."""
    get_session().execute(text("SELECT no_such_column FROM no_such_table"))
    raise FaultyError("patient_chart_panels broke")


@hookimpl
def portal_items(clinic, patient):
    raise FaultyError("portal_items broke")


@hookimpl
def treatment_completed(clinic, treatment):
    raise FaultyError("treatment_completed broke")


@hookimpl
def patient_created(clinic, patient):
    raise FaultyError("patient_created broke")
