"""What every issued billing document shares: PDF rendering outside a request, voids, fingerprints."""
from __future__ import annotations

import hashlib
import unicodedata
from contextlib import contextmanager
from datetime import date

from sqlmodel import Session, select

from core.models import utcnow
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingVoid
from plugins.billing.money import METHODS


def us_date(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%m/%d/%Y") if iso else ""


def css_string(value: str):
    """Text for a CSS string (page footers): quotes, backslashes and '<' escaped the CSS way.

    Inside <style>, HTML escaping would print "&#39;" for O'Brien; this prints the name.
    """
    from markupsafe import Markup

    out = []
    for ch in str(value):
        out.append(f"\\{ord(ch):X} " if ch in '\\"<>&\n' else ch)
    return Markup("".join(out))


def pdf_html(template: str, **context) -> str:
    """Render a PDF template straight from the app's Jinja environment.

    Unlike render_template this runs no request context processors, so it works the same in a
    request, in the demo seed and in batch workers, and costs nothing beyond the template itself.
    """
    from flask import current_app

    return current_app.jinja_env.get_template(template).render(fmt_date=us_date, methods=METHODS, css=css_string,
                                                               **context)


@contextmanager
def hook_session(session: Session):
    """Let the relay (and render_pdf) run on ``session`` outside a request (seed, CLI workers).

    The relay reads plugin state through core.db.get_session(); a second session there would
    wait for SQLite's write lock that ``session`` already holds.
    """
    from flask import g

    own = "db" not in g
    if own:
        g.db = session
    try:
        yield
    finally:
        if own:
            g.pop("db", None)


def render(session: Session, clinic, template: str, **context) -> tuple[str, bytes]:
    from core.pdf import html_to_pdf

    html = pdf_html(template, clinic=clinic, **context)
    with hook_session(session):
        return html, html_to_pdf(html, clinic=clinic)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pdf_intact(doc) -> bool:
    """A stored document is served only while its bytes still match the SHA-256 taken at issue."""
    return sha256(doc.pdf) == doc.sha256


def voids(session: Session, clinic_id: int, document_type: str, ids) -> dict[int, BillingVoid]:
    """document id -> its void, for many documents in one query."""
    rows = session.exec(select(BillingVoid).where(BillingVoid.clinic_id == clinic_id,
                                                  BillingVoid.document_type == document_type,
                                                  BillingVoid.document_id.in_(list(ids) or [-1]))).all()
    return {v.document_id: v for v in rows}


def void(session: Session, clinic_id: int, document_type: str, document_id: int, reason: str,
         user_id: int | None) -> BillingVoid:
    """Record a void once; the voided row itself stays exactly as issued."""
    printable = "".join(ch for ch in (reason or "") if not unicodedata.category(ch).startswith("C"))
    reason = " ".join(printable.split())[:300]
    if not reason:
        raise BillingError("Give a reason for the void: it is kept with the record.")
    if voids(session, clinic_id, document_type, [document_id]):
        raise BillingError("This is already void.", 409)
    row = BillingVoid(clinic_id=clinic_id, document_type=document_type, document_id=document_id, reason=reason,
                      voided_at=utcnow(), voided_by_id=user_id)
    session.add(row)
    session.flush()
    return row


def latest_in_chain(session: Session, model, clinic_id: int, doc):
    """Follow replacements from ``doc`` to the newest one (itself when never replaced)."""
    seen = {doc.id}
    while True:
        newer = session.exec(select(model).where(model.clinic_id == clinic_id, model.replaces_id == doc.id)
                             .order_by(model.id)).first()
        if newer is None or newer.id in seen:
            return doc
        seen.add(newer.id)
        doc = newer


def exportable_documents(session: Session, clinic, patient) -> list:
    """The patient's issued superbills and Good Faith Estimates for a record export; voided ones
    are left out, and bytes that no longer match their SHA-256 are listed without them (no hash)."""
    from flask import url_for

    from core.documents import DocumentRef
    from plugins.billing.models import BillingEstimate, BillingSuperbill

    out = []
    for model, kind, title, route, arg in (
            (BillingSuperbill, "superbill", "Superbill {}", "billing.superbill_pdf", "sid"),
            (BillingEstimate, "estimate", "Good Faith Estimate {}", "billing.estimate_pdf", "eid")):
        rows = session.exec(select(model).where(model.clinic_id == clinic.id, model.patient_id == patient.id)
                            .order_by(model.issued_at, model.id)).all()
        voided = voids(session, clinic.id, kind, [r.id for r in rows])
        for row in rows:
            if row.id in voided:
                continue
            label = row.label if kind == "superbill" else f"{row.id:06d}"
            out.append(DocumentRef(title.format(label), kind, row.issued_at, url_for(route, **{arg: row.id}),
                                   sha256=row.sha256, size=len(row.pdf), pdf=row.pdf if pdf_intact(row) else None))
    return out
