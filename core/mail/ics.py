"""The .ics attachment of an appointment confirmation or cancellation, built with icalendar.

Times are UTC (the calendar app shows them in the patient's zone); the event names the clinic and
its address only: no treatment, dose or diagnosis reaches the patient's calendar or its sync service.
Each session keeps one UID; its SEQUENCE follows the session's version (bumped by every change), so a
moved session's new confirmation, or its cancellation, replaces the event the calendar holds.
"""
from __future__ import annotations

from datetime import timedelta, timezone

from email.utils import parseaddr

from icalendar import Calendar, Event, vCalAddress

from core.mail import settings
from core.models import Clinic, TreatmentSession, utcnow


def clinic_address(clinic: Clinic) -> str:
    place = " ".join(p for p in (clinic.state, clinic.postal_code) if p)
    return ", ".join(p for p in (clinic.address_line1, clinic.address_line2, clinic.city, place) if p)


def _organizer(clinic: Clinic) -> vCalAddress:
    name, address = parseaddr(settings.sender(clinic.name))
    organizer = vCalAddress(f"mailto:{address}")
    organizer.params["cn"] = name
    return organizer


def appointments(clinic: Clinic, sessions: list[tuple[TreatmentSession, int]], *, cancel_for: str = "") -> bytes:
    """One VEVENT per (session, booked minutes); with ``cancel_for`` (the patient's address) the
    calendar is a METHOD:CANCEL of those events (RFC 5546 names the attendee a cancellation removes)."""
    cal = Calendar()
    cal.add("prodid", "-//Glia//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancel_for else "PUBLISH")
    location = ", ".join(p for p in (clinic.name, clinic_address(clinic)) if p)
    stamp = utcnow()
    for t, minutes in sessions:
        event = Event()
        event.add("uid", f"session-{t.id}@{clinic.slug}.glia")
        event.add("sequence", max(0, t.version - 1))  # 0 when booked
        event.add("dtstamp", stamp)
        event.add("organizer", _organizer(clinic))
        event.add("status", "CANCELLED" if cancel_for else "CONFIRMED")
        if cancel_for:
            event.add("attendee", vCalAddress(f"mailto:{cancel_for}"))
        start = t.scheduled_at.astimezone(timezone.utc)  # just booked, it may still carry the clinic's zone
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=minutes))
        event.add("summary", f"Appointment at {clinic.name}")
        event.add("location", location)
        cal.add_component(event)
    return cal.to_ical()
