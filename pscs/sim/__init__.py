"""pscs camera simulator: simulated cameras that speak real RTSP (H.264 over RTP, TCP interleaved).

See docs/design/simulator.md.  Entry points: ``SimulatorServer`` (Python), ``pscs sim`` (CLI).
"""

from pscs.sim.encoder import StreamSettings
from pscs.sim.h264 import PSCS_SEI_UUID, build_pscs_sei, parse_pscs_sei
from pscs.sim.ptz import (
    DOORWAY,
    PRIVATE_WINDOW,
    PanoramaRect,
    PtzPosition,
    VirtualPtz,
    project_point,
    project_rect,
    render_panorama_view,
    render_ptz_frame,
)
from pscs.sim.scenes import (
    Box,
    caption_band,
    loop_noise_band,
    render_clock_frame,
    render_grid,
    render_loop_frame,
)
from pscs.sim.server import CameraSpec, SimulatorServer, default_cameras, make_cameras

__all__ = [
    "DOORWAY",
    "PRIVATE_WINDOW",
    "PSCS_SEI_UUID",
    "Box",
    "CameraSpec",
    "PanoramaRect",
    "PtzPosition",
    "SimulatorServer",
    "StreamSettings",
    "VirtualPtz",
    "build_pscs_sei",
    "caption_band",
    "default_cameras",
    "loop_noise_band",
    "make_cameras",
    "parse_pscs_sei",
    "project_point",
    "project_rect",
    "render_clock_frame",
    "render_grid",
    "render_loop_frame",
    "render_panorama_view",
    "render_ptz_frame",
]
