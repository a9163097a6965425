"""The running system's parts, wired once: settings, policy profile, database, audit trail.

The web app, the CLI and the background services all take a ``Runtime``; nothing reads
global state behind its back, which is what lets tests run many installations side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pscs.audit.anchors import anchor_from_url
from pscs.audit.log import AuditLog, CheckpointPolicy
from pscs.audit.signed_heads import RECORD_NAME, SignedHeadRecord
from pscs.clock import Clock
from pscs.config import Settings
from pscs.db.engine import Database
from pscs.policy.profile import PolicyProfile, load_profile
from pscs.ratelimit import SlidingWindow
from pscs.secretbox import SecretBox
from pscs.signing import load_signer, public_key_path

AUDIT_KEY = "audit"
EVIDENCE_KEY = "evidence"


class NotInitialised(RuntimeError):
    """The data directory has no installation yet: run ``pscs init``."""


@dataclass
class Runtime:
    settings: Settings
    profile: PolicyProfile
    db: Database
    audit: AuditLog
    secrets: SecretBox
    clock: Clock = field(default_factory=Clock)  # the wall clock services read; tests may set it
    sign_in_attempts: SlidingWindow = field(default_factory=SlidingWindow)  # per address and per account

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        profile = load_profile(settings.policy_profile)
        keys = settings.keys_dir
        if not (keys / f"{AUDIT_KEY}_ed25519.pem").exists():
            raise NotInitialised(f"no installation in {settings.data_dir}: run `pscs init` first")
        db = Database(settings.db_url)
        audit = AuditLog(
            db,
            load_signer(keys, AUDIT_KEY),
            CheckpointPolicy(profile.audit.checkpoint_every_events, profile.audit.checkpoint_every_seconds),
            SignedHeadRecord(keys / RECORD_NAME),
            [anchor_from_url(url) for url in settings.audit_anchors],
        )
        return cls(settings=settings, profile=profile, db=db, audit=audit, secrets=SecretBox.load(keys))

    @property
    def audit_public_key_path(self) -> Path:
        return public_key_path(self.settings.keys_dir, AUDIT_KEY)

    def close(self) -> None:
        self.db.dispose()
