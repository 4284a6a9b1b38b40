"""Patient search: each word typed must be the start of a word of the patient's names or MRN.

A clinic of 100,000 patients cannot be searched by reading every row (a substring match),
so each patient's words are kept, casefolded, in patient_search_term, and a typed word is a
range of that table's index. The terms are rewritten in the same flush that adds a patient or
changes a name or MRN; the bulk demo and migration 0008 write them directly with terms().
"""
from __future__ import annotations

import re

from sqlalchemy import delete, event, insert, inspect, select
from sqlalchemy.orm import Session

from core.models import Patient, PatientSearchTerm

FIELDS = ("legal_first_name", "legal_last_name", "preferred_name", "mrn")
_SPLIT = re.compile(r"[\s\-'’.,]+")
_TOP = chr(0x10FFFF)  # sorts after every other character: word <= term < word + _TOP is "starts with word"
MAX = 100


def normal(word: str) -> str:
    return word.casefold()[:MAX]


def terms(first: str, last: str, preferred: str, mrn: str) -> set[str]:
    """The words a search can start: every name part (a hyphenated name also whole) and the MRN."""
    found = set()
    for value in (first, last, preferred, mrn):
        value = (value or "").strip()
        if value:
            found.add(normal(value))
            found.update(normal(w) for w in _SPLIT.split(value) if w)
    return found


def rows_for(clinic_id: int, patient_id: int, *values: str) -> list[dict]:
    return [{"clinic_id": clinic_id, "term": t, "patient_id": patient_id} for t in sorted(terms(*values))]


def starts(clinic_id: int, word: str):
    """Ids of the clinic's patients with a word starting with ``word`` (a subquery)."""
    word = normal(word)
    return select(PatientSearchTerm.patient_id).where(
        PatientSearchTerm.clinic_id == clinic_id, PatientSearchTerm.term >= word, PatientSearchTerm.term < word + _TOP)


@event.listens_for(Session, "after_flush")
def _keep_terms(session: Session, _context) -> None:
    """New patients, and patients whose names or MRN changed, get their terms rewritten."""
    changed = [p for p in session.new if isinstance(p, Patient)]
    for p in session.dirty:
        if isinstance(p, Patient):
            state = inspect(p)
            if any(state.attrs[f].history.has_changes() for f in FIELDS):
                changed.append(p)
    if not changed:
        return
    conn = session.connection()
    conn.execute(delete(PatientSearchTerm).where(PatientSearchTerm.patient_id.in_([p.id for p in changed])))
    rows = [r for p in changed for r in rows_for(p.clinic_id, p.id, *(getattr(p, f) for f in FIELDS))]
    if rows:
        conn.execute(insert(PatientSearchTerm), rows)
