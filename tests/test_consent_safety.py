"""The consent gate cannot be quietly undone: a changed screening answer waits for a clinician's review,
an acknowledgement covers only what it acknowledged, consent settings keep an informed consent for
every modality, and the gate fails closed and stays batched."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlmodel import select

from core import workflow
from core.models import (AuditEvent, Clinic, ImmutableRecordError, Modality, Patient, PluginState, SessionStatus,
                         TreatmentSession, User, VitalPhase, VitalSign, utcnow)
from plugins.consent import gate, service
from plugins.consent.models import Acknowledgement, ContraindicationItem, ItemClearance, Screening
from plugins.consent.screening import screening_digest
from tests.support import login, post

S = SessionStatus
ANEURYSM = "aneurysmal_vascular"
ANEURYSM_LABEL = "Aneurysmal vascular disease"
PSYCHOSIS = "psychosis_mania"
REASON = "CT angiography 2024 normal; the 'yes' was a misunderstanding of a varicose vein. Discussed with patient."


def fresh(db) -> None:
    """End the test's read transaction, so the next read sees what the requests committed."""
    db.rollback()


def _clinic(db) -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()


def _reasons(app, db, tid: int) -> list[str]:
    """What the session page and the start button would say stops this session now."""
    fresh(db)
    t = db.get(TreatmentSession, tid)
    with app.test_request_context():
        return [r.reason for r in workflow.start_reasons(db, db.get(Clinic, t.clinic_id), db.get(Patient, t.patient_id), t)]


def _blocker_links(app, db, t) -> list[tuple[str, str]]:
    """The consent plugin's blockers for this session: (reason, link)."""
    fresh(db)
    t = db.get(TreatmentSession, t.id)
    with app.test_request_context():
        found = gate.blockers_for(db, _clinic(db), [t])[t.id]
    return [(b.reason, b.link) for b in found]


def _client(app, who: str):
    client = app.test_client()
    login(app, client, who)
    return client


def ready_session(app, db) -> TreatmentSession:
    """A checked-in ketamine session (escort confirmed, baseline vitals taken) that may start now.

    Every story starts from here; consents the demo left unsigned are signed on the tablet first."""
    clinic = _clinic(db)
    candidates = [t for t in db.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.status == S.checked_in,
        TreatmentSession.modality != Modality.esketamine_nasal).order_by(TreatmentSession.id)).all()
        if t.escort_confirmed]
    for t in candidates:
        if not _reasons(app, db, t.id):
            return t
    t = candidates[0]
    patient = db.get(Patient, t.patient_id)
    clinician = _client(app, "clinician")
    for _reason, url in _blocker_links(app, db, t):
        if "/sign/" not in url:
            continue
        page = clinician.get(url)
        count = len(re.findall(r'name="ack_\d+"', page.text))
        data = {name: re.search(rf'name="{name}" value="([^"]*)"', page.text).group(1)
                for name in ("template_id", "submission_token")}
        signed = post(app, clinician, url, {**data, "signer_name": patient.legal_name, "signer_role": "patient",
                                            **{f"ack_{i}": "1" for i in range(count)}})
        assert signed.status_code == 302
        consent_id = signed.location.rsplit("/", 1)[1]  # the clinician attests right after the patient signs
        assert post(app, clinician, f"/consent/patients/{patient.id}/consents/{consent_id}/attest",
                    {"attest": "1"}).status_code == 302
    assert _reasons(app, db, t.id) == [], "the arranged session should be clear to start"
    return t


def screening_answers(yes: set[str] = frozenset(), **extra) -> dict:
    items = service.default_contraindications()
    return {**{f"item_{i['code']}": "yes" if i["code"] in yes else "no" for i in items}, **extra}


def _screen(app, client, url: str, yes: set[str] = frozenset(), **extra):
    resp = post(app, client, url, screening_answers(yes, **extra))
    assert resp.status_code == 302, resp.text
    return resp


def _start(app, client, db, tid: int):
    fresh(db)
    return post(app, client, f"/sessions/{tid}/start", {"version": str(db.get(TreatmentSession, tid).version)})


def _count(db, model, **where) -> int:
    fresh(db)
    q = select(model)
    for key, value in where.items():
        q = q.where(getattr(model, key) == value)
    return len(db.exec(q).all())


