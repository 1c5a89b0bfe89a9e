"""Which partner hears about what: its own hosts only, a case only under consent, and ids and outcomes only."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    BeneficiaryResponded,
    Capacity,
    CapacityUpdated,
    Event,
    HostAttributes,
    HostProfile,
    HostRegistered,
    HostResponded,
    HostUpdated,
    MatchProposed,
    PlacementConfirmed,
    ProposalReviewed,
    ProposalWithdrawn,
    ResponseExpired,
)
from services.notifications.partners import PARTNER_EVENT, PROJECTIONS, Subscription, partner_notifications
from services.notifications.rules import Cause

CAUSE = Cause("event-1", datetime(2026, 1, 1, tzinfo=UTC))
ALL_TYPES = frozenset(model.type for model in PROJECTIONS)


def subscription(subscription_id: str, organisation_id: str, types: frozenset[str] = ALL_TYPES) -> Subscription:
    return Subscription(subscription_id, organisation_id, types, f"https://{organisation_id}.example/hook", "key-1")


SUBSCRIPTIONS = [subscription("sub-a", "org-a"), subscription("sub-a2", "org-a"), subscription("sub-b", "org-b")]


def proposed() -> MatchProposed:
    return MatchProposed(proposal_id="proposal-1", case_id="case-1", host_id="host-a", pool_id="pool-north",
                         run_id="run-1", score=1.5, explanation={"contributions": {"language": 1.0}})


def receivers(event: Event, *, host_organisation: str | None, consented: set[str]) -> list[str]:
    made = partner_notifications(event, CAUSE, SUBSCRIPTIONS, host_organisation=host_organisation,
                                 consented_partners=consented)
    return [n.recipient_ref for n in made]


def test_the_hosts_partner_hears_of_a_case_when_the_consent_names_it() -> None:
    assert receivers(proposed(), host_organisation="org-a", consented={"org-a"}) == ["sub-a", "sub-a2"]


def test_without_consent_for_the_hosts_partner_nobody_hears_of_the_case() -> None:
    assert receivers(proposed(), host_organisation="org-a", consented=set()) == []
    # Consent for another partner does not open the case to this one, nor make that one the host's partner.
    assert receivers(proposed(), host_organisation="org-a", consented={"org-b"}) == []


def test_an_unknown_host_reaches_nobody() -> None:
    assert receivers(proposed(), host_organisation=None, consented={"org-a", "org-b"}) == []


def test_host_events_need_no_case_consent() -> None:
    event = CapacityUpdated(host_id="host-b", pool_id="pool-north", version=3, capacity=Capacity(people=4, beds=4))
    assert receivers(event, host_organisation="org-b", consented=set()) == ["sub-b"]


def test_only_the_subscribed_event_types_are_delivered() -> None:
    only_decisions = [subscription("sub-a", "org-a", frozenset({ApprovalDecided.type}))]
    made = partner_notifications(proposed(), CAUSE, only_decisions, host_organisation="org-a",
                                 consented_partners={"org-a"})
    assert made == []


def test_events_partners_cannot_subscribe_to_reach_nobody() -> None:
    event = ProposalReviewed(proposal_id="proposal-1", case_id="case-1", host_id="host-a",
                             reviewed_by="caseworker-1", recommendation="approve")
    assert receivers(event, host_organisation="org-a", consented={"org-a"}) == []


def test_a_delivery_carries_a_cloudevent_with_ids_and_outcomes_only() -> None:
    event = HostResponded(proposal_id="proposal-1", case_id="case-1", host_id="host-a", accepted=False,
                          reason="we have no room after all", recorded_by="staff-member-9")
    [made] = partner_notifications(event, CAUSE, SUBSCRIPTIONS[:1], host_organisation="org-a",
                                   consented_partners={"org-a"})
    assert (made.rule, made.recipient_kind, made.channel, made.case_id) == (PARTNER_EVENT, "partner", "webhook",
                                                                           "case-1")
    assert made.facts["event"] == {
        "specversion": "1.0", "id": "event-1", "source": "/matching-centre", "type": HostResponded.type,
        "time": "2026-01-01T00:00:00+00:00", "subject": "case-1", "datacontenttype": "application/json",
        "data": {"proposal_id": "proposal-1", "case_id": "case-1", "host_id": "host-a", "accepted": False},
    }


def samples() -> list[Event]:
    """One event of every type a partner may subscribe to, with every optional field filled."""
    ids = {"proposal_id": "proposal-1", "case_id": "case-1", "host_id": "host-a"}
    profile = HostProfile(host_type="sponsor_group", place="North", capacity=Capacity(people=4, beds=4),
                          communities=["a community"], excluded_case_ids=["case-9"])
    return [
        HostRegistered(host_id="host-a", pool_id="pool-north", organisation_id="org-a", external_ref="ref-1",
                       profile=profile),
        CapacityUpdated(host_id="host-a", pool_id="pool-north", version=3, capacity=Capacity(people=4, beds=4)),
        HostUpdated(host_id="host-a", pool_id="pool-north", version=2,
                    profile=HostAttributes(host_type="sponsor_group", place="North", communities=["a community"],
                                           excluded_case_ids=["case-9"])),
        proposed(),
        ProposalWithdrawn(**ids, reason="consent withdrawn", run_id="run-2"),
        ApprovalDecided(**ids, decision="rejected", decided_by="approver-1", reviewed_by="caseworker-1",
                        reason="free text about the household"),
        BeneficiaryResponded(**ids, accepted=False, reason="free text", recorded_by="caseworker-1"),
        HostResponded(**ids, accepted=False, reason="free text", recorded_by="staff-member-9"),
        PlacementConfirmed(placement_id="placement-1", pool_id="pool-north", **ids),
        decided_v2(),
        ResponseExpired(**ids, pool_id="pool-north", respond_by=datetime(2026, 1, 8, tzinfo=UTC),
                        unanswered=["beneficiary"]),
    ]


def decided_v2() -> ApprovalDecidedV2:
    return ApprovalDecidedV2(proposal_id="proposal-1", case_id="case-1", host_id="host-a", pool_id="pool-north",
                             decision="approved", decided_by="approver-1", reviewed_by="caseworker-1",
                             reason="free text", respond_by=datetime(2026, 1, 8, tzinfo=UTC))


def test_every_projection_passes_on_ids_outcomes_and_numbers_only() -> None:
    allowed = {"proposal_id", "case_id", "host_id", "pool_id", "placement_id", "external_ref", "urgency",
               "decision", "accepted", "version", "capacity", "respond_by", "unanswered"}
    events = samples()
    assert {type(event) for event in events} == set(PROJECTIONS)
    for event in events:
        data = PROJECTIONS[type(event)](event)
        assert set(data) <= allowed, type(event).__name__
        assert "free text" not in repr(data)


def test_partner_delivery_ids_are_stable_and_differ_per_subscription() -> None:
    first = partner_notifications(proposed(), CAUSE, SUBSCRIPTIONS, host_organisation="org-a",
                                  consented_partners={"org-a"})
    again = partner_notifications(proposed(), CAUSE, SUBSCRIPTIONS, host_organisation="org-a",
                                  consented_partners={"org-a"})
    assert [n.id for n in first] == [n.id for n in again]
    assert len({n.id for n in first}) == 2


def test_a_subscriber_of_the_earlier_version_keeps_hearing_of_decisions_as_that_version() -> None:
    subscriptions = [subscription("sub-v1", "org-a", frozenset({ApprovalDecided.type})),
                     subscription("sub-v2", "org-a", frozenset({ApprovalDecidedV2.type})),
                     subscription("sub-both", "org-a", frozenset({ApprovalDecided.type, ApprovalDecidedV2.type}))]
    made = partner_notifications(decided_v2(), CAUSE, subscriptions, host_organisation="org-a",
                                 consented_partners={"org-a"})
    delivered = {n.recipient_ref: n.facts["event"] for n in made}
    ids = {"proposal_id": "proposal-1", "case_id": "case-1", "host_id": "host-a"}
    assert delivered["sub-v1"]["type"] == ApprovalDecided.type
    assert delivered["sub-v1"]["data"] == ids | {"decision": "approved"}
    assert delivered["sub-v2"]["type"] == delivered["sub-both"]["type"] == ApprovalDecidedV2.type
    assert delivered["sub-v2"]["data"] == ids | {"decision": "approved", "respond_by": "2026-01-08T00:00:00+00:00"}
