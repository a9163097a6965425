"""Policy decisions as pure functions: inputs in, a decision out, no I/O.

Services call these and act on the answer; each names the clause (or the CJIS control)
it enforces, and that name goes into the audit event the service writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from pscs.policy.profile import PolicyProfile


@dataclass(frozen=True)
class Decision:
    allowed: bool
    clause: str
    reason: str = ""

    @classmethod
    def allow(cls, clause: str) -> Decision:
        return cls(True, clause)

    @classmethod
    def deny(cls, clause: str, reason: str) -> Decision:
        return cls(False, clause, reason)


# Accounts (CJIS 5.5.3: unsuccessful logon attempts) -----------------------------------------
LOCKOUT = "CJIS-5.5.3"
SESSION_LOCK = "CJIS-5.5.5"


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and now < locked_until


def after_failed_attempt(failed_attempts: int, now: datetime, profile: PolicyProfile) -> tuple[int, datetime | None]:
    """The new failure count and, when the limit is reached, the time the lock ends."""
    attempts = failed_attempts + 1
    if attempts >= profile.security.lockout_attempts:
        return 0, now + timedelta(minutes=profile.security.lockout_minutes)
    return attempts, None


class SessionStatus(StrEnum):
    ACTIVE = "active"
    IDLE_LOCKED = "idle_locked"
    EXPIRED = "expired"


def session_status(
    created_at: datetime, last_seen_at: datetime, now: datetime, profile: PolicyProfile
) -> SessionStatus:
    """A session ends after the maximum lifetime, and locks after the idle limit."""
    if now - created_at >= timedelta(hours=profile.security.session_max_hours):
        return SessionStatus.EXPIRED
    if now - last_seen_at >= timedelta(minutes=profile.security.idle_lock_minutes):
        return SessionStatus.IDLE_LOCKED
    return SessionStatus.ACTIVE


# U3: acknowledgement before first access and yearly after --------------------------------------
def acknowledgement(
    last_acknowledged_at: datetime | None,
    last_digest: str | None,
    current_digest: str,
    now: datetime,
    profile: PolicyProfile,
) -> Decision:
    if last_acknowledged_at is None:
        return Decision.deny("U3", "the policy must be acknowledged before first access")
    if last_digest != current_digest:
        return Decision.deny("U3", "the policy profile has changed since it was last acknowledged")
    if now - last_acknowledged_at >= timedelta(days=profile.security.acknowledgement_valid_days):
        return Decision.deny("U3", "the yearly policy acknowledgement has lapsed")
    return Decision.allow("U3")


# Roles -------------------------------------------------------------------------------------------
def role_access(user_roles: frozenset[str], allowed_roles: frozenset[str]) -> Decision:
    """Least privilege: a route names the roles that may use it; anyone else is refused."""
    if user_roles & allowed_roles:
        return Decision.allow("CJIS-5.5.2")
    return Decision.deny("CJIS-5.5.2", f"requires one of the roles: {', '.join(sorted(allowed_roles))}")


def may_handle_video(user_roles: frozenset[str], profile: PolicyProfile) -> Decision:
    """U1: only video roles see video; an administrator alone does not."""
    if user_roles & frozenset(profile.video_roles):
        return Decision.allow("U1")
    return Decision.deny("U1", "this account has no video role")


# U1, U2: purpose sessions ------------------------------------------------------------------------
def may_open_purpose(
    user_roles: frozenset[str],
    purpose_id: str,
    profile: PolicyProfile,
    *,
    case_number: str | None = None,
    incident_number: str | None = None,
    designation_active: bool | None = None,
) -> Decision:
    """U1: a video role, a purpose the profile lists, and the number it requires; U2: the
    crime-location purpose only for a location a supervisor has designated and not revoked."""
    video = may_handle_video(user_roles, profile)
    if not video.allowed:
        return video
    purpose = profile.purpose(purpose_id)
    if purpose is None:
        return Decision.deny("U1", f"{purpose_id!r} is not a permitted purpose; choose one of the policy's purposes")
    if purpose.requires_case and not (case_number or "").strip():
        return Decision.deny(purpose.clause, f"the purpose {purpose.label!r} needs a case number")
    if purpose.requires_incident and not (incident_number or "").strip():
        return Decision.deny(purpose.clause, f"the purpose {purpose.label!r} needs an incident number")
    if purpose.requires_designated_location and not designation_active:
        return Decision.deny(
            "U2", "crime-location monitoring needs a location designated by a supervisor that is still in force"
        )
    return Decision.allow(purpose.clause)


@dataclass(frozen=True)
class PurposeState:
    """What a video decision needs to know about the caller's purpose session."""

    clause: str
    expires_at: datetime
    ended: bool
    # U2: the cameras of the session's designated location (None: any camera).
    designated_cameras: frozenset[int] | None = None
    designation_until: datetime | None = None


