"""Code tables shipped in data/ and the per-clinic copies a manager edits (fees, drug NDCs)."""
from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

from sqlmodel import Session, select

from plugins.billing.models import BillingDrugProduct, BillingFee

DATA = Path(__file__).resolve().parent / "data"


def _csv(name: str) -> list[dict]:
    with (DATA / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=None)
def data_json(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def default_fees() -> list[dict]:
    return [dict(row, price_cents=int(row["price_cents"])) for row in _csv("fee_schedule.csv")]


@lru_cache(maxsize=1)
def deleted_codes() -> dict[str, dict]:
    return {row["code"]: row for row in _csv("deleted_codes.csv")}


@lru_cache(maxsize=1)
def default_drug_products() -> list[dict]:
    from plugins.billing import ndc

    return [{"code": r["code"], "label": r["label"], "ndc": ndc.parse(r["ndc"]) if r["ndc"] else "",
             "unit": r["unit"], "mg_per_unit": float(r["mg_per_unit"]), "dose_mg": int(r["dose_mg"])}
            for r in _csv("drug_products.csv")]


def line_rules() -> dict:
    return data_json("line_rules.json")


def ensure_fee_schedule(session: Session, clinic_id: int) -> None:
    """Give a clinic the default schedule and drug products it does not have yet (its own edits stay)."""
    have = set(session.exec(select(BillingFee.code).where(BillingFee.clinic_id == clinic_id)).all())
    for row in default_fees():
        if row["code"] not in have:
            session.add(BillingFee(clinic_id=clinic_id, **row))
    products = {(p.code, p.dose_mg) for p in session.exec(select(BillingDrugProduct).where(
        BillingDrugProduct.clinic_id == clinic_id)).all()}
    for row in default_drug_products():
        if (row["code"], row["dose_mg"]) not in products:
            session.add(BillingDrugProduct(clinic_id=clinic_id, **row))
    session.flush()


def fees_by_code(session: Session, clinic_id: int) -> dict[str, BillingFee]:
    ensure_fee_schedule(session, clinic_id)
    return {f.code: f for f in session.exec(select(BillingFee).where(BillingFee.clinic_id == clinic_id)).all()}


def drug_products(session: Session, clinic_id: int) -> list[BillingDrugProduct]:
    ensure_fee_schedule(session, clinic_id)
    return list(session.exec(select(BillingDrugProduct).where(BillingDrugProduct.clinic_id == clinic_id)
                             .order_by(BillingDrugProduct.code, BillingDrugProduct.dose_mg)).all())
