"""Fixed vocabularies the forms, charts and documents share (value -> what staff read)."""
from __future__ import annotations

SEXES = {"F": "Female", "M": "Male", "X": "X / non-binary", "U": "Unknown"}
SEVERITIES = ("mild", "moderate", "severe")
SIDE_EFFECTS = {"dissociation": "Dissociation", "sedation": "Sedation", "nausea": "Nausea",
                "dizziness": "Dizziness", "bp_rise": "Blood pressure rise", "anxiety": "Anxiety",
                "headache": "Headache", "respiratory_depression": "Respiratory depression"}