def may_view(
    user_roles: frozenset[str],
    purpose: PurposeState | None,
    camera_id: int,
    now: datetime,
    profile: PolicyProfile,
) -> Decision:
    """U1/U2: live view, playback, snapshot (and later PTZ and export) of one camera."""
    video = may_handle_video(user_roles, profile)
    if not video.allowed:
        return video
    if purpose is None:
        return Decision.deny("U1", "no purpose session: state why you are looking (open a purpose session) first")
    if purpose.ended:
        return Decision.deny("U1", "the purpose session has ended; open a new one")
    if now >= purpose.expires_at:
        return Decision.deny("U1", "the purpose session has expired; open a new one")
    if purpose.designated_cameras is not None:
        if purpose.designation_until is None or now >= purpose.designation_until:
            return Decision.deny("U2", "the designated location is no longer in force")
        if camera_id not in purpose.designated_cameras:
            return Decision.deny("U2", "this camera is not one of the designated location's cameras")
    return Decision.allow(purpose.clause)


@dataclass(frozen=True)
class SignInState:
    """What a running view needs to know about the viewer's sign-in session and account."""

    ended_reason: str | None  # None while the sign-in session is open
    created_at: datetime
    last_seen_at: datetime
    account_disabled: bool


ACCOUNT_MANAGEMENT = "CJIS-5.5.1"


def may_keep_watching(
    sign_in: SignInState | None,
    user_roles: frozenset[str],
    purpose: PurposeState | None,
    camera_id: int,
    now: datetime,
    profile: PolicyProfile,
) -> Decision:
    """Everything a view stands on, asked again while video flows: the sign-in session is
    open and neither idle-locked nor past its lifetime (CJIS 5.5.5), the account is enabled
    (CJIS 5.5.1), and — with the roles the account holds now — :func:`may_view` (U1, U2)."""
    if sign_in is None or sign_in.ended_reason is not None:
        reason = sign_in.ended_reason if sign_in is not None else "unknown"
        return Decision.deny(SESSION_LOCK, f"your sign-in session has ended ({reason})")
    if sign_in.account_disabled:
        return Decision.deny(ACCOUNT_MANAGEMENT, "your account has been disabled")
    status = session_status(sign_in.created_at, sign_in.last_seen_at, now, profile)
    if status is SessionStatus.IDLE_LOCKED:
        return Decision.deny(SESSION_LOCK, "your sign-in session was locked after inactivity")
    if status is SessionStatus.EXPIRED:
        return Decision.deny(SESSION_LOCK, "your sign-in session reached its maximum length")
    return may_view(user_roles, purpose, camera_id, now, profile)


def may_designate_location(user_roles: frozenset[str], profile: PolicyProfile) -> Decision:
    """U2: only the roles the profile names designate crime locations."""
    if user_roles & frozenset(profile.approvals.location_designation):
        return Decision.allow("U2")
    return Decision.deny(
        "U2", "designating a crime location needs the role: " + ", ".join(profile.approvals.location_designation)
    )


# U4: privacy zones and mask lifts ----------------------------------------------------------------
def may_propose_zones(user_roles: frozenset[str], profile: PolicyProfile) -> Decision:
    if user_roles & frozenset(profile.approvals.privacy_zone_propose):
        return Decision.allow("U4")
    return Decision.deny(
        "U4", "proposing privacy zones needs the role: " + ", ".join(profile.approvals.privacy_zone_propose)
    )


def may_decide_zones(
    user_roles: frozenset[str], proposer_id: int | None, decider_id: int, profile: PolicyProfile
) -> Decision:
    """U4: a change to privacy zones needs a second person with the approving role."""
    if not user_roles & frozenset(profile.approvals.privacy_zone_approve):
        return Decision.deny(
            "U4", "approving privacy zones needs the role: " + ", ".join(profile.approvals.privacy_zone_approve)
        )
    if proposer_id is not None and proposer_id == decider_id:
        return Decision.deny("U4", "privacy zones you proposed must be decided by someone else")
    return Decision.allow("U4")


