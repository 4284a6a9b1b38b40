"""The billing rules in one import, for scripts and benchmarks (``from plugins.billing import service``).

The rules live in modules named for what they hold; this facade only re-exports them, so
callers written against the former single module keep working.
"""
from __future__ import annotations

from core.models import utcnow  # noqa: F401
from plugins.billing.charges import (LETTERS, LinesInvalid, PlannedLine, active_diagnoses, add_line,  # noqa: F401
                                     create_invoice, draft_charges, line_problems, plan_lines, pointers_for,
                                     void_invoice)
from plugins.billing.documents import hook_session, pdf_html, pdf_intact, void, voids  # noqa: F401
from plugins.billing.errors import BillingError  # noqa: F401
from plugins.billing.estimates import (GFE_DISPUTE_CENTS, add_business_days, build_estimate,  # noqa: F401
                                       business_days_between, estimate_overruns, gfe_due_date, issue_estimate)
from plugins.billing.money import (MAX_AMOUNT_CENTS, METHODS, PAYMENT_METHODS, counter_value, dollars,  # noqa: F401
                                   invoice_label, local_date, money, next_number, parse_amount)
from plugins.billing.payments import (Totals, aging, correct_payment, invoice_totals, receipt,  # noqa: F401
                                      record_payment, record_refund)
from plugins.billing.superbills import (AlreadyIssued, SuperbillInvalid, build_superbill,  # noqa: F401
                                        extra_fields, issue_superbill, paid_lines, patient_ids_with_paid_services,
                                        period_for, render_superbill, store_superbill)
from plugins.billing.tables import default_fees, deleted_codes, drug_products, ensure_fee_schedule, fees_by_code  # noqa: F401
