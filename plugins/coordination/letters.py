"""Writing, signing and sending letters, and working out which letters are due.

Used by the views and by the demo seed, so both go through the same rules. Nothing here
commits: callers own the transaction (the request, or the seed's session).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, func, or_
from sqlmodel import Session, select

from core import audit
from core.documents import DocumentRef
from core.models import (CareTeamMember, Clinic, ClinicianKind, Medication, OutsideClinician, Patient,
                         SessionStatus, TreatmentSession, User, utcnow)
from plugins.coordination import compose, wording
from plugins.coordination.models import (CoordinationDisclosure, CoordinationDocument, CoordinationDue,
                                         CoordinationLetter)

PLUGIN = "coordination"
METHODS = {"fax": "Fax", "mail": "Mail", "secure_email": "Secure email", "hand_delivery": "Hand delivery"}
PROGRESS = "progress"
CONCERN = "medication_concern"
INDUCTION_KEY = "induction"
DISCARDED = "discarded"


class LetterProblem(ValueError):
    """A request that cannot be done as asked; the message is shown to the user."""


def care_team(session: Session, clinic: Clinic, patient_id: int) -> list[tuple[CareTeamMember, OutsideClinician]]:
    return session.exec(select(CareTeamMember, OutsideClinician).join(
        OutsideClinician, OutsideClinician.id == CareTeamMember.clinician_id).where(
        CareTeamMember.clinic_id == clinic.id, CareTeamMember.patient_id == patient_id,
        OutsideClinician.clinic_id == clinic.id).order_by(CareTeamMember.role, OutsideClinician.name)).all()


def open_draft(session: Session, clinic: Clinic, patient_id: int, *, kind: str,
               recipient_id: int) -> CoordinationLetter | None:
    """The draft already being written for this purpose (same patient, kind and recipient), if any."""
    return session.exec(select(CoordinationLetter).where(
        CoordinationLetter.clinic_id == clinic.id, CoordinationLetter.patient_id == patient_id,
        CoordinationLetter.kind == kind, CoordinationLetter.recipient_id == recipient_id,
        CoordinationLetter.status == "draft").order_by(CoordinationLetter.id).limit(1)).first()


def create_draft(session: Session, clinic: Clinic, patient: Patient, *, kind: str, recipient_id: int | None,
                 user: User, settings: dict) -> CoordinationLetter:
    """A new draft, pre-filled with the kind's wording. Recipients come from the patient's care team."""
    specs = compose.kinds(settings)
    if kind not in specs:
        raise LetterProblem("Choose one of the letter kinds.")
    team = {c.id: c for _m, c in care_team(session, clinic, patient.id)}
    if recipient_id not in team:
        raise LetterProblem("Choose a recipient from this patient's care team.")
    spec, recipient = specs[kind], team[recipient_id]
    if not wording.may_receive(spec, recipient.kind):
        raise LetterProblem(f"A {spec['label'].lower()} letter asks for medication changes, which only a prescriber "
                            f"can make: send it to the patient's {wording.recipients_text(spec)}.")
    now = utcnow()
    letter = CoordinationLetter(
        clinic_id=clinic.id, patient_id=patient.id, recipient_id=recipient_id, kind=kind,
        fields=wording.default_fields(spec, modality=compose.current_modality(session, clinic, patient.id),
                                      recipient_kind=recipient.kind, settings=settings),
        created_by_id=user.id, created_at=now, updated_at=now)
    session.add(letter)
    session.flush()
    return letter


def discard(session: Session, clinic: Clinic, letter: CoordinationLetter, user: User) -> None:
    """Set a draft aside for good: it leaves the lists, the row stays for the audit trail."""
    if letter.status != "draft":
        raise LetterProblem("Only a draft can be discarded; a signed letter is kept as it was signed.")
    letter.status = DISCARDED
    letter.updated_at = utcnow()
    letter.version += 1
    session.add(letter)
    audit.append(session, "coordination.letter_discarded", object_type="coordination_letter", object_id=letter.id,
                 patient_id=letter.patient_id, clinic_id=clinic.id, detail=f"kind={letter.kind}")


def section_problem(errors: list) -> str | None:
    """Why a letter whose contributed sections did not all render may not be signed."""
    if not errors:
        return None
    names = ", ".join(sorted({e.plugin for e in errors}))
    return (f"Part of this letter could not be written: the {names} plugin's section failed to render. "
            "The letter cannot be signed until every section renders; try again, or ask your administrator.")


def sign(session: Session, clinic: Clinic, letter: CoordinationLetter, signer: User, *, settings: dict,
         extra_sections: list, render: Callable[[dict], bytes], section_errors: list = ()) -> CoordinationDocument:
    """Freeze the draft into an immutable PDF with its SHA-256; resolves a due progress letter.

    Refused (nothing written) while a contributed section failed to render or the kind lacks
    what it needs (a maintenance letter without a plan): a signed letter must say everything it
    claims to say.
    """
    if letter.status != "draft":
        raise LetterProblem("This letter is already signed and can no longer be changed."
                            if letter.status == "signed" else "This draft was discarded.")
    problem = section_problem(list(section_errors))
    if problem:
        raise LetterProblem(problem)
    spec = compose.kinds(settings)[letter.kind]
    ctx = compose.compose(session, clinic, letter, spec=spec, settings=settings, signer=signer,
                          extra_sections=extra_sections)
    if ctx["missing"]:
        raise LetterProblem(" ".join(ctx["missing"]))
    ctx["signed_on"] = ctx["today"]
    pdf = render(ctx)
    now = utcnow()
    doc = CoordinationDocument(
        clinic_id=clinic.id, patient_id=letter.patient_id, recipient_id=letter.recipient_id, kind=letter.kind,
        pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), contents=ctx["contents"],
        flagged_medication_ids=[c["med"].id for c in ctx["flagged"]], signed_by_id=signer.id, signed_at=now)
    session.add(doc)
    session.flush()
    letter.status = "signed"
    letter.document_id = doc.id
    letter.updated_at = now
    letter.version += 1
    session.add(letter)
    if letter.kind == PROGRESS:
        for due in session.exec(select(CoordinationDue).where(
                CoordinationDue.clinic_id == clinic.id, CoordinationDue.patient_id == letter.patient_id,
                CoordinationDue.kind == PROGRESS, CoordinationDue.resolved_at.is_(None))).all():
            due.resolved_at, due.resolution, due.resolved_by_id = now, "signed", signer.id
            session.add(due)
    audit.append(session, "coordination.letter_signed", object_type="coordination_document", object_id=doc.id,
                 patient_id=letter.patient_id, clinic_id=clinic.id, detail=f"kind={letter.kind} sha256={doc.sha256[:16]}")
    return doc


def permission_problem(session: Session, clinic: Clinic, doc: CoordinationDocument, settings: dict,
                       on: date) -> str | None:
    if not settings.get("require_patient_permission"):
        return None
    if compose.active_permissions(session, clinic, doc.patient_id, doc.recipient_id, on):
        return None
    return ("This clinic requires the patient's permission to share with this recipient, and none is on file "
            "for that date (missing, expired or revoked). Record the patient's permission first.")


def record_disclosure(session: Session, clinic: Clinic, doc: CoordinationDocument, *, method: str, sent_on: date,
                      user: User, settings: dict) -> CoordinationDisclosure:
    """Log one disclosure (date, patient, recipient, user, what was sent) and audit it."""
    if method not in METHODS:
        raise LetterProblem("Choose how the letter was sent: fax, mail, secure email or hand delivery.")
    if sent_on < compose.local_day(clinic, doc.signed_at):
        raise LetterProblem("The letter cannot have been sent before it was signed.")
    if sent_on > compose.clinic_today(clinic):
        raise LetterProblem("The date sent cannot be in the future.")
    problem = permission_problem(session, clinic, doc, settings, sent_on)
    if problem:
        raise LetterProblem(problem)
    row = CoordinationDisclosure(
        clinic_id=clinic.id, patient_id=doc.patient_id, recipient_id=doc.recipient_id, document_id=doc.id,
        method=method, sent_on=sent_on, description=f"{doc.contents} [sha256 {doc.sha256}]"[:1000],
        user_id=user.id, recorded_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, "coordination.disclosed", object_type="coordination_disclosure", object_id=row.id,
                 patient_id=doc.patient_id, clinic_id=clinic.id, detail=f"document={doc.id} method={method}")
    return row


# -- due letters ------------------------------------------------------------------------------


def psychiatrist_of(session: Session, clinic: Clinic, patient_id: int) -> int | None:
    return session.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.clinic_id == clinic.id, CareTeamMember.patient_id == patient_id,
        CareTeamMember.role == ClinicianKind.psychiatrist).order_by(CareTeamMember.id).limit(1)).first()


def note_treatment_completed(session: Session, clinic: Clinic, patient_id: int, settings: dict) -> CoordinationDue | None:
    """After a discharge: once the induction series is complete, a progress letter becomes due (once).

    The series' length follows the modality: the clinic's setting for ketamine, the label's for esketamine.
    """
    needed = wording.induction_size(settings, compose.current_modality(session, clinic, patient_id))
    done = session.exec(select(func.count()).select_from(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient_id,
        TreatmentSession.status == SessionStatus.discharged)).one()
    if done < needed:
        return None
    exists = session.exec(select(CoordinationDue.id).where(
        CoordinationDue.clinic_id == clinic.id, CoordinationDue.patient_id == patient_id,
        CoordinationDue.kind == PROGRESS, CoordinationDue.key == INDUCTION_KEY)).first()
    sent = session.exec(select(CoordinationDocument.id).where(
        CoordinationDocument.clinic_id == clinic.id, CoordinationDocument.patient_id == patient_id,
        CoordinationDocument.kind == PROGRESS)).first()
    if exists or sent:
        return None
    due = CoordinationDue(clinic_id=clinic.id, patient_id=patient_id, kind=PROGRESS, key=INDUCTION_KEY,
                          recipient_id=psychiatrist_of(session, clinic, patient_id), created_at=utcnow())
    session.add(due)
    session.flush()
    return due


@dataclass
class DueLetter:
    patient: Patient
    kind: str
    reason: str
    recipient_id: int | None = None
    due_id: int | None = None
    medications: list[Medication] = field(default_factory=list)


def due_letters(session: Session, clinic: Clinic, patient_ids: list[int] | None = None) -> list[DueLetter]:
    """Open due letters for the clinic (or some patients), in a fixed number of queries.

    A medication concern is due for a current medication that the rules flag, that was added
    after the patient's first signed letter (so the outside clinician has not heard of it),
    that no signed letter has flagged yet, and that nobody dismissed.
    """
    def scoped(stmt, model):
        stmt = stmt.where(model.clinic_id == clinic.id)
        return stmt.where(model.patient_id.in_(patient_ids)) if patient_ids is not None else stmt

    # one query for both kinds of due row; then the medications added since each patient's first
    # letter, filtered in SQL, so the dashboard reads candidates, not the clinic's whole history
    rows = session.exec(scoped(select(CoordinationDue), CoordinationDue).where(or_(
        and_(CoordinationDue.kind == PROGRESS, CoordinationDue.resolved_at.is_(None)),
        CoordinationDue.kind == CONCERN)).order_by(CoordinationDue.created_at, CoordinationDue.id)).all()
    open_rows = [r for r in rows if r.kind == PROGRESS]
    dismissed = {r.key for r in rows if r.kind == CONCERN}
    first = scoped(select(CoordinationDocument.patient_id, func.min(CoordinationDocument.signed_at).label("at")),
                   CoordinationDocument).group_by(CoordinationDocument.patient_id).subquery()
    added = session.exec(scoped(select(Medication), Medication).join(first, first.c.patient_id == Medication.patient_id)
                         .where(Medication.is_trial.is_(False), Medication.stop_date.is_(None),
                                Medication.created_at > first.c.at).order_by(Medication.id)).all()
    candidates = [m for m in added if compose.is_flagged(m) and f"med:{m.id}" not in dismissed]
    covered: set[int] = set()
    if candidates:  # which of them a signed letter has already flagged
        for ids in session.exec(select(CoordinationDocument.flagged_medication_ids).where(
                CoordinationDocument.clinic_id == clinic.id,
                CoordinationDocument.patient_id.in_({m.patient_id for m in candidates}))).all():
            covered.update(ids or [])
    concerns: dict[int, list[Medication]] = {}
    for m in candidates:
        if m.id not in covered:
            concerns.setdefault(m.patient_id, []).append(m)
    wanted = {r.patient_id for r in open_rows} | set(concerns)
    patients = {p.id: p for p in session.exec(select(Patient).where(
        Patient.clinic_id == clinic.id, Patient.id.in_(wanted)))} if wanted else {}
    psychiatrists: dict[int, int] = {}
    if concerns:
        for pid, cid in session.exec(select(CareTeamMember.patient_id, CareTeamMember.clinician_id).where(
                CareTeamMember.clinic_id == clinic.id, CareTeamMember.patient_id.in_(list(concerns)),
                CareTeamMember.role == ClinicianKind.psychiatrist).order_by(CareTeamMember.id.desc())).all():
            psychiatrists[pid] = cid  # the first one wins: rows come newest first
    out = [DueLetter(patients[r.patient_id], PROGRESS, "Induction series complete", r.recipient_id, r.id)
           for r in open_rows if r.patient_id in patients]
    for pid, meds in concerns.items():
        out.append(DueLetter(patients[pid], CONCERN, "New interacting medication: " + ", ".join(m.name for m in meds),
                             psychiatrists.get(pid), None, meds))
    return out


def dismiss_concern(session: Session, clinic: Clinic, med: Medication, user: User) -> None:
    now = utcnow()
    session.add(CoordinationDue(clinic_id=clinic.id, patient_id=med.patient_id, kind=CONCERN, key=f"med:{med.id}",
                                created_at=now, resolved_at=now, resolution="dismissed", resolved_by_id=user.id))
    session.flush()


def exportable_documents(session: Session, clinic: Clinic, patient: Patient) -> list[DocumentRef]:
    """Signed letters for a record export; drafts never, nor a letter carrying Part 2 records or
    psychotherapy notes. Bytes that fail their signature hash are listed without them (no hash)."""
    from flask import url_for

    rows = session.exec(select(CoordinationLetter, CoordinationDocument).join(
        CoordinationDocument, CoordinationDocument.id == CoordinationLetter.document_id).where(
        CoordinationLetter.clinic_id == clinic.id, CoordinationLetter.patient_id == patient.id,
        CoordinationDocument.clinic_id == clinic.id,
        CoordinationLetter.include_part2.is_(False), CoordinationLetter.include_psychotherapy_notes.is_(False))
        .order_by(CoordinationDocument.signed_at)).all()
    out = []
    for letter, doc in rows:
        intact = hashlib.sha256(doc.pdf).hexdigest() == doc.sha256
        out.append(DocumentRef(
            title=f"Care-coordination letter ({doc.kind.replace('_', ' ')})", kind="coordination_letter",
            issued_at=doc.signed_at, url=url_for("coordination.download", letter_id=letter.id), sha256=doc.sha256,
            size=len(doc.pdf), pdf=doc.pdf if intact else None))
    return out
