"""The audit log: one row per read or change of patient data, keyed and chained, append-only.

Rows hold ids and action names, never PHI values. A row is written in the transaction of the
change it records (a read-only request writes it just before its response leaves) and carries
a keyed MAC; a short sealing step then chains it (core.audit_chain explains the design).
"""
from __future__ import annotations

import secrets

from flask import g, has_request_context, request
from sqlmodel import Session

from core import audit_chain
from core.models import AuditEvent, utcnow


def current_actor() -> dict:
    """Who is acting, read now (after a rollback the request's user object is expired)."""
    if not has_request_context():
        return {"user_id": None, "role": "system", "ip": "", "clinic_id": None}
    from flask_login import current_user

    user = current_user if current_user and current_user.is_authenticated else None
    clinic = g.get("clinic")
    return {
        "user_id": user.id if user else None,
        "role": user.role.value if user else "",
        "ip": request.remote_addr or "",
        "clinic_id": clinic.id if clinic else None,
    }


def append(session: Session, action: str, *, object_type: str = "", object_id=None,
           patient_id: int | None = None, outcome: str = "ok", detail: str = "",
           clinic_id: int | None = None, user_id: int | None = None, actor: dict | None = None) -> AuditEvent:
    """Add one row inside ``session``'s transaction (atomic with the change it records); its
    commit seals it into the chain."""
    actor = actor or current_actor()
    event = AuditEvent(
        at=utcnow(),
        clinic_id=clinic_id if clinic_id is not None else actor["clinic_id"],
        user_id=user_id if user_id is not None else actor["user_id"],
        role=actor["role"],
        action=action,
        object_type=object_type,
        object_id="" if object_id is None else str(object_id),
        patient_id=patient_id,
        outcome=outcome,
        ip=actor["ip"],
        detail=detail[:500],
        nonce=secrets.token_hex(16),
    )
    event.mac = audit_chain.row_mac(audit_chain.current_key(), event)
    session.add(event)
    session.flush()
    audit_chain.note_unsealed(session, event.id)
    return event


def record(action: str, **kw) -> None:
    """Audit inside the current request's transaction; a read-only request writes the row in
    its closing write transaction, before the response is sent (core.db.later)."""
    from core.db import later

    kw.setdefault("actor", current_actor())  # who is asking, read now, while the user is loaded
    later(lambda session: append(session, action, **kw))


def record_denied(action: str, **kw) -> None:
    """Audit a refusal; written after the request's own work is rolled back, so it always lands."""
    # who is asking is read now: after the rollback the request's objects are expired
    g.setdefault("audit_denied", []).append((action, {"outcome": "denied", "actor": current_actor(), **kw}))


def flush_denied(engine) -> None:
    from core.db import session_scope

    pending = g.pop("audit_denied", [])
    if not pending:
        return
    with session_scope(engine) as session:
        for action, kw in pending:
            append(session, action, **kw)


def immutable_trigger_sql(dialect: str, table: str) -> list[str]:
    """DDL that makes ``table`` reject UPDATE and DELETE at the database, below the app."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        ]
    return [
        f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
    ]
