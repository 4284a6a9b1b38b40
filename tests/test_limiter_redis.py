"""Login throttling counted in Redis: it holds across app processes, and fails closed without Redis."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from tests.redis_support import app_server, redis_database
from tests.support import PASSWORD, form_token, post


@pytest.fixture
def redis_url():
    yield from redis_database()


def _failed_login(base: str) -> int:
    """A wrong password through the real form, as a browser sends it; the HTTP status."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    token = form_token(opener.open(base + "/login", timeout=30).read().decode())
    data = urllib.parse.urlencode({"csrf_token": token, "email": "nobody@demo.glia.example",
                                   "password": "wrong password"}).encode()
    try:
        return opener.open(base + "/login", data=data, timeout=30).status
    except urllib.error.HTTPError as err:
        return err.code


def test_login_attempts_on_one_app_process_count_on_the_other(db_url, redis_url, tmp_path):
    servers = []
    try:
        a, url_a = app_server(db_url, redis_url, tmp_path)
        servers.append(a)
        b, url_b = app_server(db_url, redis_url, tmp_path)
        servers.append(b)
        assert [_failed_login(u) for u in (url_a, url_b, url_a)] == [401, 401, 401]
        assert _failed_login(url_b) == 429  # the 4th attempt within the minute, wherever it lands
        assert _failed_login(url_a) == 429
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()


def test_redis_unreachable_login_fails_closed_with_a_clear_message(make_app):
    app = make_app(GLIA_REDIS_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    assert client.get("/login").status_code == 200
    resp = post(app, client, "/login", {"email": "manager@demo.glia.example", "password": PASSWORD})
    assert resp.status_code == 503
    assert "needs the shared Redis server, which cannot be reached" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not signed in: sent to the login page
