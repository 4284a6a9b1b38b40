"""Spravato REMS as a clinic meets it: no esketamine start without the patient's enrollment and the
setting's certification, and after every esketamine session a Patient Monitoring Form, filled from
the session's own record, stays on the dashboard until staff mark it submitted."""
from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlmodel import func, select

from core import workflow
from core.db import session_scope
from core.models import (AuditEvent, Clinic, Medication, Modality, Patient, Provider, SessionStatus, SideEffect,
                         TreatmentSession, User, VitalPhase, VitalSign, utcnow)
from core.rems.models import RemsEnrollment, RemsMonitoringForm
from core.rems.monitoring import FIELDS
from tests.support import login, post

S = SessionStatus
LABEL = {f["key"]: f["label"] for f in FIELDS}


def fresh(db):
    """End the read snapshot to see what the app committed."""
    db.rollback()
    db.connection(execution_options={"sqlite_begin": "DEFERRED"})


def count(db, model, *where) -> int:
    fresh(db)
    return db.exec(select(func.count()).select_from(model).where(*where)).one()


def stillwater_today() -> date:
    return datetime.now(ZoneInfo("America/Los_Angeles")).date()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def write(app):
    """A write session on the test's database, for arranging what happened before the story starts."""
    return session_scope(app.extensions["glia"].engine)


def new_patient(app, slug: str, first: str, last: str, *, meds=(), enrolled_on: date | None = None) -> int:
    """A patient of ``slug`` with the given current or past medications and, optionally, a REMS enrollment."""
    with app.app_context(), write(app) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == slug)).one()
        patient = Patient(clinic_id=clinic.id, mrn=f"RM{first[:3].upper()}{last[:3].upper()}", legal_first_name=first,
                          legal_last_name=last, dob=date(1980, 4, 9), sex="F", created_at=utcnow())
        s.add(patient)
        s.flush()
        for name, drug_class, stopped in meds:
            s.add(Medication(clinic_id=clinic.id, patient_id=patient.id, name=name, drug_class=drug_class,
                             start_date=date.today() - timedelta(days=300), stop_date=stopped, created_at=utcnow()))
        if enrolled_on is not None:
            clinician = s.exec(select(User).where(User.email.like(f"{slug}.clinician@%" if slug == "harbor"
                                                                  else "clinician@%"))).one()
            s.add(RemsEnrollment(clinic_id=clinic.id, patient_id=patient.id, enrollment_id=f"TEST-{patient.id:05d}",
                                 enrolled_on=enrolled_on, recorded_by_id=clinician.id, recorded_at=utcnow()))
        return patient.id


def discharged_session(app, patient_id: int, *, days_ago: int, dose: float = 84.0, lot: str = "LOT-4471A") -> int:
    """An esketamine session that happened ``days_ago`` days ago, written as history with its full record."""
    with app.app_context(), write(app) as s:
        patient = s.get(Patient, patient_id)
        provider = s.exec(select(Provider).where(Provider.clinic_id == patient.clinic_id,
                                                 Provider.user_id.is_not(None))).first()
        dosed = utcnow().replace(microsecond=0) - timedelta(days=days_ago)
        t = TreatmentSession(clinic_id=patient.clinic_id, patient_id=patient.id, provider_id=provider.id,
                             modality=Modality.esketamine_nasal, status=S.discharged,
                             scheduled_at=dosed - timedelta(minutes=30), checked_in_at=dosed - timedelta(minutes=25),
                             started_at=dosed - timedelta(minutes=5), dosed_at=dosed,
                             monitoring_at=dosed + timedelta(minutes=10), discharged_at=dosed + timedelta(minutes=130),
                             dose_mg=dose, lot_number=lot, escort_confirmed=True, escort_name="An Escort",
                             discharge_ready_by_id=provider.user_id, ready_minutes=95, version=6)
        with workflow.importing(s):
            s.add(t)
        s.flush()
        for phase, minutes, bp in ((VitalPhase.baseline, -20, (131, 84)), (VitalPhase.post_dose, 40, (142, 90)),
                                   (VitalPhase.discharge, 125, (128, 80))):
            s.add(VitalSign(clinic_id=t.clinic_id, treatment_id=t.id, phase=phase, systolic=bp[0], diastolic=bp[1],
                            taken_at=dosed + timedelta(minutes=minutes)))
        for effect, severity, resolved in (("sedation", "moderate", True), ("dissociation", "mild", False),
                                           ("nausea", "mild", True)):
            s.add(SideEffect(clinic_id=t.clinic_id, treatment_id=t.id, effect=effect, severity=severity,
                             resolved=resolved, recorded_at=dosed + timedelta(minutes=45)))
        return t.id


