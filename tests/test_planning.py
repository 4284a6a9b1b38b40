"""Series planning: pattern dates, hours, holidays and closures, chairs, providers, booking all or none."""
from __future__ import annotations

import re
import threading
from datetime import date, time, timedelta

import holidays
from sqlalchemy import func
from sqlmodel import select

from core.models import AuditEvent, Clinic, Patient, Provider, TreatmentSession, utcnow
from core.scheduling.models import Booking, Chair, ClinicClosure, CoursePlan
from tests.support import login, post

ROWS = re.compile(r'name="rows-(\d+)-day" type="date" value="([^"]*)"')


def _clinic(db, slug="stillwater") -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


def _patients(db, clinic: Clinic, n: int = 3) -> list[Patient]:
    return db.exec(select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id)).all()[-n:]


def _provider(db, clinic: Clinic, k: int = 0) -> Provider:
    return db.exec(select(Provider).where(Provider.clinic_id == clinic.id).order_by(Provider.id)).all()[k]


def _chair(db, clinic: Clinic, name: str) -> Chair:
    return db.exec(select(Chair).where(Chair.clinic_id == clinic.id, Chair.name == name)).one()


def quiet_monday(weeks_ahead: int = 10, span_days: int = 21) -> date:
    """A Monday some weeks ahead with no federal holiday in the next ``span_days`` (no demo bookings there)."""
    day = date.today() + timedelta(weeks=weeks_ahead)
    day += timedelta(days=-day.weekday())
    us = holidays.US(years=range(day.year, day.year + 2))
    while any(day + timedelta(days=k) in us for k in range(span_days)):
        day += timedelta(weeks=1)
    return day


def _course(patient, provider, chair=None, *, first=None, at="10:00", pattern="three_weekly",
            modality="iv_ketamine", **extra):
    data = {"modality": modality, "pattern": pattern, "first_day": first.isoformat() if first else "", "at": at,
            "provider_id": str(provider.id), "chair_id": str(chair.id) if chair else ""}
    return {**data, **extra}


def _proposed(html: str) -> list[date]:
    return [date.fromisoformat(v) for _i, v in ROWS.findall(html)]


def _with_rows(data: dict, days: list[date], at: str | None = None) -> dict:
    rows = {f"rows-{i}-day": d.isoformat() for i, d in enumerate(days)}
    rows.update({f"rows-{i}-at": at or data["at"] for i in range(len(days))})
    return {**data, **rows}


def _sessions_of(db, patient) -> int:
    return db.exec(select(func.count()).select_from(TreatmentSession)
                   .where(TreatmentSession.patient_id == patient.id)).one()


def _book_series(app, client, db, patient, provider, chair, first, at="10:00", pattern="three_weekly"):
    data = _course(patient, provider, chair, first=first, at=at, pattern=pattern)
    proposed = post(app, client, f"/patients/{patient.id}/plan/propose", data)
    assert proposed.status_code == 200, proposed.text
    return post(app, client, f"/patients/{patient.id}/plan/book", _with_rows(data, _proposed(proposed.text)))


