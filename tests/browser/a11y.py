"""Accessibility audit of every page a browser journey visits: axe-core through axe-playwright-python.

A journey moves on as soon as it has what it needs, so axe cannot run inside its page without racing
the next click. Instead an init script hands each top-level HTML document's markup to Python as it
is parsed (page.goto, a click, a form post or a redirect alike), and the audit replays that markup
in a separate checker page, at the same viewport and with the stylesheets of the server it came
from, where axe runs undisturbed. Only the checker's context bypasses the app's Content-Security-
Policy (axe is an injected script); the journeys run under the real one. Results are cached per
(path, markup, viewport) for the whole run.
"""
from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from urllib.parse import urlsplit

from axe_playwright_python.base import AXE_SCRIPT, AxeResults
from playwright.sync_api import sync_playwright

BLOCKING = {"serious", "critical"}
OPTIONS = {"resultTypes": ["violations"]}
BINDING = "__gliaA11yPage"
# DOMContentLoaded, not load: a journey may click before load fires, never before the DOM is parsed.
# The returned promise settles once Python holds the markup (see Audit.flush).
CAPTURE_JS = f"""
if (window.top === window) {{
  document.addEventListener("DOMContentLoaded", () => {{
    if (document.contentType !== "text/html") return;
    const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : "";
    window.__gliaA11ySent = window.{BINDING}(location.href, doctype + document.documentElement.outerHTML,
                                             innerWidth, innerHeight);
  }});
}}
"""
# a fresh token on every page would defeat the cache; it has no bearing on accessibility
CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*"')


@dataclass(frozen=True)
class Violation:
    path: str
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path}: {self.rule} ({self.impact}) {self.help}\n      " + "\n      ".join(self.targets)


@dataclass(frozen=True)
class Snapshot:
    url: str
    html: str
    width: int
    height: int

    @property
    def key(self) -> tuple[str, str, int, int]:
        digest = hashlib.sha256(CSRF_VALUE.sub(r'\1"', self.html).encode()).hexdigest()
        return urlsplit(self.url).path, digest, self.width, self.height


class Checker:
    """Checks snapshots in its own thread and browser, so axe runs while the journey goes on.

    One checker page serves the whole run, with axe loaded once (it stays warm: a page's first run
    costs about twice a later one). Each snapshot is written into its document with set_content,
    which keeps the page's globals; its stylesheets are fetched from the server it came from.
    Playwright's sync API belongs to one thread: every call below runs on the checker's thread.
    """

    HOME = "http://a11y.check/"

    def __init__(self, launch_args: dict, timeout_ms: int):
        self.cache: dict[tuple[str, str, int, int], list[Violation]] = {}
        self._jobs: queue.Queue = queue.Queue()
        self._origin = ""
        self._missing: list[str] = []
        self._thread = threading.Thread(target=self._work, args=(launch_args, timeout_ms), name="axe", daemon=True)
        self._thread.start()

    def submit(self, snap: Snapshot) -> Future:
        future: Future = Future()
        self._jobs.put((snap, future))
        return future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(30)

    def _work(self, launch_args: dict, timeout_ms: int) -> None:
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(**launch_args)
                context = browser.new_context(bypass_csp=True)
                context.set_default_timeout(timeout_ms)
                page = context.new_page()
                page.route("**/*", self._serve)
                page.on("response", lambda r: r.status >= 400 and self._missing.append(f"{r.url} ({r.status})"))
                page.on("requestfailed", lambda r: r.resource_type != "script" and self._missing.append(r.url))
                page.goto(self.HOME)
                page.evaluate(AXE_SCRIPT)
                self._check_jobs(page)
                browser.close()
        except Exception as exc:  # the checker could not start: every test waiting on it hears why
            while (job := self._jobs.get()) is not None:
                job[1].set_exception(exc)

    def _check_jobs(self, page) -> None:
        while (job := self._jobs.get()) is not None:
            snap, future = job
            try:
                if snap.key not in self.cache:
                    self.cache[snap.key] = self._run(page, snap)
                future.set_result(self.cache[snap.key])
            except Exception as exc:  # handed to the test that loaded the page
                future.set_exception(exc)

    def _serve(self, route):
        request = route.request
        if request.resource_type == "document":
            route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>a11y</title>")
        elif request.resource_type == "script":
            route.abort()  # the snapshot already holds what the page's scripts did before it was taken
        else:  # stylesheets and images, from the server the snapshot came from
            url = urlsplit(request.url)
            route.fulfill(response=route.fetch(url=f"{self._origin}{url.path}" + (f"?{url.query}" if url.query else "")))

    def _run(self, page, snap: Snapshot) -> list[Violation]:
        url = urlsplit(snap.url)
        self._origin = f"{url.scheme}://{url.netloc}"
        if page.viewport_size != {"width": snap.width, "height": snap.height}:
            page.set_viewport_size({"width": snap.width, "height": snap.height})
        self._missing.clear()
        page.set_content(snap.html, wait_until="load")
        if self._missing:  # without its stylesheet a page's contrast would be judged on browser defaults
            raise AssertionError(f"the audit could not load {', '.join(self._missing)} for {url.path}")
        results = AxeResults(page.evaluate("axe.run(document, %s)" % json.dumps(OPTIONS)))
        return [Violation(url.path, v["id"], v["impact"], v["help"],
                          tuple(" ".join(map(str, n["target"])) for n in v["nodes"]))
                for v in results.response["violations"] if v["impact"] in BLOCKING]


class Audit:
    """Collects the documents one test context loads and checks them against the shared checker."""

    def __init__(self, context, checker: Checker, timeout_ms: int):
        self.context = context
        self.checker = checker
        self.timeout = timeout_ms / 1000
        self.pending: list[Future] = []
        context.expose_binding(BINDING, self._captured)
        context.add_init_script(CAPTURE_JS)

    def _captured(self, source, url: str, html: str, width: int, height: int) -> None:
        self.pending.append(self.checker.submit(Snapshot(url, html, int(width), int(height))))

    def flush(self) -> None:
        """Wait until the markup of every open page's current document has reached Python."""
        for page in self.context.pages:
            if page.is_closed():
                continue
            page.wait_for_load_state("domcontentloaded")
            page.evaluate("() => window.__gliaA11ySent || null")

    def violations(self) -> list[Violation]:
        """Serious and critical violations on the pages loaded since the last call, one line each."""
        self.flush()
        pending, self.pending = self.pending, []
        found: list[Violation] = []
        for future in pending:
            found += [v for v in future.result(self.timeout) if v not in found]
        return found


def report(violations: list[Violation]) -> str:
    return (f"{len(violations)} serious or critical accessibility violation(s) (axe-core):\n  "
            + "\n  ".join(map(str, violations)))
