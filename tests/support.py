"""Helpers for tests: sign in and post forms the way a browser does."""
from __future__ import annotations

import re
import uuid

from itsdangerous import URLSafeTimedSerializer

from core.demo import DEMO_PASSWORD as PASSWORD


def csrf_token(app, client) -> str:
    """The token a real form would carry, for the client's current session."""
    with client.session_transaction() as sess:
        raw = sess.setdefault("csrf_token", uuid.uuid4().hex)
    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)


def post(app, client, url, data=None, **kw):
    """POST with a valid CSRF token, as the browser form would."""
    return client.post(url, data={"csrf_token": csrf_token(app, client), **(data or {})}, **kw)


def login(app, client, email: str, password: str = PASSWORD):
    """Sign in through the real login form; demo emails may be given by local part ("clinician")."""
    if "@" not in email:
        email = f"{email}@demo.glia.example"
    resp = post(app, client, "/login", {"email": email, "password": password})
    assert resp.status_code == 302, f"login as {email} failed ({resp.status_code})"
    return resp


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def unlock_tablet(app, client, password: str = PASSWORD):
    """Staff take the tablet back after the patient signed (core.tablet): their password lifts the lock."""
    resp = post(app, client, "/tablet/unlock", {"password": password})
    assert resp.status_code == 302, f"unlock failed ({resp.status_code})"
    return resp
