"""Data files are for the service account and its group only (finding 7): a new installation,
recordings and the database are not readable by other local users even when pscs is started
from a shell with umask 022, and ``pscs compliance check`` names anything more open."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pscs.filemodes import SERVICE_UMASK, too_open
from pscs.storage.segment_files import SegmentWriter

ADMIN_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def pscs(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PSCS_DATA_DIR": str(data_dir),
        "HOME": str(data_dir.parent),
        "PSCS_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    return subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),  # a login shell's usual umask
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_not_readable_by_others_and_the_check_says_so(tmp_path: Path, loose_umask: None) -> None:
    data_dir = tmp_path / "var"
    init = pscs(data_dir, "init")
    assert init.returncode == 0, init.stderr
    assert mode(data_dir) == 0o750
    assert mode(data_dir / "pscs.db") & 0o077 == mode(data_dir / "pscs.db") & 0o040  # owner, group reads
    for folder in ("recordings", "evidence"):
        assert mode(data_dir / folder) == 0o750
    assert too_open([data_dir]) == ([], 0)

    # A recorder writing under a loose umask still keeps its video to itself.
    writer = SegmentWriter(data_dir / "recordings")
    segment = writer.open_segment(1, "main", 1_700_000_000_000)
    segment.write(b"\x00" * 64)
    finished = writer.finish(segment, duration_ms=1000, frames=1)
    video = data_dir / "recordings" / finished.path
    assert mode(video) & 0o077 == 0o040 and mode(video.parent) == 0o750

    check = pscs(data_dir, "compliance", "check")
    assert check.returncode == 0, check.stderr
    assert too_open([data_dir]) == ([], 0), "running a command loosened a mode"

    os.chmod(data_dir / "pscs.db", 0o644)
    os.chmod(video, 0o604)
    os.chmod(data_dir, 0o755)  # noqa: S103 - the loose mode the check must find
    check = pscs(data_dir, "compliance", "check")
    assert check.returncode == 1
    violations = [line for line in check.stderr.splitlines() if "VIOLATION CJIS-5.5.2" in line]
    named = {v.split(" has mode ")[0].rsplit(" ", 1)[-1]: v.split(" has mode ")[1][:4] for v in violations}
    assert len(named) == len(violations), "an entry was named twice"
    assert named[str(data_dir)] == "0755" and named[str(data_dir / "pscs.db")] == "0644"
    assert named[str(video)] == "0604"


def test_the_service_umask_keeps_group_write_and_others_out() -> None:
    assert SERVICE_UMASK == 0o027
    from pscs import startup

    previous = os.umask(0o022)
    try:
        startup.prepare()
        assert os.umask(0o022) == 0o027
    finally:
        os.umask(previous)