def _review_url(db, patient_id: int, code: str = ANEURYSM) -> str:
    """The review page of one item: named by the question's row id, never by its code."""
    fresh(db)
    item = db.exec(select(ContraindicationItem).where(ContraindicationItem.code == code,
                                                      ContraindicationItem.clinic_id == _clinic(db).id)).one()
    return f"/consent/patients/{patient_id}/items/{item.id}/review"


def _review_form(client, db, patient_id: int) -> dict:
    page = client.get(_review_url(db, patient_id))
    assert page.status_code == 200
    return {name: re.search(rf'name="{name}" value="(\d+)"', page.text).group(1)
            for name in ("yes_screening_id", "no_screening_id")}


def _aneurysm_then_no(app, db, *, by: str = "frontdesk", answered_by: str = "patient"):
    """A clinician records an aneurysm; later ``by`` takes a new screening (on the tablet) answering "no"."""
    t = ready_session(app, db)
    clinician = _client(app, "clinician")
    _screen(app, clinician, f"/consent/patients/{t.patient_id}/screening", {ANEURYSM}, answered_by="staff")
    assert any(r.startswith(f"Absolute contraindication: {ANEURYSM_LABEL}") for r in _reasons(app, db, t.id))
    other = _client(app, by)
    _screen(app, other, f"/consent/patients/{t.patient_id}/screening", answered_by=answered_by)
    return t, clinician


# -- 1. a "no" after a "yes" clears nothing until a clinician reviews it ----------------------------

def test_a_front_desk_rescreen_cannot_clear_an_aneurysm_and_the_start_is_refused(app, db):
    t, clinician = _aneurysm_then_no(app, db, answered_by="staff")
    (reason,) = [r for r in _reasons(app, db, t.id) if ANEURYSM_LABEL in r]
    assert "answered yes on" in reason and "then no by front desk on" in reason
    assert reason.endswith("a clinician must review the change")
    refused = _start(app, clinician, db, t.id)
    assert refused.status_code == 409 and "then no by front desk" in refused.text
    fresh(db)
    assert db.get(TreatmentSession, t.id).status == S.checked_in
    assert _count(db, Screening, patient_id=t.patient_id) >= 3  # the "no" was recorded all the same


def test_the_patient_on_the_tablet_cannot_clear_it_either(app, db):
    t, clinician = _aneurysm_then_no(app, db, answered_by="patient")
    (reason,) = [r for r in _reasons(app, db, t.id) if ANEURYSM_LABEL in r]
    assert "then no by the patient on the tablet" in reason
    assert _start(app, clinician, db, t.id).status_code == 409


def test_the_patient_in_the_portal_cannot_clear_it(app, db):
    me = db.exec(select(Patient).join(User, User.id == Patient.user_id)
                 .where(User.email == "patient@demo.glia.example")).one()
    upcoming = db.exec(select(TreatmentSession).where(
        TreatmentSession.patient_id == me.id, TreatmentSession.status.in_([S.scheduled, S.checked_in]))).first()
    clinician = _client(app, "clinician")
    _screen(app, clinician, f"/consent/patients/{me.id}/screening", {ANEURYSM}, answered_by="staff")
    portal = _client(app, "patient")
    resp = _screen(app, portal, "/consent/portal/screening")
    assert resp.location.endswith("/portal/")
    (reason,) = [r for r in _reasons(app, db, upcoming.id) if ANEURYSM_LABEL in r]
    assert "then no by the patient in the portal" in reason
    page = clinician.get(f"/sessions/{upcoming.id}")
    assert "then no by the patient in the portal" in page.text and "Screening history" in page.text


