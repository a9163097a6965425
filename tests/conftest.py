"""Shared fixtures: a fresh pscs installation per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pscs import startup
from pscs.config import Settings
from pscs.install import init_installation
from pscs.runtime import Runtime
from tests.capabilities import PG_ADMIN_URL, SKIPPED, chromium_problem, gstreamer_problem, postgres_problem, require

ADMIN_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def prepared_process() -> None:
    """What every pscs process does at start-up (protection sources registered), again before
    each test, so that a test that takes a registration away leaves none missing."""
    startup.prepare()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the default SQLite in the data folder) or the URL of a new PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    require("PostgreSQL", postgres_problem())
    name = f"pscs_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=db_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    result = init_installation(settings, admin_password=ADMIN_PASSWORD)
    yield result.runtime
    result.runtime.close()


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """For tests whose subject is not the database: SQLite only."""
    result = init_installation(Settings(data_dir=tmp_path / "var"), admin_password=ADMIN_PASSWORD)
    yield result.runtime
    result.runtime.close()


@pytest.fixture
def need_gstreamer() -> None:
    require("GStreamer", gstreamer_problem())


@pytest.fixture
def need_chromium() -> None:
    require("Browser (Chromium)", chromium_problem())


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if SKIPPED:
        terminalreporter.section("tests NOT run on this machine", sep="!", yellow=True, bold=True)
        for kind, problem in SKIPPED.items():
            terminalreporter.write_line(f"{kind}: {problem}", yellow=True)
        terminalreporter.write_line("(CI installs these and runs every test; see .ci/run)")
