"""PHQ-9 and GAD-7 in the portal: scored like staff-entered scores, the item-9 alert on the dashboard
exactly as a staff-entered one raises it, crisis resources at once, nothing written for an incomplete
form, and due by the clinic's rule."""
from __future__ import annotations

from sqlmodel import select

from core.models import AuditEvent, Instrument, OutcomeScore, QuestionnairePolicy, SessionStatus, TreatmentSession
from core.questionnaires import due_questionnaires
from tests.support import login, post
from tests.test_portal_course import add_session, clear_upcoming, clinic_of, local_at, portal_patient

PHQ9_MODERATE = [1, 2, 3, 0, 1, 2, 3, 1, 0]  # 13: Moderate (10-14), item 9 = 0
GAD7_SEVERE = [3, 3, 3, 3, 2, 2, 1]  # 17: Severe (15+)
PHQ9_ITEM9 = [1, 1, 1, 1, 0, 0, 0, 0, 2]  # 6: Mild, item 9 = 2


def answers(items: list[int]) -> dict[str, str]:
    return {f"item{n}": str(v) for n, v in enumerate(items, 1)}


def scores_of(db, patient) -> list[OutcomeScore]:
    db.rollback()
    return db.exec(select(OutcomeScore).where(OutcomeScore.patient_id == patient.id)
                   .order_by(OutcomeScore.id)).all()


def course(app, db, *days: int) -> list[int]:
    """The portal patient's upcoming sessions replaced by IV sessions this many days ahead."""
    clinic, patient = clinic_of(db), portal_patient(db)
    clear_upcoming(app, patient)
    return [add_session(app, patient, local_at(clinic, d)) for d in days]


def test_answers_are_scored_and_banded_and_linked_to_the_next_session(app, client, db):
    first, _later = course(app, db, 1, 8)
    patient = portal_patient(db)
    before = len(scores_of(db, patient))
    login(app, client, "patient")
    home = client.get("/portal/")
    assert "Answer the PHQ-9" in home.text and "Answer the GAD-7" in home.text
    page = client.get("/portal/questionnaires/phq9")
    assert page.status_code == 200
    assert "Over the last 2 weeks, how often have you been bothered by any of the following problems?" in page.text
    assert "Thoughts that you would be better off dead or of hurting yourself in some way" in page.text
    assert page.text.count("<fieldset") == 9 and page.text.count("<legend>") == 9
    assert page.text.count('type="radio"') == 36 and "More than half the days" in page.text

    sent = post(app, client, "/portal/questionnaires/phq9", answers(PHQ9_MODERATE))
    assert sent.status_code == 302 and "/portal/questionnaires/done/" in sent.headers["Location"]
    thanks = client.get(sent.headers["Location"])
    assert "were sent to your care team" in thanks.text and 'class="crisis"' not in thanks.text
    assert "Answer the GAD-7" in thanks.text  # the other one still due
    assert post(app, client, "/portal/questionnaires/gad7", answers(GAD7_SEVERE)).status_code == 302

    phq, gad = scores_of(db, patient)[before:]
    assert (phq.instrument, phq.items, phq.total, phq.band, phq.item9, phq.alert) == (
        Instrument.phq9, PHQ9_MODERATE, 13, "Moderate", 0, False)
    assert (gad.instrument, gad.total, gad.band, gad.item9, gad.alert) == (Instrument.gad7, 17, "Severe", None, False)
    assert phq.treatment_id == gad.treatment_id == first and phq.clinic_id == clinic_of(db).id
    logged = db.exec(select(AuditEvent).where(AuditEvent.action == "score.create",
                                              AuditEvent.object_id.in_([str(phq.id), str(gad.id)]))).all()
    assert len(logged) == 2 and all(e.detail == "from the portal" and e.patient_id == patient.id for e in logged)

    # done: no longer due, and posting again writes nothing
    assert "Answer the PHQ-9" not in client.get("/portal/").text
    assert "is not due now" in client.get("/portal/questionnaires/phq9").text
    assert post(app, client, "/portal/questionnaires/phq9", answers(PHQ9_MODERATE)).status_code == 302
    assert len(scores_of(db, patient)) == before + 2

    # the chart's trend reads the same rows as staff-entered scores
    clinician = app.test_client()
    login(app, clinician, "clinician")
    chart = clinician.get(f"/patients/{patient.id}")
    assert "PHQ-9 · latest <strong>13</strong> (Moderate)" in chart.text
    assert "GAD-7 · latest <strong>17</strong> (Severe)" in chart.text