def test_a_clinician_reviews_the_change_with_a_reason_and_then_the_session_starts(app, db):
    t, clinician = _aneurysm_then_no(app, db)
    blocker = next(r for r in _blocker_links(app, db, t) if ANEURYSM_LABEL in r[0])
    assert _review_url(db, t.patient_id) in blocker[1]
    page = clinician.get(blocker[1])
    assert page.status_code == 200 and "Confirm the change and sign" in page.text
    assert "Fran Frontdesk" in page.text and "Dr. Cleo Clinician" in page.text  # who answered what
    resp = post(app, clinician, blocker[1], {**_review_form(clinician, db, t.patient_id), "reason": REASON, "attest": "1"})
    assert resp.status_code == 302 and resp.location.endswith(f"/sessions/{t.id}")
    fresh(db)
    (clearance,) = db.exec(select(ItemClearance).where(ItemClearance.patient_id == t.patient_id)).all()
    assert (clearance.item_code, clearance.reason, clearance.clinician_name) == (ANEURYSM, REASON, "Dr. Cleo Clinician (demo)")
    assert clearance.no_screening_id > clearance.yes_screening_id and len(clearance.text_sha256) == 64
    row = db.exec(select(AuditEvent).where(AuditEvent.action == "consent.item_cleared")).one()
    assert row.object_id == str(clearance.id) and row.detail == ""  # no clinical detail in the audit log
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "consent.review_viewed")).all()
    assert _reasons(app, db, t.id) == []
    started = _start(app, clinician, db, t.id)
    assert started.status_code == 302
    fresh(db)
    assert db.get(TreatmentSession, t.id).status == S.in_progress


def test_a_new_yes_after_a_clearance_blocks_again(app, db):
    t, clinician = _aneurysm_then_no(app, db)
    url = _review_url(db, t.patient_id)
    post(app, clinician, url, {**_review_form(clinician, db, t.patient_id), "reason": REASON, "attest": "1"})
    assert _reasons(app, db, t.id) == []
    _screen(app, _client(app, "frontdesk"), f"/consent/patients/{t.patient_id}/screening", {ANEURYSM})
    assert any(r.startswith(f"Absolute contraindication: {ANEURYSM_LABEL}") for r in _reasons(app, db, t.id))


@pytest.mark.parametrize("who", ["frontdesk", "manager", "admin"])
def test_only_a_clinician_can_confirm_a_change(app, db, who):
    t, clinician = _aneurysm_then_no(app, db)
    ids = _review_form(clinician, db, t.patient_id)
    other = _client(app, who)
    if who == "admin":  # the demo administrator serves both clinics: work in this one
        assert post(app, other, "/switch-clinic", {"clinic_id": str(t.clinic_id)}).status_code == 302
    url = _review_url(db, t.patient_id)
    page = other.get(url)
    assert page.status_code == 403 and "A clinician must review this change" in page.text
    assert ANEURYSM_LABEL not in page.text
    resp = post(app, other, url, {**ids, "reason": REASON, "attest": "1"})
    assert resp.status_code == 403
    assert _count(db, ItemClearance) == 0
    assert any(ANEURYSM_LABEL in r for r in _reasons(app, db, t.id))
    fresh(db)
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "consent.review",
                                            AuditEvent.outcome == "denied")).all()


@pytest.mark.parametrize("reason, attest, message", [
    ("", "1", "at least 10 characters"),
    ("   \t  ", "1", "at least 10 characters"),
    ("too short", "1", "at least 10 characters"),
    ("x" * 2001, "1", "at most 2000 characters"),
    ("Checked the CT report\x00 with the patient", "1", "control characters"),
    (REASON, "", "confirm that you reviewed the change"),
])
def test_a_review_needs_a_real_reason_and_a_signature_and_bad_input_writes_nothing(app, db, reason, attest, message):
    t, clinician = _aneurysm_then_no(app, db)
    url = _review_url(db, t.patient_id)
    resp = post(app, clinician, url, {**_review_form(clinician, db, t.patient_id), "reason": reason, "attest": attest})
    assert resp.status_code == 422 and message in resp.text and "Nothing was saved" in resp.text
    assert _count(db, ItemClearance) == 0
    assert any(ANEURYSM_LABEL in r for r in _reasons(app, db, t.id))


