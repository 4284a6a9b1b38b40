"""Wall-clock times in a clinic's zone: what staff type is local, what is stored is UTC."""
from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def local_datetime(day: date, at: time, tz: str) -> datetime:
    """A wall-clock time in the clinic's zone, as an aware datetime (stored as UTC)."""
    try:
        zone = ZoneInfo(tz)
    except ZoneInfoNotFoundError:
        zone = ZoneInfo("UTC")
    return datetime.combine(day, at, tzinfo=zone)


def common_timezones() -> list[str]:
    """The zones offered on the clinic form: the Americas, the Pacific, US aliases and UTC."""
    return sorted(z for z in available_timezones() if z.startswith(("America/", "Pacific/", "US/")) or z == "UTC")