def test_item_9_raises_the_dashboard_alert_as_a_staff_entry_does_and_shows_crisis_resources(app, client, db):
    course(app, db, 1)
    patient = portal_patient(db)
    login(app, client, "patient")
    sent = post(app, client, "/portal/questionnaires/phq9", answers(PHQ9_ITEM9))
    thanks = client.get(sent.headers["Location"])
    assert thanks.status_code == 200
    crisis = thanks.text.split('class="crisis"')[1].split("</section>")[0]
    assert 'href="tel:988"' in crisis and 'href="sms:988"' in crisis and "988 Suicide &amp; Crisis Lifeline" in crisis
    assert 'href="tel:911"' in crisis and "541-555-0100" in crisis  # 911 and the clinic's own phone
    assert thanks.text.index('class="crisis"') < thanks.text.index("<h1>Thank you</h1>")  # first on the page
    portal_score = scores_of(db, patient)[-1]

    clinician = app.test_client()
    login(app, clinician, "clinician")
    assert post(app, clinician, f"/patients/{patient.id}/scores",
                {"instrument": "PHQ-9", **answers(PHQ9_ITEM9)}).status_code == 302
    staff_score = scores_of(db, patient)[-1]
    same = ("instrument", "items", "total", "band", "item9", "alert", "reviewed_at", "clinic_id", "patient_id")
    assert [getattr(portal_score, k) for k in same] == [getattr(staff_score, k) for k in same]
    assert portal_score.alert is True and portal_score.band == "Mild" and portal_score.total == 6

    alerts = clinician.get("/").text.split('id="alerts-h"')[1].split("</section>")[0]
    assert alerts.count(patient.display_name) == 2 and alerts.count("PHQ-9 6 (Mild), item 9 = 2") == 2
    assert f"/alerts/{portal_score.id}/review" in alerts and f"/alerts/{staff_score.id}/review" in alerts
    assert post(app, clinician, f"/alerts/{portal_score.id}/review").status_code == 302
    db.rollback()
    assert db.get(OutcomeScore, portal_score.id).reviewed_at is not None


def test_a_missing_answer_is_422_beside_the_item_and_nothing_is_written(app, client, db):
    course(app, db, 1)
    patient = portal_patient(db)
    before = scores_of(db, patient)
    login(app, client, "patient")
    partial = answers(PHQ9_MODERATE)
    del partial["item5"]
    partial["item7"] = "4"  # out of range counts as unanswered
    refused = post(app, client, "/portal/questionnaires/phq9", partial)
    assert refused.status_code == 422
    q5 = refused.text.split('id="q-item5"')[1].split("</fieldset>")[0]
    assert "Please answer question 5." in q5 and 'aria-describedby="e-item5"' in refused.text
    assert "Please answer question 7." in refused.text.split('id="q-item7"')[1].split("</fieldset>")[0]
    q1 = refused.text.split('id="q-item1"')[1].split("</fieldset>")[0]
    assert 'value="1" checked' in q1  # what was answered stays answered
    assert scores_of(db, patient) == before


