"""Every hook in core/hookspecs.py, exercised through the example plugins that implement it.

HOOK_TESTS maps each hook to the test that covers it; tests/test_docs.py fails when a hook is
missing here, when the named test does not exist or never mentions the hook, or when no example
plugin implements it.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import inspect
from sqlmodel import select

from core import demo
from core.db import session_scope
from core.documents import DocumentRef
from core.hooks import relay
from core.models import Clinic, Patient, TreatmentSession, User, utcnow
from core.pdf import html_to_pdf
from core.plugin_state import save_settings, set_enabled, settings_for
from core.slots import Blocker, LetterSection, NavItem, Panel, PortalItem, Widget
from tests.example_plugins import BUILTIN, RATINGS, STAMP, fresh, migrate, ratings, stamp
from tests.example_plugins.fixtures import examples_app  # noqa: F401 - a fixture
from tests.example_plugins.ratings.models import Rating

ROOT = Path(__file__).resolve().parent.parent

HOOK_TESTS = {
    "register_blueprints": "test_startup_hooks_register_parts_of_the_app",
    "register_models": "test_startup_hooks_register_parts_of_the_app",
    "register_settings": "test_startup_hooks_register_parts_of_the_app",
    "register_document_types": "test_startup_hooks_register_parts_of_the_app",
    "register_commands": "test_register_commands_adds_to_the_glia_command",
    "seed_demo_data": "test_seed_demo_data_runs_with_the_demo",
    "nav_items": "test_slot_hooks_fill_pages_for_enabled_clinics_only",
    "dashboard_widgets": "test_slot_hooks_fill_pages_for_enabled_clinics_only",
    "patient_chart_panels": "test_slot_hooks_fill_pages_for_enabled_clinics_only",
    "portal_items": "test_slot_hooks_fill_pages_for_enabled_clinics_only",
    "session_panels": "test_slot_hooks_fill_pages_for_enabled_clinics_only",
    "treatment_blockers": "test_contribution_hooks_through_the_relay",
    "patient_documents": "test_contribution_hooks_through_the_relay",
    "letter_sections": "test_contribution_hooks_through_the_relay",
    "superbill_extra_fields": "test_contribution_hooks_through_the_relay",
    "treatment_completed": "test_events_reach_enabled_plugins_each_isolated",
    "patient_created": "test_events_reach_enabled_plugins_each_isolated",
    "document_issued": "test_events_reach_enabled_plugins_each_isolated",
    "render_pdf": "test_render_pdf_first_result_wins_else_core_default",
}


def _clinics(db) -> dict[str, Clinic]:
    return {c.slug: c for c in db.exec(select(Clinic)).all()}


def _first_patient(db, clinic) -> Patient:
    return db.exec(select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id)).first()


def _disable(app, clinic, plugin):
    ext = app.extensions["glia"]
    with app.app_context(), session_scope(ext.engine) as s:
        set_enabled(s, s.get(Clinic, clinic.id), plugin, False, plugins=ext.plugins, reason="test: switched off")


# -- startup ------------------------------------------------------------------------------

def test_startup_hooks_register_parts_of_the_app(examples_app, db):
    app = examples_app
    ext = app.extensions["glia"]
    # register_blueprints: the blueprint is mounted under /ratings/ and known to be ratings' own
    assert ext.blueprint_owner["ratings"] == "ratings"
    assert {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("ratings.")} == {
        "/ratings/", "/ratings/patients/<int:patient_id>", "/ratings/mine"}
    # register_models: the table exists in the migrated database and migrations own it
    from core.migrate import table_owner

    assert table_owner(ext)["ratings_rating"] == "ratings"
    assert "ratings_rating" in inspect(ext.engine).get_table_names()
    # register_document_types
    assert [(d.kind, d.label) for d in ext.document_types if d.kind.startswith("ratings")] == [
        ("ratings_summary", "Ratings summary")]
    # register_settings: declared default, then the clinic's saved value
    stillwater = _clinics(db)["stillwater"]
    with app.test_request_context():
        from core.db import get_session

        assert settings_for(get_session(), stillwater, "ratings") == {"low_score": 1}
        save_settings(get_session(), stillwater, "ratings", {"low_score": 2, "not_declared": 9})
        assert settings_for(get_session(), stillwater, "ratings") == {"low_score": 2}


def test_register_commands_adds_to_the_glia_command(db_url, tmp_path):
    """Installed through an entry point, ratings adds `glia ratings hello` to the real command."""
    migrate(db_url, BUILTIN + [RATINGS])
    info = tmp_path / "glia_ratings-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: glia-ratings\nVersion: 1.2.0\n")
    (info / "entry_points.txt").write_text("[glia]\nratings = tests.example_plugins.ratings\n")
    env = {**os.environ, "GLIA_DATABASE_URL": db_url,
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "ratings", "hello"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ratings plugin says hello" in out.stdout


def test_seed_demo_data_runs_with_the_demo(databases, backend):
    from core import create_app

    url = databases(backend).empty(BUILTIN + [RATINGS])
    app = create_app({"GLIA_ENV": "testing", "GLIA_DATABASE_URL": url, "SECRET_KEY": "t" * 40},
                     plugins=BUILTIN + [RATINGS])
    ext = app.extensions["glia"]
    with app.app_context():
        with session_scope(ext.engine) as s:
            demo.seed(s, ext)
        with session_scope(ext.engine, write=False) as s:
            per_clinic = {c.slug: len(s.exec(select(Rating).where(Rating.clinic_id == c.id)).all())
                          for c in s.exec(select(Clinic)).all()}
    ext.engine.dispose()
    assert per_clinic == {"stillwater": 3, "harbor": 3}


# -- per request ----------------------------------------------------------------------------

def test_slot_hooks_fill_pages_for_enabled_clinics_only(examples_app, db):
    from tests.support import login, post

    app = examples_app
    clinics = _clinics(db)
    _disable(app, clinics["harbor"], "ratings")
    user = db.exec(select(User).where(User.email == "admin@demo.glia.example")).one()
    with app.test_request_context():
        for slug, expected in (("stillwater", True), ("harbor", False)):
            clinic = clinics[slug]
            patient = _first_patient(db, clinic)
            r = relay(clinic)
            nav, _ = r.collect("nav_items", expect=NavItem, clinic=clinic, user=user)
            widgets, _ = r.collect("dashboard_widgets", expect=Widget, clinic=clinic, user=user)
            panels, _ = r.collect("patient_chart_panels", expect=Panel, clinic=clinic, patient=patient, user=user)
            portal, _ = r.collect("portal_items", expect=PortalItem, clinic=clinic, patient=patient)
            treatment = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id)).first()
            session_panels, _ = r.collect("session_panels", expect=Panel, clinic=clinic, patient=patient,
                                          treatment=treatment, user=user)
            assert ("Last visit rating" in [p.title for p in session_panels]) is expected
            assert ("Ratings" in [n.label for n in nav]) is expected
            assert ("Visit ratings" in [w.title for w in widgets]) is expected
            assert ("Visit ratings" in [p.title for p in panels]) is expected
            assert ("Your visit ratings" in [p.title for p in portal]) is expected

    # and on real pages: the dashboard and the portal at stillwater
    client = app.test_client()
    login(app, client, "admin")
    assert post(app, client, "/switch-clinic", {"clinic_id": clinics["stillwater"].id}).status_code == 302
    page = client.get("/").text
    assert '<a href="/ratings/">Ratings</a>' in page
    assert '<p class="ratings-count"><strong>0</strong> visit ratings on file.</p>' in page  # rendered, not escaped
    patient_client = app.test_client()
    login(app, patient_client, "patient")
    assert 'href="/ratings/mine"' in patient_client.get("/portal/").text
    assert "You have not rated a visit yet." in patient_client.get("/ratings/mine").text
    stillwater_patient = _first_patient(db, clinics["stillwater"])
    treatment = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == stillwater_patient.id)).first()
    assert '<p class="ratings-last' in client.get(f"/sessions/{treatment.id}").text  # the session page shows it
    # faulty's chart panel runs a failing statement first (on PostgreSQL that aborts the transaction):
    # the chart is still served, with the panels after it
    chart = client.get(f"/patients/{stillwater_patient.id}")
    assert chart.status_code == 200 and "Visit ratings" in chart.text and "Consent" in chart.text


def test_contribution_hooks_through_the_relay(make_app, db_url, db):
    plugins = BUILTIN + [RATINGS]
    migrate(db_url, plugins)
    app = make_app(plugins=plugins)
    clinics = _clinics(db)
    stillwater, harbor = clinics["stillwater"], clinics["harbor"]
    patient = _first_patient(db, stillwater)
    treatment = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id)).first()
    with app.app_context(), session_scope(app.extensions["glia"].engine) as s:
        s.add(Rating(clinic_id=stillwater.id, patient_id=patient.id, score=1, created_at=utcnow()))
    _disable(app, harbor, "ratings")
    harbor_patient = _first_patient(db, harbor)

    with app.test_request_context():
        blockers, errors = relay(stillwater).collect("treatment_blockers", expect=Blocker,
                                                      clinic=stillwater, patient=patient, treatment=treatment)
        assert errors == [] and [b.link for b in blockers if "visit rating" in b.reason] == ["/ratings/"]
        sections, _ = relay(stillwater).collect("letter_sections", expect=LetterSection,
                                                 clinic=stillwater, patient=patient, recipient=None)
        ours = [s for s in sections if s.title == "Visit ratings"]
        assert len(ours) == 1 and "the latest score was 1 of 5" in ours[0].html
        fields, _ = relay(stillwater).collect("superbill_extra_fields", expect=dict,
                                              clinic=stillwater, patient=patient, superbill=None)
        assert {"Visit ratings on file": "1"} in fields
        docs, _ = relay(stillwater).collect("patient_documents", expect=DocumentRef, clinic=stillwater, patient=patient)
        assert [d.url for d in docs if d.kind == "ratings_summary"] == ["/ratings/"]
        # disabled at harbor: no blocker, no section, no field from ratings
        blockers, _ = relay(harbor).collect("treatment_blockers", expect=Blocker,
                                            clinic=harbor, patient=harbor_patient, treatment=None)
        fields, _ = relay(harbor).collect("superbill_extra_fields", expect=dict,
                                          clinic=harbor, patient=harbor_patient, superbill=None)
        assert not [b for b in blockers if "visit rating" in b.reason]
        assert not [f for f in fields if "Visit ratings on file" in f]
        docs, _ = relay(harbor).collect("patient_documents", expect=DocumentRef, clinic=harbor, patient=harbor_patient)
        assert not [d for d in docs if d.kind == "ratings_summary"]


def test_events_reach_enabled_plugins_each_isolated(examples_app, db):
    app = examples_app
    clinics = _clinics(db)
    stillwater, harbor = clinics["stillwater"], clinics["harbor"]
    patient = _first_patient(db, stillwater)
    treatment = db.exec(select(TreatmentSession).where(TreatmentSession.clinic_id == stillwater.id)).first()
    _disable(app, harbor, "ratings")
    ratings.CALLS.clear()
    with app.test_request_context():
        errors = relay(stillwater).fire("treatment_completed", clinic=stillwater, treatment=treatment)
        assert [(e.plugin, e.hook) for e in errors] == [("faulty", "treatment_completed")]
        assert relay(stillwater).fire("patient_created", clinic=stillwater, patient=patient)[0].plugin == "faulty"
        assert relay(stillwater).fire("document_issued", clinic=stillwater, document="superbill:7") == []
        relay(harbor).fire("treatment_completed", clinic=harbor, treatment=treatment)
        relay(harbor).fire("document_issued", clinic=harbor, document="superbill:8")
    assert ratings.CALLS == [("treatment_completed", f"stillwater:{treatment.id}"),
                             ("patient_created", f"stillwater:{patient.id}"),
                             ("document_issued", "stillwater:superbill:7")]

    # end to end: adding a patient fires patient_created after the commit; faulty's raise
    # neither loses the patient nor stops ratings from hearing about it
    from tests.support import login, post

    client = app.test_client()
    login(app, client, "clinician")
    resp = post(app, client, "/patients/new", {"mrn": "EV-1", "legal_first_name": "Event", "legal_last_name": "Test",
                                               "dob": "1980-02-03", "sex": "F", "state": "CA"})
    assert resp.status_code == 302, resp.text
    fresh(db)
    created = db.exec(select(Patient).where(Patient.clinic_id == stillwater.id, Patient.mrn == "EV-1")).one()
    assert ratings.CALLS[-1] == ("patient_created", f"stillwater:{created.id}")


# -- single decisions ----------------------------------------------------------------------

def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.mark.parametrize("with_stamp", [True, False], ids=["plugin-wins", "core-default"])
def test_render_pdf_first_result_wins_else_core_default(make_app, db, with_stamp):
    app = make_app(plugins=BUILTIN + ([STAMP] if with_stamp else []))
    clinics = _clinics(db)
    html = "<html><head><title>t</title></head><body><p>Glia test letter</p></body></html>"
    if with_stamp:
        _disable(app, clinics["harbor"], "stamp")
    with app.test_request_context():
        stillwater_text = _pdf_text(html_to_pdf(html, clinic=clinics["stillwater"]))
        harbor_text = _pdf_text(html_to_pdf(html, clinic=clinics["harbor"]))
    assert "Glia test letter" in stillwater_text and "Glia test letter" in harbor_text
    assert (stamp.STAMP in stillwater_text) is with_stamp
    assert stamp.STAMP not in harbor_text  # disabled there (or absent): core's WeasyPrint default
