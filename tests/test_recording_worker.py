"""The recorder worker process stays lean: every module it imports is memory in every
worker, so it imports the recorder and the segment files and not the service around them,
not even the database layer (the supervisor indexes what workers write).  And it wakes only
when there is something to do: a camera's change of state is pushed to its loop, which
reports it at once, and otherwise it reports once a routine period."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pscs.cameras.sources import RecordingSource
from pscs.recording.camera import RecorderConfig
from pscs.recording.worker import WorkerSpec
from tests.peers.gst_rtsp_server import free_port

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


def _start_worker(tmp_path: Path, config: RecorderConfig) -> tuple[subprocess.Popen[bytes], Connection]:
    ours, theirs = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, "-m", "pscs.recording", str(theirs.fileno())], pass_fds=(theirs.fileno(),)
    )
    theirs.close()
    conn = Connection(ours.detach())
    conn.send(("spec", WorkerSpec(index=0, recordings_root=tmp_path, config=config)))
    return process, conn


def _reports(conn: Connection, seconds: float) -> list[tuple[float, list[dict[str, Any]]]]:
    """The health reports that arrive within ``seconds``, each with when it came."""
    reports, deadline = [], time.monotonic() + seconds
    while conn.poll(max(0.0, deadline - time.monotonic())):
        kind, payload = conn.recv()
        if kind == "health":
            reports.append((time.monotonic(), payload))
    return reports


def test_a_worker_reports_a_change_of_state_at_once_and_otherwise_only_once_a_routine_period(
    tmp_path: Path,
) -> None:
    # A routine period far longer than the test: every report seen is a pushed change.
    config = RecorderConfig(routine_s=600, state_report_s=0.3, reconnect_max_s=0.2, open_timeout_s=1)
    process, conn = _start_worker(tmp_path, config)
    try:
        assert len(_reports(conn, 1.0)) == 1  # the first routine report, at start
        nobody = f"rtsp://127.0.0.1:{free_port()}/main"  # connection refused, again and again
        conn.send(("cameras", ([RecordingSource(7, "cam 7", nobody)], {}, {})))
        sent = time.monotonic()
        reports = _reports(conn, 3.0)
        offline = [at for at, snapshots in reports for snap in snapshots if snap["state"] == "offline"]
        assert offline and offline[0] - sent < 1.5, reports
        assert "refused" in (reports[-1][1][0]["last_error"] or "")
        # It keeps retrying (several refused connections a second) without a report: the
        # state and the error stay the same, and nothing polls for them.
        assert _reports(conn, 2.0) == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(5)  # the signal rings the loop's waker: no waiting out the routine period
        conn.close()
    assert process.returncode == 0
