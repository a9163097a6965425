"""Audit trail benchmark (M1): sustained append rate through the real code path (group
commit + hash chain + checkpoints) on SQLite and PostgreSQL, and verification speed.

    .venv/bin/python bench/audit.py [--events 20000] [--threads 1,8,32] [--verify 1000000] [--no-postgres]

Goals (issue 2): >= 5,000 appends/s on SQLite; verify 1,000,000 events in < 10 s.
The baseline printed beside each figure is a plain INSERT of the same rows, one
transaction per row, without the chain, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Column, MetaData, Table, create_engine, insert, text

from pscs.audit.chain import FIELDS, canonical_details, checkpoint_message, event_hash
from pscs.audit.events import Actor
from pscs.audit.log import verify_database
from pscs.audit.models import AuditCheckpoint, AuditEventRow
from pscs.config import Settings
from pscs.install import init_installation
from pscs.runtime import Runtime

ACTOR = Actor("bench-user", 42, "192.0.2.10", "Mozilla/5.0 (bench)")
PG_ADMIN = os.environ.get("PSCS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def append_rate(rt: Runtime, events: int, threads: int) -> float:
    def one(i: int) -> int:
        return rt.audit.record(
            "video.playback.start",
            ACTOR,
            object_type="camera",
            object_id=i % 50,
            clauses=("U1",),
            purpose_session_id=i % 7,
            details={"from": i, "to": i + 10},
        )

    start = time.perf_counter()
    if threads == 1:
        for i in range(events):
            one(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(events)))
    return events / (time.perf_counter() - start)


def plain_insert_rate(rt: Runtime, events: int) -> float:
    """Baseline: the same row, no chain, one transaction each, through SQLAlchemy Core."""
    columns = [
        Column(c.name, c.type, primary_key=c.primary_key, autoincrement=False) for c in AuditEventRow.__table__.columns
    ]
    table = Table("bench_plain", MetaData(), *columns)
    table.create(rt.db.engine)
    row = {
        "ts_us": 0,
        "actor_id": 42,
        "actor": "bench-user",
        "source_ip": "192.0.2.10",
        "user_agent": "x",
        "action": "video.playback.start",
        "object_type": "camera",
        "object_id": "1",
        "purpose_session_id": 1,
        "clauses": "U1",
        "outcome": "allowed",
        "details": "{}",
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
    start = time.perf_counter()
    for i in range(events):
        with rt.db.write() as s:
            s.execute(insert(table), [row | {"seq": i + 1}])
    rate = events / (time.perf_counter() - start)
    table.drop(rt.db.engine)
    return rate


def bulk_chain(rt: Runtime, n: int) -> None:
    """Write n valid chained events quickly (for the verification benchmark)."""
    batch = []
    base_ts = 1_780_000_000_000_000
    with rt.db.engine.begin() as conn:
        first, prev = conn.execute(text("SELECT seq, hash FROM audit_head")).one()
        n += first
        for seq in range(first + 1, n + 1):
            values = [
                seq,
                base_ts + seq,
                42,
                "bench-user",
                "192.0.2.10",
                "Mozilla/5.0",
                "video.live.start",
                "camera",
                str(seq % 50),
                seq % 7,
                "U1",
                "allowed",
                canonical_details({"n": seq}),
            ]
            h = event_hash(prev, values)
            batch.append(dict(zip(FIELDS, values, strict=True)) | {"prev_hash": prev, "hash": h})
            prev = h
            if len(batch) == 20_000:
                conn.execute(insert(AuditEventRow.__table__), batch)
                batch = []
        if batch:
            conn.execute(insert(AuditEventRow.__table__), batch)
        ts = base_ts + n + 1
        sig = rt.audit.signer.sign(checkpoint_message(n, prev, ts))
        conn.execute(
            insert(AuditCheckpoint.__table__),
            [{"seq": n, "ts_us": ts, "head_hash": prev, "key_id": rt.audit.signer.key_id, "signature": sig}],
        )
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h, checkpoint_seq = :s, checkpoint_ts_us = :t"),
            {"s": n, "h": prev, "t": ts},
        )


def fresh_runtime(tmp: Path, url: str | None) -> Runtime:
    return init_installation(
        Settings(data_dir=tmp / secrets.token_hex(4), database_url=url),
        admin_password="bench-password-123",  # noqa: S106
    ).runtime


def pg_database() -> tuple[str, callable]:
    name = f"pscs_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--threads", default="1,8,32")
    parser.add_argument("--verify", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="pscs-bench-audit-"))

    backends: list[tuple[str, str | None, callable]] = [("sqlite", None, lambda: None)]
    if not args.no_postgres:
        url, drop = pg_database()
        backends.append(("postgresql", url, drop))

    print(f"{'backend':<11} {'threads':>7} {'appends/s':>10} {'plain insert/s':>15} {'ratio':>6}")
    for name, url, drop in backends:
        rt = fresh_runtime(tmp, url)
        baseline = plain_insert_rate(rt, min(args.events, 5000))
        for t in threads:
            rate = append_rate(rt, args.events, t)
            print(f"{name:<11} {t:>7} {rate:>10,.0f} {baseline:>15,.0f} {rate / baseline:>6.2f}")
        ok = verify_database(rt.db, rt.audit_public_key_path.read_bytes())
        assert ok.ok, ok.reason
        rt.close()
        if args.verify:
            # A fresh installation: on PostgreSQL that needs a database of its own.
            verify_url, drop_verify = pg_database() if url else (None, lambda: None)
            rt = fresh_runtime(tmp, verify_url)
            bulk_chain(rt, args.verify)
            start = time.perf_counter()
            result = verify_database(rt.db, rt.audit_public_key_path.read_bytes())
            elapsed = time.perf_counter() - start
            assert result.ok and result.events_checked >= args.verify, result
            print(
                f"{name:<11} verify {args.verify:,} events: {elapsed:.2f} s "
                f"({args.verify / elapsed:,.0f} events/s; goal < 10 s)"
            )
            rt.close()
            drop_verify()
        drop()


if __name__ == "__main__":
    main()
