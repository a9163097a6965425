"""The ``pscs`` command line."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pscs.cli.common import cli_actor, cli_principal, console, err, fail, instant, open_runtime, run_domain
from pscs.config import get_settings
from pscs.errors import PscsError
from pscs.policy.profile import ROLES, ProfileError, load_profile

if TYPE_CHECKING:  # the commands import the services lazily, to start fast
    from pscs.auth.models import User

app = typer.Typer(help="pscs — Public Safety Camera System", no_args_is_help=True, add_completion=False)
user_app = typer.Typer(help="Manage user accounts", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail (M1)", no_args_is_help=True)
policy_app = typer.Typer(help="The policy profile", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")


# Installation ------------------------------------------------------------------------------
@app.command()
def init(
    admin_username: Annotated[str, typer.Option(help="First administrator's user name")] = "admin",
    admin_name: Annotated[str, typer.Option(help="First administrator's full name")] = "System Administrator",
    admin_password: Annotated[
        str | None, typer.Option(envvar="PSCS_ADMIN_PASSWORD", help="Default: a generated one-time password")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing installation (destroys it)")] = False,
) -> None:
    """Create the data folder, database, signing keys and the first administrator."""
    from pscs.install import AlreadyInitialised, init_installation

    settings = get_settings()
    try:
        result = init_installation(
            settings,
            admin_username=admin_username,
            admin_full_name=admin_name,
            admin_password=admin_password,
            force=force,
            actor=cli_actor(),
        )
    except (AlreadyInitialised, ProfileError, PscsError) as exc:
        raise fail(str(exc)) from exc
    result.runtime.close()
    console.print(
        f"Initialised pscs in [bold]{settings.data_dir.resolve()}[/] "
        f"(database: {settings.public_dict()['database_url']})"
    )
    _print_admin_password(result.admin_username, result.admin_password, shown=admin_password is None)


def _print_admin_password(username: str, password: str, *, shown: bool) -> None:
    if shown:
        console.print(f"First administrator: [bold]{username}[/]  one-time password: [bold yellow]{password}[/]")
        console.print("This password is shown once. At first sign-in you set your own and enrol an authenticator app.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations to the configured database."""
    from pscs.schema.migrate import upgrade

    upgrade(get_settings().db_url)
    console.print("database schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: PSCS_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Default: PSCS_PORT or 8000")] = None,
) -> None:
    """Run the web console and API (and the background services)."""
    from pscs.cli.serve import run_server

    rt = open_runtime()
    run_server(rt, host or rt.settings.host, port or rt.settings.port)


@app.command()
def up(
    admin_password: Annotated[str | None, typer.Option(envvar="PSCS_ADMIN_PASSWORD")] = None,
    simulate: Annotated[bool, typer.Option(help="Start and record the simulated cameras")] = True,
) -> None:
    """Initialise on first run, then run everything here: simulated cameras, recorder, console."""
    from pscs.cli.serve import register_simulated_cameras, run_server
    from pscs.install import init_installation, is_initialised
    from pscs.sim.server import SimulatorServer

    settings = get_settings()
    if not is_initialised(settings):
        result = init_installation(settings, admin_password=admin_password, actor=cli_actor())
        result.runtime.close()
        console.print(f"Initialised pscs in [bold]{settings.data_dir.resolve()}[/]")
        _print_admin_password(result.admin_username, result.admin_password, shown=admin_password is None)
    rt = open_runtime()
    sim = None
    if simulate:
        sim = SimulatorServer(host="127.0.0.1", port=settings.sim_port).start()
        added = register_simulated_cameras(rt, sim)
        console.print(
            f"simulated cameras on rtsp://127.0.0.1:{sim.port}/ ({', '.join(s.name for s in sim.cameras)})"
            + (f"; registered {', '.join(added)}" if added else "")
        )
    console.print(f"pscs console: [bold]http://{rt.settings.host}:{rt.settings.port}/[/]  (Ctrl-C stops)")
    try:
        run_server(rt, rt.settings.host, rt.settings.port)
    finally:
        if sim is not None:
            sim.stop()


