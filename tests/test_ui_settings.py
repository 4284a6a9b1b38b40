"""Settings: clinic identity for superbills, providers, users and roles, outside clinicians."""
from __future__ import annotations

from sqlmodel import select

from core.models import AuditEvent, Clinic, OutsideClinician, Provider, Role, User
from core.validators import npi_with_check_digit
from tests.support import login, post
from tests.test_workflow import count, reader

CLINIC = {"name": "Stillwater Ketamine Clinic (demo)", "address_line1": "100 Example Way", "city": "Springfield",
          "state": "OR", "postal_code": "97477", "phone": "541-555-0100", "fax": "541-555-0101",
          "timezone": "America/Los_Angeles", "ein": "12-3456789", "npi": npi_with_check_digit("200000001"),
          "place_of_service": "11"}


def test_clinic_settings_validate_superbill_fields(app, client, db):
    login(app, client, "manager")
    valid = CLINIC["npi"]
    for change, message in (({"npi": valid[:-1] + str((int(valid[-1]) + 1) % 10)}, "valid check digit"),
                            ({"npi": npi_with_check_digit("100000009")}, "organization (type 2) NPI starts with 2"),
                            ({"ein": "12345"}, "An EIN is nine digits"),
                            ({"timezone": "Mars/Olympus"}, "Choose a time zone"),
                            ({"place_of_service": "99"}, "Choose a place of service")):
        resp = post(app, client, "/settings/clinic", {**CLINIC, **change})
        assert resp.status_code == 422 and message in resp.text, change
    assert post(app, client, "/settings/clinic", {**CLINIC, "name": "Stillwater Renamed"}).status_code == 302
    with reader(db) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    assert (clinic.name, clinic.ein) == ("Stillwater Renamed", "12-3456789")

    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert desk.get("/settings/clinic").status_code == 403
    assert "/settings/clinic" not in desk.get("/").text  # not in the nav either
    assert 'href="/settings/clinic"' in client.get("/").text


def test_providers_need_a_valid_type1_npi(app, client, db):
    login(app, client, "manager")
    before = count(db, Provider)
    bad = post(app, client, "/settings/providers", {"first_name": "Ima", "last_name": "Doctor", "npi": "1234567890"})
    assert bad.status_code == 422 and "valid check digit" in bad.text
    assert count(db, Provider) == before
    ok = post(app, client, "/settings/providers", {"first_name": "Ima", "last_name": "Doctor", "credentials": "MD",
                                                   "npi": npi_with_check_digit("100000777")})
    assert ok.status_code == 302 and count(db, Provider) == before + 1
    harbor_provider = db.exec(select(Provider).join(Clinic, Clinic.id == Provider.clinic_id)
                              .where(Clinic.slug == "harbor")).first()
    assert client.get(f"/settings/providers/{harbor_provider.id}").status_code == 404


def test_admin_changes_roles_and_deactivation_ends_sessions(app, client, db):
    frontdesk = db.exec(select(User).where(User.email == "frontdesk@demo.glia.example")).one()
    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert desk.get("/").status_code == 200

    manager = app.test_client()
    login(app, manager, "manager")
    assert manager.get("/settings/users").status_code == 403

    login(app, client, "admin")  # admin works in both clinics: switch to Stillwater's
    stillwater = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    assert post(app, client, "/switch-clinic", {"clinic_id": stillwater.id}).status_code == 302
    assert post(app, client, f"/settings/users/{frontdesk.id}", {"role": "manager", "active": "1"}).status_code == 302
    assert count(db, AuditEvent, AuditEvent.action == "user.update", AuditEvent.object_id == str(frontdesk.id)) == 1
    assert post(app, client, f"/settings/users/{frontdesk.id}", {"role": "manager"}).status_code == 302  # deactivate
    with reader(db) as s:
        user = s.get(User, frontdesk.id)
    assert user.role == Role.manager and not user.active
    assert desk.get("/").status_code == 302  # the copied session no longer works

    admin = db.exec(select(User).where(User.email == "admin@demo.glia.example")).one()
    assert post(app, client, f"/settings/users/{admin.id}", {"role": "clinician", "active": "1"}).status_code == 422
    patient_user = db.exec(select(User).where(User.role == Role.patient)).first()
    assert post(app, client, f"/settings/users/{patient_user.id}", {"role": "admin", "active": "1"}).status_code == 404

    weak = post(app, client, "/settings/users", {"name": "New Person", "email": "new@demo.glia.example",
                                                 "role": "clinician", "password": "short"})
    assert weak.status_code == 422 and "at least 12 characters" in weak.text
    made = post(app, client, "/settings/users", {"name": "New Person", "email": "New@Demo.Glia.Example",
                                                 "role": "clinician", "password": "a-long-enough-passphrase"})
    assert made.status_code == 302
    login(app, app.test_client(), "new@demo.glia.example", "a-long-enough-passphrase")


def test_outside_clinician_npi_is_checked(app, client, db):
    login(app, client, "clinician")
    before = count(db, OutsideClinician)
    bad = post(app, client, "/settings/clinicians", {"kind": "therapist", "name": "T. Helper", "npi": "1999999999"})
    assert bad.status_code == 422 and "valid check digit" in bad.text and count(db, OutsideClinician) == before
    ok = post(app, client, "/settings/clinicians", {"kind": "therapist", "name": "T. Helper",
                                                    "npi": npi_with_check_digit("100000555"), "fax": "555-010-0299"})
    assert ok.status_code == 302 and count(db, OutsideClinician) == before + 1
