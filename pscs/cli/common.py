"""What every ``pscs`` sub-command shares: consoles, the CLI actor, opening the runtime."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import click
import typer
from rich.console import Console

from pscs import startup
from pscs.audit.events import Actor
from pscs.auth.principal import Principal
from pscs.clock import EARLIEST, LATEST, check_instant
from pscs.config import get_settings
from pscs.db.base import MAX_INT
from pscs.errors import PscsError
from pscs.policy.profile import ProfileError
from pscs.runtime import NotInitialised, Runtime

T = TypeVar("T")

# The ranges of an id and a year given on the command line, as ``typer.Option(**ID)``; the
# same bounds as the web's (pscs.web.defs.common).
ID = {"min": 1, "max": MAX_INT}
YEAR = {"min": EARLIEST.year, "max": LATEST.year}

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def cli_actor() -> Actor:
    """CLI actions are audited under the operating-system user who ran them."""
    return Actor(f"cli:{getpass.getuser()}", source_ip="local", user_agent="pscs-cli")


def cli_principal() -> Principal:
    """The command line acts as the installation itself, not as a signed-in user (no roles):
    whoever runs it on the server already holds the database and the keys, so it reads the
    records office's reports and the audit trail (the policy admits system principals)."""
    return Principal(cli_actor())


def instant(value: datetime | None) -> datetime | None:
    """A time option's callback: in UTC, and inside the window pscs accepts (pscs.clock)."""
    if value is None:
        return None
    try:
        return check_instant(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def open_runtime() -> Runtime:
    startup.prepare()  # every command that can reach the deletion path opens a runtime first
    try:
        rt = Runtime.open(get_settings())
    except (NotInitialised, ProfileError) as exc:
        raise fail(str(exc)) from exc
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(lambda: _sign_and_close(rt))
    return rt


def _sign_and_close(rt: Runtime) -> None:
    """A command signs the events it wrote before it ends (M1): the trail's newest events
    must not wait for the service, which may not be running, to be signed."""
    try:
        rt.audit.checkpoint()
    except Exception as exc:  # the command's own outcome stands; the trail's state is reported
        err.print(f"[bold yellow]warning:[/] the audit trail's head was not signed: {exc}", highlight=False)
    finally:
        rt.close()


def run_domain(action: Callable[[], T]) -> T:
    """Run a service call; a domain error becomes its message and exit status 2."""
    try:
        return action()
    except PscsError as exc:
        raise fail(exc.message, 2) from exc
