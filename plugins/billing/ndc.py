"""National Drug Codes as a claim writes them: N4, 11 digits in 5-4-2 form, unit qualifier, quantity.

A package prints its NDC in 10 digits (4-4-2, 5-3-2 or 5-4-1); claims pad it to 11 by a
leading zero in the short segment. Rules and placeholders come from data/ndc_rules.json.
"""
from __future__ import annotations

import re

from plugins.billing.errors import BillingError
from plugins.billing.tables import data_json

_SEGMENTS = re.compile(r"^([0-9]{4,5})-([0-9]{3,4})-([0-9]{1,2})$")
_PADDED = {(5, 4, 2), (4, 4, 2), (5, 3, 2), (5, 4, 1)}
HOW = "Write the NDC as printed on the package, such as 12345-678-90 or 12345-6789-01, or as 11 digits."


def rules() -> dict:
    return data_json("ndc_rules.json")


def parse(raw: str) -> str:
    """The 11-digit claim form of an NDC typed with hyphens (any 10-digit layout) or as 11 digits."""
    value = "".join((raw or "").split())
    if re.fullmatch(r"[0-9]{11}", value):
        return value
    match = _SEGMENTS.match(value)
    if not match or tuple(len(g) for g in match.groups()) not in _PADDED:
        raise BillingError(f"NDC \u201c{raw.strip()[:20]}\u201d is not an NDC. {HOW}")
    labeler, product, package = match.groups()
    return labeler.zfill(5) + product.zfill(4) + package.zfill(2)


def display(ndc11: str) -> str:
    """12345678901 -> 12345-6789-01, for pages and forms."""
    return f"{ndc11[:5]}-{ndc11[5:9]}-{ndc11[9:]}" if len(ndc11) == 11 else ndc11


def problem(ndc11: str) -> str | None:
    """Why this NDC must not go on a claim (missing, malformed or a placeholder), or None."""
    if not ndc11:
        return "no NDC is set"
    if not re.fullmatch(r"[0-9]{11}", ndc11):
        return f"NDC {ndc11} is not 11 digits"
    r = rules()
    if len(set(ndc11)) == 1 or ndc11 in r["placeholder_ndcs"] or ndc11[:5] in r["placeholder_labelers"]:
        return f"NDC {display(ndc11)} is a placeholder, not a product's NDC"
    return None


def quantity(dose_mg: float, mg_per_unit: float) -> str:
    """The NDC quantity of a dose: 35 mg at 50 mg/mL -> "0.7"; one 56 mg kit -> "1" (3 decimals at most)."""
    if not dose_mg or not mg_per_unit or mg_per_unit <= 0:
        return ""
    return f"{dose_mg / mg_per_unit:.3f}".rstrip("0").rstrip(".")


def claim(ndc11: str, unit: str, qty: str) -> str:
    """N412345678901 ML0.88: what the shaded part of box 24A carries."""
    return f"N4{ndc11} {unit}{qty}"


def product_for(products, code: str, dose_mg: float | None):
    """The stocked product a drug line of ``dose_mg`` uses: a kit of that dose, else the vial stock."""
    mine = [p for p in products if p.code == code]
    exact = [p for p in mine if p.dose_mg and dose_mg and abs(p.dose_mg - dose_mg) < 0.01]
    return (exact or [p for p in mine if not p.dose_mg] or [None])[0]