def test_the_desk_sees_the_pattern_dates_and_books_them_in_one_step(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    patient, provider, chair = _patients(db, clinic, 1)[0], _provider(db, clinic), _chair(db, clinic, "Birch room")
    monday = quiet_monday()
    before = _sessions_of(db, patient)
    page = post(app, client, f"/patients/{patient.id}/plan/propose", _course(patient, provider, chair, first=monday))
    assert page.status_code == 200
    days = _proposed(page.text)
    assert [d - monday for d in days] == [timedelta(days=k) for k in (0, 2, 4, 7, 9, 11)]  # Mon Wed Fri, twice
    assert "Every session is free" in page.text

    booked = post(app, client, f"/patients/{patient.id}/plan/book",
                  _with_rows(_course(patient, provider, chair, first=monday), days))
    assert booked.status_code == 302
    db.rollback()
    assert _sessions_of(db, patient) == before + 6
    plan = db.exec(select(CoursePlan).where(CoursePlan.patient_id == patient.id)).one()
    bookings = db.exec(select(Booking).where(Booking.plan_id == plan.id)).all()
    assert len(bookings) == 6 and {b.chair_id for b in bookings} == {chair.id} and {b.minutes for b in bookings} == {90}
    starts = sorted(db.get(TreatmentSession, b.treatment_id).scheduled_at.astimezone() for b in bookings)
    assert [s.date() for s in sorted(db.get(TreatmentSession, b.treatment_id).scheduled_at for b in bookings)] == days
    assert len(starts) == 6
    actions = db.exec(select(AuditEvent.action).where(AuditEvent.patient_id == patient.id,
                                                       AuditEvent.action.in_(["session.schedule", "course.plan"]))).all()
    assert actions.count("session.schedule") >= 6 and "course.plan" in actions
    chart = client.get(f"/patients/{patient.id}")
    assert "6 sessions booked." in chart.text


def test_spravato_follows_the_label_twice_weekly_then_weekly(app, client, db):
    login(app, client, "harbor.frontdesk")
    clinic = _clinic(db, "harbor")
    patient, provider = _patients(db, clinic, 1)[0], _provider(db, clinic)
    monday = quiet_monday(span_days=56)
    page = post(app, client, f"/patients/{patient.id}/plan/propose",
                _course(patient, provider, first=monday, modality="esketamine_nasal", pattern="spravato_label"))
    gaps = [(d - monday).days for d in _proposed(page.text)]
    assert gaps == [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49]
    wrong = post(app, client, f"/patients/{patient.id}/plan/propose",
                 _course(patient, provider, first=monday, modality="esketamine_nasal", pattern="three_weekly"))
    assert wrong.status_code == 422 and "not one for the chosen modality" in wrong.text


def test_a_federal_holiday_and_a_clinic_closure_move_the_session_to_the_next_open_day(app, client, db):
    clinic = _clinic(db)
    us = holidays.US(years=range(date.today().year, date.today().year + 2))
    holiday = next(d for d in sorted(us) if d > date.today() + timedelta(days=30) and d.weekday() < 4)
    login(app, client, "manager")
    patient, provider = _patients(db, clinic, 1)[0], _provider(db, clinic)
    page = post(app, client, f"/patients/{patient.id}/plan/propose", _course(patient, provider, first=holiday))
    days = _proposed(page.text)
    assert holiday not in days and days[0] == holiday + timedelta(days=1)
    assert f"the clinic is closed for {us[holiday]}" in page.text

    closed = days[1]  # the clinic closes on the series' second day: it moves, and the rest keep their gap
    assert post(app, client, "/settings/calendar/closures",
                {"closure-day": closed.isoformat(), "closure-reason": "Staff training"}).status_code == 302
    page = post(app, client, f"/patients/{patient.id}/plan/propose", _course(patient, provider, first=holiday))
    days = _proposed(page.text)
    assert closed not in days and days[1] == closed + timedelta(days=1)
    assert "the clinic is closed (Staff training)" in page.text
    assert all(b - a >= timedelta(days=2) for a, b in zip(days, days[1:]))

    removed = post(app, client, f"/settings/calendar/closures/{closed.isoformat()}/remove")
    assert removed.status_code == 302
    db.rollback()
    assert db.get(ClinicClosure, (clinic.id, closed)) is None


def test_a_session_that_would_run_past_closing_is_refused(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    patient, provider = _patients(db, clinic, 1)[0], _provider(db, clinic)
    monday = quiet_monday()
    data = _course(patient, provider, first=monday, at="18:00")
    page = post(app, client, f"/patients/{patient.id}/plan/propose", data)
    assert "Outside opening hours (07:30-19:00); a 90-minute booking from 18:00 would end at 19:30" in page.text
    before = _sessions_of(db, patient)
    refused = post(app, client, f"/patients/{patient.id}/plan/book", _with_rows(data, _proposed(page.text)))
    assert refused.status_code == 409 and "Nothing was booked" in refused.text
    db.rollback()
    assert _sessions_of(db, patient) == before


def test_double_booking_a_chair_or_a_provider_is_refused_naming_the_session_in_the_way(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    first, second = _patients(db, clinic, 2)
    lead, other = _provider(db, clinic, 0), _provider(db, clinic, 1)
    aspen, cedar = _chair(db, clinic, "Aspen room"), _chair(db, clinic, "Cedar room")
    monday = quiet_monday()
    assert _book_series(app, client, db, first, lead, aspen, monday).status_code == 302

    # the same chair half an hour later: the first patient's infusion is still running
    chair_clash = post(app, client, f"/patients/{second.id}/plan/propose",
                       _course(second, other, aspen, first=monday, at="10:30"))
    assert f"Aspen room is taken: {monday:%a %b %d} 10:00-11:30, {first.display_name}" in chair_clash.text
    # another chair, the same provider at the same time
    provider_clash = post(app, client, f"/patients/{second.id}/plan/propose",
                          _course(second, lead, cedar, first=monday, at="10:00"))
    assert f"{lead.display_name} is with another patient" in provider_clash.text
    assert first.display_name in provider_clash.text

    before = _sessions_of(db, second)
    data = _course(second, lead, aspen, first=monday, at="10:30")
    refused = post(app, client, f"/patients/{second.id}/plan/book", _with_rows(data, _proposed(chair_clash.text)))
    assert refused.status_code == 409 and "Aspen room is taken" in refused.text
    db.rollback()
    assert _sessions_of(db, second) == before  # all or none: the free dates were not booked either

    # the provider may start the next patient once the first is dosed; another chair is free
    fine = _book_series(app, client, db, second, lead, cedar, monday, at="10:30")
    assert fine.status_code == 302
    db.rollback()
    assert _sessions_of(db, second) == before + 6


def test_the_patient_cannot_be_booked_twice_on_one_day(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    patient = _patients(db, clinic, 1)[0]
    monday = quiet_monday()
    assert _book_series(app, client, db, patient, _provider(db, clinic), _chair(db, clinic, "Aspen room"),
                        monday).status_code == 302
    again = post(app, client, f"/patients/{patient.id}/plan/propose",
                 _course(patient, _provider(db, clinic, 1), _chair(db, clinic, "Birch room"), first=monday, at="15:00"))
    assert "The patient already has a session that day" in again.text


def test_edited_rows_are_checked_again_as_edited(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    first, second = _patients(db, clinic, 2)
    aspen = _chair(db, clinic, "Aspen room")
    monday = quiet_monday()
    _book_series(app, client, db, first, _provider(db, clinic), aspen, monday)
    data = _course(second, _provider(db, clinic, 1), aspen, first=monday, at="13:00")
    days = _proposed(post(app, client, f"/patients/{second.id}/plan/propose", data).text)
    moved = [days[0], monday + timedelta(days=1), *days[2:]]  # the desk moves session 2 onto Tuesday
    page = post(app, client, f"/patients/{second.id}/plan/propose", _with_rows(data, moved, at="10:00"))
    assert _proposed(page.text)[1] == monday + timedelta(days=1)
    assert page.text.count("Aspen room is taken") == 5  # the five days the first patient holds Aspen at 10:00


def test_maintenance_proposes_the_next_session_after_the_interval(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    patient = _patients(db, clinic, 1)[0]
    monday = quiet_monday(weeks_ahead=6)
    _book_series(app, client, db, patient, _provider(db, clinic), _chair(db, clinic, "Aspen room"), monday)
    last = monday + timedelta(days=11)
    page = post(app, client, f"/patients/{patient.id}/plan/propose",
                _course(patient, _provider(db, clinic), pattern="maintenance", interval_weeks="4", at="11:00"))
    assert page.status_code == 200
    expected = last + timedelta(weeks=4)
    us = holidays.US(years=expected.year)
    while expected in us or expected.weekday() == 6:
        expected += timedelta(days=1)
    assert _proposed(page.text) == [expected]
    assert f"4 weeks after {last:%b %d}" in page.text
    missing = post(app, client, f"/patients/{patient.id}/plan/propose",
                   _course(patient, _provider(db, clinic), pattern="maintenance", at="11:00"))
    assert missing.status_code == 422 and "Weeks after the last session is required" in missing.text


def test_a_booked_session_moves_only_where_nothing_is_in_the_way(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    first, second = _patients(db, clinic, 2)
    aspen, birch = _chair(db, clinic, "Aspen room"), _chair(db, clinic, "Birch room")
    monday = quiet_monday()
    _book_series(app, client, db, first, _provider(db, clinic), aspen, monday)
    _book_series(app, client, db, second, _provider(db, clinic, 1), birch, monday)
    db.rollback()
    t = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == second.id)
                .order_by(TreatmentSession.scheduled_at.desc())).first()
    form = {"day": monday.isoformat(), "at": "10:30", "provider_id": str(t.provider_id), "chair_id": str(aspen.id)}
    refused = post(app, client, f"/schedule/sessions/{t.id}/move", form)
    assert refused.status_code == 409 and "Aspen room is taken" in refused.text
    moved = post(app, client, f"/schedule/sessions/{t.id}/move", {**form, "day": (monday + timedelta(days=1)).isoformat()})
    assert moved.status_code == 302
    db.rollback()
    again = db.get(TreatmentSession, t.id)
    assert again.scheduled_at.astimezone(clinic_zone(clinic)).date() == monday + timedelta(days=1)
    assert db.get(Booking, t.id).chair_id == aspen.id


def clinic_zone(clinic):
    from zoneinfo import ZoneInfo

    return ZoneInfo(clinic.timezone)


def test_another_clinics_chair_or_patient_is_refused_and_patients_cannot_plan(app, client, db):
    stillwater, harbor = _clinic(db), _clinic(db, "harbor")
    own, theirs = _patients(db, stillwater, 1)[0], _patients(db, harbor, 1)[0]
    login(app, client, "frontdesk")
    foreign_chair = _chair(db, harbor, "Aspen room")
    bad = post(app, client, f"/patients/{own.id}/plan/propose",
               _course(own, _provider(db, stillwater), foreign_chair, first=quiet_monday()))
    assert bad.status_code == 422 and "Choose one of the clinic&#39;s chairs." in bad.text
    assert client.get(f"/patients/{theirs.id}/plan").status_code == 404
    portal = app.test_client()
    login(app, portal, "patient")
    assert portal.get(f"/patients/{own.id}/plan").status_code == 403
    assert client.get("/settings/calendar").status_code == 403  # the front desk does not change the hours


def test_opening_hours_are_validated_and_saved(app, client, db):
    login(app, client, "manager")
    clinic = _clinic(db)
    week = {f"days-{d}-{k}": v for d in range(5) for k, v in (("open", "1"), ("opens", "08:00"), ("closes", "17:00"))}
    bad = post(app, client, "/settings/calendar/hours", {**week, "days-2-closes": "07:00"})
    assert bad.status_code == 422 and "Wednesday: closing must be after opening." in bad.text
    saved = post(app, client, "/settings/calendar/hours", week)  # holidays box unticked: open on holidays
    assert saved.status_code == 302
    db.rollback()
    assert db.get(Clinic, clinic.id).closed_on_federal_holidays is False
    patient, provider = _patients(db, clinic, 1)[0], _provider(db, clinic)
    saturday = quiet_monday() + timedelta(days=5)
    page = post(app, client, f"/patients/{patient.id}/plan/propose", _course(patient, provider, first=saturday))
    assert "the clinic is closed on Saturdays" in page.text
    assert _proposed(page.text)[0] == saturday + timedelta(days=2)


def test_the_day_view_shows_each_chair_and_its_sessions(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    patient = _patients(db, clinic, 1)[0]
    monday = quiet_monday()
    _book_series(app, client, db, patient, _provider(db, clinic), _chair(db, clinic, "Cedar room"), monday)
    page = client.get(f"/schedule?day={monday.isoformat()}")
    assert page.status_code == 200
    for name in ("Aspen room", "Birch room", "Cedar room", "Willow room"):
        assert f">{name}" in page.text
    assert patient.display_name in page.text and 'rowspan="3"' in page.text  # 90 minutes = three half hours
    assert client.get("/schedule?day=not-a-date").status_code == 200  # falls back to today


def test_two_desks_booking_the_same_chair_at_once_cannot_both_succeed(app, db):
    clinic = _clinic(db)
    first, second = _patients(db, clinic, 2)
    aspen = _chair(db, clinic, "Aspen room")
    monday = quiet_monday()
    desks = [app.test_client(), app.test_client()]
    login(app, desks[0], "frontdesk")
    login(app, desks[1], "frontdesk")
    forms = []
    for desk, patient, provider in ((desks[0], first, _provider(db, clinic)), (desks[1], second, _provider(db, clinic, 1))):
        data = _course(patient, provider, aspen, first=monday)
        days = _proposed(post(app, desk, f"/patients/{patient.id}/plan/propose", data).text)
        forms.append((desk, patient, _with_rows(data, days)))
    results, start = [], threading.Barrier(2)

    def book(desk, patient, data):
        start.wait()
        results.append(post(app, desk, f"/patients/{patient.id}/plan/book", data).status_code)

    threads = [threading.Thread(target=book, args=f) for f in forms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [302, 409]
    db.rollback()
    in_aspen = db.exec(select(func.count()).select_from(Booking).join(TreatmentSession, TreatmentSession.id == Booking.treatment_id)
                       .where(Booking.chair_id == aspen.id, TreatmentSession.scheduled_at >= utcnow() + timedelta(weeks=8))).one()
    assert in_aspen == 6


def test_demo_clinic_has_chairs_hours_and_a_booked_induction_series(db):
    clinic = _clinic(db)
    chairs = db.exec(select(Chair).where(Chair.clinic_id == clinic.id)).all()
    plan = db.exec(select(CoursePlan).where(CoursePlan.clinic_id == clinic.id)).first()
    assert len(chairs) == 4 and plan is not None
    booked = db.exec(select(Booking).where(Booking.plan_id == plan.id)).all()
    assert len(booked) == 6 and all(b.chair_id for b in booked)
    first = db.get(TreatmentSession, booked[0].treatment_id).scheduled_at.astimezone(clinic_zone(clinic))
    assert time(9) <= first.time() < time(17)


def test_the_charts_single_booking_refuses_a_provider_already_with_a_patient(app, client, db):
    login(app, client, "frontdesk")
    clinic = _clinic(db)
    first, second = _patients(db, clinic, 2)
    monday = quiet_monday()
    _book_series(app, client, db, first, _provider(db, clinic), _chair(db, clinic, "Aspen room"), monday)
    form = {"date": monday.isoformat(), "time": "10:15", "modality": "im_ketamine",
            "provider_id": str(_provider(db, clinic).id)}
    before = _sessions_of(db, second)
    refused = post(app, client, f"/patients/{second.id}/sessions", form)
    assert refused.status_code == 422 and "is with another patient" in refused.text and first.display_name in refused.text
    assert post(app, client, f"/patients/{second.id}/sessions", {**form, "time": "10:30"}).status_code == 302
    db.rollback()
    assert _sessions_of(db, second) == before + 1


def test_an_id_beyond_a_database_integer_is_refused_with_a_message_not_a_500(app, client, db):
    clinic = _clinic(db)
    patient = _patients(db, clinic, 1)[0]
    login(app, client, "frontdesk")
    huge = "99999999999999999999"
    data = _course(patient, _provider(db, clinic), first=quiet_monday())
    for field in ("provider_id", "chair_id"):
        resp = post(app, client, f"/patients/{patient.id}/plan/book", {**data, field: huge})
        assert resp.status_code == 422, field
    assert db.exec(select(func.count()).select_from(TreatmentSession)
                   .where(TreatmentSession.patient_id == patient.id, TreatmentSession.scheduled_at > utcnow())).one() == 0
