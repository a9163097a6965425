"""Declarative base and column types shared by every domain's models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import CheckConstraint, DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# The largest integer a column holds (PostgreSQL's BIGINT, SQLite's INTEGER): ids and counts
# that enter pscs are checked against it at the edges (pscs.web.defs.common, pscs.cli.common).
MAX_INT = 2**63 - 1

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zones, so values are stored as naive UTC and handed back aware;
    naive input is refused rather than guessed at.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def one_of(column: str, values: Iterable[str], name: str | None = None) -> CheckConstraint:
    """``CHECK (column IN (...))``: the database refuses a state outside ``values`` (an enum).
    Named ``ck_<table>_<name or column>`` by the naming convention, as the migration names it."""
    listed = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name or column)


def both_or_neither(first: str, second: str, name: str) -> CheckConstraint:
    """``first`` and ``second`` are set together (an end and its reason) or not at all."""
    return CheckConstraint(
        f"({first} IS NULL AND {second} IS NULL) OR ({first} IS NOT NULL AND {second} IS NOT NULL)", name=name
    )


def ends_after_start(start: str = "start_ms", end: str = "end_ms") -> CheckConstraint:
    """A time range holds some time: ``end > start`` (``ck_<table>_ends_after_start``)."""
    return CheckConstraint(f"{end} > {start}", name="ends_after_start")
