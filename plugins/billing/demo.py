"""Demo billing for a seeded clinic: charges, paid and open invoices, a package, an estimate, superbills.

It runs for every test run's template database, so it renders only a handful of PDFs.
"""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from core.models import Clinic, Modality, Patient, Provider, SessionStatus, TreatmentSession, utcnow
from core.plugin_state import settings_for
from plugins.billing.charges import create_invoice, draft_charges
from plugins.billing.estimates import build_estimate, issue_estimate
from plugins.billing.models import BillingCharge, BillingPackage
from plugins.billing.money import local_date
from plugins.billing.payments import record_payment
from plugins.billing.superbills import issue_superbill
from plugins.billing.tables import drug_products

SUPERBILLS_PER_CLINIC = 1
# The demo's ketamine vial stock. A run of nines reads as made up at a glance, yet it has the
# 5-4-2 shape a claim needs and is no placeholder (labeler 00000, one repeated digit), so the
# demo issues superbills like a real clinic would. 50 mg/mL is a common ketamine strength.
DEMO_KETAMINE_NDC = "99999999910"  # 99999-9999-10
DEMO_KETAMINE_MG_PER_ML = 50.0


def seed(session: Session, clinic: Clinic) -> None:
    for product in drug_products(session, clinic.id):
        if product.code == "J3490":
            product.ndc, product.mg_per_unit = DEMO_KETAMINE_NDC, DEMO_KETAMINE_MG_PER_ML
            session.add(product)
    session.flush()
    settings = settings_for(session, clinic, "billing")
    treatments = session.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.status == SessionStatus.discharged)
        .order_by(TreatmentSession.patient_id, TreatmentSession.discharged_at)).all()
    by_patient: dict[int, list[TreatmentSession]] = {}
    for t in treatments:
        by_patient.setdefault(t.patient_id, []).append(t)
    patients = {p.id: p for p in session.exec(select(Patient).where(Patient.clinic_id == clinic.id)).all()}
    order = sorted(patients, key=lambda pid: patients[pid].mrn)
    paid_patients = []
    for rank, pid in enumerate(order):
        series = by_patient.get(pid, [])
        for k, t in enumerate(series):
            lines = draft_charges(session, clinic, t, settings)
            last = k == len(series) - 1
            if last and rank % 4 == 3:
                continue  # left as draft lines for a manager to review
            invoice = create_invoice(session, clinic.id, pid, [c.id for c in lines], None)
            if last and rank % 4 == 2:  # an open balance: half paid
                _pay(session, clinic, invoice, invoice.total_cents // 2, f"demo-{invoice.id}")
                continue
            _pay(session, clinic, invoice, invoice.total_cents, f"demo-{invoice.id}")
        if series and rank % 4 in (0, 1):
            paid_patients.append(pid)
    for pid in paid_patients[:SUPERBILLS_PER_CLINIC]:
        first = session.exec(select(BillingCharge.service_date).where(
            BillingCharge.clinic_id == clinic.id, BillingCharge.patient_id == pid,
            BillingCharge.status == "billed").order_by(BillingCharge.service_date)).first()
        issue_superbill(session, clinic, patients[pid], "visit", first, None)

    portal_patient = next((p for p in patients.values() if p.user_id is not None), patients[order[0]])
    session.add(BillingPackage(clinic_id=clinic.id, patient_id=portal_patient.id, name="Prepaid 6-session series",
                               sessions_total=6, paid_cents=270_000, method="card", created_at=utcnow()))
    provider = session.exec(select(Provider).where(Provider.clinic_id == clinic.id).order_by(Provider.id)).first()
    today = local_date(clinic, None)
    spravato = clinic.slug == "harbor"
    data = build_estimate(session, clinic, portal_patient, provider,
                          modality=Modality.esketamine_nasal if spravato else Modality.iv_ketamine,
                          sessions=None if spravato else 6, dose_mg=84 if spravato else 35, minutes=50,
                          evaluation_code="90792", first_service=today + timedelta(days=14), requested=True,
                          settings=settings, today=today)
    issue_estimate(session, clinic, portal_patient, data, None)
    session.flush()


def _pay(session, clinic, invoice, cents, key):
    record_payment(session, clinic.id, invoice.id, amount_cents=cents, method="card", key=key, reference="demo")
