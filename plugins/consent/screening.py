"""Screening answers, and each item's history across all of a patient's screenings.

A "yes" to a contraindication stays in force until a clinician reviews a later "no" and confirms
it with a written reason (an ItemClearance). A later "no" on its own is recorded and shown, but
clears nothing: whoever gave it (the patient at home, the front desk) may be wrong, and an
unreviewed "no" must never let treatment go ahead. A relative item's acknowledgement covers the
one "yes" it was given for; a new "yes" in a later screening needs a new acknowledgement.

The history is computed from rows loaded in a fixed number of queries for any number of
patients (load_histories). Answers that cannot be read make the history an error, and the
gate blocks on an error (fail closed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from core.models import Clinic, User, utcnow
from plugins.consent.models import SEVERITIES, Acknowledgement, ContraindicationItem, ItemClearance, Screening
from plugins.consent.service import BP_CODE, sha256, statement_digest

# a staff answerer's role, in the history and in a sentence ("then no by front desk on ...")
ROLE_NAMES = {"front_desk": "front desk", "clinician": "clinician", "manager": "manager", "admin": "administrator"}
BY_ROLE = {"front_desk": "by front desk", "clinician": "by a clinician", "manager": "by a manager",
           "admin": "by an administrator"}


class HistoryError(ValueError):
    """Stored screening answers that cannot be read (or no longer match their digest)."""


def screening_digest(answers: list[dict]) -> str:
    return sha256(json.dumps(answers, sort_keys=True, ensure_ascii=False))


def record_screening(session: Session, clinic: Clinic, patient, items: list[ContraindicationItem], yes: set[str], *,
                     answered_by: str, channel: str, user_id: int | None, ip: str = "",
                     at: datetime | None = None) -> Screening:
    """Store the answers with the questions as asked, so later list edits never change history."""
    answers = [{"code": i.code, "label": i.label, "severity": i.severity, "modalities": list(i.modalities),
                "yes": i.code in yes} for i in items]
    screening = Screening(clinic_id=clinic.id, patient_id=patient.id, answers=answers, answered_by=answered_by,
                          user_id=user_id, channel=channel, answered_at=at or utcnow(),
                          text_sha256=screening_digest(answers), ip=ip[:45])
    session.add(screening)
    session.flush()
    return screening


@dataclass(frozen=True)
class Answer:
    """One answer to one item, in one screening."""

    screening_id: int
    at: datetime
    yes: bool
    label: str
    severity: str
    modalities: tuple[str, ...]
    answered_by: str  # patient, staff
    channel: str  # tablet, portal
    user_name: str = ""  # who was signed in: the staff member, or the patient in the portal
    user_role: str = ""

    @property
    def by(self) -> str:
        """Who answered, as the end of "answered no ...": no names (blocker texts reach the dashboard)."""
        if self.channel == "portal":
            return "by the patient in the portal"
        if self.answered_by == "patient":
            return "by the patient on the tablet"
        return BY_ROLE.get(self.user_role, "by staff")

    @property
    def recorded_by(self) -> str:
        """Who answered, with the signed-in user's name, for the history shown to clinicians."""
        if self.channel == "portal":
            return "The patient, in the portal"
        who = "The patient, on the tablet" if self.answered_by == "patient" else "Staff, from the patient's answers"
        if self.user_name:
            who += f"; recorded by {self.user_name}, {ROLE_NAMES.get(self.user_role, 'staff')}"
        return who


