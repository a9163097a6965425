"""Signing in through the real pages, as a browser would (password, TOTP, U3); the real
app under uvicorn for tests that need real HTTP streaming or a browser."""

from __future__ import annotations

import html
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import pyotp
import uvicorn
from fastapi.testclient import TestClient

from pscs.audit.events import Actor
from pscs.auth import service as auth
from pscs.cli.serve import uvicorn_config
from pscs.runtime import Runtime
from pscs.web.app import create_app

PASSWORD = "a-long-test-password-1"
HTML = {"accept": "text/html"}


def field_value(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no field {name} in page"
    return html.unescape(match.group(1))


def element_text(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert match, f"no element {element_id} in page"
    return html.unescape(match.group(1))


@dataclass
class Authenticator:
    """The user's phone: remembers each secret and never reuses a time step."""

    secrets: dict[str, str] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)

    def code(self, username: str) -> str:
        secret = self.secrets[username]  # a new installation has new secrets: steps are per secret
        totp = pyotp.TOTP(secret)
        step = max(int(time.time()) // 30, self.last_step.get(secret, 0) + 1)
        if step > int(time.time()) // 30 + 1:  # would be refused as too far ahead: wait a step
            time.sleep(30 - time.time() % 30 + 0.1)
            step = int(time.time()) // 30
        self.last_step[secret] = step
        return totp.generate_otp(step)


PHONE = Authenticator()


def client_for(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt), raise_server_exceptions=False)


def make_user(rt: Runtime, username: str, roles: list[str], password: str = PASSWORD) -> None:
    auth.create_user(
        rt,
        Actor.system("test-setup"),
        username=username,
        full_name=f"{username.title()} Tester",
        roles=roles,
        password=password,
    )


def submit_password(client: TestClient, username: str, password: str):  # noqa: ANN201
    page = client.get("/login").text
    return client.post(
        "/login",
        data={"username": username, "password": password, "login_csrf": field_value(page, "login_csrf")},
        follow_redirects=False,
    )


def sign_in(
    client: TestClient,
    username: str,
    password: str = PASSWORD,
    *,
    acknowledge: bool = True,
    new_password: str | None = None,
) -> TestClient:
    """The whole flow: password, MFA (enrolling on first use), password change, U3."""
    response = submit_password(client, username, password)
    assert response.status_code == 303, response.text
    page = client.get("/mfa").text
    if 'id="totp-secret"' in page:
        PHONE.secrets[username] = element_text(page, "totp-secret")
    response = client.post(
        "/mfa",
        data={"code": PHONE.code(username), "csrf_token": field_value(page, "csrf_token")},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/", response.text
    home = client.get("/", headers=HTML, follow_redirects=False)
    if home.status_code == 303 and home.headers["location"] == "/account/password":
        page = client.get("/account/password").text
        response = client.post(
            "/account/password",
            data={
                "current_password": password,
                "new_password": new_password or password + "-new",
                "confirm_password": new_password or password + "-new",
                "csrf_token": field_value(page, "csrf_token"),
            },
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        home = client.get("/", headers=HTML, follow_redirects=False)
    if acknowledge and home.status_code == 303 and home.headers["location"] == "/acknowledge":
        page = client.get("/acknowledge").text
        me_name = html.unescape(re.search(r"Type your full name \((.*?)\)", page).group(1))
        response = client.post(
            "/acknowledge",
            data={"typed_name": me_name, "training_completed": "true", "csrf_token": field_value(page, "csrf_token")},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
    return client


def csrf_of(client: TestClient) -> str:
    return client.get("/api/v1/me").json()["csrf_token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """The real app under uvicorn (HTTP and WebSockets), in a background thread."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
