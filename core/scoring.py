"""PHQ-9 and GAD-7 scoring: totals, severity bands and the item-9 safety alert."""
from __future__ import annotations

from core.models import Instrument

ITEMS = {Instrument.phq9: 9, Instrument.gad7: 7}
MAX_TOTAL = {Instrument.phq9: 27, Instrument.gad7: 21}
# (lower bound, band) from the instruments' published cut-points
BANDS = {
    Instrument.phq9: [(0, "Minimal"), (5, "Mild"), (10, "Moderate"), (15, "Moderately severe"), (20, "Severe")],
    Instrument.gad7: [(0, "Minimal"), (5, "Mild"), (10, "Moderate"), (15, "Severe")],
}


def band(instrument: Instrument, total: int) -> str:
    label = BANDS[instrument][0][1]
    for lower, name in BANDS[instrument]:
        if total >= lower:
            label = name
    return label


def score(instrument: Instrument, items: list[int]) -> dict:
    """Validate item answers (each 0-3) and return total, band, item 9 and whether to alert."""
    if len(items) != ITEMS[instrument]:
        raise ValueError(f"{instrument.value} has {ITEMS[instrument]} items; answer every one.")
    if any(not isinstance(i, int) or i < 0 or i > 3 for i in items):
        raise ValueError("Each answer is scored 0 to 3.")
    total = sum(items)
    item9 = items[8] if instrument == Instrument.phq9 else None
    return {"total": total, "band": band(instrument, total), "item9": item9, "alert": bool(item9)}


def response_status(baseline: int | None, latest: int | None) -> str:
    """Response is a drop of at least 50% from baseline; remission is PHQ-9 below 5."""
    if baseline is None or latest is None:
        return ""
    if latest < 5:
        return "remission"
    if baseline > 0 and (baseline - latest) / baseline >= 0.5:
        return "response"
    return "no response yet"
