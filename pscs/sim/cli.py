"""``pscs sim``: run the camera simulator from the command line.

pscs sim serve --port 8554                 # the demo set: cam1..cam3 (clock) + ptz1
pscs sim serve --cameras 50 --scene loop   # cam01..cam50, 720p25 loops
pscs sim urls --cameras 4 --scene clock    # just print the URLs
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from pscs.sim.server import SCENES, CameraSpec, Scene, SimulatorServer, default_cameras, make_cameras

app = typer.Typer(help="Simulated RTSP cameras for development, CI and benchmarks.", no_args_is_help=True)

PortOption = Annotated[int, typer.Option("--port", "-p", help="TCP port for RTSP (0: any free port).")]
HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]
CamerasOption = Annotated[
    int,
    typer.Option("--cameras", "-n", min=0, help="Number of cameras of --scene; 0: the demo set (3 clock + 1 PTZ)."),
]
SceneOption = Annotated[str, typer.Option("--scene", "-s", help=f"Scene of the cameras: {', '.join(SCENES)}.")]


def _cameras(count: int, scene: str) -> list[CameraSpec]:
    if scene not in SCENES:
        raise typer.BadParameter(f"must be one of {', '.join(SCENES)}", param_hint="--scene")
    scene_name: Scene = scene  # type: ignore[assignment]
    return make_cameras(count, scene_name) if count else default_cameras()


def _print_urls(server: SimulatorServer) -> None:
    for camera in server.cameras:
        typer.echo(f"{camera.name:<10} {camera.scene:<6} {server.url(camera.name, 'main')}")
        typer.echo(f"{'':<10} {'':<6} {server.url(camera.name, 'sub')}")


@app.command()
def serve(
    port: PortOption = 8554,
    host: HostOption = "127.0.0.1",
    cameras: CamerasOption = 0,
    scene: SceneOption = "clock",
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Where encoded loops are kept (default ~/.cache/pscs-sim)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every RTSP request.")] = False,
) -> None:
    """Serve simulated cameras over RTSP until Ctrl-C."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = SimulatorServer(_cameras(cameras, scene), host=host, port=port, cache_dir=cache_dir)

    async def run() -> None:
        stop = asyncio.Event()
        # SIGINT and SIGTERM stop it, even when started from a script that ignores SIGINT
        # (as a shell does for the commands it runs in the background).
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await server.start_async()
        _print_urls(server)
        typer.echo("Ctrl-C to stop.")
        try:
            await stop.wait()
        finally:
            await server.stop_async()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command()
def urls(
    port: PortOption = 8554,
    host: HostOption = "127.0.0.1",
    cameras: CamerasOption = 0,
    scene: SceneOption = "clock",
) -> None:
    """Print the RTSP URLs that ``serve`` with the same options serves."""
    _print_urls(SimulatorServer(_cameras(cameras, scene), host=host, port=port))


if __name__ == "__main__":
    app()
