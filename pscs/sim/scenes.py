"""What the simulated cameras show: pure functions that render a scene's frame.

Every picture the simulator encodes comes from these functions, so a test can render
the expected frame itself and compare decoded pixels against it.  The pictures keep
large flat regions (a grid of coloured cells) away from the burned-in caption, so a
comparison stays robust after lossy coding:

* the caption is drawn in a dark band at the top (``caption_band``); everything below
  it is the scene proper;
* ``clock`` scene: the band shows camera name and wall-clock time (UTC, to 1/10 s),
  the rest is ``render_grid(width, height)`` and never changes;
* ``loop`` scene: the grid plus a band of moving noise (``loop_noise_band``) that gives
  the encoder realistic work and bitrate.

Frames are RGB ``uint8`` arrays of shape (height, width, 3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Mid-saturation colours, distinct after 4:2:0 chroma subsampling and coarse quantization.
PALETTE = np.array(
    [
        (200, 60, 60),
        (60, 160, 70),
        (60, 90, 200),
        (210, 180, 50),
        (160, 70, 170),
        (50, 170, 170),
        (230, 130, 50),
        (120, 120, 120),
        (110, 190, 110),
        (190, 110, 140),
        (90, 140, 210),
        (170, 150, 100),
        (70, 110, 60),
        (200, 200, 200),
        (140, 60, 40),
        (60, 60, 120),
    ],
    dtype=np.uint8,
)
GRID_COLUMNS = 8
GRID_ROWS = 4
GRID_LINE_COLOR = (24, 24, 24)
CAPTION_BACKGROUND = (16, 16, 16)
CAPTION_COLOR = (255, 255, 255)


@dataclass(frozen=True)
class Box:
    """A pixel rectangle, ``x1``/``y1`` exclusive (NumPy slicing: ``frame[y0:y1, x0:x1]``)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def caption_band(width: int, height: int) -> Box:
    """Where the caption text is burned in: a full-width band at the top."""
    return Box(0, 0, width, max(12, height // 9))


def grid_line_width(width: int) -> int:
    return max(2, width // 320)


@lru_cache(maxsize=32)
def _grid(width: int, height: int) -> np.ndarray:
    frame = np.empty((height, width, 3), dtype=np.uint8)
    top = caption_band(width, height).y1
    frame[:top] = CAPTION_BACKGROUND
    cell_w = width / GRID_COLUMNS
    cell_h = (height - top) / GRID_ROWS
    line = grid_line_width(width)
    for row in range(GRID_ROWS):
        y0, y1 = top + round(row * cell_h), top + round((row + 1) * cell_h)
        for col in range(GRID_COLUMNS):
            x0, x1 = round(col * cell_w), round((col + 1) * cell_w)
            frame[y0:y1, x0:x1] = PALETTE[(row * 5 + col * 3) % len(PALETTE)]
            frame[y0:y1, x0 : x0 + line] = GRID_LINE_COLOR
        frame[y0 : y0 + line, :] = GRID_LINE_COLOR
    frame.flags.writeable = False
    return frame


def render_grid(width: int, height: int) -> np.ndarray:
    """The static background of the clock and loop scenes (caption band left blank)."""
    return _grid(width, height).copy()


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_caption(frame: np.ndarray, text: str) -> None:
    """Burn ``text`` into the caption band of ``frame`` (in place)."""
    height, width = frame.shape[:2]
    band = caption_band(width, height)
    image = Image.new("RGB", (band.width, band.height), CAPTION_BACKGROUND)
    font_size = max(8, int(band.height * 0.7))
    ImageDraw.Draw(image).text(
        (max(2, band.height // 4), band.height // 2),
        text,
        fill=CAPTION_COLOR,
        font=_font(font_size),
        anchor="lm",
    )
    frame[band.slices()] = np.asarray(image)


def format_wall_clock(unix_time: float) -> str:
    """UTC to the tenth of a second (truncated), e.g. ``2025-11-26 08:15:03.4Z``."""
    moment = dt.datetime.fromtimestamp(unix_time, dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 100_000}Z"


def clock_caption(camera_name: str, unix_time: float) -> str:
    return f"{camera_name}  {format_wall_clock(unix_time)}"


def render_clock_frame(camera_name: str, width: int, height: int, unix_time: float) -> np.ndarray:
    """The clock scene at ``unix_time``: the grid, with name and time in the caption band."""
    frame = render_grid(width, height)
    draw_caption(frame, clock_caption(camera_name, unix_time))
    return frame


def loop_noise_band(width: int, height: int) -> Box:
    """The loop scene's band of moving noise (the rest is ``render_grid``)."""
    top = caption_band(width, height).y1
    scene_h = height - top
    y0 = top + scene_h * 5 // 8
    return Box(0, y0, width, y0 + max(8, scene_h // 6))


def render_loop_frame(frame_index: int, width: int, height: int) -> np.ndarray:
    """Frame ``frame_index`` of the loop scene (deterministic: seeded by the index)."""
    frame = render_grid(width, height)
    band = loop_noise_band(width, height)
    rng = np.random.default_rng(frame_index)
    noise = rng.integers(0, 256, size=(band.height, (band.width + 3) // 4, 3), dtype=np.uint8)
    # Noise in 4-pixel-wide blocks: costly for the encoder, cheap to generate.
    frame[band.slices()] = np.repeat(noise, 4, axis=1)[:, : band.width]
    draw_caption(frame, f"pscs-sim loop {width}x{height} frame {frame_index:04d}")
    return frame