def may_request_mask_lift(
    user_roles: frozenset[str], warrant_reference: str, minutes: int, profile: PolicyProfile
) -> Decision:
    if not user_roles & frozenset(profile.approvals.mask_lift_request):
        return Decision.deny(
            "U4", "requesting a mask lift needs the role: " + ", ".join(profile.approvals.mask_lift_request)
        )
    if not warrant_reference.strip():
        return Decision.deny("U4", "lifting a privacy mask needs a warrant reference")
    if not 0 < minutes <= profile.mask_lift_max_minutes:
        return Decision.deny("U4", f"a mask lift lasts 1 to {profile.mask_lift_max_minutes} minutes")
    return Decision.allow("U4")


def may_approve_mask_lift(
    user_roles: frozenset[str], requester_id: int, approver_id: int, profile: PolicyProfile
) -> Decision:
    if not user_roles & frozenset(profile.approvals.mask_lift_approve):
        return Decision.deny(
            "U4", "approving a mask lift needs the role: " + ", ".join(profile.approvals.mask_lift_approve)
        )
    if requester_id == approver_id:
        return Decision.deny("U4", "a mask lift must be approved by a second person, not the requester")
    return Decision.allow("U4")


def may_end_mask_lift(
    user_id: int, user_roles: frozenset[str], requester_id: int, approver_id: int | None, profile: PolicyProfile
) -> Decision:
    """U4: the requester, the approver, or anyone who may approve mask lifts ends one."""
    if user_id in (requester_id, approver_id) or user_roles & frozenset(profile.approvals.mask_lift_approve):
        return Decision.allow("U4")
    return Decision.deny("U4", "only the requester or an approver may end a mask lift")


def pictures_masked(zones_in_force: bool, own_lift_active: bool) -> bool:
    """U4: a camera's pictures leave masked whenever zones are in force, except to the one
    person whose approved mask lift for that camera is active."""
    return zones_in_force and not own_lift_active


# S1: retention and holds --------------------------------------------------------------------------
DAY_MS = 86_400_000
# How long before its review date a hold's owner is reminded.  Not yet a profile entry;
# see docs/design/retention.md.
HOLD_REVIEW_REMINDER_DAYS = 14


def may_withdraw_evidence_disposal(
    username: str, user_roles: frozenset[str], proposer: str, profile: PolicyProfile
) -> Decision:
    """S3: the proposer, or someone who may propose disposals, withdraws a proposal."""
    if username == proposer or user_roles & frozenset(profile.approvals.evidence_disposal):
        return Decision.allow("S3")
    return Decision.deny("S3", "only the proposer or the records commander withdraws a disposal proposal")


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def retention_cutoff_ms(now: datetime, profile: PolicyProfile) -> int:
    """S1: a recording that ended at or before this instant is past the retention limit."""
    return epoch_ms(now) - profile.retention.recording_days * DAY_MS


def segment_expired(end_ms: int, now: datetime, profile: PolicyProfile, *, protected: bool = False) -> Decision:
    """S1: allowed = this recording must now be destroyed (older than the limit, no hold)."""
    if protected:
        return Decision.deny("S1", "a hold, a pending storage request or a pending FOI request covers it")
    if end_ms > retention_cutoff_ms(now, profile):
        return Decision.deny("S1", f"younger than {profile.retention.recording_days} days")
    return Decision.allow("S1")


def compliance_deadline_ms(now: datetime, profile: PolicyProfile) -> int:
    """S1: unheld footage that ended before this is a violation (the limit plus one sweep)."""
    return retention_cutoff_ms(now, profile) - profile.retention.sweep_interval_minutes * 60_000


def valid_hold(
    reason: str, reference: str, start_ms: int, end_ms: int, camera_ids: frozenset[int], reasons: frozenset[str]
) -> Decision:
    """S1: a hold names its reason (investigation, prosecution, FOI request, litigation),
    the case, docket or request number, the cameras and a time range."""
    if reason not in reasons:
        return Decision.deny("S1", f"a hold's reason must be one of: {', '.join(sorted(reasons))}")
    if not reference.strip():
        return Decision.deny("S1", "a hold needs its case, docket or request number")
    if not camera_ids:
        return Decision.deny("S1", "a hold needs at least one camera")
    if end_ms <= start_ms:
        return Decision.deny("S1", "a hold's time range must end after it starts")
    return Decision.allow("S1")