def test_a_review_takes_any_unicode_and_refuses_tampered_or_stale_forms(app, db):
    t, clinician = _aneurysm_then_no(app, db)
    url = _review_url(db, t.patient_id)
    ids = _review_form(clinician, db, t.patient_id)
    for bad in ({"yes_screening_id": "🙂"}, {"no_screening_id": "-1"}, {"no_screening_id": "9" * 40}, {}):
        data = {**ids, **bad, "reason": REASON, "attest": "1"} if bad else {"reason": REASON, "attest": "1"}
        resp = post(app, clinician, url, data)
        assert resp.status_code == 409 and "Nothing was saved" in resp.text
    # another "no" arrives while the clinician reads: the form they hold no longer matches
    _screen(app, _client(app, "frontdesk"), f"/consent/patients/{t.patient_id}/screening")
    assert post(app, clinician, url, {**ids, "reason": REASON, "attest": "1"}).status_code == 409
    assert _count(db, ItemClearance) == 0
    unicode_reason = "Patiënt bevestigt: géén aneurysma — CT 2024 normaal ✓ 患者确认无动脉瘤 🫀"
    resp = post(app, clinician, url, {**_review_form(clinician, db, t.patient_id), "reason": unicode_reason, "attest": "1"})
    assert resp.status_code == 302
    fresh(db)
    assert db.exec(select(ItemClearance.reason)).one() == unicode_reason
    assert clinician.get(f"/consent/patients/{t.patient_id}").text.count("患者确认无动脉瘤") == 1
    for item_id in ("999999", "no_such_item", "-1"):
        assert clinician.get(f"/consent/patients/{t.patient_id}/items/{item_id}/review").status_code == 404


def test_clearances_are_immutable_in_the_orm_and_the_database(app, db):
    t, clinician = _aneurysm_then_no(app, db)
    post(app, clinician, _review_url(db, t.patient_id),
         {**_review_form(clinician, db, t.patient_id), "reason": REASON, "attest": "1"})
    fresh(db)
    clearance = db.exec(select(ItemClearance)).one()
    clearance.reason = "changed later"
    with pytest.raises(ImmutableRecordError):
        db.flush()
    fresh(db)
    for statement in ("UPDATE consent_item_clearance SET reason = 'x'", "DELETE FROM consent_item_clearance",
                      "UPDATE consent_acknowledgement SET systolic = 300", "DELETE FROM consent_acknowledgement"):
        with pytest.raises(Exception, match="append-only"):
            db.execute(text(statement))
        fresh(db)


# -- relative items: the acknowledgement covers one answer -----------------------------------------

def _acknowledge(app, client, link: str):
    resp = post(app, client, link, {"rationale": "Single episode in 2009, stable since; psychiatrist agrees.",
                                    "attest": "1"})
    assert resp.status_code == 302


def test_a_relative_item_answered_yes_again_needs_a_new_acknowledgement(app, db):
    t = ready_session(app, db)
    clinician = _client(app, "clinician")
    url = f"/consent/patients/{t.patient_id}/screening"
    _screen(app, clinician, url, {PSYCHOSIS}, answered_by="staff")
    ((reason, link),) = _blocker_links(app, db, t)
    assert "needs a clinician's acknowledgement" in reason
    _acknowledge(app, clinician, link)
    assert _reasons(app, db, t.id) == []
    _screen(app, clinician, url, {PSYCHOSIS}, answered_by="patient")  # a new screening, yes again
    ((reason, link2),) = _blocker_links(app, db, t)
    assert "answered yes again on" in reason and "covered the earlier answer" in reason and link2 != link
    # the old acknowledgement link no longer applies to the answer in force
    assert post(app, clinician, link, {"rationale": "x" * 30, "attest": "1"}).status_code == 409
    _acknowledge(app, clinician, link2)
    assert _reasons(app, db, t.id) == []
    assert _count(db, Acknowledgement, patient_id=t.patient_id, item_code=PSYCHOSIS) == 2


def test_a_relative_yes_changed_to_no_needs_review_or_acknowledgement_but_an_acknowledged_one_stays_fine(app, db):
    t = ready_session(app, db)
    clinician = _client(app, "clinician")
    url = f"/consent/patients/{t.patient_id}/screening"
    _screen(app, clinician, url, {PSYCHOSIS}, answered_by="staff")
    _screen(app, _client(app, "frontdesk"), url)
    ((reason, link),) = _blocker_links(app, db, t)
    assert "needs a clinician's acknowledgement" in reason and "then no by the patient on the tablet" in reason
    assert _review_url(db, t.patient_id, PSYCHOSIS) in link
    # acknowledging the "yes" still in force lets the session go ahead, the change still waits for review
    review = clinician.get(link)
    ack_link = re.search(r'href="(/consent/patients/\d+/screenings/\d+/acknowledge/\d+)"', review.text).group(1)
    _acknowledge(app, clinician, ack_link)
    assert _reasons(app, db, t.id) == []
    assert "Changed to no: a clinician must review" in clinician.get(f"/consent/patients/{t.patient_id}").text


