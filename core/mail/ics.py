"""The .ics attachment of an appointment confirmation, built with icalendar.

Times are UTC (the calendar app shows them in the patient's zone); the event names the clinic and
its address only: no treatment, dose or diagnosis reaches the patient's calendar or its sync service.
"""
from __future__ import annotations

from datetime import timedelta, timezone

from icalendar import Calendar, Event

from core.models import Clinic, TreatmentSession, utcnow


def clinic_address(clinic: Clinic) -> str:
    place = " ".join(p for p in (clinic.state, clinic.postal_code) if p)
    return ", ".join(p for p in (clinic.address_line1, clinic.address_line2, clinic.city, place) if p)


def appointments(clinic: Clinic, sessions: list[tuple[TreatmentSession, int]]) -> bytes:
    """One VEVENT per (session, booked minutes)."""
    cal = Calendar()
    cal.add("prodid", "-//Glia//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    location = ", ".join(p for p in (clinic.name, clinic_address(clinic)) if p)
    stamp = utcnow()
    for t, minutes in sessions:
        event = Event()
        event.add("uid", f"session-{t.id}@{clinic.slug}.glia")
        event.add("dtstamp", stamp)
        start = t.scheduled_at.astimezone(timezone.utc)  # just booked, it may still carry the clinic's zone
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=minutes))
        event.add("summary", f"Appointment at {clinic.name}")
        event.add("location", location)
        cal.add_component(event)
    return cal.to_ical()
