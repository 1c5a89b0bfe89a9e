"""The notification rules: who is told what for each event, the deadlines quoted, and ids a repeated cause keeps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    BeneficiaryResponded,
    CaseWithdrawn,
    DecisionOverdue,
    Event,
    MatchProposed,
    PlacementConfirmed,
    ProposalReviewed,
    ProposalReviewedV2,
    ProposalWithdrawn,
    ResponseExpired,
)
from services.notifications.rules import (
    CAUSES,
    DEFAULT_CHANNEL,
    DEFAULT_LANGUAGE,
    MESSAGES,
    NO_DEADLINE,
    Cause,
    Known,
    Notification,
    desk,
    moment,
    notification_id,
    notifications_for,
)

CAUSE_ID = "3f1c2a7e-8d4b-4c59-9a0e-6b5d4c3b2a10"
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CAUSE = Cause(CAUSE_ID, AT)


def proposed() -> MatchProposed:
    return MatchProposed(proposal_id="proposal-1", case_id="case-1", host_id="host-1", pool_id="pool-north",
                         run_id="run-1", score=3.5)


def decided(decision: str) -> ApprovalDecidedV2:
    return ApprovalDecidedV2(proposal_id="proposal-1", case_id="case-1", host_id="host-1", pool_id="pool-north",
                             decision=decision,  # type: ignore[arg-type]
                             decided_by="approver-1", reviewed_by="caseworker-1",
                             respond_by=AT + timedelta(days=7) if decision == "approved" else None)


def decided_v1(decision: str) -> ApprovalDecided:
    return ApprovalDecided(proposal_id="proposal-1", case_id="case-1", host_id="host-1", decision=decision,  # type: ignore[arg-type]
                           decided_by="approver-1", reviewed_by="caseworker-1")


def placed() -> PlacementConfirmed:
    return PlacementConfirmed(placement_id="placement-1", proposal_id="proposal-1", case_id="case-1",
                              host_id="host-1", pool_id="pool-north")


def reviewed() -> ProposalReviewedV2:
    return ProposalReviewedV2(proposal_id="proposal-1", case_id="case-1", host_id="host-1", pool_id="pool-north",
                              urgency="urgent", reviewed_by="caseworker-1", recommendation="approve",
                              decide_by=AT + timedelta(hours=72))


def reviewed_v1() -> ProposalReviewed:
    return ProposalReviewed(proposal_id="proposal-1", case_id="case-1", host_id="host-1", reviewed_by="caseworker-1",
                            recommendation="approve")


def overdue() -> DecisionOverdue:
    return DecisionOverdue(proposal_id="proposal-1", case_id="case-1", host_id="host-1", pool_id="pool-north",
                           urgency="urgent", reviewed_by="caseworker-1", decide_by=AT, escalated_to="desk:pool-north")


def expired() -> ResponseExpired:
    return ResponseExpired(proposal_id="proposal-1", case_id="case-1", host_id="host-1", pool_id="pool-north",
                           respond_by=AT, unanswered=["host"])


def withdrawn() -> ProposalWithdrawn:
    return ProposalWithdrawn(proposal_id="proposal-1", case_id="case-1", host_id="host-1",
                             reason="superseded by a better match")


def targets(notifications: list[Notification]) -> list[tuple[str, str, str]]:
    return [(n.rule, n.recipient_kind, n.recipient_ref) for n in notifications]


def test_a_proposal_goes_to_the_desk_of_its_pool_for_review() -> None:
    assert targets(notifications_for(proposed(), CAUSE)) == [("proposal_to_review", "caseworker", "desk:pool-north")]


def test_an_approved_proposal_is_offered_to_the_beneficiary_and_the_host() -> None:
    assert targets(notifications_for(decided("approved"), CAUSE)) == [
        ("match_offer", "beneficiary", "case-1"),
        ("host_offer", "host", "host-1"),
    ]


def test_a_rejected_proposal_goes_back_to_the_desk_of_the_cases_pool() -> None:
    assert targets(notifications_for(decided("rejected"), CAUSE, Known(pool_id="pool-north"))) == [
        ("proposal_rejected", "caseworker", "desk:pool-north")
    ]


def test_without_a_known_pool_the_desk_of_the_case_is_told() -> None:
    assert targets(notifications_for(decided_v1("rejected"), CAUSE)) == [
        ("proposal_rejected", "caseworker", "desk:case-1")
    ]


def test_a_reviewed_proposal_asks_the_approvers_desk_for_a_decision_by_the_deadline_consent_set() -> None:
    [due] = notifications_for(reviewed(), CAUSE)
    assert (due.rule, due.recipient_kind, due.recipient_ref) == ("decision_due", "approver", "desk:pool-north")
    assert due.facts["decide_by"] == "2026-03-05 09:30 UTC"


def test_an_offer_quotes_the_response_deadline_consent_set_to_beneficiary_and_host() -> None:
    offers = notifications_for(decided("approved"), CAUSE)
    assert {n.recipient_kind: n.facts["respond_by"] for n in offers} == {"beneficiary": "2026-03-09 09:30 UTC",
                                                                           "host": "2026-03-09 09:30 UTC"}


def test_v1_reviews_and_decisions_carried_no_deadline_and_none_is_invented() -> None:
    [due] = notifications_for(reviewed_v1(), CAUSE)
    offers = notifications_for(decided_v1("approved"), CAUSE)
    assert due.facts["decide_by"] == NO_DEADLINE
    assert {n.facts["respond_by"] for n in offers} == {NO_DEADLINE}


def test_an_overdue_decision_goes_to_the_desk_consent_escalated_it_to() -> None:
    [reminder] = notifications_for(overdue(), CAUSE)
    assert (reminder.rule, reminder.recipient_kind, reminder.recipient_ref, reminder.facts["decide_by"]) == (
        "decision_overdue", "approver", "desk:pool-north", "2026-03-02 09:30 UTC")
    assert notifications_for(overdue(), CAUSE) == [reminder], "the same overdue event, the same notification"


def test_an_expired_offer_is_told_to_the_beneficiary_and_the_host() -> None:
    told = notifications_for(expired(), CAUSE)
    assert targets(told) == [("offer_expired", "beneficiary", "case-1"), ("offer_expired", "host", "host-1")]
    assert {n.facts["respond_by"] for n in told} == {"2026-03-02 09:30 UTC"}


def test_every_message_quotes_exactly_the_facts_its_rule_promises() -> None:
    events = [proposed(), reviewed(), decided("approved"), decided("rejected"), placed(), withdrawn(), overdue(),
              expired()]
    made = [n for event in events for n in notifications_for(event, CAUSE)]
    assert {(n.rule, n.recipient_kind) for n in made} == set(MESSAGES)
    for notification in made:
        assert set(notification.facts) == MESSAGES[(notification.rule, notification.recipient_kind)]


def test_due_times_are_quoted_in_utc() -> None:
    from datetime import timedelta, timezone

    assert moment(datetime(2026, 3, 2, 11, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-03-02 09:30 UTC"


def test_a_confirmed_placement_is_told_to_the_beneficiary_and_the_host() -> None:
    assert targets(notifications_for(placed(), CAUSE)) == [
        ("placement_confirmed", "beneficiary", "case-1"),
        ("placement_confirmed", "host", "host-1"),
    ]


def test_a_withdrawn_proposal_goes_to_the_desk_of_the_case() -> None:
    assert targets(notifications_for(withdrawn(), CAUSE)) == [("proposal_withdrawn", "caseworker", "desk:case-1")]


@pytest.mark.parametrize(
    "event",
    [
        BeneficiaryResponded(proposal_id="proposal-1", case_id="case-1", host_id="host-1", accepted=True,
                             recorded_by="caseworker-1"),
        CaseWithdrawn(case_id="case-1", reason="moved on"),
    ],
)
def test_events_no_rule_is_about_cause_nothing(event: Event) -> None:
    assert notifications_for(event, CAUSE) == []


@pytest.mark.parametrize(
    "event", [proposed(), reviewed(), reviewed_v1(), decided("approved"), decided_v1("approved"),
              decided("rejected"), placed(), withdrawn(), overdue(), expired()]
)
def test_every_notification_names_its_case_cause_channel_and_default_language(event: Event) -> None:
    notifications = notifications_for(event, CAUSE)
    assert notifications
    for notification in notifications:
        assert notification.case_id == "case-1"
        assert notification.cause_event_id == CAUSE_ID
        assert notification.channel == DEFAULT_CHANNEL == "log"
        assert notification.language == DEFAULT_LANGUAGE == "en"
        assert notification.id == notification_id(CAUSE_ID, notification.rule, notification.recipient_kind,
                                                  notification.recipient_ref)


def test_the_channel_asked_for_is_used() -> None:
    assert {n.channel for n in notifications_for(decided("approved"), CAUSE, channel="email")} == {"email"}


def test_every_cause_has_a_rule() -> None:
    samples = {type(event): event for event in (proposed(), reviewed(), reviewed_v1(), decided("approved"),
                                                 decided_v1("approved"), placed(), withdrawn(), overdue(), expired())}
    assert set(CAUSES) == set(samples)


def test_the_same_cause_gives_the_same_ids_every_time() -> None:
    first = notifications_for(decided("approved"), CAUSE)
    again = notifications_for(decided("approved"), CAUSE)
    assert first == again
    assert len({n.id for n in first}) == len(first)


def test_ids_are_uuids_that_differ_by_cause_rule_and_recipient() -> None:
    base = notification_id(CAUSE_ID, "placement_confirmed", "host", "host-1")
    assert uuid.UUID(base).version == 5
    assert base != notification_id("another-event", "placement_confirmed", "host", "host-1")
    assert base != notification_id(CAUSE_ID, "host_offer", "host", "host-1")
    assert base != notification_id(CAUSE_ID, "placement_confirmed", "beneficiary", "host-1")
    assert base != notification_id(CAUSE_ID, "placement_confirmed", "host", "host-2")


def test_ids_keep_their_parts_apart() -> None:
    # Joining the parts naively would make these two the same name.
    assert notification_id("a:b", "c", "host", "h") != notification_id("a", "b:c", "host", "h")


def test_ids_are_fixed_for_ever() -> None:
    # A changed namespace or name would give replayed causes new ids, and so duplicate notifications.
    assert notification_id(CAUSE_ID, "match_offer", "beneficiary", "case-1") == str(
        uuid.uuid5(uuid.UUID("6f0b7a52-3c1e-5b8e-9d4a-2f6c1e0d9a71"),
                   f'["{CAUSE_ID}","match_offer","beneficiary","case-1"]')
    )


def test_a_known_language_is_used_for_its_recipient_and_the_default_for_the_others() -> None:
    notifications = notifications_for(decided("approved"), CAUSE, Known(languages={"beneficiary": "uk"}))
    assert {n.recipient_kind: n.language for n in notifications} == {"beneficiary": "uk", "host": "en"}


def test_desk_reference() -> None:
    assert desk("pool-north") == "desk:pool-north"
