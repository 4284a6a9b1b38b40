"""Every form of every blueprint, posted generated garbage as each role: never a 500, nothing written
when the answer is a refusal, and the audit chain still verifies afterwards.

The forms come from app.url_map and their field names from the pages that render them
(tests/fuzz_support.py); Hypothesis draws the values, derandomized so CI sees the same run each time.
"""
from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from core.cli import cli
from core.models import Clinic
from tests import fuzz_support as fz
from tests.support import csrf_token, login

ROLES = ["admin", "manager", "clinician", "frontdesk", "patient"]
EXAMPLES = 3  # per role: every form is posted this many times (the whole file fits ~90 s per backend)

NASTY = ["", " ", "\t\n ", "\x00", "-1", "-999999999999", "0", "NaN", "nan", "inf", "-inf", "1e309", "1e-400",
         "2026-02-30", "0000-00-00", "99999-01-01", "2026-13-01", "24:61", "true", "null", "[]", "{}",
         "\u202eevil\u202c", "\U0001F489\U0001F9E0", "\ufeff", "’ OR 1=1 --", "<script>x</script>", "١٢٣", "Ⅻ",
         "x" * 100_000, "9" * 400]
VALUE = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.integers(min_value=-(10 ** 20), max_value=10 ** 20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.dates(min_value=__import__("datetime").date(1, 1, 1)).map(str),
)
FIELD = st.one_of(VALUE, st.lists(VALUE, min_size=2, max_size=3))  # a repeated name is a wrong type too

_fields: dict[str, set[str]] = {}
_seen: dict[str, set[int]] = {}  # endpoint -> statuses seen, for the report at the end of the run


def _stillwater(db) -> int:
    return db.exec(select(Clinic.id).where(Clinic.slug == "stillwater")).one()


def _signed_in(app, who: str, clinic_id: int):
    client = app.test_client()
    login(app, client, who)
    if who == "admin":  # the admin works at both clinics: pin Stillwater, whose ids fill the URLs
        client.post("/switch-clinic", data={"csrf_token": csrf_token(app, client), "clinic_id": str(clinic_id)})
    return client


def _learn(app, clinic_id: int) -> dict[str, set[str]]:
    """Field names per endpoint, read once per run from the pages an admin and a patient are shown."""
    if not _fields:
        _fields.update(fz.learn_fields(app, [_signed_in(app, "admin", clinic_id),
                                             _signed_in(app, "patient", clinic_id)], clinic_id))
    return _fields


@pytest.mark.parametrize("who", ROLES)
def test_fuzzed_forms_never_fail_and_refusals_write_nothing(app, db, db_url, who):
    clinic_id = _stillwater(db)
    fields = _learn(app, clinic_id)
    forms = [(rule, url) for rule in fz.post_rules(app) if (url := fz.demo_url(app, rule, clinic_id))]
    client = _signed_in(app, who, clinic_id)
    token = csrf_token(app, client)
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def post_every_form(data):
        for rule, url in forms:
            names = sorted(fields.get(rule.endpoint) or fz.read_by_view(app, rule.endpoint))
            values = {n: data.draw(FIELD, label=f"{rule.endpoint}.{n}") for n in names}
            before = fz.row_counts(app)
            resp = client.post(url, data={**values, "csrf_token": token})
            _seen.setdefault(rule.endpoint, set()).add(resp.status_code)
            assert resp.status_code < 500, f"{who} POST {rule.rule} answered {resp.status_code}"
            assert resp.status_code != 400, f"{who} POST {rule.rule}: bad input is a 422 with a message, not a 400"
            if 400 <= resp.status_code < 500:
                after = fz.row_counts(app)
                grew = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
                assert not grew, f"{who} POST {rule.rule} answered {resp.status_code} but wrote {grew}"

    post_every_form()
    print(f"\n{who}: {len(forms)} forms x {EXAMPLES} in {time.monotonic() - started:.1f} s")
    result = CliRunner().invoke(cli, ["audit", "verify"], env={"GLIA_DATABASE_URL": db_url, "GLIA_ENV": "production",
                                                               "GLIA_SECRET_KEY": ""})
    assert result.exit_code == 0, result.output


def test_zz_report_statuses(app):
    """Not an assertion: prints which forms answered what, so 200/400 answers to bad input can be read off."""
    for endpoint in sorted(_seen):
        print(f"{endpoint}: {sorted(_seen[endpoint])}")
