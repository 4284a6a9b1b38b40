"""The chart shows the patient's induction series: which plan, how many sessions given, left and
cancelled, read from core.scheduling on the chart's own statement (no query added to the page)."""
from __future__ import annotations

from sqlalchemy import event
from sqlmodel import select

from core import workflow
from core.db import session_scope
from core.models import SessionStatus, TreatmentSession, utcnow
from tests.support import login, post
from tests.test_planning import _book_series, _chair, _clinic, _patients, _provider, quiet_monday

LABEL = "Ketamine induction: 6 sessions over 2 weeks (about every other day)"


def plan_line(html: str) -> str:
    return " ".join(html.split('id="course-plan"')[1].split("</p>")[0].split())


def test_the_chart_shows_the_induction_series_given_and_left_without_another_query(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    [patient] = _patients(db, clinic, 1)
    seen: list[str] = []
    event.listen(app.extensions["glia"].engine, "before_cursor_execute", lambda _c, _cur, st, *_a: seen.append(st))

    def chart() -> tuple[str, int]:
        client.get(f"/patients/{patient.id}")  # warm, as the page budget test does
        seen.clear()
        page = client.get(f"/patients/{patient.id}")
        assert page.status_code == 200
        return page.text, len(seen)

    before, statements = chart()
    assert 'id="course-plan"' not in before  # nothing planned yet
    booked = _book_series(app, client, db, patient, _provider(db, clinic), _chair(db, clinic, "Aspen room"),
                          quiet_monday())
    assert booked.status_code == 302, booked.text[:1500]
    html, after = chart()
    assert after == statements
    assert plan_line(html) == f'><strong>Course plan:</strong> {LABEL}. 0 of 6 given, 6 left.'

    db.rollback()
    first, second, *_ = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                                               TreatmentSession.status == SessionStatus.scheduled)
                                .order_by(TreatmentSession.scheduled_at)).all()
    with session_scope(app.extensions["glia"].engine) as w, workflow.importing(w):  # given, as history is written
        t = w.get(TreatmentSession, first.id)
        t.status, t.discharged_at = SessionStatus.discharged, utcnow()
    assert post(app, client, f"/sessions/{second.id}/cancel", {"version": second.version, "confirm": "yes"}).status_code == 302
    html, _ = chart()
    assert f"{LABEL}. 1 of 6 given, 4 left, 1 cancelled or missed." in plan_line(html)

    # another clinic's staff never see it
    other = app.test_client()
    login(app, other, "harbor.manager")
    assert other.get(f"/patients/{patient.id}").status_code == 404
