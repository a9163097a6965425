"""``pscs camera``: the camera registry (P0)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pscs.cameras import service as cameras
from pscs.cli.common import ID, cli_actor, console, fail, open_runtime, run_domain

app = typer.Typer(help="Register and manage cameras", no_args_is_help=True)


@app.command("add")
def add(
    name: str,
    main_url: Annotated[str, typer.Option("--main-url", help="Main stream RTSP URL")],
    address: Annotated[str, typer.Option("--address", help="Street address")],
    latitude: Annotated[float, typer.Option("--lat")],
    longitude: Annotated[float, typer.Option("--lon")],
    sub_url: Annotated[str | None, typer.Option("--sub-url", help="Low-resolution sub-stream RTSP URL")] = None,
    kind: Annotated[str, typer.Option(help="fixed or ptz")] = "fixed",
    onvif_url: Annotated[str | None, typer.Option("--onvif-url")] = None,
    onvif_username: Annotated[str | None, typer.Option("--onvif-username")] = None,
    onvif_password: Annotated[str | None, typer.Option("--onvif-password", envvar="PSCS_ONVIF_PASSWORD")] = None,
    public_area: Annotated[
        bool, typer.Option("--attest-public-area", help="P0: attest the camera overtly views public areas only")
    ] = False,
) -> None:
    """Register a camera (requires --attest-public-area)."""
    rt = open_runtime()
    view = run_domain(
        lambda: cameras.add_camera(
            rt,
            cli_actor(),
            name=name,
            street_address=address,
            latitude=latitude,
            longitude=longitude,
            main_url=main_url,
            sub_url=sub_url,
            kind=kind,
            onvif_url=onvif_url,
            onvif_username=onvif_username,
            onvif_password=onvif_password,
            public_area_attested=public_area,
        )
    )
    console.print(f"registered camera [bold]{view.name}[/] (id {view.id}): {view.main_url}")


@app.command("list")
def list_() -> None:
    """List cameras (credentials are never shown)."""
    rt = open_runtime()
    table = Table("id", "name", "kind", "address", "main stream", "enabled", "P0 attested by")
    for c in cameras.list_cameras(rt):
        table.add_row(
            str(c.id), c.name, c.kind, c.street_address, c.main_url, "yes" if c.enabled else "no", c.attested_by or ""
        )
    console.print(table)


@app.command("disable")
def disable(camera: str, reason: Annotated[str | None, typer.Option(help="Why, for the audit trail")] = None) -> None:
    """Stop recording a camera (its recordings stay until retention removes them)."""
    rt = open_runtime()
    view = run_domain(lambda: cameras.disable_camera(rt, cli_actor(), _ref(camera), reason))
    console.print(f"disabled {view.name}")


@app.command("enable")
def enable(camera: str) -> None:
    """Resume recording a disabled camera."""
    rt = open_runtime()
    view = run_domain(lambda: cameras.enable_camera(rt, cli_actor(), _ref(camera)))
    console.print(f"enabled {view.name}")


def _ref(camera: str) -> int | str:
    """A camera's id or name; a number past any id is refused here, not by the database."""
    if not (camera.isascii() and camera.isdigit()):
        return camera
    if not 1 <= int(camera) <= ID["max"]:
        raise fail(f"no camera {camera}: an id is a number from {ID['min']} to {ID['max']}", 2)
    return int(camera)
