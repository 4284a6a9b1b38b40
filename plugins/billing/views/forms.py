"""The billing pages' forms, on WTForms (core.form_fields): each reads only the fields it declares.

Amounts go through plugins.billing.money.parse_amount, the one place that turns what a front desk
types ("125.00", "$1,250") into integer cents or a message that says how to write it. Checks that
need the ledger (idempotency, balances, packages) stay in the billing rules; the forms carry what
the post said to them.
"""
from __future__ import annotations

from wtforms import StringField

from core.form_fields import (CheckField, ChoiceField, GliaForm, IsoDateField, NumberField, OptionalChoiceField,
                              TextField)
from core.validators import clean_text
from plugins.billing import ndc
from plugins.billing.errors import BillingError
from plugins.billing.money import PAYMENT_METHODS, dollars, parse_amount

SCOPES = ("visit", "month", "year")


def _clean(value):
    return clean_text(value) if isinstance(value, str) or value is None else value


class Posted(StringField):
    """A value the billing rules check themselves (a key, an id, a method); "" when not posted."""

    def __init__(self, label="", **kw):
        super().__init__(label, filters=[_clean], default=kw.pop("default", ""), **kw)

    @property
    def posted(self) -> bool:
        return bool(self.raw_data)

    def shown(self):
        return self.data or ""

    def number(self) -> int | None:
        """The value as a whole number, or None when it is not one (an id or a balance in cents)."""
        return int(self.data) if self.data and self.data.isascii() and self.data.isdigit() else None


class AmountField(StringField):
    """Dollars typed at the desk; ``.cents`` holds the integer cents once valid.

    ``skip`` leaves it unchecked (a payment drawn from a package has no amount)."""

    def __init__(self, label="Amount", *, field: str | None = None, **kw):
        super().__init__(label, filters=[_clean], default=kw.pop("default", ""), **kw)
        self.message_label = field or label
        self.skip = False
        self.cents: int | None = None

    def post_validate(self, form, validation_stopped):
        if self.skip:
            return
        try:
            self.cents = parse_amount(self.data, field=self.message_label)
        except BillingError as exc:
            self.errors.append(exc.message)

    def shown(self):
        return self.data or ""


class PackageForm(GliaForm):
    name = TextField("Package name", max_len=120)
    sessions = NumberField("Sessions", 1, 50)
    amount = AmountField("Price paid ($)", field="Package price")
    method = ChoiceField("Payment method", PAYMENT_METHODS)


class VoidForm(GliaForm):
    """A void's reason (the rules clean and require it) and, for a superbill, whether to reissue."""
    reason = Posted("Reason for voiding")
    reissue = CheckField("Reissue a corrected superbill now")


class PaymentForm(GliaForm):
    method = Posted("Paid by")
    amount = AmountField()
    reference = TextField("Reference", max_len=60)
    package_id = Posted("Package")
    seen_balance = Posted()
    idempotency_key = Posted()

    def validate(self, extra_validators=None):
        self.amount.skip = self.method.data == "package"
        return super().validate(extra_validators)


class RefundForm(GliaForm):
    amount = AmountField("Refund amount", field="Refund")
    idempotency_key = Posted()


class CorrectionForm(GliaForm):
    method = ChoiceField("Payment method", PAYMENT_METHODS)
    reason = TextField("Reason", required=True, max_len=300)
    reference = TextField("Reference", max_len=60)
    amount = AmountField()
    idempotency_key = Posted()


class SuperbillForm(GliaForm):
    scope = OptionalChoiceField("Period", SCOPES)
    date = IsoDateField("Date of service")


