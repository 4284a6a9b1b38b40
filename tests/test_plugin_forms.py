"""The plugins' forms on WTForms: only declared fields are read, a refused form answers 422 with its
message beside the field, and no converted plugin parses request.form by hand."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from sqlmodel import func, select

from core.models import Patient, PluginState
from plugins.billing.models import BillingPackage
from plugins.consent.models import ContraindicationItem
from plugins.coordination.compose import clinic_today
from plugins.coordination.models import CoordinationPermission
from tests.coordination_support import benzo_patient, clinic
from tests.support import login, post
from tests.test_billing_web import fresh

ROOT = Path(__file__).resolve().parent.parent
CONVERTED = ("billing", "consent", "coordination")
CONSENT_SETTINGS = {"validity_days": "365", "screening_validity_days": "365", "bp_systolic_max": "160",
                    "bp_diastolic_max": "100", "required_iv_ketamine_informed_ketamine": "1",
                    "required_im_ketamine_informed_ketamine_im": "1",
                    "required_sublingual_informed_ketamine_oral": "1",
                    "required_esketamine_nasal_informed_esketamine": "1"}


def _packages(db, pid: int) -> list[BillingPackage]:
    fresh(db)
    return list(db.exec(select(BillingPackage).where(BillingPackage.patient_id == pid)).all())


def test_a_package_sale_ignores_undeclared_fields(app, client, db):
    patient = db.exec(select(Patient).order_by(Patient.id)).first()
    other = db.exec(select(Patient).where(Patient.id != patient.id).order_by(Patient.id)).first()
    before = len(_packages(db, patient.id))
    login(app, client, "manager")
    resp = post(app, client, f"/billing/patients/{patient.id}/packages",
                {"name": "Series", "sessions": "4", "amount": "400.00", "method": "card",
                 "clinic_id": "999", "patient_id": str(other.id), "paid_cents": "1", "amount_cents": "1",
                 "sessions_used": "3", "status": "void"})
    assert resp.status_code == 302
    rows = _packages(db, patient.id)
    assert len(rows) == before + 1
    new = rows[-1]
    assert (new.clinic_id, new.patient_id, new.paid_cents, new.sessions_used) == (patient.clinic_id, patient.id,
                                                                                  40_000, 0)


def test_a_refused_package_sale_says_why_beside_the_field_and_writes_nothing(app, client, db):
    patient = db.exec(select(Patient).order_by(Patient.id)).first()
    before = db.exec(select(func.count()).select_from(BillingPackage)).one()
    login(app, client, "manager")
    resp = post(app, client, f"/billing/patients/{patient.id}/packages",
                {"name": "Series", "sessions": "4", "amount": "$1,250", "method": "card"})
    assert resp.status_code == 422
    assert re.search(r'name="amount"[^>]*aria-invalid="true" aria-describedby="e-amount"', resp.text)
    assert re.search(r'id="e-amount">Package price: write the amount without commas', resp.text)
    assert 'value="$1,250"' in resp.text  # shown again as typed
    fresh(db)
    assert db.exec(select(func.count()).select_from(BillingPackage)).one() == before


def test_a_new_screening_question_ignores_undeclared_fields(app, client, db):
    stillwater, harbor = clinic(db), clinic(db, "harbor")
    login(app, client, "manager")
    resp = post(app, client, "/consent/contraindications",
                {"label": "Uncontrolled hyperthyroidism", "severity": "absolute", "modality_iv_ketamine": "1",
                 "clinic_id": str(harbor.id), "code": "seizure", "position": "-5", "id": "1", "active": "0"})
    assert resp.status_code == 302
    fresh(db)
    row = db.exec(select(ContraindicationItem).where(ContraindicationItem.label == "Uncontrolled hyperthyroidism")).one()
    assert (row.clinic_id, row.severity, row.modalities, row.active) == (stillwater.id, "absolute", ["iv_ketamine"], True)
    assert row.code.startswith("custom_") and row.position > 0


def test_refused_consent_settings_say_why_beside_the_field_and_write_nothing(app, client, db):
    stillwater = clinic(db)
    login(app, client, "manager")
    assert post(app, client, "/consent/settings", CONSENT_SETTINGS).status_code == 302
    resp = post(app, client, "/consent/settings", {**CONSENT_SETTINGS, "validity_days": "9999",
                                                   "bp_systolic_max": "150"})
    assert resp.status_code == 422
    assert re.search(r'name="validity_days"[^>]*aria-invalid="true" aria-describedby="e-validity_days"', resp.text)
    assert 'id="e-validity_days">Enter a whole number from 1 to 3650.' in resp.text
    assert 'value="9999"' in resp.text  # shown again as typed
    fresh(db)
    saved = db.get(PluginState, (stillwater.id, "consent")).settings
    assert (saved["validity_days"], saved["bp_systolic_max"]) == (365, 160)


def test_a_refused_signature_says_why_beside_the_name(app, client, db):
    patient = db.exec(select(Patient).where(Patient.clinic_id == clinic(db).id).order_by(Patient.id)).first()
    login(app, client, "clinician")
    page = client.get(f"/consent/patients/{patient.id}/sign/informed_ketamine")
    assert page.status_code == 200
    template_id = re.search(r'name="template_id" value="(\d+)"', page.text).group(1)
    resp = post(app, client, f"/consent/patients/{patient.id}/sign/informed_ketamine",
                {"template_id": template_id, "submission_token": "ab" * 16, "signer_role": "patient",
                 "signer_name": "Somebody Else", "ack_0": "x"})
    assert resp.status_code == 422
    assert re.search(r'name="signer_name"[^>]*aria-invalid="true" aria-describedby="e-signer_name"', resp.text)
    assert 'id="e-signer_name">Type the patient&#39;s full legal name' in resp.text
    assert 'id="e-acks">Tick every box' in resp.text  # "x" is not a tick


def test_a_permission_ignores_undeclared_fields(app, client, db):
    patient, _benzo, psychiatrist = benzo_patient(db)
    other = db.exec(select(Patient).where(Patient.id != patient.id, Patient.clinic_id == patient.clinic_id)).first()
    today = clinic_today(clinic(db))
    login(app, client, "clinician")
    resp = post(app, client, f"/coordination/patients/{patient.id}/permissions",
                {"recipient_id": str(psychiatrist), "granted_on": today.isoformat(), "covers_part2": "1",
                 "patient_id": str(other.id), "clinic_id": "999", "recorded_by_id": "1",
                 "revoked_at": today.isoformat(), "covers_psychotherapy_notes": "maybe"})
    assert resp.status_code == 302
    fresh(db)
    row = db.exec(select(CoordinationPermission).where(CoordinationPermission.patient_id == patient.id)).one()
    assert (row.clinic_id, row.recipient_id, row.granted_on, row.revoked_at) == (patient.clinic_id, psychiatrist,
                                                                               today, None)
    assert row.covers_part2 and not row.covers_psychotherapy_notes
    assert not db.exec(select(CoordinationPermission).where(CoordinationPermission.patient_id == other.id)).all()


def test_a_refused_permission_says_why_beside_the_field_and_writes_nothing(app, client, db):
    patient, _benzo, psychiatrist = benzo_patient(db)
    tomorrow = (clinic_today(clinic(db)) + timedelta(days=1)).isoformat()
    before = db.exec(select(func.count()).select_from(CoordinationPermission)).one()
    login(app, client, "clinician")
    resp = post(app, client, f"/coordination/patients/{patient.id}/permissions",
                {"recipient_id": str(psychiatrist), "granted_on": tomorrow, "expires_on": "2026-02-30"})
    assert resp.status_code == 422
    assert re.search(r'name="granted_on"[^>]*aria-invalid="true" aria-describedby="e-granted_on"', resp.text)
    assert 'id="e-granted_on">The date the permission was given cannot be in the future.' in resp.text
    assert f'value="{tomorrow}"' in resp.text
    fresh(db)
    assert db.exec(select(func.count()).select_from(CoordinationPermission)).one() == before


def test_no_plugin_reads_a_form_by_hand():
    sources = [path for path in (ROOT / "plugins").rglob("*.py")]
    assert {p.relative_to(ROOT / "plugins").parts[0] for p in sources} >= set(CONVERTED)
    for path in sources:
        source = path.read_text()
        assert "request.form" not in source, path
        assert not re.search(r"from core\.forms import|import core\.forms|from core import [^\n]*\bforms\b",
                             source), path