# -- blood pressure: the acknowledgement covers the reading it was given for ------------------------

def _reading(db, t, systolic: int, diastolic: int, minutes: int) -> int:
    """A baseline re-check, as the session page records it."""
    fresh(db)
    v = VitalSign(clinic_id=t.clinic_id, treatment_id=t.id, phase=VitalPhase.baseline, systolic=systolic,
                  diastolic=diastolic, taken_at=utcnow() + timedelta(minutes=minutes))
    db.add(v)
    db.commit()
    return v.id


def _acknowledge_bp(app, client, t, **extra):
    url = f"/consent/sessions/{t.id}/blood-pressure"
    page = client.get(url)
    vital_id = re.search(r'name="vital_id" value="(\d+)"', page.text).group(1)
    return page, post(app, client, url, {"rationale": "Anxious on arrival; repeat after 10 minutes was lower.",
                                         "attest": "1", "vital_id": vital_id, **extra})


def test_a_second_higher_reading_blocks_again_and_a_lower_one_does_not(app, db):
    t = ready_session(app, db)
    clinician = _client(app, "clinician")
    first = _reading(db, t, 165, 101, 1)
    (reason,) = _reasons(app, db, t.id)
    assert "165/101" in reason and "160/100" in reason
    page, resp = _acknowledge_bp(app, clinician, t)
    assert "Blood pressure 165/101 at check-in" in page.text and resp.status_code == 302
    fresh(db)
    ack = db.exec(select(Acknowledgement).where(Acknowledgement.treatment_id == t.id)).one()
    assert (ack.vital_id, ack.systolic, ack.diastolic) == (first, 165, 101)
    assert _reasons(app, db, t.id) == []

    _reading(db, t, 162, 100, 2)  # lower than the acknowledged one, still above the threshold: covered
    assert _reasons(app, db, t.id) == []
    _reading(db, t, 172, 104, 3)  # higher: a new acknowledgement is needed
    (reason,) = _reasons(app, db, t.id)
    assert re.search(r"172/104 \(taken .*\) is higher than the 165/101 acknowledged at", reason)
    assert reason.endswith("a clinician must acknowledge the new reading")
    refused = _start(app, clinician, db, t.id)
    assert refused.status_code == 409 and "is higher than the 165/101 acknowledged" in refused.text
    page, resp = _acknowledge_bp(app, clinician, t)
    assert "172/104" in page.text and "Earlier acknowledgement: 165/101" in page.text
    assert _reasons(app, db, t.id) == []
    _reading(db, t, 150, 104, 4)  # systolic lower, diastolic as acknowledged: covered
    assert _reasons(app, db, t.id) == []
    _reading(db, t, 150, 106, 5)  # diastolic higher than any acknowledged: blocked
    assert "150/106" in _reasons(app, db, t.id)[0]


def test_a_bp_form_opened_before_a_newer_reading_saves_nothing(app, db):
    t = ready_session(app, db)
    clinician = _client(app, "clinician")
    _reading(db, t, 170, 100, 1)
    url = f"/consent/sessions/{t.id}/blood-pressure"
    held = re.search(r'name="vital_id" value="(\d+)"', clinician.get(url).text).group(1)
    _reading(db, t, 180, 108, 2)
    for vital_id in (held, "", "abc", "１２", "-5"):
        resp = post(app, clinician, url, {"rationale": "Anxious on arrival; repeat was lower.", "attest": "1",
                                          "vital_id": vital_id})
        assert resp.status_code == 409 and "180/108" in resp.text and "Nothing was saved" in resp.text
    for rationale in ("", "short", "Rationale with a NUL \x00 character inside", "y" * 2001):
        _page, resp = _acknowledge_bp(app, clinician, t, rationale=rationale)
        assert resp.status_code == 422
    assert _count(db, Acknowledgement, treatment_id=t.id) == 0
    assert _client(app, "frontdesk").get(url).status_code == 403


