"""Helpers for tests of the ways video leaves pscs: cameras, zones approved by two people,
an operator inside a purpose, and checks of decoded pictures against the simulator's scene."""

from __future__ import annotations

import io
import time

import av
import numpy as np

from pscs.audit.events import Actor
from pscs.auth.principal import Principal
from pscs.cameras.service import add_camera
from pscs.sim import SimulatorServer
from pscs.sim.scenes import caption_band, render_grid
from pscs.video import zones as zone_service
from pscs.video.masking import MASK_Y, zone_mask
from pscs.video.zones import ZONES
from tests.web_helpers import client_for, csrf_of, make_user, sign_in

ADMIN = Actor("admin", 1)
ZONES_DRAWN = [
    {"label": "front door", "points": [[0.125, 0.35], [0.45, 0.35], [0.45, 0.8], [0.125, 0.8]]},
    {"label": "window", "points": [[0.6, 0.3], [0.92, 0.45], [0.7, 0.9]]},
]
Y_TOLERANCE = 2  # zones cover whole macroblocks, so they decode flat; 2 allows a chroma rounding
START_MS = 1_750_000_000_000


def register(rt, sim: SimulatorServer | None, name: str) -> int:
    main = sim.url(name, "main") if sim else f"rtsp://127.0.0.1:9/{name}/main"
    sub = sim.url(name, "sub") if sim else None
    return add_camera(
        rt,
        ADMIN,
        name=name,
        street_address="1 Union Sq, Norwich, CT",
        latitude=41.52,
        longitude=-72.07,
        main_url=main,
        sub_url=sub,
        public_area_attested=True,
    ).id


def approve_zones(rt, camera_id: int) -> None:
    """An administrator proposes, a supervisor approves (the U4 change process)."""
    make_user(rt, "zane", ["admin"])
    make_user(rt, "sara", ["supervisor"])
    from pscs.auth.service import find_user

    admin, sup = find_user(rt, "zane"), find_user(rt, "sara")
    version = zone_service.propose_zones(
        rt, Principal(Actor("zane", admin.id), frozenset({"admin"}), 0), camera_id, ZONES_DRAWN
    )
    zone_service.decide_zones(
        rt, Principal(Actor("sara", sup.id), frozenset({"supervisor"}), 0), version["id"], approve=True
    )
    ZONES.invalidate()


def operator_with_purpose(rt, username: str = "olga", roles: tuple[str, ...] = ("operator",)):
    make_user(rt, username, list(roles))
    client = sign_in(client_for(rt), username)
    client.headers["x-csrf-token"] = csrf_of(client)
    assert client.post("/api/v1/purpose-sessions", json={"purpose": "emergency"}).status_code == 201
    return client


def planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for plane, (w, h) in zip(
        frame.planes,
        [(frame.width, frame.height)] + [((frame.width + 1) // 2, (frame.height + 1) // 2)] * 2,
        strict=True,
    ):
        rows = plane.buffer_size // plane.line_size
        out.append(np.frombuffer(plane, np.uint8).reshape(rows, plane.line_size)[:h, :w])
    return out[0], out[1], out[2]


def assert_masked_and_faithful(frame: av.VideoFrame, zones) -> None:
    """Every pixel of the zones is the mask colour; the picture elsewhere is the source's."""
    w, h = frame.width, frame.height
    mask = zone_mask(zones, w, h)
    y, u, v = planes(frame)
    ym = y[mask.luma].astype(int)
    assert np.abs(ym - MASK_Y).max() <= Y_TOLERANCE, (ym.min(), ym.max())
    for chroma in (u, v):
        cm = chroma[mask.chroma].astype(int)
        assert np.abs(cm - 128).max() <= Y_TOLERANCE, (cm.min(), cm.max())
    # The source under the zones is nowhere near black: masking, not a dark picture.
    grid = render_grid(w, h).astype(int)
    source_y = (16 + (65.738 * grid[..., 0] + 129.057 * grid[..., 1] + 25.064 * grid[..., 2]) / 256)[mask.luma]
    assert np.median(source_y) > MASK_Y + 3 * Y_TOLERANCE
    # Away from the zones (by 8 px) and below the caption, the picture matches the source.
    away = ~mask.luma
    for _ in range(8):
        grown = away.copy()
        grown[1:] &= away[:-1]
        grown[:-1] &= away[1:]
        grown[:, 1:] &= away[:, :-1]
        grown[:, :-1] &= away[:, 1:]
        away = grown
    away[: caption_band(w, h).y1 + 4] = False
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    diff = np.abs(rgb - grid)[away]
    assert diff.mean() < 6, diff.mean()


def decode_all(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


def wait_for_audit(rt, action: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rt.audit.search(action_prefix=action, limit=5)
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {action} event")


def top_level_boxes(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of each top-level ISO BMFF box of an MP4 byte stream."""
    out, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        out.append((offset, data[offset + 4 : offset + 8]))
        if size < 8:
            break
        offset += size
    return out