# Users --------------------------------------------------------------------------------------
@user_app.command("add")
def user_add(
    username: str,
    name: Annotated[str, typer.Option("--name", help="Full name")],
    role: Annotated[list[str], typer.Option("--role", help=f"Repeat for several: {', '.join(ROLES)}")],
    password: Annotated[
        str | None, typer.Option(envvar="PSCS_NEW_USER_PASSWORD", help="Default: a generated one-time password")
    ] = None,
) -> None:
    """Add a user; prints a one-time password unless one is given."""
    from pscs.auth import service as auth

    rt = open_runtime()
    one_time = password or auth.generate_password()
    run_domain(
        lambda: auth.create_user(rt, cli_actor(), username=username, full_name=name, roles=role, password=one_time)
    )
    console.print(f"added [bold]{username}[/] with roles {', '.join(sorted(set(role)))}")
    if password is None:
        console.print(f"one-time password: [bold yellow]{one_time}[/] (shown once)")


@user_app.command("list")
def user_list() -> None:
    """List users, their roles and state."""
    from pscs.auth import service as auth

    rt = open_runtime()
    _print_users(auth.list_users(rt, cli_principal()))


@user_app.command("show")
def user_show(username: str) -> None:
    """One user, their roles and state."""
    from pscs.auth import service as auth

    rt = open_runtime()
    _print_users([run_domain(lambda: auth.read_user(rt, cli_principal(), username))])


def _print_users(users: list[User]) -> None:
    table = Table("user", "name", "roles", "MFA", "state")
    for u in users:
        state = (
            "disabled"
            if u.disabled
            else ("locked" if u.locked_until and u.locked_until > datetime.now(u.locked_until.tzinfo) else "active")
        )
        table.add_row(
            u.username,
            u.full_name,
            ", ".join(sorted(u.role_names)),
            "enrolled" if u.mfa_enrolled else "not enrolled",
            state,
        )
    console.print(table)


@user_app.command("roles")
def user_roles(
    username: str,
    role: Annotated[
        list[str], typer.Option("--role", help=f"The user's roles from now on; repeat: {', '.join(ROLES)}")
    ],
) -> None:
    """Set a user's roles (never your own: the account of your operating-system user name)."""
    from pscs.auth import service as auth

    rt = open_runtime()
    change = run_domain(lambda: auth.update_user(rt, cli_actor(), username, roles=role))
    assert change is not None
    console.print(f"{username} now holds {', '.join(change.after) or 'no role'}")
    if change.waiting:
        console.print(f"waiting for a second administrator: {', '.join(change.pending_roles)}")


