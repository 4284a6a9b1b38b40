"""The words a letter is written in: letter kinds, medication rules and the re-disclosure notice.

Shipped wording lives in data/ and names the drug with a {drug} placeholder, so an esketamine
(Spravato) letter never speaks of ketamine. Default texts state no fact about the patient;
facts come from the records (see compose.py).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from core.models import ClinicianKind, Medication, Modality

DATA = Path(__file__).resolve().parent / "data"
EDITABLE = ("opening", "requests", "therapist_requests", "closing")  # per kind, on the settings page
PRESCRIBERS = (ClinicianKind.psychiatrist, ClinicianKind.primary_care)
RECIPIENT_LABELS = {"psychiatrist": "psychiatrist", "primary_care": "primary care physician", "therapist": "therapist"}
ESKETAMINE_INDUCTION = 8  # Spravato label: twice weekly in weeks 1-4

# 42 CFR 2.32(a)(1), Statement 1, as amended 16 February 2024 (89 FR 12472; compliance date 16 February 2026).
PART2_NOTICE = (
    "This record which has been disclosed to you is protected by Federal confidentiality rules (42 CFR part 2). "
    "These rules prohibit you from using or disclosing this record, or testimony that describes the information "
    "contained in this record, in any civil, criminal, administrative, or legislative proceedings by any Federal, "
    "State, or local authority, against the patient, unless authorized by the consent of the patient, except as "
    "provided at 42 CFR 2.12(c)(5) or as authorized by a court in accordance with 42 CFR 2.64 or 2.65. In addition, "
    "the Federal rules prohibit you from making any other use or disclosure of this record unless at least one of "
    "the following applies:")
PART2_CASES = (
    "Further use or disclosure is expressly permitted by the written consent of the individual whose information is "
    "being disclosed in this record or as otherwise permitted by 42 CFR part 2.",
    "You are a covered entity or business associate and have received the record for treatment, payment, or health "
    "care operations, or",
    "You have received the record from a covered entity or business associate as permitted by 45 CFR part 164, "
    "subparts A and E.",
)
PART2_CLOSING = (
    "A general authorization for the release of medical or other information is NOT sufficient to meet the required "
    "elements of written consent to further use or redisclose the record (see 42 CFR 2.31).")
CONFIDENTIALITY = (
    "Confidential health information, shared with you for the patient's treatment (45 CFR 164.506(c)). "
    "If you received this letter in error, please tell us and destroy it.")


@lru_cache(maxsize=1)
def rules() -> tuple[dict, ...]:
    return tuple(json.loads((DATA / "interaction_rules.json").read_text(encoding="utf-8"))["rules"])


@lru_cache(maxsize=1)
def shipped_kinds() -> dict:
    return json.loads((DATA / "letter_kinds.json").read_text(encoding="utf-8"))["kinds"]


def kinds(settings: dict) -> dict:
    """The shipped letter kinds with the clinic's saved wording laid over them."""
    overrides = settings.get("letter_overrides") or {}
    return {key: {**spec, **{k: v for k, v in (overrides.get(key) or {}).items() if k in EDITABLE and v}}
            for key, spec in shipped_kinds().items()}


def drug_for(modality: str | None) -> str:
    """The drug a letter speaks of: esketamine for Spravato, ketamine for every other modality."""
    return "esketamine" if modality == Modality.esketamine_nasal.value else "ketamine"


def induction_size(settings: dict, modality: str | None) -> int:
    """Sessions in an induction series: the label's 8 for esketamine, the clinic's setting otherwise."""
    if modality == Modality.esketamine_nasal.value:
        return int(settings.get("esketamine_induction_sessions") or ESKETAMINE_INDUCTION)
    return int(settings.get("induction_sessions") or 6)


def fill(text: str, **values) -> str:
    """Put the drug (and the like) into shipped or clinic wording; unknown braces are left as written."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def is_prescriber(kind: ClinicianKind | str) -> bool:
    return ClinicianKind(kind) in PRESCRIBERS


def may_receive(spec: dict, kind: ClinicianKind | str) -> bool:
    return ClinicianKind(kind).value in spec.get("recipients", [k.value for k in ClinicianKind])


def recipients_text(spec: dict) -> str:
    names = [RECIPIENT_LABELS[k] for k in spec.get("recipients", [])]
    return " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]


def default_fields(spec: dict, *, modality: str | None, recipient_kind: ClinicianKind, settings: dict) -> dict:
    """A new draft's free text: the kind's wording, for this recipient and drug."""
    drug = drug_for(modality)
    requests = spec["requests"] if is_prescriber(recipient_kind) else spec.get("therapist_requests", "")
    plan = (spec.get("plan") or {}).get(modality or "", "")
    return {"opening": fill(spec["opening"], drug=drug),
            "plan": fill(plan, drug=drug, induction=induction_size(settings, modality)),
            "psychotherapy": "", "crisis_plan": "", "requests": fill(requests, drug=drug),
            "closing": fill(spec["closing"], drug=drug), "psychotherapy_note": "", "next_review": ""}


def match_rule(med: Medication) -> dict | None:
    """The first rule whose drug class or one of whose names fits this medication."""
    cls = (med.drug_class or "").strip().lower()
    name = (med.name or "").lower()
    for rule in rules():
        if cls and cls in rule["classes"]:
            return rule
        if any(n in name for n in rule["names"]):
            return rule
    return None


def is_flagged(med: Medication) -> bool:
    rule = match_rule(med)
    return rule is not None and rule["level"] == "concern"


def rule_note(rule: dict, drug: str) -> dict:
    """A rule's label, concern and request, worded for the drug this patient receives."""
    def text(value):
        return fill(value[drug] if isinstance(value, dict) else value, drug=drug)

    return {"key": rule["key"], "label": rule["label"], "level": rule["level"],
            "concern": text(rule["concern"]), "request": text(rule["request"])}
