"""Signed consents as documents: the patient's signature, the clinician's attestation and the PDF.

A consent is complete when the patient (or representative) signed and a clinician attested that they
explained the treatment and answered the patient's questions. The PDF is rendered, hashed and stored
at that moment, with both signature blocks, and never rendered again. Consents signed before
attestations existed were issued at signing; their PDF stays on the signature row.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.models import Clinic, Patient, Provider, User, utcnow
from plugins.consent.models import ConsentAttestation, ConsentTemplate, SignedConsent
from plugins.consent.service import DATA, REVIEWERS, markdown, sha256

ATTESTATION = (DATA / "attestation.txt").read_text(encoding="utf-8").strip()
METHOD_LABELS = {"typed": "Typed name", "drawn": "Typed name and drawn signature",
                 "witnessed_verbal": "Verbal consent witnessed by staff"}


def signed_text(template: ConsentTemplate, clinic: Clinic) -> str:
    """The exact text a signer agrees to: the versioned document and every acknowledgement."""
    lines = [template.title, f"{clinic.name} - version {template.version}", "", template.body.strip(), "",
             "I confirm each of the following:"]
    lines += [f"[x] {a}" for a in template.acknowledgements]
    return "\n".join(lines) + "\n"


def _joined(*parts) -> str:
    return sha256("\x1f".join("" if p is None else str(p) for p in parts))


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


def signature_digest(*, patient_id: int, template_id: int, signer_name: str, signer_role: str, authority: str,
                     method: str, signed_at: datetime, text_sha256: str, pdf_sha256: str) -> str:
    """Binds who signed, when and what (the text, and the PDF when it was issued at signing)."""
    return _joined(patient_id, template_id, signer_name, signer_role, authority, method, _stamp(signed_at),
                   text_sha256, pdf_sha256)


def integrity_ok(record: SignedConsent) -> bool:
    """The stored text (and a PDF issued at signing) still match their digests, bound by the signature."""
    pdf_ok = sha256(record.pdf) == record.pdf_sha256 if record.issued_at_signing else not record.pdf
    return (pdf_ok and sha256(record.signed_text) == record.text_sha256
            and signature_digest(patient_id=record.patient_id, template_id=record.template_id,
                                 signer_name=record.signer_name, signer_role=record.signer_role,
                                 authority=record.representative_authority, method=record.method,
                                 signed_at=record.signed_at, text_sha256=record.text_sha256,
                                 pdf_sha256=record.pdf_sha256) == record.signature_sha256)


def document_digest(att: ConsentAttestation, record: SignedConsent) -> str:
    """Binds the patient's signature, the clinician's statement, its time and the issued PDF."""
    return _joined(record.signature_sha256, att.consent_id, att.clinician_user_id, att.provider_id,
                   att.clinician_name, att.credentials, _stamp(att.attested_at), att.statement_sha256,
                   att.pdf_sha256)


def attestation_ok(att: ConsentAttestation, record: SignedConsent) -> bool:
    return (integrity_ok(record) and sha256(att.statement) == att.statement_sha256
            and sha256(att.pdf) == att.pdf_sha256 and document_digest(att, record) == att.document_sha256)


# -- the patient signs ------------------------------------------------------------------------------

@dataclass
class Signer:
    name: str
    role: str = "patient"  # patient, representative
    authority: str = ""
    method: str = "typed"  # typed, drawn, witnessed_verbal
    signature_png: bytes | None = None
    channel: str = "tablet"
    ip: str = ""
    user_agent: str = ""
    staff_user_id: int | None = None
    staff_name: str = ""


def sign(session: Session, clinic: Clinic, patient, template: ConsentTemplate, signer: Signer, token: str,
         *, supersedes_id: int | None = None, at: datetime | None = None) -> SignedConsent:
    """Store the patient's signature with the exact text and its digest (one immutable row).

    Nothing is issued yet: the consent waits for a clinician's attestation."""
    signed_at = at or utcnow()
    text = signed_text(template, clinic)
    text_hash = sha256(text)
    record = SignedConsent(
        clinic_id=clinic.id, patient_id=patient.id, template_id=template.id, kind=template.kind,
        version=template.version, title=template.title, signed_text=text, text_sha256=text_hash,
        signer_role=signer.role, signer_name=signer.name, representative_authority=signer.authority,
        method=signer.method, signature_png=signer.signature_png, channel=signer.channel, signed_at=signed_at,
        ip=signer.ip[:45], user_agent=signer.user_agent[:300], staff_user_id=signer.staff_user_id,
        staff_name=signer.staff_name, submission_token=token, supersedes_id=supersedes_id,
        signature_sha256=signature_digest(patient_id=patient.id, template_id=template.id, signer_name=signer.name,
                                          signer_role=signer.role, authority=signer.authority, method=signer.method,
                                          signed_at=signed_at, text_sha256=text_hash, pdf_sha256=""))
    session.add(record)
    session.flush()
    return record