@dataclass
class ItemState:
    """One screening item for one patient: every answer, acknowledgement and clearance, and what is in force."""

    code: str
    item_id: int | None = None  # the clinic's question row: pages name the item by it, never by its code
    answers: list[Answer] = field(default_factory=list)
    acknowledgements: list[Acknowledgement] = field(default_factory=list)
    clearances: list[ItemClearance] = field(default_factory=list)
    yes: Answer | None = None  # the "yes" in force; None when never answered yes, or cleared
    pending_no: Answer | None = None  # a later "no" that no clinician has reviewed yet
    cleared_by: ItemClearance | None = None  # the clearance of the latest "yes"

    @property
    def label(self) -> str:
        return self.answers[-1].label

    @property
    def severity(self) -> str:
        return (self.yes or self.answers[-1]).severity

    @property
    def ever_yes(self) -> bool:
        return any(a.yes for a in self.answers)

    @property
    def needs_review(self) -> bool:
        return self.yes is not None and self.pending_no is not None

    def applies_to(self, modality: str) -> bool:
        """In force for this modality (as the question stood when it was answered yes)."""
        return self.yes is not None and modality in self.yes.modalities

    @property
    def acknowledgement(self) -> Acknowledgement | None:
        """The acknowledgement of the "yes" in force, if a clinician gave one."""
        if self.yes is None:
            return None
        return next((a for a in reversed(self.acknowledgements) if a.screening_id == self.yes.screening_id), None)

    @property
    def earlier_acknowledgement(self) -> Acknowledgement | None:
        """The latest acknowledgement of an earlier "yes" (it does not cover the one in force)."""
        if self.yes is None:
            return None
        return next((a for a in reversed(self.acknowledgements) if a.screening_id != self.yes.screening_id), None)

    def events(self) -> list[tuple[datetime, str, object]]:
        """The timeline, oldest first: ("answer", Answer), ("acknowledgement", row), ("clearance", row)."""
        rows = [(a.at, "answer", a) for a in self.answers]
        rows += [(a.signed_at, "acknowledgement", a) for a in self.acknowledgements]
        rows += [(c.signed_at, "clearance", c) for c in self.clearances]
        order = {"answer": 0, "acknowledgement": 1, "clearance": 2}
        return sorted(rows, key=lambda r: (r[0], order[r[1]]))


@dataclass
class History:
    """A patient's screenings, oldest first, and the state of every item they were asked."""

    screenings: list[Screening] = field(default_factory=list)
    items: dict[str, ItemState] = field(default_factory=dict)
    error: str | None = None  # why the history could not be computed: the gate then blocks
    bp_acknowledgements: list[Acknowledgement] = field(default_factory=list)  # of any treatment, oldest first

    @property
    def latest(self) -> Screening | None:
        return self.screenings[-1] if self.screenings else None


def _readable(s: Screening) -> list[dict]:
    """The screening's answers, or HistoryError when any of them cannot be trusted."""
    problem = HistoryError(f"screening #{s.id} has answers that cannot be read")
    if not isinstance(s.answers, list):
        raise problem
    seen: set[str] = set()
    for a in s.answers:
        if not (isinstance(a, dict) and isinstance(a.get("code"), str) and a["code"] and a["code"] not in seen
                and isinstance(a.get("yes"), bool) and a.get("severity") in SEVERITIES
                and isinstance(a.get("label"), str) and isinstance(a.get("modalities"), list)
                and all(isinstance(m, str) for m in a["modalities"])):
            raise problem
        seen.add(a["code"])
    if screening_digest(s.answers) != s.text_sha256:
        raise HistoryError(f"screening #{s.id} no longer matches its digest")
    return s.answers


def item_states(screenings: list[Screening], users: dict[int, tuple[str, str]], acks: list[Acknowledgement],
                clearances: list[ItemClearance]) -> dict[str, ItemState]:
    """Each item's state from one patient's rows (screenings oldest first); raises HistoryError."""
    states: dict[str, ItemState] = {}
    for s in screenings:
        name, role = users.get(s.user_id, ("", "")) if s.user_id is not None else ("", "")
        for a in _readable(s):
            states.setdefault(a["code"], ItemState(a["code"])).answers.append(Answer(
                screening_id=s.id, at=s.answered_at, yes=a["yes"], label=a["label"], severity=a["severity"],
                modalities=tuple(a["modalities"]), answered_by=s.answered_by, channel=s.channel, user_name=name,
                user_role=role))
    for ack in acks:
        if ack.item_code in states:
            states[ack.item_code].acknowledgements.append(ack)
    for c in clearances:
        if c.item_code in states:
            states[c.item_code].clearances.append(c)
    for st in states.values():
        for answer in st.answers:
            if answer.yes:
                st.yes, st.pending_no = answer, None  # every new "yes" starts over
            elif st.yes is not None:
                st.pending_no = answer
        if st.yes is not None:
            st.cleared_by = next((c for c in st.clearances if c.yes_screening_id == st.yes.screening_id), None)
            if st.cleared_by is not None:
                st.yes = st.pending_no = None
    return states