def row_of(html: str, name: str) -> str:
    """The table row (or list item) of a page that names ``name``."""
    match = re.search(r"<(tr|li)>(?:(?!</\1>).)*?" + re.escape(name) + r".*?</\1>", html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def checked_in_esketamine(app, client, patient_id: int) -> TreatmentSession:
    """Schedule today's esketamine session on the chart and check the patient in, as staff do."""
    with app.app_context(), write(app) as s:
        patient = s.get(Patient, patient_id)
        provider = s.exec(select(Provider).where(Provider.clinic_id == patient.clinic_id, Provider.active)).first()
    assert post(app, client, f"/patients/{patient_id}/sessions", {
        "date": date.today().isoformat(), "time": "00:01", "modality": "esketamine_nasal",
        "provider_id": provider.id}).status_code == 302
    with app.app_context(), write(app) as s:
        t = s.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient_id,
                                                  TreatmentSession.status == S.scheduled)).one()
    resp = post(app, client, f"/sessions/{t.id}/check-in", {
        "version": t.version, "escort_confirmed": "1", "escort_name": "An Escort", "escort_phone": "555-010-4444",
        "baseline_systolic": "128", "baseline_diastolic": "82"})
    assert resp.status_code == 302
    with app.app_context(), write(app) as s:
        return s.get(TreatmentSession, t.id)


# -- the start gate -----------------------------------------------------------------------------

def test_an_unenrolled_spravato_patient_cannot_start_until_the_chart_records_the_enrollment(make_app, db):
    """REMS is core's gate: it stands even in a deployment that loads no plugins at all."""
    app = make_app(plugins=[])
    client = app.test_client()
    login(app, client, "harbor.clinician")
    pid = new_patient(app, "harbor", "Remsy", "Unenrolled")
    t = checked_in_esketamine(app, client, pid)

    blocked = post(app, client, f"/sessions/{t.id}/start", {"version": t.version})
    assert blocked.status_code == 409
    assert "REMS enrollment ID is not recorded" in blocked.text
    assert f'href="/patients/{pid}#rems"' in blocked.text
    fresh(db)
    assert db.get(TreatmentSession, t.id).status == S.checked_in
    assert count(db, AuditEvent, AuditEvent.action == "session.start", AuditEvent.object_id == str(t.id),
                 AuditEvent.outcome == "denied") == 1

    chart = client.get(f"/patients/{pid}")
    assert 'id="rems"' in chart.text and "Not enrolled" in chart.text
    assert post(app, client, f"/rems/patients/{pid}/enrollment",
                {"enrollment_id": "PT-20417", "enrolled_on": date.today().isoformat(), "current_id": ""}).status_code == 302
    assert "PT-20417" in client.get(f"/patients/{pid}").text

    started = post(app, client, f"/sessions/{t.id}/start", {"version": t.version})
    assert started.status_code == 302
    fresh(db)
    assert db.get(TreatmentSession, t.id).status == S.in_progress


