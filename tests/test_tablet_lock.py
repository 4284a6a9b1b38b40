"""The consent tablet: once staff hand it to a patient, the server shows nothing but that patient's
tablet pages (no staff menu, every other page the lock screen) until the signed-in staff member
types their password; a copied cookie does not get round it, and every lock and unlock is audited."""
from __future__ import annotations

import re

from sqlmodel import select

from core.auth import LOCK_AFTER
from core.models import AuditEvent, UserSession
from tests.support import PASSWORD, login, post
from tests.test_confirm_steps import _chain_ok
from tests.test_consent import _clinic, _sign_data, _unsigned_patient, fresh

STAFF_PAGES = ["/", "/patients/", "/account/password", "/settings/clinic", "/billing/"]


def _actions(db, prefix="tablet."):
    fresh(db)
    return [(e.action, e.outcome) for e in db.exec(select(AuditEvent).where(AuditEvent.action.startswith(prefix))
                                                   .order_by(AuditEvent.id)).all()]


def _locked_screen(resp) -> None:
    assert resp.status_code == 423
    assert "Please hand this device back to the staff" in resp.text and 'action="/tablet/unlock"' in resp.text
    assert 'class="mainnav"' not in resp.text and "Sign out" not in resp.text


def _hand_over(app, client, db, who="manager"):
    """Sign in, open the tablet page of a new patient: the device is now the patient's."""
    patient, t = _unsigned_patient(db, _clinic(db))
    login(app, client, who)
    assert 'class="mainnav"' in client.get("/patients/").text
    page = client.get(f"/consent/patients/{patient.id}/sign/treatment_day")
    assert page.status_code == 200 and "Sign this consent" in page.text
    return patient, t, page


def test_the_tablet_shows_only_the_patients_pages_until_staff_unlock_it(app, client, db):
    copied = app.test_client()
    patient, t, page = _hand_over(app, client, db)
    other, _ = _unsigned_patient(db, _clinic(db))
    for name in ("session", "glia_session"):
        cookie = client.get_cookie(name)
        if cookie:
            copied.set_cookie(cookie.key, cookie.value)
    assert 'class="mainnav"' not in page.text and "Sign out" not in page.text
    assert not re.search(r'href="/(patients|sessions|billing|settings|admin)', page.text)
    fresh(db)
    assert db.exec(select(UserSession.tablet_patient_id).where(UserSession.ended_at.is_(None))
                   .where(UserSession.tablet_patient_id.is_not(None))).all() == [patient.id]

    for url in [*STAFF_PAGES, f"/sessions/{t.id}", f"/patients/{patient.id}",
                f"/consent/patients/{other.id}/sign/treatment_day", f"/consent/patients/{patient.id}"]:
        _locked_screen(client.get(url))
    _locked_screen(copied.get("/patients/"))  # the lock is on the server, not in the cookie
    _locked_screen(post(app, client, f"/sessions/{t.id}/cancel", {"version": t.version, "confirm": "yes"}))

    # the patient signs; the thank-you page keeps the staff part behind the lock
    done = post(app, client, f"/consent/patients/{patient.id}/sign/treatment_day",
                _sign_data(page.text, patient.legal_name))
    assert done.status_code == 302
    signed = client.get(done.headers["Location"])
    assert signed.status_code == 200 and "Thank you" in signed.text
    assert 'action="/tablet/unlock"' in signed.text and "Sign the attestation" not in signed.text
    assert "Consents and screening" not in signed.text and 'class="mainnav"' not in signed.text

    assert client.post("/tablet/unlock", data={"password": PASSWORD}).status_code == 400  # no CSRF token
    wrong = post(app, client, "/tablet/unlock", {"password": "not-my-password-at-all", "next": "/patients/"})
    assert wrong.status_code == 422 and "That password is not right." in wrong.text
    _locked_screen(client.get("/patients/"))

    back = post(app, client, "/tablet/unlock", {"password": PASSWORD, "next": done.headers["Location"]})
    assert back.status_code == 302 and back.headers["Location"] == done.headers["Location"]
    staff_view = client.get(done.headers["Location"]).text
    assert 'class="mainnav"' in staff_view and "Consents and screening" in staff_view
    assert client.get("/patients/").status_code == 200 and copied.get("/patients/").status_code == 200
    assert _actions(db) == [("tablet.locked", "ok"), *[("tablet.page_refused", "denied")] * 11,
                            ("tablet.unlock_failed", "denied"), ("tablet.page_refused", "denied"),
                            ("tablet.unlocked", "ok")]
    assert _chain_ok(app)


def test_unlock_refuses_an_empty_password_and_goes_only_to_this_site(app, client, db):
    _hand_over(app, client, db, who="clinician")
    assert post(app, client, "/tablet/unlock", {"password": "", "next": "/"}).status_code == 422
    out = post(app, client, "/tablet/unlock", {"password": PASSWORD, "next": "https://evil.example/"})
    assert out.status_code == 302 and out.headers["Location"] == "/"


def test_too_many_wrong_passwords_sign_the_staff_member_out(app, client, db):
    _hand_over(app, client, db, who="frontdesk")
    for _ in range(LOCK_AFTER - 1):
        assert post(app, client, "/tablet/unlock", {"password": "guess-guess-guess"}).status_code == 422
    last = post(app, client, "/tablet/unlock", {"password": "guess-guess-guess"})
    assert last.status_code == 302 and last.headers["Location"].endswith("/login")
    assert client.get("/patients/").status_code == 302  # signed out: back to the login page
    fresh(db)
    assert db.exec(select(UserSession).where(UserSession.ended_at.is_(None),
                                             UserSession.tablet_patient_id.is_not(None))).all() == []
