"""The day view of the clinic's chairs, and the calendar settings (chairs, hours, closures)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlmodel import delete, select

from core import audit
from core.auth import staff
from core.db import get_session
from core.models import utcnow
from core.scheduling.calendar import WEEKDAYS, Calendar, booked_between
from core.scheduling.forms import ChairForm, ClosureForm, HolidaysForm, HoursForm
from core.scheduling.models import Chair, ClinicClosure, OpeningHours

bp = Blueprint("calendar", __name__)
MANAGERS = ("admin", "manager")
STEP = 30  # minutes per row of the day grid


def _day_asked(cal: Calendar) -> date:
    """?day=YYYY-MM-DD, or today in the clinic's zone; a bad value falls back to today."""
    try:
        return date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        return utcnow().astimezone(cal.zone).date()


def _grid(cal: Calendar, day: date, booked):
    """Rows of half hours from the earliest start to the latest end; each chair's sessions placed where
    they begin, spanning their booked length. Sessions with no chair are listed apart."""
    opens, closes = cal.hours.get(day.weekday(), (None, None))
    starts = [b.start.astimezone(cal.zone) for b in booked]
    ends = [b.end.astimezone(cal.zone) for b in booked]
    first = min(([datetime.combine(day, opens, tzinfo=cal.zone)] if opens else []) + starts,
                default=datetime.combine(day, time(8), tzinfo=cal.zone))
    last = max(([datetime.combine(day, closes, tzinfo=cal.zone)] if closes else []) + ends, default=first)
    first = first.replace(minute=0 if first.minute < STEP else STEP, second=0, microsecond=0)
    times = []
    t = first
    while t < last:
        times.append(t)
        t += timedelta(minutes=STEP)
    chairs = [c for c in cal.chairs.values() if c.active or any(b.booking and b.booking.chair_id == c.id for b in booked)]
    cells = {}  # (row index, chair id) -> (Booked, rowspan) or "covered"
    loose = []
    for b in booked:
        chair_id = b.booking.chair_id if b.booking else None
        if chair_id is None or chair_id not in cal.chairs:
            loose.append(b)
            continue
        start = b.start.astimezone(cal.zone)
        row = max(0, int((start - first).total_seconds() // (STEP * 60)))
        span = max(1, -(-int((b.end.astimezone(cal.zone) - times[row]).total_seconds()) // (STEP * 60)))
        span = min(span, len(times) - row)
        if (row, chair_id) in cells:  # two sessions in one slot (booked before chairs were checked): list it apart
            loose.append(b)
            continue
        cells[row, chair_id] = (b, span)
        for r in range(row + 1, row + span):
            cells.setdefault((r, chair_id), "covered")
    return times, chairs, cells, loose


@bp.get("/schedule")
@staff()
def day_view():
    db = get_session()
    cal = Calendar.load(db, g.clinic)
    day = _day_asked(cal)
    lo = datetime.combine(day, datetime.min.time(), tzinfo=cal.zone)
    booked = [b for b in booked_between(db, cal, lo, lo + timedelta(days=1)) if b.start >= lo]
    times, chairs, cells, loose = _grid(cal, day, booked)
    audit.record("schedule.view", object_type="schedule", detail=f"{day.isoformat()}: {len(booked)} sessions")
    return render_template("scheduling/day.html", day=day, cal=cal, times=times, chairs=chairs, cells=cells,
                           loose=loose, total=len(booked), closed=cal.closed_reason(day),
                           prev=day - timedelta(days=1), next=day + timedelta(days=1))


# -- settings: chairs, hours, closures ------------------------------------------------------

def _settings(status: int = 200, **ctx):
    db = get_session()
    cal = Calendar.load(db, g.clinic)
    hours = {"days": [{"open": d in cal.hours, "opens": f"{cal.hours[d][0]:%H:%M}" if d in cal.hours else "",
                       "closes": f"{cal.hours[d][1]:%H:%M}" if d in cal.hours else ""} for d in range(7)]}
    closures = sorted((d, r) for d, r in cal.closures.items() if d >= utcnow().astimezone(cal.zone).date())
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    return render_template("scheduling/settings.html", cal=cal, weekdays=WEEKDAYS, hours=ctx.pop("hours", hours),
                           closures=closures, **ctx), status


@bp.get("/settings/calendar")
@staff(*MANAGERS)
def settings():
    return _settings()


@bp.post("/settings/calendar/chairs")
@staff(*MANAGERS)
def add_chair():
    form = ChairForm(prefix="chair")
    db = get_session()
    valid = form.validate()
    if valid and db.exec(select(Chair).where(Chair.clinic_id == g.clinic.id, Chair.name == form.name.data)).first():
        form.name.errors.append("A chair of that name exists already.")
        valid = False
    if not valid:
        return _settings(422, errors=form.messages, values=form.values)
    chair = Chair(clinic_id=g.clinic.id, name=form.name.data)
    db.add(chair)
    db.flush()
    audit.record("chair.create", object_type="chair", object_id=chair.id)
    flash(f"{chair.name} added.")
    return redirect(url_for("calendar.settings"))


@bp.post("/settings/calendar/chairs/<int:chair_id>/toggle")
@staff(*MANAGERS)
def toggle_chair(chair_id: int):
    from core.auth import clinic_row_or_404

    chair = clinic_row_or_404(Chair, chair_id, object_type="chair", action="chair.access")
    chair.active = not chair.active
    get_session().add(chair)
    audit.record("chair.update", object_type="chair", object_id=chair.id, detail="active" if chair.active else "retired")
    flash(f"{chair.name} {'is back in use' if chair.active else 'is out of use; its booked sessions stay'}.")
    return redirect(url_for("calendar.settings"))


@bp.post("/settings/calendar/hours")
@staff(*MANAGERS)
def save_hours():
    form = HoursForm()
    if not form.validate():
        errors = {f"days-{i}": next(iter(e.opens.errors + e.closes.errors), "") for i, e in enumerate(form.days.entries)}
        hours = {"days": [{"open": e.open.data, "opens": e.opens.data or "", "closes": e.closes.data or ""}
                          for e in form.days.entries]}
        return _settings(422, hours=hours, hour_errors={k: v for k, v in errors.items() if v})
    db = get_session()
    db.exec(delete(OpeningHours).where(OpeningHours.clinic_id == g.clinic.id))
    db.add_all(OpeningHours(clinic_id=g.clinic.id, weekday=d, opens=o, closes=c) for d, (o, c) in form.hours.items())
    holidays = HolidaysForm()
    g.clinic.closed_on_federal_holidays = bool(holidays.closed_on_federal_holidays.data)
    db.add(g.clinic)
    audit.record("clinic.hours", object_type="clinic", object_id=g.clinic.id,
                 detail=f"{len(form.hours)} days open; federal holidays {'closed' if g.clinic.closed_on_federal_holidays else 'open'}")
    flash("Opening hours saved.")
    return redirect(url_for("calendar.settings"))


@bp.post("/settings/calendar/closures")
@staff(*MANAGERS)
def add_closure():
    form = ClosureForm(prefix="closure")
    if not form.validate():
        return _settings(422, errors=form.messages, values=form.values)
    db = get_session()
    row = db.get(ClinicClosure, (g.clinic.id, form.day.day)) or ClinicClosure(clinic_id=g.clinic.id, day=form.day.day,
                                                                            reason="")
    row.reason = form.reason.data
    db.add(row)
    audit.record("clinic.closure", object_type="clinic", object_id=g.clinic.id, detail=f"{form.day.day}: closed")
    flash(f"Closed on {form.day.day:%b %d, %Y}. Sessions already booked that day stay; move them from the day view.")
    return redirect(url_for("calendar.settings"))


@bp.post("/settings/calendar/closures/<day>/remove")
@staff(*MANAGERS)
def remove_closure(day: str):
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        wanted = None
    db = get_session()
    row = db.get(ClinicClosure, (g.clinic.id, wanted)) if wanted else None
    if row is not None:
        db.delete(row)
        audit.record("clinic.closure_removed", object_type="clinic", object_id=g.clinic.id, detail=str(wanted))
        flash(f"Open again on {wanted:%b %d, %Y}.")
    return redirect(url_for("calendar.settings"))
