"""Appending to and reading the audit trail (M1).

Appends use group commit: concurrent callers queue their events, one of them (the
leader) writes everything queued in a single transaction, and each caller returns once
its own event is committed.  The chain needs one order, so appends are serialised on the
``audit_head`` row — but only for the few hundred microseconds of that transaction, and
never the request handling around it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from pscs.audit.anchors import AnchorSink
from pscs.audit.chain import (
    FIELDS,
    GENESIS_HASH,
    Checkpoint,
    CheckpointPolicy,
    VerifyResult,
    canonical_details,
    checkpoint_message,
    event_hash,
    verify_rows,
)
from pscs.audit.events import Actor, AuditEvent, Outcome
from pscs.audit.models import AuditCheckpoint, AuditEventRow, AuditHead
from pscs.audit.signed_heads import SignedHeadRecord, SigningRefused
from pscs.db.engine import Database
from pscs.errors import PolicyDenied
from pscs.signing import Signer, load_public_key

if TYPE_CHECKING:
    from pscs.policy.decisions import Decision

log = logging.getLogger("pscs.audit")
SIGNER_RECORD = "head in the signer's record"
_events = AuditEventRow.__table__
_VERIFY_BATCH = 20_000


def now_us() -> int:
    return time.time_ns() // 1000


class AuditLog:
    def __init__(
        self,
        db: Database,
        signer: Signer,
        policy: CheckpointPolicy | None = None,
        record: SignedHeadRecord | None = None,
        anchors: Sequence[AnchorSink] = (),
    ) -> None:
        self.db = db
        self.signer = signer
        self.policy = policy or CheckpointPolicy()
        self.head_record = record  # the signer's own record of what it signed (None: not kept)
        self.anchors = tuple(anchors)  # where signed heads are also sent, off the machine
        self._refusal_logged = False
        self._cv = threading.Lock()
        self._pending: list[tuple[dict[str, Any], Future[int]]] = []
        self._leader_active = False
        self._sql: tuple[str, str, str, str] | None = None

    # Writing ------------------------------------------------------------------------------
    def record(
        self,
        action: str,
        actor: Actor,
        outcome: Outcome | str = Outcome.ALLOWED,
        *,
        object_type: str | None = None,
        object_id: str | int | None = None,
        clauses: tuple[str, ...] | list[str] = (),
        purpose_session_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        return self.append(
            AuditEvent(
                action=action,
                actor=actor,
                outcome=Outcome(outcome),
                object_type=object_type,
                object_id=None if object_id is None else str(object_id),
                clauses=tuple(clauses),
                purpose_session_id=purpose_session_id,
                details=details or {},
            )
        )

    def refusal(
        self,
        action: str,
        actor: Actor,
        decision: Decision,
        *,
        object_type: str,
        object_id: str | int | None = None,
        purpose_session_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> PolicyDenied:
        """Audit a policy decision that refused ``action``; returns the error to raise.
        The one way a refusal is made: no ``PolicyDenied`` leaves pscs unaudited."""
        self.record(
            action,
            actor,
            Outcome.DENIED,
            object_type=object_type,
            object_id=object_id,
            clauses=(decision.clause,),
            purpose_session_id=purpose_session_id,
            details=_with_refusal_reason(details or {}, decision.reason),
        )
        return PolicyDenied(decision.reason, decision.clause)

    def append(self, event: AuditEvent) -> int:
        """Append one event; returns its sequence number once it is committed."""
        row = {
            "ts_us": now_us(),
            "actor_id": event.actor.user_id,
            "actor": event.actor.username,
            "source_ip": event.actor.source_ip,
            "user_agent": (event.actor.user_agent or None) and event.actor.user_agent[:400],
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "purpose_session_id": event.purpose_session_id,
            "clauses": ",".join(event.clauses),
            "outcome": str(event.outcome),
            "details": canonical_details(event.details),
        }
        future: Future[int] = Future()
        with self._cv:
            self._pending.append((row, future))
            lead = not self._leader_active
            self._leader_active = True
        if lead:
            self._lead()
        return future.result()

    def _lead(self) -> None:
        while True:
            with self._cv:
                batch, self._pending = self._pending, []
                if not batch:
                    self._leader_active = False
                    return
            try:
                seqs = self._write_batch([row for row, _ in batch])
            except BaseException as exc:  # every waiter learns of the failure
                for _, fut in batch:
                    fut.set_exception(exc)
            else:
                for (_, fut), seq in zip(batch, seqs, strict=True):
                    fut.set_result(seq)

    def _statements(self) -> tuple[str, str, str, str]:
        if self._sql is None:
            mark = "?" if self.db.engine.dialect.paramstyle == "qmark" else "%s"
            columns = (*FIELDS, "prev_hash", "hash")
            lock = "" if self.db.is_sqlite else " FOR UPDATE"
            # Only fixed column names and placeholders are interpolated; values are bound.
            self._sql = (
                "SELECT seq, hash, checkpoint_seq, checkpoint_ts_us, unsigned_since_us "
                f"FROM audit_head WHERE id = 1{lock}",
                f"INSERT INTO audit_events ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
                f"UPDATE audit_head SET seq = {mark}, hash = {mark}, checkpoint_seq = {mark}, "
                f"checkpoint_ts_us = {mark}, unsigned_since_us = {mark} WHERE id = 1",
                f"SELECT hash FROM audit_events WHERE seq = {mark}",
            )
        return self._sql

    def _write_batch(self, rows: list[dict[str, Any]], force_checkpoint: bool = False) -> list[int]:
        """Append ``rows`` and sign the head wherever the cadence asks (see CheckpointPolicy):
        before an event that would make the unsigned stretch too long, and at the end when
        it is due.  The signed heads go to the signer's record once committed."""
        # Plain SQL through the driver: this is the hot path of every audited action, and
        # SQLAlchemy's statement compilation would cost more than the database work.
        select_head, insert_event, update_head, select_hash = self._statements()
        every_events, every_us = self.policy.every_events, self.policy.every_seconds * 1_000_000
        with self.db.write_connection() as conn:
            head_seq, prev, cp_seq, cp_ts, unsigned_since = conn.exec_driver_sql(select_head).one()
            seq = head_seq
            params: list[tuple[Any, ...]] = []
            checkpoints: list[dict[str, Any]] = []
            refused: str | None = None

            def may_sign(at: int) -> bool:
                nonlocal refused
                if not checkpoints and refused is None:  # once a batch: later heads extend it
                    in_batch = {p[0]: p[-1] for p in params}
                    refused = self._refusal(at, lambda s: in_batch.get(s) or _scalar(conn, select_hash, s))
                return refused is None

            for row in rows:
                stretch_start = row["ts_us"] if unsigned_since is None else unsigned_since
                if (
                    seq > cp_seq
                    and (seq - cp_seq >= every_events or row["ts_us"] - stretch_start > every_us)
                    and may_sign(seq)
                ):
                    checkpoints.append(self._sign(seq, prev, now_us()))
                    cp_seq, cp_ts = seq, checkpoints[-1]["ts_us"]
                seq += 1
                values = [seq, *(row[f] for f in FIELDS[1:])]
                digest = event_hash(prev, values)
                params.append((*values, prev, digest))
                prev = digest
                if seq == cp_seq + 1:
                    unsigned_since = row["ts_us"]
            if params:
                conn.exec_driver_sql(insert_event, params)
            ts = now_us()
            due = seq - cp_seq >= every_events or ts - (unsigned_since or ts) >= every_us
            if seq > cp_seq and (due or force_checkpoint) and may_sign(seq):
                checkpoints.append(self._sign(seq, prev, ts))
                cp_seq, cp_ts = seq, ts
            if checkpoints:
                conn.execute(insert(AuditCheckpoint.__table__), checkpoints)
            conn.exec_driver_sql(update_head, (seq, prev, cp_seq, cp_ts, unsigned_since if seq > cp_seq else None))
        if checkpoints:
            self._after_commit([Checkpoint(**cp) for cp in checkpoints])
        if refused is not None:
            if force_checkpoint:
                raise SigningRefused(refused)
            if not self._refusal_logged:  # the events are kept, unsigned; the verifier reports it
                log.error("audit checkpoint refused: %s", refused)
                self._refusal_logged = True
        return list(range(head_seq + 1, seq + 1))

    def _after_commit(self, heads: list[Checkpoint]) -> None:
        """Record the heads (only once committed: a head recorded but rolled back would block
        all signing), then send them to the anchors."""
        if self.head_record is not None:
            self.head_record.append(heads)
        for sink in self.anchors:
            try:
                sink.send(heads)
            except Exception:  # an unreachable anchor must not stop the trail
                log.exception("audit anchor %s did not take the heads at %s", sink.url, [h.seq for h in heads])

    def _refusal(self, seq: int, hash_at: Callable[[int], str | None]) -> str | None:
        """Why the head at ``seq`` must not be signed, or None: it must extend the last head
        this signer recorded (the chain holds that head's hash at its seq)."""
        last = self.head_record.last() if self.head_record is not None else None
        if last is None:
            return None
        if last.seq > seq:
            return (
                f"the chain ends at {seq} but this signer already signed its head at {last.seq}: "
                f"events after {seq} were cut off"
            )
        if hash_at(last.seq) != last.head_hash:
            return f"event {last.seq} is not the one this signer signed: the chain up to {last.seq} was rewritten since"
        return None

    def _sign(self, seq: int, head_hash: str, ts_us: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "ts_us": ts_us,
            "head_hash": head_hash,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(checkpoint_message(seq, head_hash, ts_us)),
        }

    def checkpoint(self) -> int | None:
        """Sign the current head now (if anything is unsigned); returns its seq.  Raises
        SigningRefused when the head does not extend the last one this signer signed."""
        self._write_batch([], force_checkpoint=True)
        with self.db.session() as s:
            head = s.get(AuditHead, 1)
            return head.checkpoint_seq if head and head.checkpoint_seq else None

    # Reading ------------------------------------------------------------------------------
    def verify(
        self, public_key_pem: bytes | None, anchors: Mapping[str, list[Checkpoint]] | None = None
    ) -> VerifyResult:
        """The whole trail: the chain, the checkpoints and their cadence, and the heads in the
        signer's record and in ``anchors`` (signed heads kept elsewhere, by where they were read)."""
        signed_heads = dict(anchors or {})
        recorded = self.head_record.read() if self.head_record is not None else []
        if recorded:
            signed_heads[SIGNER_RECORD] = recorded
        return verify_database(self.db, public_key_pem, cadence=self.policy, signed_heads=signed_heads)

    def search(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action_prefix: str | None = None,
        outcome: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        limit: int = 200,
        before_seq: int | None = None,
    ) -> list[AuditEventRow]:
        q = select(AuditEventRow).order_by(AuditEventRow.seq.desc()).limit(limit)
        if since is not None:
            q = q.where(AuditEventRow.ts_us >= int(since.timestamp() * 1_000_000))
        if until is not None:
            q = q.where(AuditEventRow.ts_us < int(until.timestamp() * 1_000_000))
        if actor:
            q = q.where(AuditEventRow.actor == actor)
        if action_prefix:
            q = q.where(AuditEventRow.action.startswith(action_prefix, autoescape=True))
        if outcome:
            q = q.where(AuditEventRow.outcome == outcome)
        if object_type:
            q = q.where(AuditEventRow.object_type == object_type)
        if object_id:
            q = q.where(AuditEventRow.object_id == object_id)
        if before_seq is not None:
            q = q.where(AuditEventRow.seq < before_seq)
        with self.db.session() as s:
            return list(s.scalars(q))

    def iter_range(self, since: datetime | None, until: datetime | None) -> Iterator[AuditEventRow]:
        q = select(AuditEventRow).order_by(AuditEventRow.seq)
        if since is not None:
            q = q.where(AuditEventRow.ts_us >= int(since.timestamp() * 1_000_000))
        if until is not None:
            q = q.where(AuditEventRow.ts_us < int(until.timestamp() * 1_000_000))
        with self.db.session() as s:
            yield from s.scalars(q.execution_options(yield_per=5000))


