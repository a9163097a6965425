"""Signed heads kept outside the database (M1): the signer's own record and the anchors.

A signed head is a checkpoint — ``seq``, ``ts_us``, ``head_hash``, ``key_id`` and the
Ed25519 ``signature`` — written as one JSON object per line.  The signer appends every head
it signs to its record beside its key, fsynced, and will only sign a head that extends the
last one recorded; the same lines go to the anchors (see ``pscs.audit.anchors``).  Someone who
can write to the database but not to the keys folder therefore cannot have a rewritten
chain signed, nor hide that one was cut off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pscs.audit.chain import Checkpoint
from pscs.errors import PscsError

RECORD_NAME = "audit_signed_heads.jsonl"
_FIELDS = ("seq", "ts_us", "head_hash", "key_id", "signature")
_TAIL_BYTES = 4096  # a line is about 250 bytes


class SigningRefused(PscsError):
    """The head does not extend the last head this signer signed: the chain was rewritten
    or cut off since, and signing it would vouch for that."""

    status = 409
    code = "audit_signing_refused"


def head_line(head: Checkpoint) -> str:
    return json.dumps({name: getattr(head, name) for name in _FIELDS}, separators=(",", ":")) + "\n"


def parse_heads(text: str, source: str) -> list[Checkpoint]:
    heads = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            heads.append(Checkpoint(*(data[name] for name in _FIELDS)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source}, line {number}: not a signed head ({exc})") from exc
    return heads


def append_durably(path: Path, lines: Iterable[str], mode: int = 0o600) -> None:
    """Append ``lines`` to ``path`` (created with ``mode``) and fsync them before returning.
    ``O_APPEND`` makes each write land at the end even with several writers."""
    data = "".join(lines).encode()
    if not data:
        return
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new name must survive a power cut too
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


class SignedHeadRecord:
    """The signer's append-only record of the heads it signed (``keys/audit_signed_heads.jsonl``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[int, Checkpoint | None] = (-1, None)

    def append(self, heads: list[Checkpoint]) -> None:
        append_durably(self.path, (head_line(h) for h in heads))

    def read(self) -> list[Checkpoint]:
        if not self.path.exists():
            return []
        return parse_heads(self.path.read_text(encoding="utf-8"), str(self.path))

    def last(self) -> Checkpoint | None:
        """The newest head in the record (read again whenever another process appended)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None
        if size != self._cached[0]:
            with self.path.open("rb") as fh:
                fh.seek(max(0, size - _TAIL_BYTES))
                lines = fh.read().decode("utf-8", errors="replace").splitlines()
            if not lines:
                self._cached = (size, None)
            elif size > _TAIL_BYTES and len(lines) < 2:
                raise ValueError(f"{self.path}: the last line is longer than a signed head")
            else:
                self._cached = (size, parse_heads(lines[-1], str(self.path))[0])
        return self._cached[1]
