"""Route inventory: default deny, CSRF on every state change, no state change on GET.

These walk ``app.url_map`` of the full app (core and every built-in plugin), so a route
added later is covered without touching this file.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from sqlmodel import select

from core.db import session_scope
from core.models import Clinic, PluginState
from tests.conftest import BUILTIN
from tests.security_support import audit_count, changed, declared, engine_of, plugin_of, rules, snapshot
from tests.support import csrf_token, login

CANARY_PLUGIN = ("canary", "tests.security_canary_plugin")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _goes_to_login(resp) -> bool:
    return resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"


def test_every_route_declares_who_may_use_it(app):
    undeclared = sorted({rule.endpoint for rule, _url in rules(app) if declared(app, rule) is None})
    assert not undeclared, f"routes without a core.auth declaration: {undeclared}"


def test_anonymous_requests_to_protected_routes_go_to_login(make_app):
    app = make_app(plugins=BUILTIN + [CANARY_PLUGIN])
    client = app.test_client()
    wrong = []
    for rule, url in rules(app):
        access = declared(app, rule)
        if access is None or access.kind == "public":
            continue
        if "GET" in rule.methods:
            resp = client.get(url)
        else:  # a valid anonymous CSRF token, so the access check is what answers
            resp = client.open(url, method=sorted(rule.methods & UNSAFE)[0],
                               data={"csrf_token": csrf_token(app, client)})
        if not _goes_to_login(resp):
            wrong.append(f"{rule.rule} -> {resp.status_code}")
    assert not wrong, f"protected routes that did not send an anonymous user to /login: {wrong}"
    assert any(plugin_of(app, rule) for rule, _ in rules(app)), "no plugin route was checked"


def test_disabled_plugin_routes_404_for_staff_but_send_anonymous_to_login(make_app):
    app = make_app(plugins=BUILTIN + [CANARY_PLUGIN])
    with session_scope(engine_of(app)) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        for name in app.extensions["glia"].plugins:
            s.merge(PluginState(clinic_id=clinic.id, plugin=name, enabled=False))
    plugin_rules = [(rule, url) for rule, url in rules(app) if plugin_of(app, rule) and "GET" in rule.methods]
    assert plugin_rules
    anonymous = app.test_client()
    staff = app.test_client()
    login(app, staff, "manager")  # works at stillwater only
    for rule, url in plugin_rules:
        if declared(app, rule).kind != "public":
            assert _goes_to_login(anonymous.get(url)), rule.rule
        assert staff.get(url).status_code == 404, rule.rule
    # the same routes still answer at the other clinic, where the plugins stay enabled
    harbor = app.test_client()
    login(app, harbor, "harbor.manager")
    assert harbor.get("/canary/ping").status_code == 200


def test_every_state_changing_route_refuses_a_missing_csrf_token(app, client):
    login(app, client, "admin")
    before, audits = snapshot(app), audit_count(app)
    wrong = []
    for rule, url in rules(app):
        for method in sorted(rule.methods & UNSAFE):
            resp = client.open(url, method=method, data={"role": "admin", "status": "paid"})
            if resp.status_code != 400:
                wrong.append(f"{method} {rule.rule} -> {resp.status_code}")
    assert not wrong, f"state-changing routes that accepted a request without a CSRF token: {wrong}"
    assert changed(before, snapshot(app)) == []
    assert audit_count(app) == audits
    assert client.get("/").status_code == 200  # still signed in: /logout without a token did nothing


def test_get_requests_change_nothing_but_the_audit_log(app):
    """Every GET route, as each kind of user: no rows created, changed or deleted, and no 500s."""
    problems = []
    for who in ("admin", "clinician", "frontdesk", "patient"):
        client = app.test_client()
        login(app, client, who)
        before = snapshot(app)
        for rule, url in rules(app):
            if "GET" not in rule.methods or rule.endpoint == "auth.login":
                continue
            status = client.get(url).status_code
            if status >= 500:
                problems.append(f"{who}: GET {rule.rule} -> {status}")
        diff = changed(before, snapshot(app))
        if diff:
            problems.append(f"{who}: GET requests changed tables {diff}")
    assert not problems, problems
