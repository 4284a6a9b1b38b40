"""PHI-safe logging: exception messages from our code paths are withheld from every log record.

An exception's text often carries the values that caused it (a patient's name in a
ValueError, the bound parameters of a failed INSERT), and a plugin's ``log.exception`` or
Flask's own error logging would write that text out. We keep the exception type and the
traceback frames (code, not values) and drop the message, for records from Glia, plugins,
Flask, Werkzeug and SQLAlchemy. SQLAlchemy is also kept at WARNING, since at INFO and below
it logs statements and, without ``hide_parameters``, their values.
"""
from __future__ import annotations

import logging
import traceback

NAMESPACES = ("glia", "core", "plugins", "flask", "werkzeug", "sqlalchemy")
WITHHELD = "(message withheld: it may hold patient data)"

_installed = False


def _ours(name: str) -> bool:
    return any(name == ns or name.startswith(ns + ".") for ns in NAMESPACES)


def redact(record: logging.LogRecord) -> logging.LogRecord:
    """Replace a record's exception with its type and frames only."""
    if record.exc_info and record.exc_info[1] is not None and _ours(record.name):
        exc = record.exc_info[1]
        frames = "".join(traceback.format_tb(exc.__traceback__))
        record.exc_text = f"Traceback (most recent call last):\n{frames}{type(exc).__name__}: {WITHHELD}"
        record.exc_info = None
    return record


def install() -> None:
    """Once per process: wrap the log-record factory and quieten SQLAlchemy."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        return redact(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    _installed = True
