"""Settings sources, migrations that match the models, and the metrics endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from pscs.config import Settings
from pscs.schema.models import metadata
from pscs.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import client_for, make_user, sign_in


def test_settings_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "var"
    data.mkdir()
    (data / "pscs.toml").write_text('port = 9001\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("PSCS_DATA_DIR", str(data))
    monkeypatch.setenv("PSCS_HOST", "127.0.0.2")
    settings = Settings()
    assert settings.port == 9001  # from the file
    assert settings.host == "127.0.0.2"  # the environment wins over the file
    assert settings.db_url == f"sqlite:///{(data / 'pscs.db').resolve()}"


def test_bad_setting_names_the_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PSCS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PSCS_DATABASE_URL", "mysql://root@localhost/pscs")
    with pytest.raises(ValidationError, match="database_url"):
        Settings()


def test_database_password_is_never_shown(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://pscs:hunter2@db/pscs")
    assert "hunter2" not in str(settings.public_dict())


def test_migrations_match_the_models(runtime):
    """Every model change has its migration (SQLite and PostgreSQL)."""
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_metrics_need_a_bearer_token_or_a_role_never_just_loopback(sqlite_runtime):
    rt = sqlite_runtime
    local = TestClient(create_app(rt), client=("127.0.0.1", 50000))
    # Behind a reverse proxy every caller is 127.0.0.1: the address admits no one.
    assert local.get("/metrics").status_code == 401
    token = "a-scraper-token-of-at-least-32-characters"
    rt.settings = rt.settings.model_copy(update={"metrics_token": SecretStr(token)})
    scraper = TestClient(create_app(rt), client=("192.0.2.9", 50000))
    body = scraper.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert body.status_code == 200
    assert "pscs_audit_events" in body.text and "pscs_users_active 1.0" in body.text
    assert scraper.get("/metrics", headers={"authorization": f"Bearer {token}x"}).status_code == 401
    assert scraper.get("/metrics", headers={"authorization": token}).status_code == 401
    remote = client_for(rt)
    assert remote.get("/metrics").status_code == 401
    make_user(rt, "aud", ["auditor"])
    assert sign_in(remote, "aud").get("/metrics").status_code == 200
    admin = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
    assert admin.get("/metrics").status_code == 200
    make_user(rt, "opal", ["operator"])
    assert sign_in(client_for(rt), "opal").get("/metrics").status_code == 403


def test_metrics_token_and_trusted_proxies_are_validated():
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics_token="short")
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=["*"])
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=["proxy.example"])
    assert Settings(trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies == ["10.0.0.0/8", "::1"]
    assert "a" * 32 not in str(Settings(metrics_token="a" * 32).public_dict())


def test_openapi_document_lists_the_api(sqlite_runtime):
    admin = sign_in(client_for(sqlite_runtime), "admin", ADMIN_PASSWORD)
    doc = admin.get("/api/openapi.json").json()
    assert "/api/v1/users" in doc["paths"] and "/api/v1/audit/events" in doc["paths"]
    assert client_for(sqlite_runtime).get("/api/openapi.json").status_code == 401
