"""Settings: environment variables (``PSCS_*``) over a TOML config file over defaults.

The config file is ``$PSCS_CONFIG`` if set, else ``pscs.toml`` in the data directory.
"""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path:
    explicit = os.environ.get("PSCS_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("PSCS_DATA_DIR", "./var")) / "pscs.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PSCS_", extra="forbid")

    data_dir: Path = Field(default=Path("./var"), description="Where recordings, keys and the SQLite database live")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite (WAL) at <data_dir>/pscs.db"
    )
    policy_profile: Path | None = Field(default=None, description="Site policy profile; default: Norwich")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    sim_port: int = Field(default=8554, ge=0, le=65535, description="RTSP port of the simulated cameras (pscs up)")
    cookie_secure: bool | None = Field(
        default=None,
        description="Secure cookie flag also over plain HTTP; cookies are always Secure when the scheme is https",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or networks (CIDR) of the reverse proxies in front of pscs; only from them are "
            "X-Forwarded-For and X-Forwarded-Proto believed. Default: none (the peer is the client)"
        ),
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Bearer token a Prometheus scraper sends to /metrics; default: auditors and admins only",
    )
    recordings_dir: Path | None = Field(default=None, description="Default: <data_dir>/recordings")
    evidence_dir: Path | None = Field(default=None, description="Default: <data_dir>/evidence")
    segment_seconds: float = Field(default=10.0, ge=1, le=300, description="Length of recorded segments")
    recorder_workers: int | None = Field(default=None, ge=1, le=64, description="Default: one per CPU core")
    min_free_bytes: int = Field(default=2 * 1024**3, ge=0, description="Disk-pressure threshold")
    log_level: str = "INFO"
    audit_anchors: list[str] = Field(
        default_factory=list,
        description="Where signed audit heads are also sent (file:///path, s3://bucket/prefix); see pscs.audit.anchors",
    )
    # Sign-in attempts (both counted in memory, per process; see pscs.ratelimit).
    login_attempts_per_address: int = Field(
        default=60, ge=1, le=100_000, description="Password sign-in attempts from one address per login window"
    )
    login_attempts_per_account: int = Field(
        default=10, ge=1, le=10_000, description="Password sign-in attempts at one account per login window"
    )
    login_window_seconds: int = Field(default=300, ge=1, le=86_400, description="The login window, in seconds")
    # Request bodies, refused with 413 before they are read (pscs.web.limits).
    max_body_bytes: int = Field(default=1024**2, ge=1024, description="Largest JSON or form body")
    max_upload_bytes: int = Field(
        default=100 * 1024**2, ge=1024, description="Largest body of a document upload, from a signed-in caller"
    )

    @field_validator("database_url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry == "*":
                raise ValueError("trusted_proxies: name the proxies' addresses; '*' would believe any caller")
            try:
                ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or network") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))

    # Derived locations -------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pscs.db').resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def evidence_path(self) -> Path:
        return self.evidence_dir or self.data_dir / "evidence"

    def public_dict(self) -> dict[str, Any]:
        """Settings as shown to administrators: the database password is never shown."""
        shown = self.model_dump(mode="json")
        shown["database_url"] = _redact_url(self.db_url)
        return shown


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
