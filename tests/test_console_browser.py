"""The console in a real browser (Playwright + Debian's Chromium) against a real server and
simulated RTSP cameras: sign in with MFA, open a purpose session, the live tile plays,
playback seeks to a chosen time, and without a session video is refused.  Screenshots of
the console go to build/ (kept by CI as artifacts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from pscs.audit.events import Actor
from pscs.cameras.service import add_camera
from pscs.sim import CameraSpec, SimulatorServer
from pscs.web.app import create_app
from pscs.web.routes.video import hub_of
from tests.capabilities import chromium_path
from tests.footage import record_clock_segments
from tests.web_helpers import PASSWORD, ServerThread, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("need_chromium")]

BUILD = Path(__file__).resolve().parents[1] / "build"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def console(sqlite_runtime) -> Iterator[tuple[str, int, int]]:
    rt = sqlite_runtime
    with SimulatorServer([CameraSpec("cam1")]) as sim:
        cam = add_camera(
            rt,
            Actor("admin", 1),
            name="cam1",
            street_address="1 Union Sq, Norwich, CT",
            latitude=41.52,
            longitude=-72.07,
            main_url=sim.url("cam1", "main"),
            sub_url=sim.url("cam1", "sub"),
            public_area_attested=True,
        ).id
        recorded_from = (int(time.time()) - 120) * 1000
        record_clock_segments(rt, cam, recorded_from, 20, camera_name="cam1", segment_seconds=4)
        make_user(rt, "opera", ["operator"])
        app = create_app(rt)
        with ServerThread(app) as server:
            yield server.url, cam, recorded_from
        hub_of(app).close()


def sign_in_with_mfa(page, base: str) -> None:  # noqa: ANN001
    page.goto(base + "/login")
    page.fill("input[name=username]", "opera")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    secret = page.inner_text("#totp-secret")  # enrolment shows the key once
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: not url.endswith("/mfa"))
    if page.url.endswith("/account/password"):
        page.fill("input[name=current_password]", PASSWORD)
        page.fill("input[name=new_password]", PASSWORD + "-new")
        page.fill("input[name=confirm_password]", PASSWORD + "-new")
        page.click("main button[type=submit]")
        page.wait_for_url(lambda url: not url.endswith("/account/password"))
    if page.url.endswith("/acknowledge"):
        page.check("input[name=training_completed]")
        page.fill("input[name=typed_name]", "Opera Tester")
        page.click("main button[type=submit]")
        page.wait_for_url(lambda url: not url.endswith("/acknowledge"))


def test_U1_U4_console_in_chromium(console):
    from playwright.sync_api import sync_playwright

    base, cam, recorded_from = console
    BUILD.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            sign_in_with_mfa(page, base)

            # Without a purpose session the console sends you to the picker and video is refused.
            page.goto(base + "/console/live")
            assert "/console?next=" in page.url
            refused = page.evaluate(
                f"fetch('/api/v1/cameras/{cam}/snapshot').then(async r => [r.status, await r.json()])"
            )
            assert refused[0] == 403 and "purpose session" in refused[1]["error"]["message"]

            page.check("input[name=purpose][value=emergency]")
            page.click("#open-purpose")
            page.wait_for_url(base + "/console/live")

            # The live tile plays: currentTime advances.
            page.wait_for_function(
                "() => { const v = document.querySelector('#live-grid video'); return v && v.currentTime > 0.3; }",
                timeout=30_000,
            )
            first = page.evaluate("document.querySelector('#live-grid video').currentTime")
            page.wait_for_timeout(1500)
            later = page.evaluate("document.querySelector('#live-grid video').currentTime")
            assert later > first + 0.5
            page.screenshot(path=str(BUILD / "console-live.png"), full_page=True)

            # Playback seeks to a chosen time.
            page.goto(f"{base}/console/playback/{cam}")
            target = recorded_from + 9_500
            page.wait_for_function("() => window.pscsPlayback !== undefined")
            page.evaluate("t => window.pscsPlayback.play(t)", target)
            page.wait_for_function(
                "t => { const p = window.pscsPlayback; return p.origin !== null && p.video.readyState >= 2"
                " && Math.abs(p.wallNow() - t) < 1500; }",
                arg=target,
                timeout=30_000,
            )
            page.screenshot(path=str(BUILD / "console-playback.png"), full_page=True)

            # Ending the purpose session ends access to video.
            page.click("#purpose-bar button[type=submit]")
            page.wait_for_url(base + "/console")
            status = page.evaluate(f"fetch('/api/v1/playback/{cam}/stream?start_ms={target}').then(r => r.status)")
            assert status == 403
        finally:
            browser.close()