def test_a_setting_without_its_rems_certification_id_cannot_start_esketamine(make_app, db):
    app = make_app(plugins=[])
    client = app.test_client()
    login(app, client, "harbor.clinician")
    pid = new_patient(app, "harbor", "Remsy", "Uncertified", enrolled_on=date.today() - timedelta(days=3))
    t = checked_in_esketamine(app, client, pid)
    with app.app_context(), write(app) as s:
        harbor = s.exec(select(Clinic).where(Clinic.slug == "harbor")).one()
        harbor.rems_setting_id = ""
        s.add(harbor)

    blocked = post(app, client, f"/sessions/{t.id}/start", {"version": t.version})
    assert blocked.status_code == 409
    assert "certified healthcare setting ID is not recorded" in blocked.text
    assert 'href="/settings/clinic#rems"' in blocked.text

    manager = app.test_client()
    login(app, manager, "harbor.manager")
    page = manager.get("/settings/clinic")
    fields = {k: v for k, v in re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', page.text) if k != "csrf_token"}
    fields.update(state="MA", timezone="America/New_York", place_of_service="11")
    for bad in ("ＳＥＴＴＩＮＧ１", "CERT 01", "X" * 41):
        refused = post(app, manager, "/settings/clinic", {**fields, "rems_setting_id": bad})
        assert refused.status_code == 422 and "Spravato REMS setting ID" in refused.text
    fresh(db)
    assert db.exec(select(Clinic.rems_setting_id).where(Clinic.slug == "harbor")).one() == ""
    assert post(app, manager, "/settings/clinic", {**fields, "rems_setting_id": "HSC-00321"}).status_code == 302

    assert post(app, client, f"/sessions/{t.id}/start", {"version": t.version}).status_code == 302


def test_iv_ketamine_never_asks_for_rems(make_app, db):
    app = make_app(plugins=[])
    client = app.test_client()
    login(app, client, "clinician")
    patient = db.exec(select(Patient).where(Patient.mrn == "ST1001")).one()
    t = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                               TreatmentSession.status == S.checked_in)).one()
    assert t.modality == Modality.iv_ketamine
    assert db.exec(select(RemsEnrollment).where(RemsEnrollment.patient_id == patient.id)).first() is None
    with app.app_context(), write(app) as s:
        clinic = s.get(Clinic, t.clinic_id)
        clinic.rems_setting_id = ""
        s.add(clinic)
    page = client.get(f"/sessions/{t.id}")
    assert "REMS enrollment" not in page.text and "setting ID" not in page.text
    assert post(app, client, f"/sessions/{t.id}/start", {"version": t.version}).status_code == 302


# -- the monitoring form ------------------------------------------------------------------------

@pytest.fixture
def treated(app):
    """A Stillwater patient on lorazepam and zolpidem (a stimulant stopped months ago), two days after a
    first, 84 mg Spravato session that was monitored for 130 minutes. Stillwater is certified but has given
    no esketamine before, so its dashboard shows this form alone."""
    pid = new_patient(app, "stillwater", "Remsy", "Formfield", enrolled_on=date.today() - timedelta(days=20), meds=[
        ("Lorazepam", "benzodiazepine", None), ("Zolpidem", "other", None),
        ("Methylphenidate", "stimulant", date.today() - timedelta(days=90))])
    return pid, discharged_session(app, pid, days_ago=2)


