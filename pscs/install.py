"""``pscs init``: a new installation — data folders, keys, schema, the first administrator."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from pscs.audit.events import Actor
from pscs.audit.log import ensure_head
from pscs.config import Settings
from pscs.db.engine import Database
from pscs.filemodes import FILE_MODE, apply_service_umask, private_dir
from pscs.runtime import AUDIT_KEY, EVIDENCE_KEY, Runtime
from pscs.schema import migrate
from pscs.secretbox import SecretBox
from pscs.signing import create_signer, private_key_path


class AlreadyInitialised(RuntimeError):
    """An installation exists and ``--force`` was not given."""


@dataclass(frozen=True)
class InitResult:
    runtime: Runtime
    admin_username: str
    admin_password: str  # one-time: the administrator must change it at first login


def is_initialised(settings: Settings) -> bool:
    return private_key_path(settings.keys_dir, AUDIT_KEY).exists()


def _destroy(settings: Settings) -> None:
    shutil.rmtree(settings.keys_dir, ignore_errors=True)
    if settings.database_url is None:
        for suffix in ("", "-wal", "-shm"):
            (settings.data_dir / f"pscs.db{suffix}").unlink(missing_ok=True)
        return
    # A server database: drop pscs's tables (the old audit chain cannot be verified with
    # the new keys, so it must not be continued).
    from sqlalchemy import text

    from pscs.schema.models import metadata

    db = Database(settings.db_url)
    metadata.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.dispose()


def init_installation(
    settings: Settings,
    *,
    admin_username: str = "admin",
    admin_full_name: str = "System Administrator",
    admin_password: str | None = None,
    force: bool = False,
    actor: Actor | None = None,
) -> InitResult:
    from pscs.auth.service import create_user, generate_password

    if is_initialised(settings) and not force:
        raise AlreadyInitialised(
            f"{settings.data_dir} already holds a pscs installation; use --force to replace it "
            "(this destroys its keys and, for the default SQLite database, its data)"
        )
    if force:
        _destroy(settings)
    apply_service_umask()  # `pscs init` may be the first command run on a new server
    for folder in (settings.data_dir, settings.recordings_path, settings.evidence_path):
        private_dir(folder)

    create_signer(settings.keys_dir, AUDIT_KEY, overwrite=True)
    create_signer(settings.keys_dir, EVIDENCE_KEY, overwrite=True)
    SecretBox.create(settings.keys_dir, overwrite=True)

    migrate.upgrade(settings.db_url)
    db = Database(settings.db_url)
    ensure_head(db)
    db.dispose()
    if settings.database_url is None:
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its journals the database's mode
            database_file = settings.data_dir / f"pscs.db{suffix}"
            if database_file.exists():
                os.chmod(database_file, FILE_MODE)

    runtime = Runtime.open(settings)
    actor = actor or Actor.system("pscs-init")
    password = admin_password or generate_password()
    create_user(
        runtime,
        actor,
        username=admin_username,
        full_name=admin_full_name,
        roles=["admin"],
        password=password,
    )
    runtime.audit.record(
        "system.init",
        actor,
        object_type="installation",
        object_id=str(settings.data_dir),
        clauses=("M1",),
        details={"profile": runtime.profile.profile_id, "database": runtime.db.engine.dialect.name},
    )
    runtime.audit.checkpoint()
    return InitResult(runtime, admin_username, password)
