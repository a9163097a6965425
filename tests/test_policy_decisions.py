"""Pure policy decisions that the services call and that no other test names."""

from __future__ import annotations

from pscs.policy import decisions
from pscs.policy.profile import load_profile

NORWICH = load_profile()


def test_S2_the_whole_request_log_is_for_its_deciders_and_auditors() -> None:
    assert decisions.reads_whole_request_log(frozenset({"records_commander"}), NORWICH)
    assert decisions.reads_whole_request_log(frozenset({"auditor"}), NORWICH)
    assert not decisions.reads_whole_request_log(frozenset({"investigator", "supervisor"}), NORWICH)
    assert decisions.may_see_request("ivan", frozenset({"investigator"}), "ivan", NORWICH).allowed
    assert not decisions.may_see_request("ivan", frozenset({"investigator"}), "olga", NORWICH).allowed


def test_S3_a_disposal_proposal_is_withdrawn_by_its_proposer_or_a_proposer_role() -> None:
    may = decisions.may_withdraw_evidence_disposal
    assert may("rita", frozenset({"records_commander"}), "other", NORWICH).allowed
    assert may("sam", frozenset({"supervisor"}), "sam", NORWICH).allowed
    refused = may("sam", frozenset({"supervisor"}), "rita", NORWICH)
    assert not refused.allowed and refused.clause == "S3"


def test_U4_a_mask_lift_is_ended_by_its_requester_its_approver_or_an_approver_role() -> None:
    may = decisions.may_end_mask_lift
    assert may(7, frozenset({"investigator"}), 7, None, NORWICH).allowed
    assert may(9, frozenset({"operator"}), 7, 9, NORWICH).allowed
    assert may(5, frozenset({"records_commander"}), 7, 9, NORWICH).allowed
    refused = may(5, frozenset({"investigator"}), 7, 9, NORWICH)
    assert not refused.allowed and refused.clause == "U4" and "requester or an approver" in refused.reason


def test_U4_pictures_are_masked_while_zones_are_in_force_except_under_ones_own_lift():
    assert decisions.pictures_masked(zones_in_force=True, own_lift_active=False)
    assert not decisions.pictures_masked(zones_in_force=True, own_lift_active=True)
    assert not decisions.pictures_masked(zones_in_force=False, own_lift_active=False)
