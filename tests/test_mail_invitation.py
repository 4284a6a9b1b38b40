"""The portal invitation end to end: a single-use, expiring link; a strong password; the portal."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import select

from core.db import new_session, session_scope
from core.mail.models import PortalInvitation
from core.models import Patient, User, utcnow
from tests.support import csrf_token, login, post
from tests.test_mail import messages_of, patient_without_portal

STRONG = "copper lantern orbits quietly"


def _invite(app, db) -> tuple[Patient, str]:
    desk = app.test_client()
    login(app, desk, "frontdesk")
    patient = patient_without_portal(db)
    assert post(app, desk, f"/patients/{patient.id}/invite").status_code == 302
    body = messages_of(app, patient_id=patient.id)[-1].body
    return patient, re.search(r"http://localhost(/portal/invite/[A-Za-z0-9_\-]+)", body).group(1)


def _accept(app, client, path, password=STRONG, confirm=None):
    client.get(path)  # the page, and with it the form's session
    return client.post(path, data={"csrf_token": csrf_token(app, client), "password": password,
                                   "confirm": password if confirm is None else confirm})


def _fresh(app):
    return new_session(app.extensions["glia"].engine, write=False)


def test_the_patient_sets_a_password_lands_in_the_portal_and_the_link_is_spent(app, db):
    patient, path = _invite(app, db)
    client = app.test_client()
    page = client.get(path)
    assert page.status_code == 200 and patient.email in page.text
    resp = _accept(app, client, path)
    assert resp.status_code == 302 and resp.headers["Location"] == "/portal/"
    home = client.get("/portal/")
    assert home.status_code == 200 and "Your password is set" in home.text
    with _fresh(app) as s:
        linked = s.get(Patient, patient.id)
        user = s.get(User, linked.user_id)
        assert user.email == patient.email and user.role.value == "patient" and user.active
        [inv] = s.exec(select(PortalInvitation).where(PortalInvitation.patient_id == patient.id)).all()
        assert inv.used_at is not None and len(inv.token_hash) == 64
        assert path.rsplit("/", 1)[1] not in inv.token_hash  # only the hash is kept
    # single use: the same link again (another browser, or the same one) is gone
    again = app.test_client()
    assert again.get(path).status_code == 410
    assert _accept(app, again, path).status_code == 410
    assert "has been used or has expired" in again.get(path).text
    # and the password signs in from now on
    other = app.test_client()
    login(app, other, patient.email, STRONG)
    assert other.get("/portal/").status_code == 200


def test_a_weak_or_mismatched_password_is_refused_with_422_and_nothing_is_written(app, db):
    patient, path = _invite(app, db)
    client = app.test_client()
    weak = _accept(app, client, path, password="password1234")
    assert weak.status_code == 422 and "too easy to guess" in weak.text
    short = _accept(app, client, path, password="short")
    assert short.status_code == 422 and "at least 12 characters" in short.text
    differ = _accept(app, client, path, confirm=STRONG + " x")
    assert differ.status_code == 422 and "The two passwords differ." in differ.text
    with _fresh(app) as s:
        assert s.get(Patient, patient.id).user_id is None
        assert s.exec(select(User).where(User.email == patient.email)).first() is None
        assert s.exec(select(PortalInvitation.used_at).where(PortalInvitation.patient_id == patient.id)).one() is None
    assert client.get("/portal/").status_code == 302  # not signed in
    assert _accept(app, client, path).status_code == 302  # the link still works for a good password


def test_an_expired_a_superseded_and_a_made_up_link_do_not_open_anything(app, db):
    patient, first = _invite(app, db)
    _same, second = _invite(app, db)
    assert _same.id == patient.id
    client = app.test_client()
    assert client.get(first).status_code == 410  # a new invitation ends the earlier one
    assert client.get(second).status_code == 200
    with session_scope(app.extensions["glia"].engine) as w:
        for inv in w.exec(select(PortalInvitation).where(PortalInvitation.patient_id == patient.id)).all():
            inv.expires_at = utcnow() - timedelta(minutes=1)
            w.add(inv)
    expired = _accept(app, client, second)
    assert expired.status_code == 410 and "72 hours" in expired.text
    made_up = client.get("/portal/invite/not-a-real-token")
    assert made_up.status_code == 404 and "not valid" in made_up.text
    with _fresh(app) as s:
        assert s.get(Patient, patient.id).user_id is None


def test_an_invitation_for_a_patient_with_an_account_resets_its_password(app, db):
    with _fresh(app) as s:
        patient = s.exec(select(Patient).where(Patient.mrn == "ST1000")).one()
        before = s.get(User, patient.user_id)
    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert post(app, desk, f"/patients/{patient.id}/invite").status_code == 302
    path = re.search(r"http://localhost(/portal/invite/\S+)", messages_of(app, patient_id=patient.id)[-1].body).group(1)
    old_session = app.test_client()
    login(app, old_session, before.email)
    client = app.test_client()
    assert _accept(app, client, path).status_code == 302
    with _fresh(app) as s:
        assert s.get(Patient, patient.id).user_id == before.id  # the same account, not a second one
    assert old_session.get("/portal/").status_code == 302  # its other sessions ended
    login(app, app.test_client(), before.email, STRONG)


def test_the_invitation_page_needs_no_account_but_staff_pages_stay_closed(app, db):
    _patient, path = _invite(app, db)
    client = app.test_client()
    assert _accept(app, client, path).status_code == 302
    assert client.get("/patients/").status_code == 403  # a patient, not staff
