"""The policy profile: the written policy's values, validated.

A bad profile fails at start with an error that names the field, e.g.
``retention.recording_days: Input should be greater than 0``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["operator", "investigator", "supervisor", "records_commander", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("operator", "investigator", "supervisor", "records_commander", "auditor", "admin")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retention(_Strict):
    recording_days: int = Field(gt=0, le=3650)
    sweep_interval_minutes: int = Field(gt=0, le=24 * 60)
    hold_review_days: int = Field(gt=0, le=3650)
    disk_min_free_percent: float = Field(ge=0, lt=100)


class Audit(_Strict):
    # CJIS: audit records are kept at least one year.
    retention_days: int = Field(ge=365)
    checkpoint_every_events: int = Field(gt=0)
    checkpoint_every_seconds: int = Field(gt=0)


class Security(_Strict):
    lockout_attempts: int = Field(gt=0, le=20)
    lockout_minutes: int = Field(gt=0)
    idle_lock_minutes: int = Field(gt=0, le=30)
    session_max_hours: int = Field(gt=0, le=24)
    acknowledgement_valid_days: int = Field(gt=0, le=366)


class Purpose(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    label: str
    clause: Literal["U1", "U2"]
    requires_case: bool = False
    requires_incident: bool = False
    requires_designated_location: bool = False


class Approvals(_Strict):
    storage_request: list[Role]
    evidence_disposal: list[Role]
    evidence_disposal_second: list[Role]
    release_civil: list[Role]
    release_agency: list[Role]
    privacy_zone_propose: list[Role]
    privacy_zone_approve: list[Role]
    mask_lift_request: list[Role]
    mask_lift_approve: list[Role]
    location_designation: list[Role]
    hold_place: list[Role]
    hold_manage: list[Role]


class PolicyProfile(_Strict):
    profile_id: str
    department: str
    policy_title: str
    policy_version: str
    policy_text_file: str
    retention: Retention
    audit: Audit
    security: Security
    purpose_session_minutes: int = Field(gt=0, le=12 * 60)
    purposes: list[Purpose] = Field(min_length=1)
    roles: dict[Role, str]
    video_roles: list[Role]
    approvals: Approvals
    mask_lift_max_minutes: int = Field(gt=0, le=24 * 60)
    # Giving someone a video role or a role the approvals name takes two administrators:
    # one gives it, another approves, so no one alone can watch or make a second approver.
    role_grants_need_second_admin: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> PolicyProfile:
        ids = [p.id for p in self.purposes]
        if len(ids) != len(set(ids)):
            raise ValueError("purposes: purpose ids must be unique")
        if "admin" in self.video_roles:
            raise ValueError("video_roles: admin must not be a video role (least privilege)")
        if "auditor" in self.video_roles:
            raise ValueError("video_roles: auditor must not be a video role")
        return self

    def purpose(self, purpose_id: str) -> Purpose | None:
        return next((p for p in self.purposes if p.id == purpose_id), None)


class ProfileError(ValueError):
    """The profile file is missing, not YAML, or fails validation."""


def _format_validation(source: str, err: ValidationError) -> str:
    lines = [f"policy profile {source} is invalid:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def parse_profile(text: str, source: str = "<profile>") -> PolicyProfile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"policy profile {source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"policy profile {source} must be a YAML mapping")
    try:
        return PolicyProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_format_validation(source, exc)) from exc


def default_profile_text() -> str:
    return resources.files("pscs.policy.profiles").joinpath("norwich.yaml").read_text(encoding="utf-8")


def load_profile(path: Path | None = None) -> PolicyProfile:
    if path is None:
        profile = parse_profile(default_profile_text(), "norwich.yaml (default)")
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"policy profile {path} cannot be read: {exc.strerror}") from exc
        profile = parse_profile(text, str(path))
    try:
        policy_text(profile, path)
    except OSError as exc:
        raise ProfileError(
            f"policy profile {path or 'norwich.yaml'} is invalid:\n  policy_text_file: "
            f"{profile.policy_text_file} cannot be read ({exc.strerror})"
        ) from exc
    return profile


def policy_text(profile: PolicyProfile, profile_path: Path | None) -> str:
    """The written policy the profile implements, shown to users for acknowledgement (U3)."""
    if profile_path is None:
        return resources.files("pscs.policy.profiles").joinpath(profile.policy_text_file).read_text(encoding="utf-8")
    return (profile_path.parent / profile.policy_text_file).read_text(encoding="utf-8")


def profile_digest(profile: PolicyProfile) -> str:
    """A short, stable fingerprint of the profile's values (recorded with acknowledgements)."""
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def cached_profile(path: Path | None) -> PolicyProfile:
    return load_profile(path)
