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
class CheckpointPolicy:
    """How often the head must be signed (the profile's ``audit.checkpoint_every_*``).

    The writer signs before an unsigned stretch would hold more than ``every_events`` events
    or span more than ``every_seconds`` (by the events' own times), and the verifier holds
    the trail to exactly that, so a stretch whose checkpoints were removed is found."""

    every_events: int = 1000
    every_seconds: int = 60

    @property
    def every_us(self) -> int:
        return self.every_seconds * 1_000_000

    @property
    def tail_allowed_us(self) -> int:
        """How long the newest events may wait for a signature: the service signs every
        interval, and one more interval absorbs a slow round."""
        return 2 * self.every_us


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    problems: tuple[tuple[int, str], ...] = ()  # (first bad seq, why), earliest first


Problem = tuple[int, str]
_MAX_PROBLEMS = 20


def verify_rows(
    rows: Iterable[tuple[Any, ...]],
    checkpoints: list[Checkpoint],
    public_key: Ed25519PublicKey | None,
    head: tuple[int, str] | None,
    *,
    cadence: CheckpointPolicy | None = None,
    now_us: int | None = None,
    signed_heads: Mapping[str, list[Checkpoint]] | None = None,
) -> VerifyResult:
    """Check a chain given as rows of FIELDS + (prev_hash, hash), ordered by seq.

    Returns the first bad sequence number: the altered row, the first missing seq of a
    deleted run, an inserted or reordered row, or — for a chain rewritten end to end —
    the first seq after the last checkpoint that still matches.  With ``cadence`` the
    checkpoints must be as frequent as the writer makes them (and, with ``now_us``, the
    unsigned newest events no older than it allows).  ``signed_heads`` are heads kept
    outside the database (the signer's record, anchors), by where they come from; each
    must match the chain.
    """
    signed_heads = signed_heads or {}
    cp_seqs = {cp.seq for cp in checkpoints}
    wanted = cp_seqs | {h.seq for heads in signed_heads.values() for h in heads}
    hashes_at: dict[int, str] = {}
    expected = 1
    prev = GENESIS_HASH
    n_fields = len(FIELDS)
    chain: list[Problem] = []
    late: list[Problem] = []
    last_cp, stretch_seq, stretch_ts, reported = 0, 0, 0, False
    for row in rows:
        seq = row[0]
        if seq != expected:
            if seq > expected:
                chain.append((expected, f"events {expected}..{seq - 1} are missing (deleted)"))
            else:
                chain.append((seq, f"event {seq} is out of order or duplicated"))
            break
        prev_hash, stored = row[n_fields], row[n_fields + 1]
        if prev_hash != prev:
            chain.append((seq, f"event {seq} does not link to event {seq - 1} (inserted, moved or altered)"))
            break
        if event_hash(prev, row[:n_fields]) != stored:
            chain.append((seq, f"event {seq} was altered: its content does not match its hash"))
            break
        if cadence is not None:
            if seq == last_cp + 1:
                stretch_seq, stretch_ts, reported = seq, row[1], False
            elif not reported and (seq - last_cp > cadence.every_events or row[1] - stretch_ts > cadence.every_us):
                reported = True
                late.append(
                    (
                        stretch_seq,
                        f"events {stretch_seq}..{seq} have no signed checkpoint between them, but the profile "
                        f"asks for one at least every {cadence.every_events} events and {cadence.every_seconds} s: "
                        "checkpoints were removed, or the events after them rewritten",
                    )
                )
        if seq in wanted:
            hashes_at[seq] = stored
        if seq in cp_seqs:
            last_cp = seq
        prev = stored
        expected += 1
    last_seq = expected - 1

    if cadence is not None and now_us is not None and not chain and last_seq > last_cp:
        waited = now_us - stretch_ts
        if waited > cadence.tail_allowed_us:
            late.append(
                (
                    stretch_seq,
                    f"events {stretch_seq}..{last_seq} have waited {waited // 1_000_000} s for a signed checkpoint "
                    f"(the profile allows {cadence.every_seconds} s): the checkpoints after {last_cp} were removed, "
                    "or no pscs process has signed since (`pscs audit checkpoint` signs a head that extends "
                    "the last one signed)",
                )
            )

    chain_break = min(chain)[0] if chain else None
    matched = _match_heads("signed checkpoint", checkpoints, hashes_at, last_seq, public_key, chain_break)
    for source, heads in signed_heads.items():
        matched += _match_heads(source, heads, hashes_at, last_seq, public_key, chain_break)

    head_problems: list[Problem] = []
    if head is not None and not chain:
        head_seq, head_hash = head
        if head_seq != last_seq:
            first = min(head_seq, last_seq) + 1
            head_problems.append((first, f"the chain head says {head_seq} events but {last_seq} are present"))
        elif last_seq and head_hash != prev:
            head_problems.append((last_seq, f"the chain head does not match event {last_seq}"))

    problems = tuple(sorted(chain + matched + head_problems + late)[:_MAX_PROBLEMS])
    if problems:
        first_bad, reason = problems[0]
        return VerifyResult(False, last_seq, len(checkpoints), first_bad, reason, problems)
    return VerifyResult(True, last_seq, len(checkpoints))


def _match_heads(
    source: str,
    heads: list[Checkpoint],
    hashes_at: Mapping[int, str],
    last_seq: int,
    public_key: Ed25519PublicKey | None,
    chain_break: int | None,
) -> list[Problem]:
    """Every signed head from ``source`` must carry a good signature and name a hash the
    chain has at its seq.  The first that does not is reported, from the seq after the last
    head that still matched."""
    good = 0
    for cp in sorted(heads, key=lambda c: c.seq):
        if public_key is None:
            return [(cp.seq, f"no public key to verify the {source}s with")]
        if not verify_signature(public_key, checkpoint_message(cp.seq, cp.head_hash, cp.ts_us), cp.signature):
            return [(good + 1, f"{source} at {cp.seq} has an invalid signature")]
        if chain_break is not None and cp.seq >= chain_break:
            return []  # already broken before this head; the chain error is more precise
        seen = hashes_at.get(cp.seq)
        if seen is None:
            return [(last_seq + 1, f"{source} at {cp.seq} but the chain ends at {last_seq}: events were cut off")]
        if seen != cp.head_hash:
            return [
                (
                    good + 1,
                    f"events {good + 1}..{cp.seq} were rewritten: the {source} at {cp.seq} does not match the chain",
                )
            ]
        good = cp.seq
    return []
