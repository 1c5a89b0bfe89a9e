"""The approval workflow: every step allowed from where it is, every other step refused with a reason."""

from __future__ import annotations

import pytest

from schemas.events import ApprovalDecided, BeneficiaryResponded, HostResponded, PlacementConfirmed, ProposalReviewed
from services.consent.model import Proposal, TransitionRefused


def proposed() -> Proposal:
    return Proposal("proposal-1", "case-1", "host-1", "pool-1")


def approved() -> Proposal:
    reviewed, _ = proposed().review("caseworker-a", "approve", None)
    decided, _ = reviewed.decide("approver-b", "approved", None)
    return decided


def test_review_then_decide_by_another_person_approves() -> None:
    reviewed, events = proposed().review("caseworker-a", "approve", "fits the family")
    assert reviewed.state == "reviewed" and isinstance(events[0], ProposalReviewed)
    decided, events = reviewed.decide("approver-b", "approved", None)
    assert decided.state == "approved"
    assert isinstance(events[0], ApprovalDecided) and events[0].reviewed_by == "caseworker-a"


def test_the_reviewer_cannot_decide_their_own_review() -> None:
    reviewed, _ = proposed().review("caseworker-a", "approve", None)
    with pytest.raises(TransitionRefused, match="four-eyes"):
        reviewed.decide("caseworker-a", "approved", None)


def test_a_proposal_is_not_decided_before_review_and_a_rejection_needs_a_reason() -> None:
    with pytest.raises(TransitionRefused, match="not been reviewed"):
        proposed().decide("approver-b", "approved", None)
    reviewed, _ = proposed().review("caseworker-a", "reject", None)
    with pytest.raises(TransitionRefused, match="reason"):
        reviewed.decide("approver-b", "rejected", None)
    rejected, _ = reviewed.decide("approver-b", "rejected", "no school places nearby")
    assert rejected.state == "rejected"


def test_placement_needs_both_yes_answers() -> None:
    after_one, events = approved().respond("beneficiary", True, None, "desk", "placement-1")
    assert after_one.state == "approved" and [type(e) for e in events] == [BeneficiaryResponded]
    placed, events = after_one.respond("host", True, None, "host-desk", "placement-1")
    assert placed.state == "placed"
    assert [type(e) for e in events] == [HostResponded, PlacementConfirmed]


@pytest.mark.parametrize("party", ["beneficiary", "host"])
def test_either_decline_ends_the_match(party: str) -> None:
    declined, events = approved().respond(party, False, "too far", "desk", "placement-1")  # type: ignore[arg-type]
    assert declined.state == "declined" and not events[0].accepted  # type: ignore[attr-defined]
    with pytest.raises(TransitionRefused):
        declined.respond("host" if party == "beneficiary" else "beneficiary", True, None, "desk", "placement-1")


def test_answering_twice_or_before_approval_is_refused() -> None:
    once, _ = approved().respond("host", True, None, "desk", "placement-1")
    with pytest.raises(TransitionRefused, match="already responded"):
        once.respond("host", False, None, "desk", "placement-1")
    with pytest.raises(TransitionRefused, match="only an approved match"):
        proposed().respond("beneficiary", True, None, "desk", "placement-1")


def test_matching_withdraws_only_what_no_human_has_approved() -> None:
    assert proposed().withdraw() is not None
    assert approved().withdraw() is None
