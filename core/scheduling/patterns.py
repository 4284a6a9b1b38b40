"""The modalities' usual induction patterns and booked lengths (core/data/course_patterns.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.models import Modality

_DATA = json.loads((Path(__file__).resolve().parent.parent / "data" / "course_patterns.json").read_text())


@dataclass(frozen=True)
class Pattern:
    key: str
    label: str
    modalities: tuple[Modality, ...]
    offsets: tuple[int, ...]  # days after the first session


PATTERNS = {key: Pattern(key, p["label"], tuple(Modality(m) for m in p["modalities"]), tuple(p["offsets"]))
            for key, p in _DATA["patterns"].items()}
DEFAULT = {Modality(m): key for m, key in _DATA["default_pattern"].items()}
BOOKED_MINUTES = {Modality(m): minutes for m, minutes in _DATA["booked_minutes"].items()}
PROVIDER_MINUTES = _DATA["provider_minutes"]
MIN_DAYS_APART = _DATA["min_days_apart"]  # a session moved past a closed day keeps this gap to the next
LONGEST_BOOKING = max(BOOKED_MINUTES.values())