class EstimateForm(GliaForm):
    """A Good Faith Estimate's plan. The providers and the estimates it may replace are the clinic's
    and the patient's own (``allowed`` is set per request); what each treatment requires is checked
    in ``validate``."""
    provider_id = ChoiceField("Provider who will treat the patient", ())
    modality = ChoiceField("Treatment", ())
    evaluation_code = OptionalChoiceField("Evaluation", ("90791", "90792"))
    sessions = NumberField("Sessions", 1, 24, required=False)
    dose_mg = NumberField("Planned dose (mg)", 1, 1000, required=False, integer=False)
    first_date = IsoDateField("First session")
    replaces_id = OptionalChoiceField("Estimate to replace", ())
    requested = CheckField("The patient asked for an estimate")

    def __init__(self, *args, providers: dict, modalities, live: dict, today, induction: str, **kw):
        super().__init__(*args, **kw)
        self.provider_id.allowed, self.replaces_id.allowed = providers, live
        self.modality.allowed = {m.value: m for m in modalities}
        self.today, self.induction = today, induction

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        spravato = self.modality.data == "esketamine_nasal"
        if self.sessions.errors or (not spravato and not self.sessions.data):
            self.sessions.errors = ["Sessions: a whole number from 1 to 24."]
        elif spravato and self.sessions.number not in (None, 8):
            self.sessions.errors = [f"{self.induction}: leave Sessions empty or enter 8; maintenance is "
                                    + "estimated separately."]
        if spravato and not self.dose_mg.data and not self.dose_mg.errors:
            self.dose_mg.errors = ["Planned dose (mg) is required."]
        if self.first_date.day and self.first_date.day < self.today:
            self.first_date.errors = ["First session: the date has passed; give the planned date."]
        return ok and not (self.sessions.errors or self.dose_mg.errors or self.first_date.errors)


# -- the fee schedule and a session's charge lines: one field per row, declared per request ---------

def fees_form(rows, products, units) -> GliaForm:
    """Prices of the clinic's fee rows, the stocked drugs' NDC, unit and strength, and two options.

    A field left out of the post leaves its value as it is (``posted``)."""
    fields: dict = {f"price_{fee.code}": Posted(f"{fee.code} price") for fee in rows}
    for p in products:
        key = f"product_{p.id}"
        fields[f"{key}_ndc"] = TextField("NDC", max_len=20)
        fields[f"{key}_unit"] = ChoiceField("unit", units)
        fields[f"{key}_mg"] = NumberField("Milligrams per unit", 0.001, 10_000, integer=False)
    fields["esketamine_billing"] = Posted("Esketamine billing")
    fields["office_visit_code"] = Posted("Office visit code")
    return type("FeesForm", (GliaForm,), fields)()


def ndc_value(field) -> str:
    """A product's NDC as stored (11 digits), or a BillingError; placeholders are refused as at issue."""
    value = ndc.parse(field.data) if field.data else ""
    problem = ndc.problem(value) if value else None
    if problem:
        raise BillingError(f"{problem}. Enter the NDC printed on the product you stock.")
    return value


class ChargesActionForm(GliaForm):
    """Which button of the charges page was pressed: draft, save, add or invoice."""
    action = Posted("Action", default="save")


def charges_form(drafts) -> GliaForm:
    """The review of a session's draft lines; a field left out keeps the line's current value."""
    fields: dict = {}
    for c in drafts:
        fields[f"remove_{c.id}"] = CheckField("Remove")
        fields[f"units_{c.id}"] = Posted("Units", default=str(c.units))
        fields[f"price_{c.id}"] = Posted("Unit price", default=dollars(c.unit_price_cents))
        fields[f"pointers_{c.id}"] = Posted("Diagnosis pointers", default=c.pointers)
        fields[f"modifiers_{c.id}"] = Posted("Modifiers", default=c.modifiers)
        fields[f"dose_{c.id}"] = Posted("Dose", default=c.dose)
    return type("ChargesForm", (GliaForm,), fields)()


class AddLineForm(GliaForm):
    add_code = ChoiceField("Code", ())
    add_units = NumberField("Units", 1, 999)

    def __init__(self, *args, codes, **kw):
        super().__init__(*args, **kw)
        self.add_code.allowed = {c: c for c in codes}
