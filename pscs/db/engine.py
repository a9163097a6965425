"""Engines and sessions.  SQLite runs in WAL mode with foreign keys on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

_IMMEDIATE = "pscs_sqlite_immediate"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)

    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling is off so that the "begin" hook below
        # decides how each transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE) and so queue on the
        # busy timeout, instead of failing half-way when a read lock cannot be upgraded.
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """One engine and the two ways to use it: read sessions and write transactions."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = self.engine.execution_options(**{_IMMEDIATE: True}) if self.is_sqlite else self.engine
        self._write = sessionmaker(self._writer, expire_on_commit=False)

    def session(self) -> Session:
        """A session for reading (it may write too, but then races other writers on SQLite)."""
        return self._read()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._write() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, for hot paths where the ORM costs too much."""
        with self._writer.begin() as conn:
            yield conn

    def take_turns(self, session: Session, name: str) -> None:
        """Within a write transaction: writers naming the same thing go one at a time until
        their transactions end.  For a decision with no row to lock (the next number of a
        year that may have none yet).  PostgreSQL: a transaction-level advisory lock;
        SQLite: nothing to do, the write transaction already holds the only write lock."""
        if not self.is_sqlite:
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def dispose(self) -> None:
        self.engine.dispose()
