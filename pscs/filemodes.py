"""Who may read the data folder: its owner (the service account) and its group, never others.

The data folder holds the database, the signing keys, unmasked recordings and evidence.
Every pscs process runs with umask 027 (:func:`apply_service_umask`, from
``pscs.startup.prepare``), and the places that create these files also set their modes
themselves, so a process started from a shell with a looser umask still leaves nothing
readable by other local users.  ``pscs compliance check`` reports anything looser
(:func:`too_open`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SERVICE_UMASK = 0o027  # no write for the group, nothing for others
DIR_MODE = 0o750
FILE_MODE = 0o640
READ_ONLY_MODE = 0o440  # evidence: nobody writes it in place


def apply_service_umask() -> None:
    os.umask(SERVICE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and give it :data:`DIR_MODE`."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def private_file_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` that creates the file with :data:`FILE_MODE`."""
    return os.open(path, flags, FILE_MODE)


@dataclass(frozen=True)
class OpenEntry:
    path: Path
    mode: int

    def describe(self) -> str:
        kind = "folder" if stat.S_ISDIR(self.mode) else "file"
        return f"{kind} {self.path} has mode {stat.S_IMODE(self.mode):04o}: others may use it or the group write it"


def too_open(roots: Iterable[Path], *, limit: int = 20) -> tuple[list[OpenEntry], int]:
    """Entries under ``roots`` (the roots included) that others may use or the group may
    write: the first ``limit`` of them, and how many there are.  Links are not followed."""
    found: list[OpenEntry] = []
    count = 0
    walked: list[Path] = []
    for root in sorted({r.resolve() for r in roots}, key=lambda p: len(p.parts)):
        if not root.exists() or any(root == w or w in root.parents for w in walked):
            continue  # e.g. the recordings folder inside the data folder: walked already
        walked.append(root)
        for entry in _walk(root):
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & SERVICE_UMASK:
                continue
            count += 1
            if len(found) < limit:
                found.append(OpenEntry(entry, mode))
    return found, count


def _walk(root: Path) -> Iterable[Path]:
    yield root
    if not root.is_dir() or root.is_symlink():
        return
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in sorted(dirs) + sorted(files):
            yield base / name
