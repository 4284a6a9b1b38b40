"""Spravato REMS: enrollment ids, the start blocker, and the Patient Monitoring Forms due.

Owned by core and registered as the plugin "core.rems" (core/plugins.py), so it is in every
clinic's relay and no clinic can switch it off: the REMS is a condition of the drug's label,
not a clinic preference. Its pages live in core/views/rems.py.
"""
from __future__ import annotations

from flask import render_template, url_for
from markupsafe import Markup
from sqlmodel import select

from core.hookspecs import hookimpl
from core.models import Modality
from core.slots import Blocker, NavItem, Panel, Widget

CLINICAL_ROLES = ("admin", "manager", "clinician")  # the forms hold medications and adverse events
WIDGET_ROWS = 8


def _clinical(user) -> bool:
    return user is not None and user.role.value in CLINICAL_ROLES


@hookimpl
def treatment_blockers(clinic, patient, treatment):
    """Esketamine only in a certified setting, for an enrolled patient (one indexed look-up, esketamine only)."""
    if treatment.modality != Modality.esketamine_nasal:
        return []
    from core.db import get_session
    from core.rems.models import RemsEnrollment

    reasons = []
    if not clinic.rems_setting_id:
        reasons.append(Blocker("Spravato REMS: the clinic's certified healthcare setting ID is not recorded. "
                               "A manager records it under Settings.", url_for("settings.clinic") + "#rems"))
    enrolled = get_session().exec(select(RemsEnrollment.id).where(
        RemsEnrollment.clinic_id == clinic.id, RemsEnrollment.patient_id == patient.id).limit(1)).first()
    if enrolled is None:
        reasons.append(Blocker("Spravato REMS: the patient's REMS enrollment ID is not recorded. Patients are "
                               "enrolled before their first dose; record it on the chart.",
                               url_for("patients.chart", patient_id=patient.id) + "#rems"))
    return reasons


@hookimpl
def nav_items(clinic, user):
    if clinic is None or not clinic.rems_setting_id or not _clinical(user):
        return []
    return [NavItem("REMS", url_for("rems.index"), order=35, roles=CLINICAL_ROLES)]


@hookimpl
def dashboard_widgets(clinic, user):
    if not _clinical(user):
        return []
    from core.db import get_session
    from core.rems.monitoring import due_forms

    due = due_forms(get_session(), clinic)
    if not due and not clinic.rems_setting_id:
        return []  # a clinic that gives no esketamine has nothing to show here
    html = render_template("rems/widget.html", due=due[:WIDGET_ROWS], total=len(due),
                           overdue=sum(d.overdue for d in due))
    return [Widget("Spravato REMS monitoring forms due", Markup(html), order=25)]


@hookimpl
def patient_chart_panels(clinic, patient, user):
    if not _clinical(user):
        return []
    from core.db import get_session
    from core.rems import enrollment, monitoring
    from core.schedule import patient_course

    session = get_session()
    history = enrollment.history(session, clinic.id, patient.id)
    esketamine = next((r.id for r in patient_course(session, clinic, patient.id)
                       if r.modality == Modality.esketamine_nasal), None)
    if not (history or esketamine or clinic.rems_setting_id):
        return []
    submitted = monitoring.submitted_forms(session, clinic, patient_ids=[patient.id], limit=10)
    html = render_template("rems/_chart_panel.html", patient=patient, current=history[0] if history else None,
                           history=history, due=monitoring.due_forms(session, clinic, [patient.id]),
                           submitted=submitted, esketamine=esketamine is not None, values={}, errors={},
                           days={s.treatment_id: monitoring.treatment_date(clinic, s.TreatmentSession) for s in submitted},
                           names=enrollment.names_of(session, [h.recorded_by_id for h in history]
                                                     + [s.submitted_by_id for s in submitted]))
    return [Panel("Spravato REMS", Markup(html), order=50)]