# -- the clinician attests, and the PDF is issued -------------------------------------------------

def attester(session: Session, clinic: Clinic, user: User) -> Provider | None:
    """The clinician's provider record at this clinic: only a clinician with one may attest."""
    if user is None or getattr(user.role, "value", user.role) not in REVIEWERS:
        return None
    return session.exec(select(Provider).where(Provider.clinic_id == clinic.id, Provider.user_id == user.id,
                                               Provider.active == True)).first()  # noqa: E712


def statement_for(record: SignedConsent, provider: Provider) -> str:
    """The clinician's statement, naming the document and who signed it."""
    who = "patient" if record.signer_role == "patient" else "representative"
    return ATTESTATION.format(clinician=provider.display_name, title=record.title, version=record.version,
                              signer=record.signer_name, who=who)


def clinician_name(provider: Provider) -> str:
    return f"{provider.first_name} {provider.last_name}"


def attest(session: Session, clinic: Clinic, record: SignedConsent, user: User, provider: Provider, *,
           ip: str = "", at: datetime | None = None, pdf_from_html=None) -> ConsentAttestation:
    """The clinician's signed statement, and the PDF it completes: rendered, hashed and stored once."""
    attested_at = at or utcnow()
    statement = statement_for(record, provider)
    att = ConsentAttestation(clinic_id=clinic.id, patient_id=record.patient_id, consent_id=record.id,
                             clinician_user_id=user.id, provider_id=provider.id,
                             clinician_name=clinician_name(provider), credentials=provider.credentials,
                             statement=statement, attested_at=attested_at, ip=ip[:45],
                             statement_sha256=sha256(statement), pdf=b"", pdf_sha256="", document_sha256="")
    patient = session.get(Patient, record.patient_id)
    template = session.get(ConsentTemplate, record.template_id)
    html = render_html(clinic, patient, template, record, att)
    att.pdf = _render(html, clinic, pdf_from_html)
    att.pdf_sha256 = sha256(att.pdf)
    att.document_sha256 = document_digest(att, record)
    session.add(att)
    session.flush()
    return att


def local(at: datetime, clinic: Clinic) -> str:
    return at.astimezone(ZoneInfo(clinic.timezone)).strftime("%m/%d/%Y %I:%M %p %Z")


def render_html(clinic: Clinic, patient: Patient, template: ConsentTemplate, record: SignedConsent,
                att: ConsentAttestation) -> str:
    """The consent as issued: the text, the signer's confirmations and both signature blocks."""
    from flask import current_app

    image = ("data:image/png;base64," + base64.b64encode(record.signature_png).decode()) if record.signature_png else ""
    # rendered from the Jinja environment directly: no request context is needed (the demo seed has none)
    return current_app.jinja_env.get_template("consent/signed_pdf.html").render(
        clinic=clinic, patient=patient, template=template, record=record, att=att,
        body=markdown(template.body), signature_image=image, method=METHOD_LABELS[record.method],
        signed_local=local(record.signed_at, clinic), attested_local=local(att.attested_at, clinic))


def _render(html: str, clinic: Clinic, pdf_from_html) -> bytes:
    from core.pdf import html_to_pdf

    return (pdf_from_html or (lambda h: html_to_pdf(h, clinic=clinic)))(html)


def issued_pdf(record: SignedConsent, att: ConsentAttestation | None) -> tuple[bytes | None, bool]:
    """(the issued PDF, whether it passed its integrity checks); (None, True) while it awaits attestation."""
    if att is not None:
        return att.pdf, attestation_ok(att, record)
    if record.issued_at_signing:
        return record.pdf, integrity_ok(record)
    return None, integrity_ok(record)


def attestation_of(session: Session, record: SignedConsent) -> ConsentAttestation | None:
    return session.exec(select(ConsentAttestation).where(ConsentAttestation.consent_id == record.id,
                                                         ConsentAttestation.clinic_id == record.clinic_id)).first()
