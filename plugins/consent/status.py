"""Where each patient stands: their consents, their latest screening and every screening item's history.

Computed for many patients at once in a fixed number of queries, so the dashboard and the
gate can ask about the whole day without a query per patient or per item.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core.db import memo
from core.models import Clinic, utcnow
from plugins.consent.models import ConsentAttestation, ConsentRevocation, Screening, SignedConsent
from plugins.consent.screening import ItemState, load_histories
from plugins.consent.service import current_templates, settings

CONSENT_COLUMNS = (SignedConsent.id, SignedConsent.patient_id, SignedConsent.kind, SignedConsent.version,
                   SignedConsent.template_id, SignedConsent.signed_at, SignedConsent.signer_name,
                   SignedConsent.signer_role, SignedConsent.method, SignedConsent.title, SignedConsent.pdf_sha256,
                   ConsentAttestation.id.label("attestation_id"), ConsentAttestation.attested_at,
                   ConsentAttestation.clinician_name.label("attested_by"))


def consents_query(*extra):
    """Signed consents with their attestation, if any (columns only, never a PDF)."""
    return select(*CONSENT_COLUMNS, *extra).outerjoin(ConsentAttestation,
                                                      ConsentAttestation.consent_id == SignedConsent.id)


def complete(row) -> bool:
    """Attested by a clinician, or issued at signing before attestations existed."""
    return row.attestation_id is not None or bool(row.pdf_sha256)


@dataclass
class ConsentState:
    kind: str
    title: str
    status: str  # valid, missing, expired, outdated, awaiting (signed, not yet attested)
    record: object = None  # a row of CONSENT_COLUMNS (never the PDF)
    expires_at: datetime | None = None


@dataclass
class PatientStatus:
    consents: dict[str, ConsentState] = field(default_factory=dict)
    screening: Screening | None = None  # the latest one
    screening_stale: bool = False
    items: dict[str, ItemState] = field(default_factory=dict)  # code -> history and what is in force
    history_error: str | None = None  # the history could not be computed: treatment is blocked
    bp_acknowledgements: list = field(default_factory=list)  # Acknowledgement rows of any treatment, oldest first

    @property
    def flagged(self) -> list[ItemState]:
        """Items ever answered "yes": the ones whose history matters."""
        return [i for i in self.items.values() if i.ever_yes]

    @property
    def to_review(self) -> list[ItemState]:
        """Items answered "no" after a "yes" that still wait for a clinician's review."""
        return [i for i in self.items.values() if i.needs_review]


def latest_consents(session: Session, clinic: Clinic, patient_ids: list[int]) -> dict[tuple[int, str], object]:
    """(patient, kind) -> the newest signed, unrevoked consent (columns only, no PDF)."""
    if not patient_ids:
        return {}
    revoked = select(ConsentRevocation.consent_id).where(ConsentRevocation.clinic_id == clinic.id)
    rows = session.exec(consents_query().where(
        SignedConsent.clinic_id == clinic.id, SignedConsent.patient_id.in_(patient_ids),
        SignedConsent.id.not_in(revoked)).order_by(SignedConsent.signed_at, SignedConsent.id)).all()
    return {(r.patient_id, r.kind): r for r in rows}


def status_for(session: Session, clinic: Clinic, patient_ids: list[int]) -> dict[int, PatientStatus]:
    """Consent and screening status for many patients in a fixed number of queries.

    A page asks more than once for the same patients (the gate, then the session's panel):
    within one transaction and with nothing written meanwhile (core.db.memo), it is computed once.
    """
    answers = memo(session, "consent_status")
    key = (clinic.id, tuple(patient_ids))
    if key not in answers:
        answers[key] = _compute(session, clinic, patient_ids)
    return answers[key]


def _compute(session: Session, clinic: Clinic, patient_ids: list[int]) -> dict[int, PatientStatus]:
    values = settings(session, clinic)
    templates = current_templates(session, clinic)
    now = utcnow()
    validity = timedelta(days=int(values["validity_days"]))
    fresh = timedelta(days=int(values["screening_validity_days"]))
    latest = latest_consents(session, clinic, patient_ids)
    histories = load_histories(session, clinic, patient_ids)
    result = {}
    for pid in patient_ids:
        history = histories[pid]
        st = result[pid] = PatientStatus(screening=history.latest, items=history.items,
                                         history_error=history.error,
                                         bp_acknowledgements=history.bp_acknowledgements)
        st.screening_stale = st.screening is not None and st.screening.answered_at + fresh <= now
        for kind, template in templates.items():
            row = latest.get((pid, kind))
            if row is None:
                state = ConsentState(kind, template.title, "missing")
            else:
                expires = row.signed_at + validity
                status = ("expired" if expires <= now else "outdated" if row.version < template.version
                          else "valid" if complete(row) else "awaiting")
                state = ConsentState(kind, template.title, status, row, expires)
            st.consents[kind] = state
    return result


def awaiting_attestation(session: Session, clinic: Clinic, patient_ids: list[int] | None = None) -> list:
    """Signed consents still waiting for a clinician's attestation, oldest first; one that was withdrawn
    or signed again since is no longer waiting."""
    revoked = select(ConsentRevocation.consent_id).where(ConsentRevocation.clinic_id == clinic.id)
    replaced = select(SignedConsent.supersedes_id).where(SignedConsent.clinic_id == clinic.id,
                                                         SignedConsent.supersedes_id.is_not(None))
    query = consents_query(SignedConsent.channel).where(
        SignedConsent.clinic_id == clinic.id, SignedConsent.pdf_sha256 == "", ConsentAttestation.id.is_(None),
        SignedConsent.id.not_in(revoked), SignedConsent.id.not_in(replaced))
    if patient_ids is not None:
        query = query.where(SignedConsent.patient_id.in_(patient_ids))
    return list(session.exec(query.order_by(SignedConsent.signed_at, SignedConsent.id)).all())