def test_after_discharge_the_form_is_due_and_filled_from_the_session_record(app, client, db, treated):
    pid, tid = treated
    login(app, client, "clinician")
    dashboard = client.get("/")
    assert "Spravato REMS monitoring forms due" in dashboard.text
    row = row_of(dashboard.text, "Remsy Formfield")
    due_by = (stillwater_today() + timedelta(days=5)).strftime("%m/%d/%Y")
    assert due_by in row and "Overdue" not in row

    download = client.get(f"/rems/forms/{tid}.csv")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f'attachment; filename="rems-monitoring-form-session-{tid}.csv"'
    [values] = csv_rows(download.text)
    assert list(values) == [f["label"] for f in FIELDS]
    expected = {
        "patient_first_name": "Remsy", "patient_middle_initial": "", "patient_last_name": "Formfield",
        "patient_dob": "04/09/1980", "patient_sex": "Female", "first_treatment": "Yes", "enrolled": "Yes",
        "benzodiazepines": "Yes (Lorazepam)", "sedative_hypnotics": "Yes (Zolpidem)", "psychostimulants": "No",
        "maois": "No", "provider_email": "clinician@demo.glia.example", "provider_phone": "541-555-0100",
        "setting_name": "Stillwater Ketamine Clinic (demo)",
        "setting_address": "100 Example Way, Suite 2, Springfield, OR 97477", "setting_rems_id": "DEMO-SETTING-0001",
        "dose": "84 mg", "dose_other": "Not applicable",
        "lot_number": "LOT-4471A", "minutes_monitored": "130", "ready_minutes": "95", "vitals_ok_before": "Yes",
        "vitals_ok_completion": "Yes", "sedation": "Yes (moderate)", "sedation_resolved": "Yes",
        "dissociation": "Yes (mild)", "dissociation_resolved": "No", "respiratory_depression": "No",
        "respiratory_depression_resolved": "Not applicable", "other_adverse_events": "Nausea (mild, resolved)",
    }
    assert {k: values[LABEL[k]] for k in expected} == expected
    for key, bp in (("bp_before", "131/84 mmHg"), ("bp_40_min", "142/90 mmHg"), ("bp_completion", "128/80 mmHg")):
        assert values[LABEL[key]].startswith(bp + " at ")

    pdf = client.get(f"/rems/forms/{tid}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="rems-monitoring-form-session-{tid}.pdf"'
    text = pdf_text(pdf.data)
    for snippet in ("SPRAVATO® REMS Patient Monitoring Form", "84 mg", "LOT-4471A", "131/84 mmHg", "142/90 mmHg",
                    "128/80 mmHg", "130", "Lorazepam", "Zolpidem", "Nausea (mild, resolved)", "Form version: Unknown",
                    "Glia prepares it from the session record; it does not submit it"):
        assert snippet in text, snippet
    for key in ("treatment_date", "provider_name", "setting_address", "bp_completion"):
        assert values[LABEL[key]] in text
    assert "Formfield" not in pdf.headers["Content-Disposition"]
    assert count(db, AuditEvent, AuditEvent.action == "rems.form_download", AuditEvent.object_id == str(tid)) == 2

    everything_due = client.get("/rems/due.csv")
    assert [r for r in csv_rows(everything_due.text) if r[LABEL["patient_last_name"]] == "Formfield"] == [values]


def test_a_field_the_record_lacks_reads_not_recorded(app, client, db):
    """A session recorded before dosing times and lots were kept: nothing is guessed."""
    pid = new_patient(app, "stillwater", "Remsy", "Sparse")
    tid = discharged_session(app, pid, days_ago=1, dose=70.0, lot="")
    with app.app_context(), write(app) as s:
        t = s.get(TreatmentSession, tid)
        t.dosed_at, t.ready_minutes, t.discharge_ready_by_id = None, None, None
        s.add(t)
    login(app, client, "clinician")
    [values] = csv_rows(client.get(f"/rems/forms/{tid}.csv").text)
    for key in ("lot_number", "minutes_monitored", "ready_minutes", "vitals_ok_completion", "enrolled",
                "patient_rems_id", "benzodiazepines", "maois"):
        assert values[LABEL[key]] == "Not recorded", key
    assert (values[LABEL["dose"]], values[LABEL["dose_other"]]) == ("Other", "70")
    page = client.get(f"/rems/forms/{tid}")
    assert page.status_code == 200 and page.text.count(">Not recorded<") >= 8


def test_an_eight_day_old_form_stands_out_as_overdue(app, client, treated):
    old = new_patient(app, "stillwater", "Remsy", "Latecomer", enrolled_on=date.today() - timedelta(days=30))
    discharged_session(app, old, days_ago=8)
    login(app, client, "clinician")
    for page in (client.get("/").text, client.get("/rems/").text):
        assert "Overdue" in row_of(page, "Remsy Latecomer")
        assert "Overdue" not in row_of(page, "Remsy Formfield")


def test_marking_submitted_keeps_the_exact_files_and_clears_it_from_due(app, client, db, treated):
    pid, tid = treated
    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert desk.get(f"/rems/forms/{tid}.pdf").status_code == 403
    assert post(app, desk, f"/rems/forms/{tid}/submit", {"fingerprint": "x"}).status_code == 403

    login(app, client, "manager")  # managers submit too
    page = client.get(f"/rems/forms/{tid}").text
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]{64})"', page).group(1)
    for bad in ("R" * 101, "ref\x00nul"):
        refused = post(app, client, f"/rems/forms/{tid}/submit", {"fingerprint": fingerprint, "reference": bad})
        assert refused.status_code == 422
    stale = post(app, client, f"/rems/forms/{tid}/submit", {"fingerprint": "0" * 64, "reference": ""})
    assert stale.status_code == 409 and "changed after this form was shown" in stale.text
    assert count(db, RemsMonitoringForm, RemsMonitoringForm.treatment_id == tid) == 0

    done = post(app, client, f"/rems/forms/{tid}/submit", {"fingerprint": fingerprint, "reference": "REMS-CONF-88"})
    assert done.status_code == 302
    again = post(app, client, f"/rems/forms/{tid}/submit", {"fingerprint": fingerprint})
    assert again.status_code == 409 and "already marked submitted" in again.text
    assert "Remsy Formfield" not in client.get("/").text
    listing = client.get("/rems/").text
    assert "REMS-CONF-88" in row_of(listing, "Remsy Formfield")
    treated_on = (stillwater_today() - timedelta(days=2)).strftime("%m/%d/%Y")
    assert "Submitted" in row_of(client.get(f"/patients/{pid}").text, f"Treatment {treated_on}")

    first_pdf, first_csv = client.get(f"/rems/forms/{tid}.pdf").data, client.get(f"/rems/forms/{tid}.csv").data
    with app.app_context(), write(app) as s:  # the record moves on after submission
        t = s.get(TreatmentSession, tid)
        t.lot_number = "LOT-CHANGED"
        s.add(t)
    assert client.get(f"/rems/forms/{tid}.pdf").data == first_pdf
    assert client.get(f"/rems/forms/{tid}.csv").data == first_csv
    fresh(db)
    stored = db.exec(select(RemsMonitoringForm).where(RemsMonitoringForm.treatment_id == tid)).one()
    assert stored.pdf == first_pdf and stored.csv.encode() == first_csv and stored.reference == "REMS-CONF-88"
    assert "LOT-4471A" in pdf_text(first_pdf)


