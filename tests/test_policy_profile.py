"""The policy profile: Norwich's values by default, validated, errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pscs.policy import decisions
from pscs.policy.profile import ProfileError, default_profile_text, load_profile, parse_profile


def norwich() -> dict:
    return yaml.safe_load(default_profile_text())


def test_S1_U1_U2_norwich_defaults():
    profile = load_profile()
    assert profile.retention.recording_days == 30  # S1
    assert profile.audit.retention_days >= 365  # CJIS: a year at least
    purposes = {p.id: p for p in profile.purposes}
    assert purposes["investigation"].requires_case and purposes["investigation"].clause == "U1"
    assert purposes["crime-location"].requires_designated_location and purposes["crime-location"].clause == "U2"
    assert {"natural-disaster", "fire", "emergency", "event-management"} <= purposes.keys()
    assert profile.approvals.storage_request == ["records_commander"]  # S2
    assert profile.security.lockout_attempts == 5 and profile.security.lockout_minutes == 10
    assert profile.security.idle_lock_minutes == 30


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("retention", "recording_days"), 0, "retention.recording_days"),
        (("audit", "retention_days"), 90, "audit.retention_days"),
        (("security", "idle_lock_minutes"), 45, "security.idle_lock_minutes"),
        (("approvals", "storage_request"), ["sheriff"], "approvals.storage_request.0"),
        (("purposes",), [], "purposes"),
    ],
)
def test_bad_profile_names_the_field(path, value, field):
    data = norwich()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ProfileError) as info:
        parse_profile(yaml.safe_dump(data), "site.yaml")
    assert field in str(info.value) and "site.yaml" in str(info.value)


def test_profile_refuses_admin_as_video_role():
    data = norwich()
    data["video_roles"].append("admin")
    with pytest.raises(ProfileError, match="video_roles"):
        parse_profile(yaml.safe_dump(data))


def test_unknown_key_is_refused():
    data = norwich()
    data["retention"]["recording_dayz"] = 30
    with pytest.raises(ProfileError, match="recording_dayz"):
        parse_profile(yaml.safe_dump(data))


def test_site_profile_file(tmp_path: Path):
    data = norwich()
    data["retention"]["recording_days"] = 45
    data["department"] = "Example Town Police"
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / data["policy_text_file"]).write_text("Example policy")
    profile = load_profile(tmp_path / "site.yaml")
    assert profile.retention.recording_days == 45 and profile.department == "Example Town Police"


def test_missing_profile_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profile(tmp_path / "nope.yaml")


def test_missing_policy_text_is_a_clear_error(tmp_path: Path):
    (tmp_path / "site.yaml").write_text(default_profile_text())
    with pytest.raises(ProfileError, match="policy_text_file"):
        load_profile(tmp_path / "site.yaml")


NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def test_CJIS_lockout_decision():
    profile = load_profile()
    attempts, locked = 0, None
    for _ in range(4):
        attempts, locked = decisions.after_failed_attempt(attempts, NOW, profile)
        assert locked is None
    attempts, locked = decisions.after_failed_attempt(attempts, NOW, profile)
    assert locked == NOW + timedelta(minutes=10) and attempts == 0
    assert decisions.is_locked(locked, NOW + timedelta(minutes=9)) and not decisions.is_locked(
        locked, NOW + timedelta(minutes=10)
    )


def test_CJIS_session_status_decision():
    profile = load_profile()
    s = decisions.session_status
    assert s(NOW, NOW, NOW + timedelta(minutes=29), profile) is decisions.SessionStatus.ACTIVE
    assert s(NOW, NOW, NOW + timedelta(minutes=30), profile) is decisions.SessionStatus.IDLE_LOCKED
    assert (
        s(NOW, NOW + timedelta(hours=11, minutes=59), NOW + timedelta(hours=12), profile)
        is decisions.SessionStatus.EXPIRED
    )


def test_U3_acknowledgement_decision():
    profile = load_profile()
    ack = decisions.acknowledgement
    assert not ack(None, None, "d", NOW, profile).allowed
    assert ack(NOW, "d", "d", NOW + timedelta(days=364), profile).allowed
    assert not ack(NOW, "d", "d", NOW + timedelta(days=365), profile).allowed
    changed = ack(NOW, "old", "new", NOW + timedelta(days=1), profile)
    assert not changed.allowed and changed.clause == "U3" and "changed" in changed.reason
