"""Who is told what, when: the rules that turn the centre's events into notifications. No I/O here.

A notification is an intent, not a message: it names a rule, a recipient (a kind and a pseudonymous
reference), a channel, a language and the facts its message quotes (ids, dates and deadlines only). What
the recipient reads is written by the channel from the rule's template at the last moment, so no message
body (and no personal data) is ever stored or published.

Every notification's id is derived from its cause (uuid5 over the cause's event id, the rule and the
recipient), so handling a redelivered or replayed cause again yields the same ids and the store keeps one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    DecisionOverdue,
    Event,
    MatchProposed,
    PlacementConfirmed,
    ProposalReviewed,
    ProposalReviewedV2,
    ProposalWithdrawn,
    ResponseExpired,
)

RecipientKind = Literal["caseworker", "approver", "beneficiary", "host", "partner"]
ChannelName = Literal["log", "email", "webhook"]

# Fixed for ever: changing it would give every replayed cause new notification ids, and so duplicates.
NOTIFICATION_NAMESPACE: Final = uuid.UUID("6f0b7a52-3c1e-5b8e-9d4a-2f6c1e0d9a71")

DEFAULT_LANGUAGE: Final = "en"
# People's channel when the service is not told otherwise (no SMTP server configured).
DEFAULT_CHANNEL: Final[ChannelName] = "log"

PROPOSAL_TO_REVIEW: Final = "proposal_to_review"
DECISION_DUE: Final = "decision_due"
DECISION_OVERDUE: Final = "decision_overdue"
PROPOSAL_REJECTED: Final = "proposal_rejected"
PROPOSAL_WITHDRAWN: Final = "proposal_withdrawn"
MATCH_OFFER: Final = "match_offer"
HOST_OFFER: Final = "host_offer"
PLACEMENT_CONFIRMED: Final = "placement_confirmed"
OFFER_EXPIRED: Final = "offer_expired"

# What a message quotes for a deadline that its cause does not carry: v1 reviews and decisions were
# published before the consent service set deadlines, and nobody escalates or expires those.
NO_DEADLINE: Final = "-"

# Every message a person can receive, and the facts its template may quote. The templates test holds
# every language to this table: a translation cannot drop a deadline or quote what the rule never gives.
MESSAGES: Final[Mapping[tuple[str, RecipientKind], frozenset[str]]] = MappingProxyType({
    (PROPOSAL_TO_REVIEW, "caseworker"): frozenset({"proposal_id", "case_id", "host_id", "pool_id"}),
    (DECISION_DUE, "approver"): frozenset({"proposal_id", "case_id", "host_id", "decide_by"}),
    (DECISION_OVERDUE, "approver"): frozenset({"proposal_id", "case_id", "host_id", "decide_by"}),
    (PROPOSAL_REJECTED, "caseworker"): frozenset({"proposal_id", "case_id", "host_id"}),
    (PROPOSAL_WITHDRAWN, "caseworker"): frozenset({"proposal_id", "case_id", "host_id"}),
    (MATCH_OFFER, "beneficiary"): frozenset({"proposal_id", "case_id", "respond_by"}),
    (HOST_OFFER, "host"): frozenset({"proposal_id", "case_id", "host_id", "respond_by"}),
    (PLACEMENT_CONFIRMED, "beneficiary"): frozenset({"placement_id", "case_id"}),
    (PLACEMENT_CONFIRMED, "host"): frozenset({"placement_id", "case_id", "host_id"}),
    (OFFER_EXPIRED, "beneficiary"): frozenset({"proposal_id", "case_id", "respond_by"}),
    (OFFER_EXPIRED, "host"): frozenset({"proposal_id", "case_id", "host_id", "respond_by"}),
})

# The event types that cause people's notifications; the consumer runs the rules for each.
CAUSES: Final[tuple[type[Event], ...]] = (
    MatchProposed, ProposalReviewed, ProposalReviewedV2, ApprovalDecided, ApprovalDecidedV2, DecisionOverdue,
    ResponseExpired, PlacementConfirmed, ProposalWithdrawn,
)


@dataclass(frozen=True, slots=True)
class Notification:
    """One recipient to be told one thing because of one event."""

    id: str
    rule: str
    recipient_kind: RecipientKind
    recipient_ref: str
    channel: ChannelName
    language: str
    case_id: str | None
    cause_event_id: str
    # What the message quotes (a person's) or carries (a partner's): ids, dates and deadlines only.
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cause:
    """The event a notification is about, as the consumer received it."""

    event_id: str
    time: datetime


@dataclass(frozen=True, slots=True)
class Known:
    """What earlier events told this service about the cause's case and proposal.

    ``pool_id`` routes desk messages to the desk of the case's pool; ``languages`` holds each recipient
    kind's own language where one is known (the case's for the beneficiary, a contact's for a desk or a
    host); a kind not in it is written to in ``DEFAULT_LANGUAGE``.
    """

    pool_id: str | None = None
    languages: Mapping[RecipientKind, str] = field(default_factory=dict)


def notification_id(cause_event_id: str, rule: str, recipient_kind: str, recipient_ref: str) -> str:
    """The stable id of a notification: the same cause, rule and recipient always give the same id."""
    # A JSON array keeps the parts apart whatever characters they hold.
    name = json.dumps([cause_event_id, rule, recipient_kind, recipient_ref], separators=(",", ":"))
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, name))


def desk(pool_or_case_id: str) -> str:
    """The reference of the desk that handles a pool (or, where the pool is not known, a case)."""
    return f"desk:{pool_or_case_id}"


def moment(value: datetime | None) -> str:
    """A due time as every template quotes it: unambiguous in any language, in UTC."""
    if value is None:
        return NO_DEADLINE
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def notifications_for(
    event: Event,
    cause: Cause,
    known: Known | None = None,
    *,
    channel: ChannelName = DEFAULT_CHANNEL,
) -> list[Notification]:
    """The people's notifications an event causes; none for an event no rule is about.

    Deadlines are quoted as the consent service set them on its events (v2 reviews and decisions, the
    escalation of an overdue decision, the expiry of an offer); this service computes none.
    """
    known = known or Known()
    pool_id = known.pool_id or getattr(event, "pool_id", None)
    desk_ref = desk(pool_id or str(getattr(event, "case_id", "unknown")))
    targets: list[tuple[str, RecipientKind, str, dict[str, str]]]
    if isinstance(event, MatchProposed):
        facts = _ids(event) | {"pool_id": event.pool_id}
        targets = [(PROPOSAL_TO_REVIEW, "caseworker", desk(event.pool_id), facts)]
    elif isinstance(event, ProposalReviewed | ProposalReviewedV2):
        decide_by = moment(event.decide_by if isinstance(event, ProposalReviewedV2) else None)
        targets = [(DECISION_DUE, "approver", desk_ref, _ids(event) | {"decide_by": decide_by})]
    elif isinstance(event, DecisionOverdue):
        # The desk consent escalated to; its id is the overdue event's, and consent escalates each review once.
        targets = [(DECISION_OVERDUE, "approver", event.escalated_to,
                    _ids(event) | {"decide_by": moment(event.decide_by)})]
    elif isinstance(event, ApprovalDecided | ApprovalDecidedV2):
        if event.decision == "approved":
            respond_by = moment(event.respond_by if isinstance(event, ApprovalDecidedV2) else None)
            targets = [
                (MATCH_OFFER, "beneficiary", event.case_id,
                 {"proposal_id": event.proposal_id, "case_id": event.case_id, "respond_by": respond_by}),
                (HOST_OFFER, "host", event.host_id, _ids(event) | {"respond_by": respond_by}),
            ]
        else:
            targets = [(PROPOSAL_REJECTED, "caseworker", desk_ref, _ids(event))]
    elif isinstance(event, PlacementConfirmed):
        facts = {"placement_id": event.placement_id, "case_id": event.case_id}
        targets = [
            (PLACEMENT_CONFIRMED, "beneficiary", event.case_id, facts),
            (PLACEMENT_CONFIRMED, "host", event.host_id, facts | {"host_id": event.host_id}),
        ]
    elif isinstance(event, ProposalWithdrawn):
        targets = [(PROPOSAL_WITHDRAWN, "caseworker", desk_ref, _ids(event))]
    elif isinstance(event, ResponseExpired):
        respond_by = moment(event.respond_by)
        targets = [
            (OFFER_EXPIRED, "beneficiary", event.case_id,
             {"proposal_id": event.proposal_id, "case_id": event.case_id, "respond_by": respond_by}),
            (OFFER_EXPIRED, "host", event.host_id, _ids(event) | {"respond_by": respond_by}),
        ]
    else:
        return []
    return [
        Notification(
            id=notification_id(cause.event_id, rule, kind, ref),
            rule=rule,
            recipient_kind=kind,
            recipient_ref=ref,
            channel=channel,
            language=known.languages.get(kind, DEFAULT_LANGUAGE),
            case_id=event.case_id,  # type: ignore[attr-defined]
            cause_event_id=cause.event_id,
            facts=facts,
        )
        for rule, kind, ref, facts in targets
    ]


def _ids(event: Any) -> dict[str, str]:
    return {"proposal_id": event.proposal_id, "case_id": event.case_id, "host_id": event.host_id}
