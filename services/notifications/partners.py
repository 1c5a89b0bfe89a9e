"""Which partner systems hear about an event, and what they hear. No I/O here.

A partner organisation subscribes to event types. It receives an event only when the event is about one
of its own hosts (the host's organisation is the partner), and, when the event is about a case, only
while that case's data-use consent covers sharing with that partner (purpose ``share_with_partner``
naming it). What it receives is a projection of the event: the ids, outcomes and numbers a partner needs
to act, never free-text reasons, staff ids or a case's profile.

A partner delivery is a notification like a person's (kind ``partner``, the subscription as its
reference, channel ``webhook``), so it has the same stable id, the same single delivery record, the
same retries and the same dead letters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    BeneficiaryResponded,
    CapacityUpdated,
    Event,
    HostRegistered,
    HostResponded,
    HostUpdated,
    MatchProposed,
    PlacementConfirmed,
    ProposalWithdrawn,
    ResponseExpired,
)
from services.notifications.rules import DEFAULT_LANGUAGE, Cause, Notification, notification_id

PARTNER_EVENT: Final = "partner_event"
SPEC_VERSION: Final = "1.0"
SOURCE: Final = "/matching-centre"


def _proposal(event: Any, *extra: str) -> dict[str, Any]:
    fields = ("proposal_id", "case_id", "host_id", *extra)
    return {name: getattr(event, name) for name in fields}


# The event types a partner may subscribe to, each with what a partner receives of it.
PROJECTIONS: Final[Mapping[type[Event], Callable[[Any], dict[str, Any]]]] = {
    HostRegistered: lambda e: {"host_id": e.host_id, "pool_id": e.pool_id, "external_ref": e.external_ref},
    CapacityUpdated: lambda e: {"host_id": e.host_id, "pool_id": e.pool_id, "version": e.version,
                                "capacity": e.capacity.model_dump(mode="json")},
    # That the host's profile changed, and to which version: the partner made the change, and holds the profile.
    HostUpdated: lambda e: {"host_id": e.host_id, "pool_id": e.pool_id, "version": e.version},
    MatchProposed: lambda e: _proposal(e, "pool_id", "urgency"),
    ProposalWithdrawn: lambda e: _proposal(e),
    ApprovalDecided: lambda e: _proposal(e, "decision"),
    ApprovalDecidedV2: lambda e: _proposal(e, "decision")
    | {"respond_by": e.respond_by.isoformat() if e.respond_by else None},
    ResponseExpired: lambda e: _proposal(e, "unanswered") | {"respond_by": e.respond_by.isoformat()},
    BeneficiaryResponded: lambda e: _proposal(e, "accepted"),
    HostResponded: lambda e: _proposal(e, "accepted"),
    PlacementConfirmed: lambda e: _proposal(e, "placement_id", "pool_id"),
}
PARTNER_EVENT_TYPES: Final[frozenset[str]] = frozenset(model.type for model in PROJECTIONS)
# A new version of an event still reaches the subscribers of the version it replaces, as that version,
# projected as it always was: a partner's subscription does not fall silent when the centre moves on.
EARLIER_VERSION: Final[Mapping[type[Event], type[Event]]] = {ApprovalDecidedV2: ApprovalDecided}


def subscribable_types(event: Event) -> tuple[str, ...]:
    """The event types whose subscribers hear about ``event``: its own, and the version it replaces."""
    earlier = EARLIER_VERSION.get(type(event))
    return (event.type,) if earlier is None else (event.type, earlier.type)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A partner system's standing request to receive some event types at a callback URL."""

    subscription_id: str
    organisation_id: str
    event_types: frozenset[str]
    callback_url: str
    key_id: str


def partner_notifications(
    event: Event,
    cause: Cause,
    subscriptions: Sequence[Subscription],
    *,
    host_organisation: str | None,
    consented_partners: Collection[str],
) -> list[Notification]:
    """The webhook deliveries an event causes.

    ``host_organisation`` is the organisation of the event's host (None when this service has not heard
    of the host); ``consented_partners`` are the partners the case's consent covers today.
    """
    if type(event) not in PROJECTIONS or host_organisation is None:
        return []
    case_id: str | None = getattr(event, "case_id", None)
    receivers = [
        subscription
        for subscription in subscriptions
        if set(subscribable_types(event)) & subscription.event_types
        and subscription.organisation_id == host_organisation
        and (case_id is None or subscription.organisation_id in consented_partners)
    ]

    def envelope(subscription: Subscription) -> dict[str, Any]:
        # The event's own type where the partner subscribed to it, else the version it replaces.
        model = type(event) if event.type in subscription.event_types else EARLIER_VERSION[type(event)]
        return {
            "specversion": SPEC_VERSION,
            "id": cause.event_id,
            "source": SOURCE,
            "type": model.type,
            "time": cause.time.isoformat(),
            "subject": case_id or event.key(),
            "datacontenttype": "application/json",
            "data": PROJECTIONS[model](event),
        }

    return [
        Notification(
            id=notification_id(cause.event_id, PARTNER_EVENT, "partner", subscription.subscription_id),
            rule=PARTNER_EVENT,
            recipient_kind="partner",
            recipient_ref=subscription.subscription_id,
            channel="webhook",
            language=DEFAULT_LANGUAGE,
            case_id=case_id,
            cause_event_id=cause.event_id,
            facts={"event": envelope(subscription)},
        )
        for subscription in receivers
    ]