def may_place_hold(user_roles: frozenset[str], profile: PolicyProfile) -> Decision:
    if user_roles & frozenset(profile.approvals.hold_place):
        return Decision.allow("S1")
    return Decision.deny("S1", "placing a hold needs the role: " + ", ".join(profile.approvals.hold_place))


def may_manage_hold(
    username: str, user_roles: frozenset[str], owner: str, provisional: bool, profile: PolicyProfile
) -> Decision:
    """S1: the owner or a hold manager (the records commander) changes, re-affirms or
    releases a hold; a storage request's provisional hold ends only with the request (S2)."""
    if provisional:
        return Decision.deny("S2", "this hold belongs to a storage request; it ends when the request is decided")
    if username == owner or user_roles & frozenset(profile.approvals.hold_manage):
        return Decision.allow("S1")
    return Decision.deny(
        "S1", "only the hold's owner or the role " + ", ".join(profile.approvals.hold_manage) + " may change it"
    )


class HoldReview(StrEnum):
    CURRENT = "current"
    DUE_SOON = "due_soon"
    LAPSED = "lapsed"


def next_review_due(reviewed_at: datetime, profile: PolicyProfile) -> datetime:
    return reviewed_at + timedelta(days=profile.retention.hold_review_days)


def hold_review(review_due_at: datetime | None, now: datetime) -> HoldReview:
    """S1: a hold not re-affirmed by its due date lapses; a reminder goes out before."""
    if review_due_at is None:
        return HoldReview.CURRENT
    if now >= review_due_at:
        return HoldReview.LAPSED
    if now >= review_due_at - timedelta(days=HOLD_REVIEW_REMINDER_DAYS):
        return HoldReview.DUE_SOON
    return HoldReview.CURRENT


def foi_response_due(received: date) -> date:
    """CGS 1-206(a): a public records request is answered within four business days
    (weekends skipped; state holidays are not known here and must be checked by a person)."""
    day, left = received, 4
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def may_read_disposal_report(user_roles: frozenset[str], profile: PolicyProfile, *, system: bool = False) -> Decision:
    """S1: the periodic disposal report is the records office's (the roles that keep the
    storage request log) and the auditors'; the ``pscs`` command on the server reads it too."""
    if system or reads_whole_request_log(user_roles, profile):
        return Decision.allow("S1")
    return Decision.deny("S1", "the disposal report is read by: " + ", ".join(_log_readers(profile)))


# S2: storage requests --------------------------------------------------------------------------
def may_file_storage_request(user_roles: frozenset[str], profile: PolicyProfile) -> Decision:
    if user_roles & frozenset(profile.video_roles):
        return Decision.allow("S2")
    return Decision.deny("S2", "filing a storage request needs a video role")


def reads_whole_request_log(user_roles: frozenset[str], profile: PolicyProfile, *, system: bool = False) -> bool:
    """S2: the log is the records commander's (the deciders'), and auditors read it all; so
    does the installation itself (the ``pscs`` command on the server, whose user holds the
    database)."""
    return system or bool(user_roles & (frozenset(profile.approvals.storage_request) | {"auditor"}))


def may_export_request_log(user_roles: frozenset[str], profile: PolicyProfile, *, system: bool = False) -> Decision:
    """S2: the whole log leaves (CSV, PDF) only for those who read it all."""
    if reads_whole_request_log(user_roles, profile, system=system):
        return Decision.allow("S2")
    return Decision.deny("S2", "the storage request log is exported by: " + ", ".join(_log_readers(profile)))


def _log_readers(profile: PolicyProfile) -> list[str]:
    return sorted({*profile.approvals.storage_request, "auditor"})


def may_see_request(
    username: str, user_roles: frozenset[str], requester: str, profile: PolicyProfile, *, system: bool = False
) -> Decision:
    """S2: the log is the records commander's; a requester sees their own; auditors read all."""
    if username == requester or reads_whole_request_log(user_roles, profile, system=system):
        return Decision.allow("S2")
    return Decision.deny("S2", "only the requester, the records commander and auditors see this request")


