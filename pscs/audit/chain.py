"""The hash chain (M1): pure functions, shared by the writer and the verifier.

``hash(n) = SHA-256(hash(n-1) || "\\n" || canonical(n))`` where ``canonical`` is a JSON
array of the event's fields in a fixed order.  See docs/design/audit-chain.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pscs.signing import verify_signature

GENESIS_HASH = "0" * 64

# The order of this tuple is part of the on-disk format: never reorder, only append
# (and then bump the format in the design note).
FIELDS = (
    "seq",
    "ts_us",
    "actor_id",
    "actor",
    "source_ip",
    "user_agent",
    "action",
    "object_type",
    "object_id",
    "purpose_session_id",
    "clauses",
    "outcome",
    "details",
)

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def canonical_details(details: Mapping[str, Any]) -> str:
    return _encode(dict(details))


def event_hash(prev_hash: str, values: tuple[Any, ...] | list[Any]) -> str:
    """``values`` are the FIELDS in order, ``details`` already canonical text."""
    return hashlib.sha256(f"{prev_hash}\n{_encode(list(values))}".encode()).hexdigest()


def checkpoint_message(seq: int, head_hash: str, ts_us: int) -> bytes:
    return f"pscs-audit-checkpoint\n{seq}\n{head_hash}\n{ts_us}".encode()


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    ts_us: int
    head_hash: str
    key_id: str
    signature: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify_rows(
    rows: Iterable[tuple[Any, ...]],
    checkpoints: list[Checkpoint],
    public_key: Ed25519PublicKey | None,
    head: tuple[int, str] | None,
) -> VerifyResult:
    """Check a chain given as rows of FIELDS + (prev_hash, hash), ordered by seq.

    Returns the first bad sequence number: the altered row, the first missing seq of a
    deleted run, an inserted or reordered row, or — for a chain rewritten end to end —
    the first seq after the last checkpoint that still matches.
    """
    cp_at = {cp.seq: cp for cp in checkpoints}
    hashes_at_cp: dict[int, str] = {}
    expected = 1
    prev = GENESIS_HASH
    n_fields = len(FIELDS)
    problems: list[tuple[int, str]] = []
    for row in rows:
        seq = row[0]
        if seq != expected:
            if seq > expected:
                problems.append((expected, f"events {expected}..{seq - 1} are missing (deleted)"))
            else:
                problems.append((seq, f"event {seq} is out of order or duplicated"))
            break
        prev_hash, stored = row[n_fields], row[n_fields + 1]
        if prev_hash != prev:
            problems.append((seq, f"event {seq} does not link to event {seq - 1} (inserted, moved or altered)"))
            break
        if event_hash(prev, row[:n_fields]) != stored:
            problems.append((seq, f"event {seq} was altered: its content does not match its hash"))
            break
        if seq in cp_at:
            hashes_at_cp[seq] = stored
        prev = stored
        expected += 1
    last_seq = expected - 1

    good_cp = 0
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if public_key is None:
            problems.append((cp.seq, "no public key to verify checkpoints with"))
            break
        if not verify_signature(public_key, checkpoint_message(cp.seq, cp.head_hash, cp.ts_us), cp.signature):
            problems.append((good_cp + 1, f"checkpoint at {cp.seq} has an invalid signature"))
            break
        if problems and cp.seq >= problems[0][0]:
            break  # already broken before this checkpoint; the chain error is more precise
        seen = hashes_at_cp.get(cp.seq)
        if seen is None:
            problems.append((last_seq + 1, f"signed checkpoint at {cp.seq} but the chain ends at {last_seq}"))
            break
        if seen != cp.head_hash:
            problems.append(
                (
                    good_cp + 1,
                    f"events {good_cp + 1}..{cp.seq} were rewritten: the signed checkpoint "
                    f"at {cp.seq} does not match the chain",
                )
            )
            break
        good_cp = cp.seq

    if head is not None and not problems:
        head_seq, head_hash = head
        if head_seq != last_seq:
            first = min(head_seq, last_seq) + 1
            problems.append((first, f"the chain head says {head_seq} events but {last_seq} are present"))
        elif last_seq and head_hash != prev:
            problems.append((last_seq, f"the chain head does not match event {last_seq}"))

    if problems:
        first_bad, reason = min(problems)
        return VerifyResult(False, last_seq, len(checkpoints), first_bad, reason)
    return VerifyResult(True, last_seq, len(checkpoints))
