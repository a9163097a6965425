"""What this machine can run: PostgreSQL, GStreamer, Chromium.

On a developer's machine a missing one skips its tests and the run's summary says so.
Under CI (``CI=true``) or ``PSCS_REQUIRE_ALL=1`` a missing one fails the run instead:
CI must run every test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

import pytest

PG_ADMIN_URL = os.environ.get("PSCS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE_ALL = os.environ.get("CI", "").lower() == "true" or os.environ.get("PSCS_REQUIRE_ALL") == "1"
SKIPPED: dict[str, str] = {}


@cache
def postgres_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        return f"no PostgreSQL server at {PG_ADMIN_URL} ({type(exc).__name__}: {str(exc).strip()[:120]})"
    return None


@cache
def gstreamer_problem() -> str | None:
    if not shutil.which("gst-launch-1.0"):
        return (
            "GStreamer is not installed "
            "(Debian: gstreamer1.0-tools gstreamer1.0-plugins-{base,good,bad,ugly} gstreamer1.0-x gstreamer1.0-libav)"
        )
    probe = (
        subprocess.run(
            [
                "/usr/bin/python3",
                "-c",
                "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer",
            ],
            capture_output=True,
            check=False,
        )
        if os.path.exists("/usr/bin/python3")
        else None
    )
    if probe is None or probe.returncode != 0:
        return (
            "GStreamer's RTSP server is not available to /usr/bin/python3 "
            "(Debian: python3-gi gir1.2-gst-rtsp-server-1.0)"
        )
    missing = [
        f"{element} ({package})"
        for element, package in GSTREAMER_ELEMENTS.items()
        if subprocess.run(["gst-inspect-1.0", "--exists", element], check=False).returncode != 0
    ]
    if missing:
        return "GStreamer elements missing: " + ", ".join(missing)
    return None


# The elements the GStreamer peers and clients in the tests use, and the Debian package of each.
GSTREAMER_ELEMENTS = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "timeoverlay": "gstreamer1.0-x",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "jpegenc": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtph264depay": "gstreamer1.0-plugins-good",
    "rtpjpegpay": "gstreamer1.0-plugins-good",
    "rtspsrc": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
    "avdec_h264": "gstreamer1.0-libav",
    "fakesink": "gstreamer1.0-tools",
}


@cache
def chromium_problem() -> str | None:
    if not chromium_path():
        return "Chromium is not installed (Debian: chromium)"
    return None


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require(kind: str, problem: str | None) -> None:
    """Skip (developer machine) or fail (CI) when a capability is missing."""
    if problem is None:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{kind} tests must run here but cannot: {problem}", pytrace=False)
    SKIPPED[kind] = problem
    pytest.skip(f"{kind}: {problem}")
