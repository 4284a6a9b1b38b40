"""Security headers on every kind of response, body size limits, and production start-up refusals."""
from __future__ import annotations

import secrets

import pytest

from core import create_app
from core.config import ConfigError
from tests.conftest import BUILTIN
from tests.security_support import audit_count, changed, rules, snapshot
from tests.support import csrf_token, login


def _assert_headers(resp, where: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp, where
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
    assert resp.headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), where
    assert "no-store" in resp.headers.get("Cache-Control", ""), where


def test_headers_on_pages_errors_and_documents(make_app):
    app = make_app(plugins=BUILTIN + [("canary", "tests.security_canary_plugin")])
    client = app.test_client()
    _assert_headers(client.get("/login"), "login page")
    _assert_headers(client.get("/nowhere"), "anonymous 404")
    login(app, client, "admin")
    _assert_headers(client.get("/nowhere"), "signed-in 404")
    _assert_headers(client.get("/canary/boom/1"), "500")
    document = client.get("/canary/document")
    assert document.mimetype == "application/pdf"
    _assert_headers(document, "PDF")
    _assert_headers(client.post("/logout"), "CSRF 400")
    for rule, url in rules(app):  # every GET page an admin can open, PDFs included
        if "GET" in rule.methods and not rule.endpoint.startswith(("canary.", "auth.")):
            resp = client.get(url)
            _assert_headers(resp, f"GET {rule.rule} ({resp.status_code}, {resp.mimetype})")
    static = client.get("/static/glia.css")
    assert static.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in static.headers["Content-Security-Policy"]


def test_a_10_mb_body_is_refused_before_parsing_and_writes_nothing(app, client):
    login(app, client, "clinician")
    before, audits = snapshot(app), audit_count(app)
    token = csrf_token(app, client)
    huge = "x" * (10 * 1024 * 1024)
    for url, data in [("/account/password", {"current": huge, "new": "y", "confirm": "y"}),
                      ("/login", {"email": "a@b.example", "password": huge}),
                      ("/patients/", {"q": huge})]:
        resp = client.post(url, data={"csrf_token": token, **data})
        assert resp.status_code == 413, url
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert changed(before, snapshot(app)) == [] and audit_count(app) == audits


def test_a_chunked_body_over_the_limit_is_refused_too_and_writes_nothing(app):
    """Through a real HTTP server: a body sent chunked (no Content-Length) is not cut and parsed."""
    import http.client
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before, audits = snapshot(app), audit_count(app)

    def send(form: bytes) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        parts = (form[i:i + 65536] for i in range(0, len(form), 65536))
        conn.request("POST", "/login", body=parts, encode_chunked=True,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        status = conn.getresponse().status
        conn.close()
        return status

    try:
        assert send(b"email=a%40b.example&password=" + b"x" * (3 * 1024 * 1024)) == 413
        assert send(b"email=a%40b.example&password=short") == 400  # under the limit it is read: no CSRF token
    finally:
        server.shutdown()
    assert changed(before, snapshot(app)) == [] and audit_count(app) == audits


@pytest.mark.parametrize("config", [
    {},  # no secret at all
    {"SECRET_KEY": "dev"},
    {"SECRET_KEY": "change-me"},
    {"SECRET_KEY": "short-but-random-7f3a"},
    {"SECRET_KEY": "a" * 64},
    {"SECRET_KEY": secrets.token_hex(32), "DEBUG": True},
])
def test_production_refuses_to_start_unsafely(db_url, monkeypatch, config):
    monkeypatch.delenv("GLIA_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError):
        create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, **config}, plugins=BUILTIN)


def test_production_starts_with_a_real_secret_and_the_cli_needs_none(db_url, monkeypatch):
    monkeypatch.delenv("GLIA_SECRET_KEY", raising=False)
    app = create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, "SECRET_KEY": secrets.token_hex(32)},
                     plugins=BUILTIN)
    assert not app.debug and app.config["SESSION_COOKIE_SECURE"]
    cli_app = create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, "GLIA_CLI": True}, plugins=BUILTIN)
    with pytest.raises(ConfigError):  # but never with debug on, which would expose the debugger
        create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, "GLIA_CLI": True, "DEBUG": True},
                   plugins=BUILTIN)
    for built in (app, cli_app):
        built.extensions["glia"].engine.dispose()
