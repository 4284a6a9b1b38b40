"""What a patient is told before a session, by modality (core/data/visit_instructions.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.models import Modality
from core.scheduling.patterns import BOOKED_MINUTES

_DATA = json.loads((Path(__file__).resolve().parent.parent / "data" / "visit_instructions.json").read_text())


@dataclass(frozen=True)
class Instructions:
    fasting: str
    escort: str
    bring: tuple[str, ...]
    other: tuple[str, ...]
    minutes: int  # how long the clinic books the chair: how long to plan to be there

    @property
    def stay(self) -> str:
        hours, minutes = divmod(self.minutes, 60)
        if not minutes:
            return f"{hours} hour{'s' if hours != 1 else ''}"
        return f"{hours} h {minutes} min" if hours else f"{minutes} minutes"


INSTRUCTIONS = {
    Modality(key): Instructions(fasting=v["fasting"], escort=v["escort"],
                                bring=(*_DATA["common_bring"], *v["bring"]), other=tuple(v["other"]),
                                minutes=BOOKED_MINUTES[Modality(key)])
    for key, v in _DATA["modalities"].items()
}
