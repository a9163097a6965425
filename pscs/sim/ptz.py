"""The virtual PTZ camera: a window onto a procedurally generated 360° panorama.

Panorama coordinates are angles in degrees: **pan** in [-180, 180), growing to the right
(east), and **tilt**, growing upwards, 0 at the horizon.  The panorama is a grid of flat
coloured 5°x5° cells with dark lines between them, plus two fixed features that the
privacy tests use (``PRIVATE_WINDOW`` and ``DOORWAY``).

A position (pan, tilt, zoom) shows the angles around its centre with a horizontal field
of view of ``BASE_HORIZONTAL_FOV_DEG / zoom`` and a vertical one in proportion to the
picture's aspect ratio.  The mapping from angles to pixels is linear (an equirectangular
crop, not a lens projection) so that a rectangle of the panorama is a rectangle of the
picture: see ``project_point`` and ``project_rect``.  Pixel (x, y) shows the panorama
at its centre, ``pan = pan0 + ((x + 0.5) / width - 0.5) * hfov``, and likewise for tilt.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pscs.sim.scenes import PALETTE, Box, draw_caption, format_wall_clock

BASE_HORIZONTAL_FOV_DEG = 60.0
MIN_ZOOM = 1.0
MAX_ZOOM = 10.0
#: Limits of the view's centre; pan wraps around, tilt is clamped.
TILT_MIN_DEG = -40.0
TILT_MAX_DEG = 40.0
CELL_DEG = 5.0
GRID_LINE_DEG = 0.25
GRID_LINE_COLOR = (24, 24, 24)


@dataclass(frozen=True)
class PanoramaRect:
    """A rectangle of the panorama in degrees: pan in [pan_min, pan_max), tilt in [tilt_min, tilt_max)."""

    pan_min: float
    pan_max: float
    tilt_min: float
    tilt_max: float

    @property
    def center(self) -> tuple[float, float]:
        return (self.pan_min + self.pan_max) / 2, (self.tilt_min + self.tilt_max) / 2


#: A lit window of a private dwelling, just above the horizon: the privacy mask's first target.
PRIVATE_WINDOW = PanoramaRect(pan_min=40.0, pan_max=48.0, tilt_min=2.0, tilt_max=8.0)
PRIVATE_WINDOW_COLOR = (255, 230, 90)
#: A doorway at street level, west of north.
DOORWAY = PanoramaRect(pan_min=-20.0, pan_max=-15.0, tilt_min=-12.0, tilt_max=-2.0)
DOORWAY_COLOR = (90, 50, 25)


def wrap_pan(pan: float) -> float:
    """Pan angle into [-180, 180)."""
    return (pan + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class PtzPosition:
    pan: float = 0.0  # degrees, [-180, 180)
    tilt: float = 0.0  # degrees, [TILT_MIN_DEG, TILT_MAX_DEG]
    zoom: float = 1.0  # magnification, [MIN_ZOOM, MAX_ZOOM]

    def normalized(self) -> PtzPosition:
        return PtzPosition(
            pan=wrap_pan(self.pan),
            tilt=min(TILT_MAX_DEG, max(TILT_MIN_DEG, self.tilt)),
            zoom=min(MAX_ZOOM, max(MIN_ZOOM, self.zoom)),
        )

    def fields_of_view(self, width: int, height: int) -> tuple[float, float]:
        """(horizontal, vertical) field of view in degrees for a picture of this size."""
        horizontal = BASE_HORIZONTAL_FOV_DEG / self.zoom
        return horizontal, horizontal * height / width


def project_point(position: PtzPosition, pan: float, tilt: float, width: int, height: int) -> tuple[float, float]:
    """Picture coordinates (x, y), in pixels from the top-left corner, of a panorama angle.

    The result may lie outside the picture; pixel ``i`` spans [i, i + 1).
    """
    hfov, vfov = position.fields_of_view(width, height)
    x = (wrap_pan(pan - position.pan) / hfov + 0.5) * width
    y = (0.5 - (tilt - position.tilt) / vfov) * height
    return x, y


def project_rect(position: PtzPosition, rect: PanoramaRect, width: int, height: int) -> Box | None:
    """The pixels whose centres show ``rect`` at ``position``, clipped to the picture; None if none."""
    x_min, y_top = project_point(position, rect.pan_min, rect.tilt_max, width, height)
    x_max = x_min + (rect.pan_max - rect.pan_min) / position.fields_of_view(width, height)[0] * width
    _, y_bottom = project_point(position, rect.pan_min, rect.tilt_min, width, height)
    x0 = max(0, math.ceil(x_min - 0.5))
    x1 = min(width, math.ceil(x_max - 0.5))
    y0 = max(0, math.floor(y_top - 0.5) + 1)
    y1 = min(height, math.floor(y_bottom - 0.5) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return Box(x0, y0, x1, y1)


def _in_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values >= low) & (values < high)


def render_panorama_view(position: PtzPosition, width: int, height: int) -> np.ndarray:
    """What the camera sees at ``position``, without caption (pure; RGB uint8)."""
    return _panorama_view(position.normalized(), width, height).copy()


@lru_cache(maxsize=8)
def _panorama_view(position: PtzPosition, width: int, height: int) -> np.ndarray:
    # Cached: a PTZ camera mostly stands still, and rendering costs a few milliseconds.
    hfov, vfov = position.fields_of_view(width, height)
    pans = wrap_pan(position.pan + ((np.arange(width) + 0.5) / width - 0.5) * hfov)
    tilts = position.tilt + (0.5 - (np.arange(height) + 0.5) / height) * vfov

    cell_cols = np.floor((pans + 180.0) / CELL_DEG).astype(np.int64)
    cell_rows = np.floor((tilts + 90.0) / CELL_DEG).astype(np.int64)
    colour_index = (cell_rows[:, None] * 5 + cell_cols[None, :] * 3) % len(PALETTE)
    frame = PALETTE[colour_index]

    on_line_cols = np.mod(pans + 180.0, CELL_DEG) < GRID_LINE_DEG
    on_line_rows = np.mod(tilts + 90.0, CELL_DEG) < GRID_LINE_DEG
    frame[on_line_rows[:, None] | on_line_cols[None, :]] = GRID_LINE_COLOR

    for rect, colour in ((PRIVATE_WINDOW, PRIVATE_WINDOW_COLOR), (DOORWAY, DOORWAY_COLOR)):
        # Shift pans so that a rectangle near the ±180° seam still matches.
        relative = wrap_pan(pans - rect.pan_min)
        cols = _in_range(relative, 0.0, rect.pan_max - rect.pan_min)
        rows = _in_range(tilts, rect.tilt_min, rect.tilt_max)
        frame[rows[:, None] & cols[None, :]] = colour
    frame.flags.writeable = False
    return frame


def ptz_caption(camera_name: str, position: PtzPosition, unix_time: float) -> str:
    return (
        f"{camera_name}  {format_wall_clock(unix_time)}  "
        f"P{position.pan:+.1f} T{position.tilt:+.1f} Z{position.zoom:.1f}x"
    )


def render_ptz_frame(camera_name: str, position: PtzPosition, width: int, height: int, unix_time: float) -> np.ndarray:
    """The PTZ scene: the panorama view with name, time and position burned into the caption band."""
    frame = render_panorama_view(position, width, height)
    draw_caption(frame, ptz_caption(camera_name, position, unix_time))
    return frame


class VirtualPtz:
    """The pan/tilt/zoom state of one simulated PTZ camera; safe to use from any thread.

    Positions are normalized on the way in: pan wraps into [-180, 180), tilt and zoom
    are clamped to [TILT_MIN_DEG, TILT_MAX_DEG] and [MIN_ZOOM, MAX_ZOOM].  The encoder
    reads the position once per frame, so a move shows from the next frame on.
    """

    def __init__(self, position: PtzPosition | None = None) -> None:
        self._lock = threading.Lock()
        self._position = (position or PtzPosition()).normalized()

    @property
    def position(self) -> PtzPosition:
        with self._lock:
            return self._position

    def move_to(self, pan: float | None = None, tilt: float | None = None, zoom: float | None = None) -> PtzPosition:
        """Absolute move; an omitted axis keeps its value.  Returns the position reached."""
        with self._lock:
            current = self._position
            self._position = PtzPosition(
                pan=current.pan if pan is None else pan,
                tilt=current.tilt if tilt is None else tilt,
                zoom=current.zoom if zoom is None else zoom,
            ).normalized()
            return self._position

    def move_by(self, pan: float = 0.0, tilt: float = 0.0, zoom_factor: float = 1.0) -> PtzPosition:
        """Relative move: add degrees to pan and tilt, multiply zoom.  Returns the position reached."""
        with self._lock:
            current = self._position
            self._position = PtzPosition(
                current.pan + pan, current.tilt + tilt, current.zoom * zoom_factor
            ).normalized()
            return self._position

    def project(self, pan: float, tilt: float, width: int, height: int) -> tuple[float, float]:
        """``project_point`` at the current position."""
        return project_point(self.position, pan, tilt, width, height)

    def project_rect(self, rect: PanoramaRect, width: int, height: int) -> Box | None:
        """``project_rect`` at the current position."""
        return project_rect(self.position, rect, width, height)
