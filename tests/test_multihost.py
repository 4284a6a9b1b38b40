"""Two hosts on one database and one Redis: sessions, login throttling, the queue and the audit chain.

Each app server, the `glia worker` and each CLI run is a separate process built from the
environment, as on separate hosts behind one proxy. A browser's cookie for 127.0.0.1 goes to
both ports, as it goes to whichever host the proxy picks. PostgreSQL is the deployment this
stands for; SQLite (several processes on one file) is the one-host case.
"""
from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.cookiejar import CookieJar

import pytest
from sqlmodel import select

from core.db import new_session, session_scope
from core.models import AuditEvent, AuditSeal, Clinic, User
from plugins.billing.documents import void
from plugins.billing.models import BillingCharge, BillingPayment, BillingSuperbill
from plugins.billing.superbills import patient_ids_with_paid_services
from tests.conftest import PG_URL
from tests.redis_support import app_servers, glia_cli, glia_worker, redis_database, stop
from tests.support import PASSWORD, form_token

MANAGER = "manager@demo.glia.example"
PAID = 3  # patients paid up for the year: the batch's size, kept small so the test stays quick
STATES = ["Queued", "Running", "Finished"]
COUNTED = ("auth.login", "auth.login_failed", "auth.logout", "dashboard.view", "patient.view",
           "billing.superbill_issued")


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request):
    """PostgreSQL, the deployment this is about, and SQLite; without GLIA_TEST_POSTGRES_URL the first skips
    (under CI=true conftest has failed the run already)."""
    if request.param == "postgres" and not PG_URL:
        pytest.skip("GLIA_TEST_POSTGRES_URL is not set")
    return request.param


@pytest.fixture
def redis_url():
    yield from redis_database()


class Browser:
    """Cookies and forms as a browser handles them; redirects followed."""

    def __init__(self):
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, url: str) -> tuple[int, str, str]:
        """(status, path after redirects, page)."""
        return self._open(url)

    def submit(self, form_url: str, action_url: str, fields: dict) -> tuple[int, str, str]:
        """Post a form found on ``form_url`` (with its CSRF token) to ``action_url``."""
        token = form_token(self.get(form_url)[2])
        return self._open(action_url, urllib.parse.urlencode({"csrf_token": token, **fields}).encode())

    def login(self, base: str, email: str, password: str = PASSWORD) -> tuple[int, str, str]:
        return self.submit(base + "/login", base + "/login", {"email": email, "password": password})

    def _open(self, url: str, data: bytes | None = None) -> tuple[int, str, str]:
        try:
            resp = self.opener.open(url, data=data, timeout=60)
        except urllib.error.HTTPError as err:
            resp = err
        return resp.status, urllib.parse.urlsplit(resp.geturl()).path, resp.read().decode()


def _paid_up_only(engine, clinic_id: int, year: int, keep: list[int]) -> None:
    """Void (as entered in error) every payment of the clinic's other patients: only ``keep`` have paid."""
    with session_scope(engine) as s:
        for p in s.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic_id,
                                                     BillingPayment.kind == "payment",
                                                     BillingPayment.patient_id.not_in(keep))).all():
            void(s, clinic_id, "payment", p.id, "entered in error", None)
    with session_scope(engine, write=False) as s:
        assert patient_ids_with_paid_services(s, clinic_id, year) == keep


def _batch_row(page: str, batch_id: str) -> tuple[str, int, int]:
    """(state, done, total) of the batch's row on the jobs page."""
    row = next(r for r in page.split("<tr>") if batch_id in r)
    state = re.search(r'class="pill \w+">(\w+)<', row).group(1)
    done, total = re.search(r"</progress>\s*(\d+) / (\d+)", row).groups()
    return state, int(done), int(total)


def _follow(browser: Browser, url: str, batch_id: str, worker, seconds: float = 300) -> list[tuple[str, int, int]]:
    """The batch's row on the jobs page, as a manager reloading it sees it change, until it is finished."""
    seen, deadline = [], time.monotonic() + seconds
    while not seen or seen[-1][0] not in ("Finished", "Failed"):
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, f"the batch is still {seen[-1]}"
        row = _batch_row(browser.get(url + "/jobs/")[2], batch_id)
        if not seen or row != seen[-1]:
            seen.append(row)
        time.sleep(0.2)
    return seen


def _counted(engine, after_id: int) -> Counter:
    with new_session(engine, write=False) as s:
        rows = s.exec(select(AuditEvent.action, AuditEvent.outcome, AuditEvent.user_id, AuditEvent.patient_id)
                      .where(AuditEvent.id > after_id, AuditEvent.action.in_(COUNTED))).all()
    return Counter(tuple(row) for row in rows)


