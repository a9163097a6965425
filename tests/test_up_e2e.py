"""The README's first command: ``pscs up`` on a fresh data folder gives a running system
with simulated cameras online and recording, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_pscs_up_records_simulated_cameras(tmp_path: Path):
    data = tmp_path / "var"
    port, sim_port = free_port(), free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PSCS_DATA_DIR": str(data),
        "PSCS_PORT": str(port),
        "PSCS_SIM_PORT": str(sim_port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pscs.cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        states: list = []
        segments = 0
        while time.monotonic() < deadline:
            time.sleep(2)
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.load(r)["status"] == "ok"
            except OSError:
                continue
            with sqlite3.connect(data / "pscs.db") as db:
                states = db.execute("SELECT state FROM camera_health").fetchall()
                segments = db.execute("SELECT count(*) FROM segments").fetchone()[0]
            if len(states) == 4 and all(s == ("online",) for s in states) and segments >= 4:
                break
        assert len(states) == 4 and all(s == ("online",) for s in states), states
        assert segments >= 4
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert "one-time password" in out
    assert proc.returncode == 0, out[-3000:]
    verify = subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
