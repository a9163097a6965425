"""Live latency, end to end over the real server: simulated camera (RTSP) → live hub →
WebSocket → this client.  The simulator stamps every picture with its capture time (an SEI
message, carried through the masked path too); the delay is the arrival time of the
fragment holding a picture minus that picture's capture time.  (The browser adds its own
decode and render time, about one frame.)"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from websockets.sync.client import connect

from pscs.sim import CameraSpec, SimulatorServer, parse_pscs_sei
from pscs.web.app import create_app
from pscs.web.routes.video import hub_of
from tests.test_console_browser import ServerThread
from tests.test_masking_egress import approve_zones, operator_with_purpose, register

pytestmark = pytest.mark.slow


def delays(base: str, cookie: str, camera_id: int, stream: str, pictures: int) -> tuple[list[float], list[dict]]:
    out: list[float] = []
    texts: list[dict] = []
    url = base.replace("http://", "ws://") + f"/api/v1/live/{camera_id}?stream={stream}"
    with connect(url, additional_headers={"Cookie": cookie, "Origin": base}, open_timeout=10) as ws:
        started = time.monotonic()
        while len(out) < pictures and time.monotonic() - started < 30:
            message = ws.recv(timeout=10)
            arrived = time.time()
            if isinstance(message, str):
                texts.append(json.loads(message))
                assert "error" not in texts[-1], texts[-1]
                continue
            if message[4:8] != b"moof":
                continue
            moof = int.from_bytes(message[:4], "big")
            captured = parse_pscs_sei(message[moof + 8 :])
            if captured is not None and time.monotonic() - started > 1.0:  # past the start-up GOP
                out.append(arrived - captured / 1e6)
    return out, texts


def test_live_latency_passthrough_and_masked(sqlite_runtime, record_property):
    rt = sqlite_runtime
    with SimulatorServer([CameraSpec("cam1"), CameraSpec("cam2")]) as sim:
        plain = register(rt, sim, "cam1")
        masked = register(rt, sim, "cam2")
        approve_zones(rt, masked)
        client = operator_with_purpose(rt)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        app = create_app(rt)
        try:
            with ServerThread(app) as server:
                results = {}
                for name, camera_id, limit in (("passthrough", plain, 1.0), ("masked", masked, 1.5)):
                    measured, texts = delays(server.url, cookie, camera_id, "main", 40)
                    assert {"masked": name == "masked"} in texts
                    assert len(measured) >= 20
                    p50, p95 = np.percentile(measured, 50), np.percentile(measured, 95)
                    results[name] = (p50, p95)
                    record_property(f"{name}_latency_p50_s", round(float(p50), 3))
                    record_property(f"{name}_latency_p95_s", round(float(p95), 3))
                    print(
                        f"\nlive latency {name}: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
                        f"({len(measured)} pictures, 640x360@15)"
                    )
                    assert p95 <= limit, f"{name} p95 {p95:.3f} s > {limit} s"
        finally:
            hub_of(app).close()
