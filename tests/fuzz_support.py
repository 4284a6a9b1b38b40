"""The form inventory for the fuzz test, learnt from the app itself: every POST rule, a URL for it
built from real demo rows, and its field names as the pages render them (or as its view reads them).

Nothing here is a hand list of forms, so a new form is fuzzed the day it is added.
"""
from __future__ import annotations

from datetime import date

import inspect
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlmodel import SQLModel
from werkzeug.exceptions import HTTPException

from core import dosing
from tests.security_support import engine_of, tables

# Posts that end the signed-in session or switch it elsewhere: fuzzing them would only test the login page.
SESSION_ENDERS = {"auth.logout", "auth.switch_clinic"}
# Forms whose success changes who may do what (a user's role, a plugin switched off): fuzzed last.
LAST = ("settings.update_user", "admin.toggle_plugin", "auth.change_password", "auth.mfa_start",
        "auth.mfa_disable", "auth.mfa_new_codes", "auth.mfa_setup")
COUNTED_OUT = {"audit_event", "audit_seal", "user_session"}  # grow on any request, by design

# URL parameter -> the table whose Stillwater row fills it
PARAM_TABLES = {
    "patient_id": "patient", "pid": "patient", "session_id": "treatment_session", "treatment_id": "treatment_session",
    "tid": "treatment_session", "consent_id": "consent_signed", "item_id": "consent_contraindication",
    "screening_id": "consent_screening", "score_id": "outcome_score", "medication_id": "medication",
    "letter_id": "coordination_letter", "due_id": "coordination_due", "permission_id": "coordination_permission",
    "iid": "billing_invoice", "eid": "billing_estimate", "pay_id": "billing_payment", "sid": "billing_superbill",
    "user_id": "user", "clinician_id": "outside_clinician", "provider_id": "provider", "chair_id": "chair",
    "message_id": "mail_message",
    "request_id": "portal_change_request",
}


def post_rules(app) -> list:
    """Every rule that accepts POST, in a stable order with the session-changing ones last."""
    found = [r for r in app.url_map.iter_rules() if "POST" in r.methods and r.endpoint not in SESSION_ENDERS]
    return sorted(found, key=lambda r: (r.endpoint in LAST, LAST.index(r.endpoint) if r.endpoint in LAST else 0,
                                        r.endpoint))


def blueprint(rule) -> str:
    return rule.endpoint.rpartition(".")[0]


def _columns(table: str) -> set[str]:
    return set(SQLModel.metadata.tables[table].columns.keys())


def _row(conn, table: str, clinic_id: int, patient_id: int | None = None):
    """The first row of ``table`` at Stillwater (and of ``patient_id`` when the table has patients)."""
    cols = _columns(table)
    where, params = [], {"c": clinic_id}
    if "clinic_id" in cols:
        where.append("t.clinic_id = :c")
    elif "patient_id" in cols:
        where.append("t.patient_id IN (SELECT id FROM patient WHERE clinic_id = :c)")
    elif table == "user":
        where.append("t.id IN (SELECT user_id FROM membership WHERE clinic_id = :c) AND t.role = 'front_desk'")
    if patient_id is not None and "patient_id" in cols:
        where.append("t.patient_id = :p")
        params["p"] = patient_id
    pid = "t.patient_id" if "patient_id" in cols else "NULL"
    sql = f'SELECT t.id, {pid} FROM "{table}" t WHERE {" AND ".join(where) or "1=1"} ORDER BY t.id LIMIT 1'  # noqa: S608
    return conn.execute(text(sql), params).first()


def demo_url(app, rule, clinic_id: int) -> str | None:
    """The rule's URL with real Stillwater ids (children first, so patient_id matches them), or None."""
    values = {}
    with engine_of(app).connect() as conn:
        patient = None
        for name in rule.arguments:
            if name in PARAM_TABLES and PARAM_TABLES[name] != "patient":
                row = _row(conn, PARAM_TABLES[name], clinic_id)
                if row is None:
                    return None
                values[name], patient = row[0], row[1] if row[1] is not None else patient
        for name in rule.arguments:
            if PARAM_TABLES.get(name) == "patient":
                values[name] = patient or _row(conn, "patient", clinic_id)[0]
            elif name == "clinic_id":
                values[name] = clinic_id
            elif name == "kind":
                values[name] = conn.execute(text("SELECT kind FROM consent_template WHERE clinic_id = :c ORDER BY id"),
                                            {"c": clinic_id}).scalar()
            elif name == "instrument":
                values[name] = "phq9"
            elif name == "modality":
                values[name] = sorted(dosing.defaults())[0]
            elif name == "name":
                values[name] = "coordination"
            elif name == "day":
                values[name] = date.today().isoformat()
            elif name == "token":  # a portal invitation's: a made-up one answers 404
                values[name] = "not-a-real-token"
    return rule.build(values, append_unknown=False)[1]


def get_urls(app, clinic_id: int):
    """Every page a GET opens, with demo ids: where the forms are found."""
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint != "static" and not rule.rule.endswith((".pdf", ".png")):
            url = demo_url(app, rule, clinic_id)
            if url:
                yield url


class _Forms(HTMLParser):
    """Collects each <form method=post>'s action and the names of its inputs, selects and textareas."""

    def __init__(self):
        super().__init__()
        self.forms: list[tuple[str, set[str]]] = []
        self._open: set[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._open = set()
            self.forms.append((a.get("action") or "", self._open))
        elif tag in ("input", "select", "textarea", "button") and self._open is not None and a.get("name"):
            if a["name"] != "csrf_token":
                self._open.add(a["name"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def learn_fields(app, clients, clinic_id: int) -> dict[str, set[str]]:
    """Field names per endpoint, from every form the given signed-in clients are shown."""
    adapter = app.url_map.bind("localhost")
    fields: dict[str, set[str]] = {}
    for client in clients:
        for url in get_urls(app, clinic_id):
            resp = client.get(url)
            if resp.status_code != 200 or resp.mimetype != "text/html":
                continue
            parser = _Forms()
            parser.feed(resp.get_data(as_text=True))
            for action, names in parser.forms:
                try:
                    endpoint, _ = adapter.match(urlsplit(action or url).path, method="POST")
                except HTTPException:
                    continue
                fields.setdefault(endpoint, set()).update(names)
    return fields


_READS = re.compile(r'form(?:\.get|\.getlist)?[\[(]\s*"([a-z][a-z0-9_]*)"|\.\w+\(\s*"([a-z][a-z0-9_]*)",\s*"')


def read_by_view(app, endpoint: str) -> set[str]:
    """The names a view reads (request.form.get("x"), form.text("x", "Label")), for forms no page showed."""
    source = inspect.getsource(app.view_functions[endpoint])
    return {a or b for a, b in _READS.findall(source)}


def row_counts(app) -> dict[str, int]:
    """Rows per table (audit and session bookkeeping aside), in one statement."""
    names = [n for n in tables(app) if n in SQLModel.metadata.tables and n not in COUNTED_OUT]
    sql = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{n}")' for n in names)  # noqa: S608 - schema names
    with engine_of(app).connect() as conn:
        return dict(zip(names, conn.execute(text(sql)).one()))
