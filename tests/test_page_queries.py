"""Pages cost a fixed number of SQL statements, whatever the clinic's size, and plugins add little.

A clinic of 100 patients is grown to 10,000 with the bulk demo builder; every page a user opens
all day runs the same number of statements at both sizes (no query per row), and no more than
CEILING. The page frame (navigation, clinic switcher) is computed once per request, however
many plugin fragments the page renders.
"""
from __future__ import annotations

from sqlalchemy import event, select

from core import demo_bulk
from core.db import session_scope
from core.models import Clinic, TreatmentSession
from tests.conftest import BUILTIN
from tests.example_plugins import navcount
from tests.support import login

CEILING = 30  # statements: today's most (a long chart, with its portal-requests panel); the issue aims at about 15, see bench/README.md


def _counter(app):
    seen: list[str] = []
    event.listen(app.extensions["glia"].engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: seen.append(statement))
    return seen


def _grow(app, patients: int, sessions: int):
    with session_scope(app.extensions["glia"].engine) as s:
        return demo_bulk.grow(s, patients, sessions)


def _page_counts(app, seen, staff, portal, patient_id: int, treatment_id: int) -> dict[str, int]:
    pages = {"dashboard": (staff, "/"), "patient list": (staff, "/patients/"),
             "search": (staff, "/patients/?q=Mock"), "chart": (staff, f"/patients/{patient_id}"),
             "session": (staff, f"/sessions/{treatment_id}"), "portal": (portal, "/portal/")}
    counts = {}
    for name, (client, url) in pages.items():
        assert client.get(url).status_code == 200, name  # warm: first-use work is not the page's cost
        seen.clear()
        assert client.get(url).status_code == 200, name
        counts[name] = len(seen)
    return counts


def test_statements_per_page_stay_flat_from_100_to_10000_patients(make_app):
    app = make_app()
    seen = _counter(app)
    busy = _grow(app, 76, 1_500).busy_patient_id  # the demo's 24 patients and 76 more: 100
    with session_scope(app.extensions["glia"].engine) as s:
        clinic_id = s.exec(select(Clinic.id).where(Clinic.slug == "stillwater")).scalar_one()
        treatment_id = s.exec(select(TreatmentSession.id).where(TreatmentSession.clinic_id == clinic_id)
                              .order_by(TreatmentSession.scheduled_at.desc())).scalars().first()
    staff, portal = app.test_client(), app.test_client()
    login(app, staff, "clinician")
    login(app, portal, "patient")
    small = _page_counts(app, seen, staff, portal, busy, treatment_id)
    _grow(app, 9_900, 30_000)
    large = _page_counts(app, seen, staff, portal, busy, treatment_id)
    assert large == small, f"statements grew with the data: {small} -> {large}"
    assert max(large.values()) <= CEILING, large


def test_the_page_frame_is_computed_once_per_request(make_app):
    app = make_app(plugins=[*BUILTIN, ("navcount", "tests.example_plugins.navcount")])
    client = app.test_client()
    login(app, client, "clinician")
    for url in ("/", "/patients/1"):
        navcount.CALLS["nav_items"] = 0
        page = client.get(url)
        assert page.status_code == 200 and b"Counted" in page.data
        assert "consent" in page.get_data(as_text=True).lower()  # plugin fragments were rendered
        assert navcount.CALLS["nav_items"] == 1, url


def test_the_three_plugins_add_few_statements_to_a_page(make_app):
    """Their panels and widgets fetch in batches: a fixed, small number of statements each."""
    counts = {}
    for label, plugins in (("all", BUILTIN), ("none", [])):
        app = make_app(plugins=plugins)
        seen = _counter(app)
        client = app.test_client()
        login(app, client, "clinician")
        for url in ("/", "/patients/1"):
            client.get(url)
            seen.clear()
            assert client.get(url).status_code == 200
            counts[label, url] = len(seen)
    for url in ("/", "/patients/1"):
        assert counts["all", url] - counts["none", url] <= 14, counts