def ensure_head(db: Database) -> None:
    """Create the chain's head row for an empty trail (idempotent)."""
    with db.write() as s:
        if s.get(AuditHead, 1) is None:
            s.add(AuditHead(id=1, seq=0, hash=GENESIS_HASH, checkpoint_seq=0, checkpoint_ts_us=now_us()))


def verify_database(
    db: Database,
    public_key_pem: bytes | None,
    *,
    cadence: CheckpointPolicy | None = None,
    signed_heads: Mapping[str, list[Checkpoint]] | None = None,
) -> VerifyResult:
    """Recompute the whole chain and every checkpoint straight from the database; with
    ``cadence``, hold the checkpoints to it (up to now); ``signed_heads`` kept elsewhere
    (the signer's record, anchors) must match the chain too."""
    public_key = load_public_key(public_key_pem) if public_key_pem else None
    with db.session() as s:
        checkpoints = [
            Checkpoint(c.seq, c.ts_us, c.head_hash, c.key_id, c.signature)
            for c in s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
        ]
        head_row = s.get(AuditHead, 1)
        head = (head_row.seq, head_row.hash) if head_row else None
    columns = ", ".join((*FIELDS, "prev_hash", "hash"))

    def rows() -> Iterator[tuple[Any, ...]]:
        # A raw cursor: a million rows through the ORM would cost more than the hashing.
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(f"SELECT {columns} FROM audit_events ORDER BY seq")  # noqa: S608 - fixed columns
            while batch := cur.fetchmany(_VERIFY_BATCH):
                yield from batch
            cur.close()
        finally:
            raw.close()

    return verify_rows(
        rows(),
        checkpoints,
        public_key,
        head,
        cadence=cadence,
        now_us=now_us() if cadence is not None else None,
        signed_heads=signed_heads,
    )


def _scalar(conn: Any, statement: str, value: int) -> Any:
    return conn.exec_driver_sql(statement, (value,)).scalar()


def _with_refusal_reason(details: dict[str, Any], reason: str) -> dict[str, Any]:
    """The refusal's reason under ``reason`` (``reason_denied`` when the request itself
    carries a ``reason``, such as a designation's or a mask lift's)."""
    return details | {("reason_denied" if "reason" in details else "reason"): reason}
