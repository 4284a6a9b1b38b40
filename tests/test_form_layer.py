"""Core's forms on WTForms: a refused field's message is tied to it (aria-describedby) and the page
answers 422 with nothing written; fields a form does not declare are never read; and no module of
core parses request.form by hand or uses the hand-written form layer."""
from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import select

from core.models import Clinic, OutsideClinician, SessionStatus, VitalSign
from tests.support import login, post
from tests.test_workflow import count, fresh, reader, session_of

ROOT = Path(__file__).resolve().parent.parent
S = SessionStatus


def _described(html: str, name: str, message: str) -> bool:
    """The field carries aria-invalid and points at the element holding exactly this message."""
    tied = re.search(rf'name="{name}"[^>]*aria-invalid="true"[^>]*aria-describedby="e-{name}"', html)
    return bool(tied) and f'id="e-{name}">{message}</' in html


def test_a_refused_vital_sign_is_described_beside_its_field_and_nothing_is_written(app, client, db):
    t = session_of(db, "ST1000", S.scheduled)
    login(app, client, "frontdesk")
    resp = post(app, client, f"/sessions/{t.id}/check-in",
                {"version": t.version, "escort_confirmed": "1", "escort_name": "Sam Escort",
                 "baseline_systolic": "300", "baseline_diastolic": "80"})
    assert resp.status_code == 422
    assert _described(resp.text, "baseline_systolic", "Systolic pressure must be between 50 and 260.")
    assert 'value="300"' in resp.text  # shown again as typed
    assert fresh(db, t).status == S.scheduled
    assert count(db, VitalSign, VitalSign.treatment_id == t.id) == 0


def test_a_refused_outside_clinician_says_why_and_adds_no_row(app, client, db):
    login(app, client, "manager")
    before = count(db, OutsideClinician)
    resp = post(app, client, "/settings/clinicians", {"kind": "psychiatrist", "name": "", "npi": "1234567890"})
    assert resp.status_code == 422
    assert _described(resp.text, "name", "Name is required.")
    assert re.search(r'name="npi"[^>]*aria-invalid="true"', resp.text)
    assert count(db, OutsideClinician) == before


def test_undeclared_fields_are_ignored(app, client, db):
    other = db.exec(select(Clinic).order_by(Clinic.id.desc())).first()
    t = session_of(db, "ST1000", S.scheduled)
    login(app, client, "frontdesk")
    resp = post(app, client, f"/sessions/{t.id}/check-in",
                {"version": t.version, "escort_confirmed": "1", "escort_name": "Sam Escort", "status": "discharged",
                 "clinic_id": str(other.id), "dose_mg": "500", "patient_id": "1", "version_": "99"})
    assert resp.status_code == 302
    t = fresh(db, t)
    assert (t.status, t.dose_mg, t.escort_name) == (S.checked_in, None, "Sam Escort")
    assert t.clinic_id != other.id

    manager = app.test_client()
    login(app, manager, "manager")
    resp = post(app, manager, "/settings/clinicians", {"kind": "psychiatrist", "name": "Dr. Declared",
                                                      "clinic_id": str(other.id), "id": "1", "role": "admin"})
    assert resp.status_code == 302
    with reader(db) as s:
        row = s.exec(select(OutsideClinician).where(OutsideClinician.name == "Dr. Declared")).one()
    assert row.clinic_id == t.clinic_id != other.id


def test_core_reads_no_form_by_hand():
    """The hand-written form layer is gone: nothing in core reads request.form or brings it back."""
    assert not (ROOT / "core" / "forms.py").exists()
    for path in (ROOT / "core").rglob("*.py"):
        source = path.read_text()
        assert "request.form" not in source, path
        assert not re.search(r"from core\.forms import|import core\.forms|from core import forms", source), path


def test_every_visible_field_is_drawn_by_the_shared_macros():
    """A field drawn by hand misses its label, hint or message tie (aria-describedby); only macros.html
    writes <input>, <select> or <textarea>, hidden values included (m.hidden, m.csrf). No field needs an
    exception today (the signature pad is a <canvas> feeding m.hidden("signature_png"))."""
    pages = [*(ROOT / "templates").rglob("*.html"), *ROOT.glob("plugins/*/templates/**/*.html")]
    assert len(pages) > 50
    drawn = []
    for path in pages:
        name = path.relative_to(ROOT).as_posix()
        if name == "templates/macros.html":
            continue
        drawn += [f"{name}: {tag}" for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*", path.read_text())]
    assert drawn == []