def test_two_hosts_share_sessions_throttling_the_queue_and_one_audit_chain(app, db, db_url, redis_url, tmp_path):
    engine = app.extensions["glia"].engine
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    year = db.exec(select(BillingCharge.service_date).where(BillingCharge.clinic_id == clinic.id)
                   .order_by(BillingCharge.service_date.desc())).first().year
    patients = patient_ids_with_paid_services(db, clinic.id, year)[:PAID]
    me = db.exec(select(User.id).where(User.email == MANAGER)).one()
    before = db.exec(select(AuditEvent.id).order_by(AuditEvent.id.desc())).first() or 0
    db.close()
    _paid_up_only(engine, clinic.id, year, patients)
    chart_a, chart_b = patients[:2]

    servers, worker = [], None
    try:
        worker = glia_worker(db_url, redis_url, tmp_path)  # beside B: it starts with the hosts and waits for work
        servers = app_servers(2, db_url, redis_url, tmp_path)
        (_a, url_a), (_b, url_b) = servers

        # a login throttled on A is throttled on B (3 a minute, counted from the manager's sign-in on A)
        browser = Browser()
        status, path, page = browser.login(url_a, MANAGER)
        assert (status, path) == (200, "/") and "Max Manager (demo) · Manager" in page
        assert [Browser().login(url_a, "nobody@demo.glia.example", "wrong password")[0]
                for _ in range(2)] == [401, 401]
        assert Browser().login(url_a, MANAGER)[0] == 429  # the right password too
        late = Browser()
        assert late.login(url_b, MANAGER)[0] == 429  # B had no sign-in attempt before
        assert late.get(url_b + "/")[1] == "/login"

        # the session begun on A is good on B
        status, path, page = browser.get(url_b + "/")
        assert (status, path) == (200, "/") and "Max Manager (demo) · Manager" in page and "Sign out" in page
        assert browser.get(f"{url_a}/patients/{chart_a}")[:2] == (200, f"/patients/{chart_a}")
        assert browser.get(f"{url_b}/patients/{chart_b}")[:2] == (200, f"/patients/{chart_b}")

        # a batch enqueued on A, done by the worker beside B, followed on B's jobs page
        assert "No batches yet." in browser.get(url_b + "/jobs/")[2]
        done = glia_cli(db_url, redis_url, tmp_path, "billing", "superbills", "--clinic", "stillwater",
                        "--year", str(year), "--no-wait", "--part-size", "2")
        assert done.returncode == 0, done.stderr
        assert f": {PAID} patients in 2 jobs" in done.stdout
        batch_id = done.stdout.split("Queued batch ", 1)[1].split(":", 1)[0]
        seen = _follow(browser, url_b, batch_id, worker)
        assert seen[-1] == ("Finished", PAID, PAID)
        steps = [(STATES.index(state), n) for state, n, _total in seen]
        assert steps == sorted(steps)  # Queued, Running, Finished, and the count only going up
        page = browser.get(url_a + "/jobs/")[2]
        assert _batch_row(page, batch_id) == ("Finished", PAID, PAID) and f"{PAID} issued now, 0 issued before" in page
        worker.terminate()  # a warm shutdown, as when a host leaves service; it winds down meanwhile

        # signing out on B ends the session on A as well
        assert browser.submit(url_b + "/", url_b + "/logout", {})[1] == "/login"
        assert browser.get(url_a + "/")[1] == "/login"
        assert worker.wait(timeout=60) == 0
    finally:
        for proc in [p for p, _url in servers] + ([worker] if worker else []):
            stop(proc)

    with new_session(engine, write=False) as s:
        issued = s.exec(select(BillingSuperbill).where(BillingSuperbill.clinic_id == clinic.id,
                                                       BillingSuperbill.scope == "year")).all()
    assert sorted(sb.patient_id for sb in issued) == patients  # one document each, none twice
    assert len({sb.number for sb in issued}) == PAID

    # the chain verifies, and holds every audited request to A and B and each document once
    done = glia_cli(db_url, redis_url, tmp_path, "audit", "verify")
    assert done.returncode == 0 and "audit chain intact" in done.stdout, done.stdout + done.stderr
    with new_session(engine, write=False) as s:
        unsealed = s.exec(select(AuditEvent.id).where(AuditEvent.id > before,
                                                      AuditEvent.id.not_in(select(AuditSeal.event_id)))).all()
    assert unsealed == []
    assert _counted(engine, before) == Counter({
        ("auth.login", "ok", me, None): 1, ("auth.login_failed", "denied", None, None): 2,  # on A
        ("dashboard.view", "ok", me, None): 3,  # A after sign-in, B twice
        ("patient.view", "ok", me, chart_a): 1, ("patient.view", "ok", me, chart_b): 1,
        ("auth.logout", "ok", me, None): 1,  # on B
        **{("billing.superbill_issued", "ok", None, pid): 1 for pid in patients}})  # by the worker
