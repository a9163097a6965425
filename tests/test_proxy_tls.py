"""Behind a reverse proxy (finding 5): the real app under uvicorn, called through a proxy
that sends X-Forwarded-For/-Proto.  The client's address and scheme are believed only from a
configured proxy: audit source addresses, the Secure cookie flag and HSTS follow them."""

from __future__ import annotations

import httpx
import pytest

from pscs.runtime import Runtime
from pscs.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import ServerThread, field_value

CLIENT = "203.0.113.7"  # the browser, as the proxy reports it
FORWARDED = {"x-forwarded-for": CLIENT, "x-forwarded-proto": "https"}


def _sign_in_through_proxy(rt: Runtime, trusted: list[str]) -> tuple[httpx.Response, httpx.Response]:
    """The login page and the password step, sent as the proxy forwards them."""
    rt.settings = rt.settings.model_copy(update={"trusted_proxies": trusted})
    with ServerThread(create_app(rt)) as server, httpx.Client(base_url=server.url, headers=FORWARDED) as http:
        page = http.get("/login")
        # Sent by hand: a Secure cookie would not go back over this test's plain-HTTP leg.
        csrf_cookie = page.cookies["pscs_login_csrf"]
        login = http.post(
            "/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "login_csrf": field_value(page.text, "login_csrf")},
            headers={"cookie": f"pscs_login_csrf={csrf_cookie}"},
        )
    assert login.status_code == 303, login.text
    return page, login


def _session_cookie(response: httpx.Response) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith("pscs_session="))


def _login_source(rt: Runtime) -> str | None:
    return rt.audit.search(action_prefix="auth.login.password", limit=1)[0].source_ip


@pytest.mark.parametrize("trusted", [["127.0.0.1"], ["10.0.0.0/8", "127.0.0.0/8"]])
def test_trusted_proxy_gives_client_address_secure_cookie_and_hsts(sqlite_runtime, trusted):
    page, login = _sign_in_through_proxy(sqlite_runtime, trusted)
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in page.headers["set-cookie"].lower()
    assert "secure" in _session_cookie(login).lower()
    assert _login_source(sqlite_runtime) == CLIENT


@pytest.mark.parametrize("trusted", [[], ["10.9.9.9"]])
def test_headers_from_an_untrusted_peer_are_ignored(sqlite_runtime, trusted):
    page, login = _sign_in_through_proxy(sqlite_runtime, trusted)
    assert "strict-transport-security" not in page.headers
    assert "secure" not in _session_cookie(login).lower()
    assert _login_source(sqlite_runtime) == "127.0.0.1"