def test_due_follows_the_clinic_setting(app, client, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    login(app, client, "patient")
    manager = app.test_client()
    login(app, manager, "manager")

    # default: both, before every session, from 3 days ahead
    course(app, db, 5)
    assert "Answer the PHQ-9" not in client.get("/portal/").text  # five days out: not yet
    assert post(app, manager, "/settings/questionnaires", {"instruments": "phq9", "rule": "every",
                                                           "days_before": "7"}).status_code == 302
    home = client.get("/portal/").text
    assert "Answer the PHQ-9" in home and "Answer the GAD-7" not in home

    # before the first session, then every 2nd: sessions 1, 3, 5 ... count what happened, not what was cancelled
    assert post(app, manager, "/settings/questionnaires", {"instruments": "phq9_gad7", "rule": "first_then_every",
                                                           "every_n": "2", "days_before": "3"}).status_code == 302
    db.rollback()
    policy = db.get(QuestionnairePolicy, clinic.id)
    assert (policy.instruments, policy.rule, policy.every_n, policy.days_before) == ("phq9_gad7", "first_then_every", 2, 3)
    (nxt,) = course(app, db, 1)
    db.rollback()
    history = db.exec(select(TreatmentSession).where(
        TreatmentSession.patient_id == patient.id, TreatmentSession.id != nxt,
        TreatmentSession.status.not_in([SessionStatus.cancelled, SessionStatus.no_show]))).all()
    assert history == []  # the demo's portal patient starts their course with this session
    assert [d.instrument for d in due_questionnaires(clinic, patient, db=db)] == [Instrument.phq9, Instrument.gad7]
    assert "Answer the PHQ-9" in client.get("/portal/").text  # session 1
    add_session(app, patient, local_at(clinic, -4), status=SessionStatus.discharged)
    add_session(app, patient, local_at(clinic, -2), status=SessionStatus.cancelled)  # never happened: not counted
    db.rollback()
    assert due_questionnaires(clinic, patient, db=db) == []  # now session 2
    assert "Answer the" not in client.get("/portal/").text
    add_session(app, patient, local_at(clinic, -8), status=SessionStatus.discharged)
    db.rollback()
    third = due_questionnaires(clinic, patient, db=db)  # session 3
    assert [(d.instrument, d.treatment.id) for d in third] == [(Instrument.phq9, nxt), (Instrument.gad7, nxt)]
    assert "Answer the GAD-7" in client.get("/portal/").text

    # off: nothing is asked
    assert post(app, manager, "/settings/questionnaires", {"instruments": "off", "rule": "every",
                                                           "days_before": "3"}).status_code == 302
    assert "Answer the" not in client.get("/portal/").text


def test_the_setting_form_refuses_bad_values_and_is_for_managers(app, db):
    clinic = clinic_of(db)
    manager, desk = app.test_client(), app.test_client()
    login(app, manager, "manager")
    login(app, desk, "frontdesk")
    assert manager.get("/settings/questionnaires").status_code == 200
    assert desk.get("/settings/questionnaires").status_code == 403
    bad = post(app, manager, "/settings/questionnaires", {"instruments": "phq9", "rule": "first_then_every",
                                                          "every_n": "", "days_before": "30"})
    assert bad.status_code == 422 and "N is required" in bad.text and "between 0 and 14" in bad.text
    db.rollback()
    assert db.get(QuestionnairePolicy, clinic.id) is None
    assert post(app, desk, "/settings/questionnaires", {"instruments": "off", "rule": "every",
                                                        "days_before": "1"}).status_code == 403


def test_a_patient_cannot_open_another_patients_thank_you_page(app, client, db):
    course(app, db, 1)
    login(app, client, "patient")
    sent = post(app, client, "/portal/questionnaires/phq9", answers(PHQ9_ITEM9))
    score_id = int(sent.headers["Location"].rsplit("/", 1)[1])
    other = app.test_client()
    login(app, other, "harbor.patient")
    assert other.get(f"/portal/questionnaires/done/{score_id}").status_code == 404
    assert client.get(f"/portal/questionnaires/done/{score_id}").status_code == 200
