"""What every pscs process does once, before it serves, records or deletes anything.

The lower layers hold small registries that the packages above them fill: storage asks
the protection sources that retention (holds) and the storage requests (pending
requests) register, and a provisional hold names its request through a lookup the
requests package registers.  A process that skipped this deletes nothing (the protection
check fails closed) and shows no provisional hold.  The web app, the CLI and the service
call :func:`prepare`; so do tests and benchmarks that delete.
"""

from __future__ import annotations

from pscs import filemodes
from pscs.requests import registrations as requests_registrations
from pscs.retention import protection as retention_protection


def prepare() -> None:
    """Register every protection source and lookup, and keep new files from other local
    users (umask 027); idempotent."""
    filemodes.apply_service_umask()
    retention_protection.register()
    requests_registrations.register()