def test_another_clinics_user_gets_404_and_a_denied_audit_row(app, client, db, treated):
    pid, tid = treated
    login(app, client, "harbor.clinician")
    for url in (f"/rems/forms/{tid}", f"/rems/forms/{tid}.pdf", f"/rems/forms/{tid}.csv", f"/rems/patients/{pid}"):
        resp = client.get(url)
        assert resp.status_code == 404 and "Formfield" not in resp.text
    assert post(app, client, f"/rems/forms/{tid}/submit", {"fingerprint": "0" * 64}).status_code == 404
    assert post(app, client, f"/rems/patients/{pid}/enrollment",
                {"enrollment_id": "PT-1", "enrolled_on": "2024-01-02"}).status_code == 404
    assert count(db, AuditEvent, AuditEvent.action == "rems.access", AuditEvent.outcome == "denied") == 6
    assert count(db, RemsMonitoringForm, RemsMonitoringForm.treatment_id == tid) == 0
    assert count(db, RemsEnrollment, RemsEnrollment.patient_id == pid) == 1
    assert "Remsy Formfield" not in client.get("/rems/").text


# -- enrollment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({"enrollment_id": "", "enrolled_on": "2024-05-01"}, "REMS patient enrollment ID is required"),
    ({"enrollment_id": "A" * 5000, "enrolled_on": "2024-05-01"}, "at most 40 characters"),
    ({"enrollment_id": "ＰＴ１２３", "enrolled_on": "2024-05-01"}, "letters A-Z, digits and hyphens only"),
    ({"enrollment_id": "Zoë-7", "enrolled_on": "2024-05-01"}, "letters A-Z, digits and hyphens only"),
    ({"enrollment_id": "PT 1; DROP", "enrolled_on": "2024-05-01"}, "letters A-Z, digits and hyphens only"),
    ({"enrollment_id": "PT-1", "enrolled_on": "tomorrow"}, "enter a real date"),
    ({"enrollment_id": "PT-1", "enrolled_on": "2017-01-01"}, "the Spravato REMS began in March 2019"),
    ({"enrollment_id": "PT-1", "enrolled_on": (date.today() + timedelta(days=2)).isoformat()}, "cannot be in the future"),
    ({"enrollment_id": "PT-1"}, "Enrollment date is required"),
])
def test_bad_enrollment_input_is_refused_and_writes_nothing(app, client, db, data, message):
    pid = new_patient(app, "harbor", "Remsy", "Badinput")
    login(app, client, "harbor.clinician")
    resp = post(app, client, f"/rems/patients/{pid}/enrollment", {"current_id": "", **data})
    assert resp.status_code == 422 and message in resp.text
    assert count(db, RemsEnrollment, RemsEnrollment.patient_id == pid) == 0