@user_app.command("grants")
def user_grants() -> None:
    """Roles given by one administrator that wait for a second."""
    from pscs.auth import grants

    rt = open_runtime()
    table = Table("grant", "user", "role", "given by", "when (UTC)")
    for g in grants.list_role_grants(rt):
        table.add_row(str(g.id), g.username, g.role, g.requested_by, g.requested_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


def _decide_grant(grant_id: int, *, approve: bool) -> None:
    from pscs.auth import grants

    rt = open_runtime()
    view = run_domain(lambda: grants.decide_role_grant(rt, cli_principal(), grant_id, approve=approve))
    console.print(f"role grant {view.id} ({view.role} for {view.username}) {view.status}")


@user_app.command("approve")
def user_approve(grant_id: int) -> None:
    """Approve a role grant as the second administrator (not the one who gave it)."""
    _decide_grant(grant_id, approve=True)


@user_app.command("reject")
def user_reject(grant_id: int) -> None:
    """Reject a role grant."""
    _decide_grant(grant_id, approve=False)


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable an account and end its sessions."""
    from pscs.auth import service as auth

    rt = open_runtime()
    run_domain(lambda: auth.update_user(rt, cli_actor(), username, disabled=True))
    console.print(f"disabled {username}")


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled account."""
    from pscs.auth import service as auth

    rt = open_runtime()
    run_domain(lambda: auth.update_user(rt, cli_actor(), username, disabled=False))
    console.print(f"enabled {username}")


@user_app.command("reset-mfa")
def user_reset_mfa(username: str) -> None:
    """Make the user enrol a new authenticator at next sign-in."""
    from pscs.auth import service as auth

    rt = open_runtime()
    run_domain(lambda: auth.reset_mfa(rt, cli_actor(), username))
    console.print(f"{username} will enrol a new authenticator at next sign-in")


@user_app.command("reset-password")
def user_reset_password(username: str) -> None:
    """Issue a new one-time password (and unlock the account)."""
    from pscs.auth import service as auth

    rt = open_runtime()
    password = run_domain(lambda: auth.reset_password(rt, cli_actor(), username))
    console.print(f"one-time password for {username}: [bold yellow]{password}[/] (shown once)")


# Policy -------------------------------------------------------------------------------------
@policy_app.command("show")
def policy_show(
    profile: Annotated[Path | None, typer.Option(help="A profile file to check instead of the active one")] = None,
) -> None:
    """Print the active policy profile (or validate another)."""
    import yaml

    path = profile or get_settings().policy_profile
    try:
        loaded = load_profile(path)
    except ProfileError as exc:
        raise fail(str(exc)) from exc
    console.print(f"# policy profile: {path or 'norwich (default)'}")
    console.print(yaml.safe_dump(loaded.model_dump(mode="json"), sort_keys=False), markup=False, highlight=False)


# Audit --------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(
    public_key: Annotated[
        Path | None, typer.Option(help="Checkpoint public key (default: this installation's)")
    ] = None,
    anchors: Annotated[
        list[str] | None,
        typer.Option("--anchors", help="Signed heads sent off the machine: a file of them, or file:// or s3:// URL"),
    ] = None,
) -> None:
    """Recompute the hash chain, the checkpoints and their cadence, and match the chain against
    the signer's record and any anchors; exit 0 when intact, 3 naming the first bad seq and
    every break found."""
    from pscs.audit.anchors import read_anchored_heads
    from pscs.oversight.audit_trail import verify_trail

    try:
        anchored = read_anchored_heads([str(Path(a).resolve()) if "://" not in a else a for a in anchors or []])
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    rt = open_runtime()
    key = public_key.read_bytes() if public_key else None
    result = run_domain(lambda: verify_trail(rt, cli_principal(), public_key_pem=key, anchors=anchored))
    if result.ok:
        console.print(
            f"audit trail intact: {result.events_checked} events, {result.checkpoints_checked} signed checkpoints"
        )
        return
    err.print(f"[bold red]audit trail BROKEN at seq {result.first_bad_seq}[/]: {result.reason}", highlight=False)
    for seq, reason in result.problems[1:]:
        err.print(f"  also at seq {seq}: {reason}", markup=False, highlight=False)
    raise typer.Exit(3)


@audit_app.command("export")
def audit_export(
    since: Annotated[datetime | None, typer.Option(help="UTC, ISO 8601", callback=instant)] = None,
    until: Annotated[datetime | None, typer.Option(help="UTC, ISO 8601", callback=instant)] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: standard output")] = None,
) -> None:
    """Export events for an investigation's case file."""
    from pscs.audit.export import FORMATS, export_lines
    from pscs.oversight.audit_trail import export_events

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    rt = open_runtime()
    rows = run_domain(
        lambda: export_events(rt, cli_principal(), since=since, until=until, fmt=fmt, destination=str(output or "-"))
    )
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        for line in export_lines(rows, fmt):
            out.write(line)
    finally:
        if output:
            out.close()


@audit_app.command("pubkey")
def audit_pubkey() -> None:
    """Print the public key that verifies checkpoints (give it to auditors)."""
    rt = open_runtime()
    sys.stdout.write(rt.audit_public_key_path.read_text())


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's current head now (refused, exit 3, unless it extends the last head signed)."""
    from pscs.audit.signed_heads import SigningRefused

    rt = open_runtime()
    try:
        seq = rt.audit.checkpoint()
    except SigningRefused as exc:
        raise fail(f"not signed: {exc.message}", 3) from exc
    console.print(f"checkpoint at seq {seq}")


from pscs.cli import cameras as camera_cli  # noqa: E402 - sub-apps after the main app
from pscs.sim.cli import app as sim_app  # noqa: E402

app.add_typer(camera_cli.app, name="camera")
app.add_typer(sim_app, name="sim")

from pscs.cli import records as records_cli  # noqa: E402

app.add_typer(records_cli.retention_app, name="retention")
app.add_typer(records_cli.hold_app, name="hold")
app.add_typer(records_cli.request_app, name="request")
app.add_typer(records_cli.evidence_app, name="evidence")
app.add_typer(records_cli.compliance_app, name="compliance")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
