"""Real-browser journeys: Playwright drives Debian's /usr/bin/chromium against a live server.

Never `playwright install`: it downloads and fails here. Without Chromium the journeys skip,
except under CI=true, where they fail. Every page a journey loads is checked with axe-core
(tests/browser/a11y.py); a serious or critical violation fails the test that loaded it.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.browser.a11y import Audit, Checker, report

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
AUDIT = pytest.StashKey[Audit]()
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing (install Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    return {"executable_path": CHROMIUM, "args": LAUNCH_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args():
    return {"accept_downloads": True, "viewport": {"width": 1180, "height": 820}}


# CI shares two cores with a PostgreSQL server and a second test pass: a page that takes 30 s
# there is slow, not broken. Generous waits keep the journeys about behaviour, not load.
WAIT_MS = 90_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def axe_checker(browser_type_launch_args):
    checker = Checker(browser_type_launch_args, WAIT_MS)
    yield checker
    checker.close()


@pytest.fixture
def context(context, axe_checker, request):
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    request.node.stash[AUDIT] = Audit(context, axe_checker, WAIT_MS)
    return context


@pytest.fixture
def a11y(context, request) -> Audit:
    """The audit of this test's pages, for tests about the audit itself."""
    return request.node.stash[AUDIT]


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """After a journey passes, fail it on any serious or critical violation on a page it loaded."""
    result = yield
    audit = pyfuncitem.stash.get(AUDIT, None)
    if audit is not None:
        found = audit.violations()
        if found:
            pytest.fail(report(found), pytrace=False)
    return result


@pytest.fixture
def live_server(app):
    """Serve ``app`` on a free loopback port in a thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def sign_in(live_server):
    """Sign in through the real login page: sign_in(page, "clinician")."""
    from tests.support import PASSWORD

    def do(page, who: str, password: str = PASSWORD):
        email = who if "@" in who else f"{who}@demo.glia.example"
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        return page

    return do


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (kept by CI, looked at by us)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