# -- 3. settings never leave a modality without its informed consent --------------------------------

SETTINGS = {"validity_days": "365", "screening_validity_days": "365", "bp_systolic_max": "160",
            "bp_diastolic_max": "100"}
EVERY_INFORMED = {"required_iv_ketamine_informed_ketamine": "1", "required_im_ketamine_informed_ketamine_im": "1",
                  "required_sublingual_informed_ketamine_oral": "1",
                  "required_esketamine_nasal_informed_esketamine": "1"}


def test_consent_settings_refuse_a_modality_without_informed_consent(app, db):
    manager = _client(app, "manager")
    clinic = _clinic(db)

    def saved() -> dict:
        fresh(db)
        state = db.get(PluginState, (clinic.id, "consent"))
        return dict(state.settings or {}) if state else {}

    before = saved()
    audits = _count(db, AuditEvent, action="plugin.settings_changed")
    missing = {k: v for k, v in EVERY_INFORMED.items() if "esketamine" not in k}
    # the ketamine consent does not inform about Spravato: ticking it there does not count
    resp = post(app, manager, "/consent/settings", {**SETTINGS, **missing, "required_esketamine_nasal_informed_ketamine": "1",
                                                   "required_esketamine_nasal_treatment_day": "1"})
    assert resp.status_code == 422
    assert "Esketamine" in resp.text and "must require an informed consent" in resp.text
    assert "Informed consent: esketamine nasal spray" in resp.text
    nothing = post(app, manager, "/consent/settings", SETTINGS)
    assert nothing.status_code == 422 and nothing.text.count("must require an informed consent") == 4
    assert saved() == before
    assert _count(db, AuditEvent, action="plugin.settings_changed") == audits
    for key, value in (("validity_days", "²"), ("validity_days", "NaN"), ("bp_systolic_max", "١٥٠"),
                       ("bp_diastolic_max", "1e2"), ("screening_validity_days", "９９")):
        resp = post(app, manager, "/consent/settings", {**SETTINGS, **EVERY_INFORMED, key: value})
        assert resp.status_code == 422 and "Enter a whole number" in resp.text
    assert post(app, manager, "/consent/settings", {**SETTINGS, **EVERY_INFORMED}).status_code == 302


# -- the history is shown where decisions are made ---------------------------------------------------

def test_the_history_is_on_the_chart_the_consent_page_and_the_session_page(app, db):
    t, clinician = _aneurysm_then_no(app, db)
    chart = clinician.get(f"/patients/{t.patient_id}")
    consent = clinician.get(f"/consent/patients/{t.patient_id}")
    session = clinician.get(f"/sessions/{t.id}")
    for page in (chart, consent, session):
        assert page.status_code == 200
        assert ANEURYSM_LABEL in page.text and "Changed to no: a clinician must review" in page.text
        assert "Staff, from the patient&#39;s answers; recorded by Dr. Cleo Clinician (demo), clinician" in page.text
        assert "The patient, on the tablet; recorded by Fran Frontdesk (demo), front desk" in page.text
        assert "not yet reviewed: the yes stays in force" in page.text
    assert "Screening history" in session.text and "Review the change" in session.text
    assert "then no by the patient on the tablet" in session.text  # the blocker itself
    post(app, clinician, _review_url(db, t.patient_id),
         {**_review_form(clinician, db, t.patient_id), "reason": REASON, "attest": "1"})
    for url in (f"/patients/{t.patient_id}", f"/consent/patients/{t.patient_id}", f"/sessions/{t.id}"):
        page = clinician.get(url)
        assert "Change confirmed" in page.text and "CT angiography 2024 normal" in page.text
        assert "Cleared by Dr. Cleo Clinician" in page.text
    # the front desk learns that a review is needed, never the answers
    frontdesk = _client(app, "frontdesk")
    _screen(app, clinician, f"/consent/patients/{t.patient_id}/screening", {ANEURYSM}, answered_by="staff")
    _screen(app, frontdesk, f"/consent/patients/{t.patient_id}/screening")
    for url in (f"/consent/patients/{t.patient_id}", f"/sessions/{t.id}"):
        page = frontdesk.get(url)
        assert page.status_code == 200 and ANEURYSM_LABEL not in page.text and REASON not in page.text
    assert "A clinician must review it" in frontdesk.get(f"/consent/patients/{t.patient_id}").text


