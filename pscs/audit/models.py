"""Audit tables.  Rows of ``audit_events`` and ``audit_checkpoints`` are append-only:
database triggers refuse UPDATE and DELETE (migrations 0002 and 0006), and the hash chain,
the checkpoint cadence and the signer's own record expose any change made with the triggers
dropped."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pscs.audit.events import Outcome
from pscs.db.base import Base, one_of


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_us: Mapped[int] = mapped_column(BigInteger)  # UTC, microseconds since the epoch
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str | None] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(200))
    purpose_session_id: Mapped[int | None] = mapped_column(Integer)
    clauses: Mapped[str] = mapped_column(String(100))  # comma-separated clause IDs
    outcome: Mapped[str] = mapped_column(String(10))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_ts_us", "ts_us"),
        Index("ix_audit_events_actor_ts", "actor", "ts_us"),
        Index("ix_audit_events_action_ts", "action", "ts_us"),
        one_of("outcome", Outcome),
    )


class AuditHead(Base):
    """The chain's current end, one row.  Appenders lock it, so the chain has one order
    across every process that writes to the database."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    checkpoint_seq: Mapped[int] = mapped_column(BigInteger)
    checkpoint_ts_us: Mapped[int] = mapped_column(BigInteger)
    # ts_us of the first event after the last checkpoint (None when everything is signed):
    # where the writer's time limit on an unsigned stretch counts from.
    unsigned_since_us: Mapped[int | None] = mapped_column(BigInteger)


class AuditCheckpoint(Base):
    """An Ed25519 signature over the chain's head at ``seq``."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_us: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
