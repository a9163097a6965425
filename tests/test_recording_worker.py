"""The recorder worker process stays lean: every module it imports is memory in every
worker, so it imports the recorder and the segment files and not the service around them,
not even the database layer (the supervisor indexes what workers write)."""

from __future__ import annotations

import json
import subprocess
import sys

# The service's layers a worker has no use for (and the heavy libraries they bring).
NOT_IN_A_WORKER = (
    "pscs.web",
    "pscs.cli",
    "pscs.audit",
    "pscs.runtime",
    "pscs.db",
    "fastapi",
    "typer",
    "rich",
    "pydantic",
    "sqlalchemy",
    "multiprocessing",  # ~2.5 MB of imports for two dozen lines of framing (pscs.recording.worker.Wire)
)


def test_a_worker_process_imports_neither_the_web_nor_the_cli_nor_the_audit_nor_the_database_layer() -> None:
    # The real entry point, given a connection whose supervisor end is already closed: it
    # imports everything a worker imports, finds no spec and returns.
    probe = (
        "import json, runpy, socket, sys\n"
        "ours, theirs = socket.socketpair()\n"
        "theirs.close()\n"
        "sys.argv = ['pscs.recording', str(ours.detach())]\n"
        "runpy.run_module('pscs.recording', run_name='__main__')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    modules = json.loads(out.stdout.splitlines()[-1])
    assert "pscs.recording.worker" in modules and "av" in modules
    loaded = [m for m in modules if any(m == bad or m.startswith(bad + ".") for bad in NOT_IN_A_WORKER)]
    assert loaded == []
