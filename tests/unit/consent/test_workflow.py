"""The approval workflow: every step allowed from where it is, every other step refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas.events import (
    ApprovalDecidedV2,
    BeneficiaryResponded,
    DecisionOverdue,
    HostResponded,
    PlacementConfirmed,
    ProposalReviewedV2,
    ResponseExpired,
)
from services.consent.model import DeadlinePolicy, Proposal, TransitionRefused
from services.consent.settings import ConsentSettings

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
POLICY = DeadlinePolicy(decision_hours={"emergency": 24.0, "urgent": 72.0, "normal": 240.0}, response_days=7.0)


def proposed() -> Proposal:
    return Proposal("proposal-1", "case-1", "host-1", "pool-1")


def approved() -> Proposal:
    reviewed, _ = proposed().review("caseworker-a", "approve", None)
    decided, _ = reviewed.decide("approver-b", "approved", None)
    return decided


def test_review_then_decide_by_another_person_approves() -> None:
    reviewed, events = proposed().review("caseworker-a", "approve", "fits the family")
    assert reviewed.state == "reviewed" and isinstance(events[0], ProposalReviewedV2)
    decided, events = reviewed.decide("approver-b", "approved", None)
    assert decided.state == "approved"
    assert isinstance(events[0], ApprovalDecidedV2) and events[0].reviewed_by == "caseworker-a"


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


# --- Deadlines -------------------------------------------------------------------------------------


def urgent() -> Proposal:
    return Proposal("proposal-1", "case-1", "host-1", "pool-1", urgency="urgent")


@pytest.mark.parametrize(("urgency", "hours"), [("emergency", 24), ("urgent", 72), ("normal", 240)])
def test_the_decision_is_due_by_the_urgencys_hours_after_the_review(urgency: str, hours: int) -> None:
    proposal = Proposal("proposal-1", "case-1", "host-1", "pool-1", urgency=urgency)  # type: ignore[arg-type]
    reviewed, [event] = proposal.review("caseworker-a", "approve", None, now=AT, policy=POLICY)
    assert isinstance(event, ProposalReviewedV2)
    assert event.decide_by == reviewed.decide_by == AT + timedelta(hours=hours)
    assert (event.urgency, event.pool_id) == (urgency, "pool-1")


def test_an_urgency_the_policy_does_not_name_gets_normals_hours() -> None:
    policy = DeadlinePolicy(decision_hours={"normal": 10.0})
    assert policy.decide_by(AT, "emergency") == AT + timedelta(hours=10)


def test_an_approval_sets_the_response_deadline_and_a_rejection_none() -> None:
    reviewed, _ = urgent().review("caseworker-a", "approve", None, now=AT, policy=POLICY)
    approved_, [approval] = reviewed.decide("approver-b", "approved", None, now=AT, policy=POLICY)
    assert isinstance(approval, ApprovalDecidedV2)
    assert approval.respond_by == approved_.respond_by == AT + timedelta(days=7)
    _, [rejection] = reviewed.decide("approver-b", "rejected", "no school nearby", now=AT, policy=POLICY)
    assert isinstance(rejection, ApprovalDecidedV2) and rejection.respond_by is None


def test_an_overdue_decision_is_escalated_once_to_the_pools_desk_and_stays_reviewed() -> None:
    reviewed, _ = urgent().review("caseworker-a", "approve", None, now=AT, policy=POLICY)
    with pytest.raises(TransitionRefused, match="not overdue"):
        reviewed.escalate(now=AT + timedelta(hours=71), policy=POLICY)
    late = AT + timedelta(hours=72)
    escalated, [event] = reviewed.escalate(now=late, policy=POLICY)
    assert isinstance(event, DecisionOverdue)
    assert (event.escalated_to, event.decide_by, event.reviewed_by) == ("desk:pool-1", late, "caseworker-a")
    assert escalated.state == "reviewed" and escalated.escalated_at == late
    with pytest.raises(TransitionRefused, match="already been escalated"):
        escalated.escalate(now=late, policy=POLICY)
    decided, _ = escalated.decide("approver-b", "approved", None, now=late, policy=POLICY)
    assert decided.state == "approved", "an escalated decision can still be made"


def test_only_a_reviewed_proposal_is_escalated() -> None:
    with pytest.raises(TransitionRefused, match="only a reviewed one"):
        urgent().escalate(now=AT, policy=POLICY)
    with pytest.raises(TransitionRefused, match="only a reviewed one"):
        approved().escalate(now=AT + timedelta(days=30), policy=POLICY)


def test_an_unanswered_offer_expires_as_a_decline_naming_who_did_not_answer() -> None:
    offered = approved()
    assert offered.respond_by is not None
    answered, _ = offered.respond("beneficiary", True, None, "desk", "placement-1", now=offered.respond_by
                                  - timedelta(seconds=1))
    with pytest.raises(TransitionRefused, match="has not expired"):
        answered.expire(now=offered.respond_by - timedelta(seconds=1))
    expired, [event] = answered.expire(now=offered.respond_by)
    assert expired.state == "declined"
    assert isinstance(event, ResponseExpired)
    assert (event.unanswered, event.reason, event.respond_by) == (["host"], "no answer by deadline",
                                                                  offered.respond_by)
    _, [nobody] = offered.expire(now=offered.respond_by)
    assert nobody.unanswered == ["beneficiary", "host"]  # type: ignore[attr-defined]


def test_an_answer_after_the_deadline_is_refused_and_only_an_approved_offer_expires() -> None:
    offered = approved()
    assert offered.respond_by is not None
    with pytest.raises(TransitionRefused, match="expired"):
        offered.respond("host", True, None, "desk", "placement-1", now=offered.respond_by)
    with pytest.raises(TransitionRefused, match="only an approved offer"):
        proposed().expire(now=AT + timedelta(days=365))
    declined, _ = offered.respond("host", False, None, "desk", "placement-1", now=AT)
    with pytest.raises(TransitionRefused, match="only an approved offer"):
        declined.expire(now=offered.respond_by)


def test_the_deadline_policy_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_DECISION_HOURS", '{"emergency": 6, "normal": 48}')
    monkeypatch.setenv("CONSENT_RESPONSE_DAYS", "3")
    monkeypatch.setenv("CONSENT_ESCALATE_TO", "desk:leads-{pool_id}")
    policy = ConsentSettings(service_name="consent").deadline_policy
    assert policy.decide_by(AT, "emergency") == AT + timedelta(hours=6)
    assert policy.decide_by(AT, "urgent") == AT + timedelta(hours=48)
    assert policy.respond_by(AT) == AT + timedelta(days=3)
    assert policy.escalation_desk("pool-1") == "desk:leads-pool-1"


def test_the_deadline_policy_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_DECISION_HOURS", '{"emergency": 6}')
    with pytest.raises(ValidationError, match="normal"):
        ConsentSettings(service_name="consent")
    monkeypatch.setenv("CONSENT_DECISION_HOURS", '{"normal": 0}')
    with pytest.raises(ValidationError, match="positive"):
        ConsentSettings(service_name="consent")