def may_decide_request(
    username: str, user_roles: frozenset[str], requester: str, status: str, profile: PolicyProfile
) -> Decision:
    """S2: only the records commander decides, never on a request of their own, and only once."""
    deciders = frozenset(profile.approvals.storage_request)
    if not user_roles & deciders:
        return Decision.deny("S2", "storage requests are decided by: " + ", ".join(sorted(deciders)))
    if username == requester:
        return Decision.deny("S2", "a requester cannot decide their own storage request")
    if status != "submitted":
        return Decision.deny("S2", f"this request is already {status}")
    return Decision.allow("S2")


# S3: evidence disposal -------------------------------------------------------------------------
def may_propose_evidence_disposal(
    user_roles: frozenset[str],
    item_status: str,
    case_reference: str,
    authority: str,
    case_closed_on: date | None,
    today: date,
    profile: PolicyProfile,
) -> Decision:
    """S3: evidence is destroyed only on a documented authorisation: the case is closed."""
    proposers = frozenset(profile.approvals.evidence_disposal)
    if not user_roles & proposers:
        return Decision.deny("S3", "proposing evidence disposal needs the role: " + ", ".join(sorted(proposers)))
    if item_status != "preserved":
        return Decision.deny("S3", f"this evidence item is {item_status}")
    if not case_reference.strip() or not authority.strip() or case_closed_on is None:
        return Decision.deny(
            "S3", "disposal needs the closed case's number, the date it closed and the document that authorises it"
        )
    if case_closed_on > today:
        return Decision.deny("S3", "the case must already be closed")
    return Decision.allow("S3")


def may_approve_evidence_disposal(
    username: str, user_roles: frozenset[str], proposer: str, profile: PolicyProfile
) -> Decision:
    """S3: a second person, with a role the profile names, approves the disposal."""
    seconds = frozenset(profile.approvals.evidence_disposal_second)
    if not user_roles & seconds:
        return Decision.deny("S3", "approving evidence disposal needs the role: " + ", ".join(sorted(seconds)))
    if username == proposer:
        return Decision.deny("S3", "evidence disposal needs a second approver, not the proposer")
    return Decision.allow("S3")


# M1: the audit trail ----------------------------------------------------------------------------
AUDIT_READERS = frozenset({"auditor"})


def may_read_audit_trail(user_roles: frozenset[str], *, system: bool = False) -> Decision:
    """M1: auditors search, export and verify the trail; so does the ``pscs`` command on the
    server (its user holds the database and the checkpoint key already)."""
    if system or user_roles & AUDIT_READERS:
        return Decision.allow("M1")
    return Decision.deny("M1", "the audit trail is read by: " + ", ".join(sorted(AUDIT_READERS)))


# Roles: two people for power (CJIS 5.5.2, separation of duties) ----------------------------------
SEPARATION_OF_DUTIES = "CJIS-5.5.2"


def powerful_roles(profile: PolicyProfile) -> frozenset[str]:
    """The video roles and every role the profile's approvals name (the two-person rules'
    approvers): the roles that, given alone, would let one person watch or approve."""
    named = set(profile.video_roles)
    for roles in profile.approvals.model_dump().values():
        named.update(roles)
    return frozenset(named)


def grant_needs_second_admin(role: str, profile: PolicyProfile, *, by_system: bool) -> bool:
    """Whether giving ``role`` waits for a second administrator.  The installation itself
    (``pscs`` on the server, whose user holds the database) grants at once."""
    return profile.role_grants_need_second_admin and not by_system and role in powerful_roles(profile)


def may_change_roles(*, own_account: bool) -> Decision:
    if own_account:
        return Decision.deny(SEPARATION_OF_DUTIES, "nobody changes their own roles; ask another administrator")
    return Decision.allow(SEPARATION_OF_DUTIES)


def may_decide_role_grant(
    decider_roles: frozenset[str], *, system: bool, is_requester: bool, is_grantee: bool
) -> Decision:
    if is_grantee:
        return Decision.deny(SEPARATION_OF_DUTIES, "nobody approves a role for themselves")
    if is_requester:
        return Decision.deny(SEPARATION_OF_DUTIES, "a second administrator, not the one who gave it, must approve")
    if not system and "admin" not in decider_roles:
        return Decision.deny(SEPARATION_OF_DUTIES, "only an administrator approves a role")
    return Decision.allow(SEPARATION_OF_DUTIES)
