"""The accessibility audit itself: it must catch a real violation on a page reached by a form post.

The pages are served by the browser's own router on a made-up origin, so the test needs no app; axe
and Chromium are the real ones every journey is checked with.
"""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import screenshot

ORIGIN = "http://a11y.test"
HEAD = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title></head>'
START = HEAD.format("Start") + """<body><main><h1>Start</h1>
<form method="post" action="/next"><button type="submit">Continue</button></form></main></body></html>"""
NEXT = HEAD.format("Next") + """<body><main><h1>Next</h1>
<p id="faint" style="color:#c8c8c8;background:#fff">Balance due</p>
<img id="chart" src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></main></body></html>"""


def _serve(route):
    body = START if route.request.url.endswith("/start") else NEXT
    route.fulfill(status=200, content_type="text/html", body=body)


def test_the_audit_reports_violations_on_a_page_reached_by_a_form_post(page, a11y):
    page.route(f"{ORIGIN}/**", _serve)
    page.goto(f"{ORIGIN}/start")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Next")).to_be_visible()

    found = {(v.path, v.rule, v.impact, v.targets) for v in a11y.violations()}
    assert found == {("/next", "image-alt", "critical", ("#chart",)),
                     ("/next", "color-contrast", "serious", ("#faint",))}
    assert a11y.violations() == []  # reported once: the journey's own end-of-test check sees none


def _focus_ring(page) -> dict:
    return page.evaluate("""() => { const s = getComputedStyle(document.activeElement);
        return {text: document.activeElement.textContent.trim(), style: s.outlineStyle, width: s.outlineWidth,
                color: s.outlineColor}; }""")


def test_keyboard_focus_shows_our_ring_on_the_menu_and_the_page(page, live_server, sign_in):
    sign_in(page, "clinician")
    page.locator(".brand").focus()
    page.keyboard.press("Tab")  # the first menu item, on the brand-coloured bar
    assert _focus_ring(page) == {"text": "Today", "style": "solid", "width": "3px", "color": "rgb(255, 255, 255)"}
    screenshot(page, "focus-ring-menu")
    page.goto(f"{live_server}/patients/")
    page.locator("#q").focus()
    page.keyboard.press("Tab")  # the search button, on the page
    ring = _focus_ring(page)
    assert (ring["style"], ring["width"], ring["color"]) == ("solid", "3px", "rgb(29, 79, 140)")
    screenshot(page, "focus-ring")
