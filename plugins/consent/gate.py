"""The treatment gate: why a session may not start, for a batch of sessions in a fixed number of queries.

The dashboard asks about every session of the day at once, so nothing here runs a query per
patient, per item or per session. Texts name ids and values, never patient names.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.models import Clinic, TreatmentSession, VitalPhase, VitalSign
from core.slots import Blocker
from plugins.consent.models import Acknowledgement
from plugins.consent.screening import ItemState
from plugins.consent.service import BP_CODE, link_to, required_kinds, settings
from plugins.consent.status import PatientStatus, status_for


def day(at: datetime, clinic: Clinic) -> str:
    return at.astimezone(ZoneInfo(clinic.timezone)).strftime("%b %d, %Y")


def clock(at: datetime, clinic: Clinic) -> str:
    return at.astimezone(ZoneInfo(clinic.timezone)).strftime("%I:%M %p").lstrip("0")


# -- blood pressure at check-in: the latest baseline reading counts ------------------------------

def latest_baselines(session: Session, clinic: Clinic, treatment_ids: list[int]) -> dict[int, VitalSign]:
    """treatment id -> its latest baseline (pre-dose) reading; a re-check replaces the first one."""
    latest: dict[int, VitalSign] = {}
    if treatment_ids:
        for v in session.exec(select(VitalSign).where(
                VitalSign.clinic_id == clinic.id, VitalSign.treatment_id.in_(treatment_ids),
                VitalSign.phase == VitalPhase.baseline).order_by(VitalSign.taken_at, VitalSign.id)).all():
            latest[v.treatment_id] = v
    return latest


def bp_acknowledgements(session: Session, clinic: Clinic, treatment_ids: list[int]) -> dict[int, list[Acknowledgement]]:
    """treatment id -> its blood-pressure acknowledgements, oldest first."""
    found: dict[int, list[Acknowledgement]] = {tid: [] for tid in treatment_ids}
    if treatment_ids:
        for ack in session.exec(select(Acknowledgement).where(
                Acknowledgement.clinic_id == clinic.id, Acknowledgement.treatment_id.in_(treatment_ids),
                Acknowledgement.item_code == BP_CODE).order_by(Acknowledgement.signed_at, Acknowledgement.id)).all():
            found[ack.treatment_id].append(ack)
    return found


def covers(ack: Acknowledgement, vital: VitalSign) -> bool:
    """An acknowledgement covers the reading it was given for and any reading no higher in both values.

    One without stored values (signed before readings were bound) covers nothing: fail closed.
    """
    return (ack.systolic is not None and ack.diastolic is not None
            and ack.systolic >= vital.systolic and ack.diastolic >= vital.diastolic)


def bp_problem(clinic: Clinic, values: dict, vital: VitalSign | None, acks: list[Acknowledgement]) -> str | None:
    """Why the latest baseline blood pressure stops the start, or None."""
    sys_max, dia_max = int(values["bp_systolic_max"]), int(values["bp_diastolic_max"])
    if vital is None or (vital.systolic <= sys_max and vital.diastolic <= dia_max):
        return None
    if any(covers(a, vital) for a in acks):
        return None
    bound = [a for a in acks if a.systolic is not None and a.diastolic is not None]
    if bound:
        prev = bound[-1]
        return (f"Blood pressure {vital.systolic}/{vital.diastolic} (taken {clock(vital.taken_at, clinic)}) is higher "
                f"than the {prev.systolic}/{prev.diastolic} acknowledged at {clock(prev.signed_at, clinic)}: "
                "a clinician must acknowledge the new reading")
    return (f"Blood pressure at check-in {vital.systolic}/{vital.diastolic} is above the clinic's threshold "
            f"{sys_max}/{dia_max}: a clinician must acknowledge it")


# -- screening items ------------------------------------------------------------------------------

def _changed(item: ItemState, clinic: Clinic) -> str:
    return (f"answered yes on {day(item.yes.at, clinic)}, then no {item.pending_no.by} on "
            f"{day(item.pending_no.at, clinic)}; a clinician must review the change")


def item_blocker(item: ItemState, patient_id: int, clinic: Clinic, back: str = "") -> Blocker | None:
    """Why this item (already known to apply to the session's modality) stops the start, or None.

    ``back`` is where the review form returns to once the clinician has confirmed the change."""
    review = (link_to("consent.review", patient_id=patient_id, item_id=item.item_id, next=back or None)
              if item.item_id is not None else link_to("consent.patient", patient_id=patient_id))
    if item.severity == "absolute":
        if item.needs_review:
            return Blocker(f"Absolute contraindication: {item.label}: {_changed(item, clinic)}", review)
        return Blocker(f"Absolute contraindication: {item.label} (answered yes on {day(item.yes.at, clinic)})", review)
    if item.acknowledgement is not None:
        return None
    reason = f"Relative contraindication needs a clinician's acknowledgement: {item.label}"
    if item.needs_review:
        return Blocker(f"{reason}: {_changed(item, clinic)} or acknowledge it", review)
    earlier = item.earlier_acknowledgement
    if earlier is not None:
        reason += (f" (answered yes again on {day(item.yes.at, clinic)}; the acknowledgement of "
                   f"{day(earlier.signed_at, clinic)} covered the earlier answer)")
    if item.item_id is None:  # the question's row is gone: the consent page still shows the history
        return Blocker(reason, link_to("consent.patient", patient_id=patient_id))
    return Blocker(reason, link_to("consent.acknowledge", patient_id=patient_id, screening_id=item.yes.screening_id,
                                   item_id=item.item_id))


def screening_blockers(st: PatientStatus, patient_id: int, modality: str, clinic: Clinic,
                       back: str = "") -> list[Blocker]:
    if st.history_error:
        return [Blocker(f"Contraindication screening history could not be read ({st.history_error}): treatment "
                        "stays blocked until the record is checked", link_to("consent.patient", patient_id=patient_id))]
    found: list[Blocker] = []
    if st.screening is None or st.screening_stale:
        found.append(Blocker("Contraindication screening " + ("is out of date" if st.screening else "is missing"),
                             link_to("consent.screening", patient_id=patient_id)))
    for item in st.items.values():
        if item.applies_to(modality) and (blocker := item_blocker(item, patient_id, clinic, back)) is not None:
            found.append(blocker)
    return found


# -- the gate -------------------------------------------------------------------------------------

def blockers_for(session: Session, clinic: Clinic, treatments: list[TreatmentSession]) -> dict[int, list[Blocker]]:
    """treatment id -> why it may not start. Ids only in links, never names."""
    values = settings(session, clinic)
    statuses = status_for(session, clinic, sorted({t.patient_id for t in treatments}))
    tids = [t.id for t in treatments]
    baseline = latest_baselines(session, clinic, tids)
    out: dict[int, list[Blocker]] = {}
    for t in treatments:
        modality = t.modality.value if hasattr(t.modality, "value") else str(t.modality)
        st = statuses[t.patient_id]
        found: list[Blocker] = []
        for kind in required_kinds(values, modality):
            state = st.consents.get(kind)
            if state is None or state.status == "valid":
                continue
            if state.status == "awaiting":
                found.append(Blocker(f"Consent: {state.title} - signed by the patient, awaiting a clinician's "
                                     "attestation that they explained it",
                                     link_to("consent.attest", patient_id=t.patient_id, consent_id=state.record.id)))
                continue
            why = {"missing": "not signed", "expired": "expired, needs a new signature",
                   "outdated": f"signed for version {state.record.version if state.record else ''}; "
                               "the current version needs a new signature"}[state.status]
            found.append(Blocker(f"Consent: {state.title} - {why}",
                                 link_to("consent.tablet_sign", patient_id=t.patient_id, kind=kind)))
        found += screening_blockers(st, t.patient_id, modality, clinic,
                                    back=link_to("sessions.detail", session_id=t.id))
        acks = [a for a in st.bp_acknowledgements if a.treatment_id == t.id]  # read with the screening history
        problem = bp_problem(clinic, values, baseline.get(t.id), acks)
        if problem:
            found.append(Blocker(problem, link_to("consent.acknowledge_bp", treatment_id=t.id)))
        out[t.id] = found
    return out