def test_a_correction_needs_a_reason_and_keeps_the_earlier_entry(app, client, db):
    pid = new_patient(app, "harbor", "Remsy", "Corrected", enrolled_on=date(2024, 5, 1))
    first = db.exec(select(RemsEnrollment).where(RemsEnrollment.patient_id == pid)).one()
    login(app, client, "harbor.clinician")
    change = {"enrollment_id": "PT-77810", "enrolled_on": "2024-05-02", "current_id": str(first.id)}
    for reason, message in (("", "Reason for the correction is required"), ("typo\x00", "control characters")):
        refused = post(app, client, f"/rems/patients/{pid}/enrollment", {**change, "reason": reason})
        assert refused.status_code == 422 and message in refused.text
    other = db.exec(select(RemsEnrollment).where(RemsEnrollment.clinic_id == first.clinic_id,
                                                 RemsEnrollment.patient_id != pid)).first()
    taken = post(app, client, f"/rems/patients/{pid}/enrollment",
                 {**change, "enrollment_id": other.enrollment_id, "reason": "typo"})
    assert taken.status_code == 422 and "Another patient of this clinic has that REMS enrollment ID" in taken.text
    stale = post(app, client, f"/rems/patients/{pid}/enrollment", {**change, "current_id": "", "reason": "typo"})
    assert stale.status_code == 409
    assert count(db, RemsEnrollment, RemsEnrollment.patient_id == pid) == 1

    assert post(app, client, f"/rems/patients/{pid}/enrollment",
                {**change, "reason": "Digits swapped when first typed"}).status_code == 302
    history = client.get(f"/rems/patients/{pid}").text
    assert "PT-77810" in row_of(history, "current") and "Digits swapped when first typed" in history
    assert first.enrollment_id in row_of(history, "corrected")
    assert count(db, AuditEvent, AuditEvent.action == "rems.enrollment_corrected", AuditEvent.patient_id == pid) == 1
    detail = db.exec(select(AuditEvent.detail).where(AuditEvent.action == "rems.enrollment_corrected")).one()
    assert "PT-77810" not in detail