# -- 4 and 5. fail closed, and stay batched ------------------------------------------------------------

def _raw_screening(db, t, answers, digest=None) -> None:
    fresh(db)
    db.add(Screening(clinic_id=t.clinic_id, patient_id=t.patient_id, answers=answers, answered_by="staff",
                     channel="tablet", answered_at=utcnow(), ip="",
                     text_sha256=digest if digest is not None else screening_digest(answers)))
    db.commit()


@pytest.mark.parametrize("answers, forged", [
    ([{"code": ANEURYSM, "label": "x", "severity": "absolute", "modalities": ["iv_ketamine"], "yes": "no"}], False),
    ([{"code": ANEURYSM, "label": "x", "severity": "fatal", "modalities": [], "yes": False}], False),
    ({"aneurysmal_vascular": False}, False),
    (["not an answer"], False),
    ([{"code": ANEURYSM, "label": "x", "severity": "absolute", "modalities": ["iv_ketamine"], "yes": False}], True),
])
def test_a_history_that_cannot_be_read_blocks_and_every_page_still_renders(app, db, answers, forged):
    t = ready_session(app, db)
    _raw_screening(db, t, answers, digest="0" * 64 if forged else None)
    (reason,) = _reasons(app, db, t.id)
    assert reason.startswith("Contraindication screening history could not be read")
    clinician = _client(app, "clinician")
    for url in (f"/patients/{t.patient_id}", f"/consent/patients/{t.patient_id}", f"/sessions/{t.id}", "/"):
        page = clinician.get(url)
        assert page.status_code == 200 and "could not be read" in page.text
    assert _start(app, clinician, db, t.id).status_code == 409


def test_the_gate_costs_the_same_queries_for_one_session_or_the_whole_day(app, db):
    t, clinician = _aneurysm_then_no(app, db)
    post(app, clinician, _review_url(db, t.patient_id),
         {**_review_form(clinician, db, t.patient_id), "reason": REASON, "attest": "1"})
    _reading(db, t, 170, 100, 1)
    _acknowledge_bp(app, clinician, t)
    _reading(db, t, 175, 100, 2)
    fresh(db)
    clinic = _clinic(db)
    day = db.exec(select(TreatmentSession).where(TreatmentSession.clinic_id == clinic.id,
                                                 TreatmentSession.status.in_([S.scheduled, S.checked_in]))).all()
    assert len(day) > 5
    statements = []
    listener = lambda *args: statements.append(1)  # noqa: E731
    event.listen(db.get_bind(), "before_cursor_execute", listener)
    try:
        with app.test_request_context():
            def cost(treatments):
                statements.clear()
                found = gate.blockers_for(db, clinic, treatments)
                return len(statements), found
            one, _ = cost([db.get(TreatmentSession, t.id)])
            many, found = cost(list(day))
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", listener)
    assert one == many
    assert any("175/100" in b.reason for b in found[t.id])


def test_the_gate_never_reuses_an_answer_once_something_is_written_in_the_same_transaction(app, db):
    """Status is computed once per transaction, but a revocation added and not yet flushed still counts."""
    from plugins.consent.models import ConsentRevocation, SignedConsent
    t = ready_session(app, db)
    fresh(db)
    t, clinic = db.get(TreatmentSession, t.id), _clinic(db)
    with app.test_request_context():
        assert gate.blockers_for(db, clinic, [t])[t.id] == []
        for signed in db.exec(select(SignedConsent).where(SignedConsent.patient_id == t.patient_id)).all():
            db.add(ConsentRevocation(clinic_id=clinic.id, patient_id=t.patient_id, consent_id=signed.id,
                                     reason="Patient withdrew consent at the front desk.", at=utcnow()))
        reasons = [b.reason for b in gate.blockers_for(db, clinic, [t])[t.id]]
    db.rollback()
    assert reasons and all(r.startswith("Consent: ") for r in reasons)