def load_histories(session: Session, clinic: Clinic, patient_ids: list[int]) -> dict[int, History]:
    """Histories for many patients in five queries, whatever their number of screenings and items.

    The acknowledgements query also brings the patients' blood-pressure acknowledgements, which
    the gate needs beside the history: one query for both."""
    result = {pid: History() for pid in patient_ids}
    if not patient_ids:
        return result
    for s in session.exec(select(Screening).where(
            Screening.clinic_id == clinic.id, Screening.patient_id.in_(patient_ids))
            .order_by(Screening.answered_at, Screening.id)).all():
        result[s.patient_id].screenings.append(s)
    user_ids = {s.user_id for h in result.values() for s in h.screenings if s.user_id is not None}
    users = {uid: (name, getattr(role, "value", role)) for uid, name, role in session.exec(
        select(User.id, User.name, User.role).where(User.id.in_(user_ids))).all()} if user_ids else {}
    acks: dict[int, list[Acknowledgement]] = {pid: [] for pid in patient_ids}
    is_bp = (Acknowledgement.item_code == BP_CODE) & Acknowledgement.treatment_id.is_not(None)
    for ack in session.exec(select(Acknowledgement).where(
            Acknowledgement.clinic_id == clinic.id, Acknowledgement.patient_id.in_(patient_ids),
            Acknowledgement.screening_id.is_not(None) | is_bp)
            .order_by(Acknowledgement.signed_at, Acknowledgement.id)).all():
        if ack.screening_id is not None:
            acks[ack.patient_id].append(ack)
        if ack.item_code == BP_CODE and ack.treatment_id is not None:
            result[ack.patient_id].bp_acknowledgements.append(ack)
    clearances: dict[int, list[ItemClearance]] = {pid: [] for pid in patient_ids}
    for c in session.exec(select(ItemClearance).where(
            ItemClearance.clinic_id == clinic.id, ItemClearance.patient_id.in_(patient_ids))
            .order_by(ItemClearance.signed_at, ItemClearance.id)).all():
        clearances[c.patient_id].append(c)
    item_ids = dict(session.exec(select(ContraindicationItem.code, ContraindicationItem.id).where(
        ContraindicationItem.clinic_id == clinic.id)).all())
    for pid, history in result.items():
        try:
            history.items = item_states(history.screenings, users, acks[pid], clearances[pid])
        except HistoryError as exc:
            history.error = str(exc)
        for st in history.items.values():
            st.item_id = item_ids.get(st.code)
    return result


def clear_item(session: Session, clinic: Clinic, patient_id: int, item: ItemState, *, reason: str, clinician,
               ip: str = "", at: datetime | None = None) -> ItemClearance:
    """A clinician confirms the pending "no" for ``item``: the "yes" it follows no longer applies."""
    if not item.needs_review:
        raise ValueError("there is no changed answer to confirm for this item")
    signed_at = at or utcnow()
    yes_id, no_id = item.yes.screening_id, item.pending_no.screening_id
    clearance = ItemClearance(
        clinic_id=clinic.id, patient_id=patient_id, item_code=item.code, item_label=item.label[:300],
        yes_screening_id=yes_id, no_screening_id=no_id, reason=reason, clinician_user_id=clinician.id,
        clinician_name=clinician.name, signed_at=signed_at, ip=ip[:45],
        text_sha256=statement_digest(patient_id, item.code, item.label, yes_id, no_id, reason, clinician.id,
                                     clinician.name, signed_at.isoformat()))
    session.add(clearance)
    session.flush()
    return clearance
