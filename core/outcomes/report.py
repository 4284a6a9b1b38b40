"""The measurement-based-care report: composed from the record, signed once, kept as signed.

Everything the report states is read from the chart at the moment of signing (scores, sessions
given, side effects, diagnoses) or typed by the signing clinician (their statement), and the PDF
bytes are stored with their SHA-256: a later download is the document that was signed, even after
the chart changes.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core import audit
from core.models import Clinic, Diagnosis, Instrument, Patient, Provider, User, utcnow
from core.outcomes import measures
from core.outcomes.chart import trend_chart
from core.outcomes.models import OutcomeReport
from core.vocab import SIDE_EFFECTS
from core.pdf import render_pdf_template

PURPOSES = {
    "re_authorization": "Re-authorization of treatment",
    "appeal": "Out-of-network reimbursement or appeal",
    "progress": "Progress summary",
}


class ReportProblem(Exception):
    """Why the report cannot be signed; shown to the clinician, nothing written."""


def signer_provider(db: Session, clinic: Clinic, user: User) -> Provider | None:
    """The signer's provider record here: a payer needs the name, credentials and NPI of who signs."""
    return db.exec(select(Provider).where(Provider.clinic_id == clinic.id, Provider.user_id == user.id,
                                          Provider.active)).first()


def compose(db: Session, clinic: Clinic, patient: Patient) -> dict:
    """The report's content, from the record as it stands now (the clinic is passed beside it)."""
    course = measures.course(db, clinic.id, patient.id)
    diagnoses = db.exec(select(Diagnosis).where(Diagnosis.clinic_id == clinic.id, Diagnosis.patient_id == patient.id)
                        .order_by(Diagnosis.is_primary.desc(), Diagnosis.code)).all()
    providers = {p.id: p for p in db.exec(select(Provider).where(Provider.clinic_id == clinic.id)).all()}
    return {"patient": patient, "course": course, "diagnoses": diagnoses, "providers": providers,
            "charts": [trend_chart(course.scores, i, width=500, height=170) for i in Instrument],
            "window_days": measures.BASELINE_WINDOW.days, "effect_names": SIDE_EFFECTS}


def summary(course: measures.Course) -> dict:
    """The figures a signed report states, kept beside its PDF for the list of reports."""
    out = {"sessions": len(course.given)}
    for instrument, m in course.measures.items():
        out[instrument.value] = {"baseline": m.baseline.total if m.baseline else None,
                                 "latest": m.latest.total if m.latest else None, "status": m.status}
    return out


def sign(db: Session, clinic: Clinic, patient: Patient, signer: User, *, purpose: str, statement: str,
         now: datetime | None = None) -> OutcomeReport:
    """Render and store the signed PDF with an audit row in the same transaction."""
    provider = signer_provider(db, clinic, signer)
    if provider is None:
        raise ReportProblem("Only a clinician with an active provider record (name, credentials, NPI) here can sign "
                            "an outcome report.")
    ctx = compose(db, clinic, patient)
    if not ctx["course"].scores:
        raise ReportProblem("There are no PHQ-9 or GAD-7 scores on the chart: an outcome report would have nothing to show.")
    now = now or utcnow()
    local = now.astimezone(ZoneInfo(clinic.timezone))
    _html, pdf = render_pdf_template("outcomes/report_pdf.html", clinic=clinic, **ctx, signer=provider,
                                     signed_local=local, purpose=PURPOSES[purpose], statement=statement)
    report = OutcomeReport(clinic_id=clinic.id, patient_id=patient.id, purpose=purpose, pdf=pdf,
                           sha256=hashlib.sha256(pdf).hexdigest(), summary=summary(ctx["course"]),
                           signed_by_id=signer.id, signed_at=now)
    db.add(report)
    db.flush()
    audit.append(db, "outcome_report.signed", object_type="outcome_report", object_id=report.id,
                 patient_id=patient.id, clinic_id=clinic.id, detail=f"purpose={purpose} sha256={report.sha256[:16]}")
    return report
