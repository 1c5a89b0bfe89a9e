"""Who is told what, when: the rules that turn the centre's events into notifications. No I/O here.

A notification is an intent, not a message: it names a rule, a recipient (a kind and a pseudonymous
reference), a channel and a language. What the recipient reads is written by the channel from the rule
and the language, so no message body (and no personal data) is ever stored or published.

Every notification's id is derived from its cause (uuid5 over the cause's event id, the rule and the
recipient), so handling a redelivered or replayed cause again yields the same ids and the store keeps one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from schemas.events import ApprovalDecided, Event, MatchProposed, PlacementConfirmed, ProposalWithdrawn

RecipientKind = Literal["caseworker", "approver", "beneficiary", "host", "partner"]
ChannelName = Literal["log", "email", "webhook"]

# Fixed for ever: changing it would give every replayed cause new notification ids, and so duplicates.
NOTIFICATION_NAMESPACE: Final = uuid.UUID("6f0b7a52-3c1e-5b8e-9d4a-2f6c1e0d9a71")

DEFAULT_LANGUAGE: Final = "en"
# The one channel of this step. Choosing a channel per recipient (email for people who gave an address,
# signed webhooks for partners) belongs here, beside the rules, when those channels exist.
DEFAULT_CHANNEL: Final[ChannelName] = "log"

PROPOSAL_TO_REVIEW: Final = "proposal_to_review"
PROPOSAL_REJECTED: Final = "proposal_rejected"
PROPOSAL_WITHDRAWN: Final = "proposal_withdrawn"
MATCH_OFFER: Final = "match_offer"
HOST_OFFER: Final = "host_offer"
PLACEMENT_CONFIRMED: Final = "placement_confirmed"

# The event types that cause notifications; the consumer subscribes a handler to each.
CAUSES: Final[tuple[type[Event], ...]] = (MatchProposed, ApprovalDecided, PlacementConfirmed, ProposalWithdrawn)


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


def notification_id(cause_event_id: str, rule: str, recipient_kind: str, recipient_ref: str) -> str:
    """The stable id of a notification: the same cause, rule and recipient always give the same id."""
    # A JSON array keeps the parts apart whatever characters they hold.
    name = json.dumps([cause_event_id, rule, recipient_kind, recipient_ref], separators=(",", ":"))
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, name))


def desk(pool_or_case_id: str) -> str:
    """The reference of the caseworkers' desk that handles a pool (or, where the event names none, a case)."""
    return f"desk:{pool_or_case_id}"


def notifications_for(
    event: Event,
    cause_event_id: str,
    *,
    languages: Mapping[RecipientKind, str] | None = None,
) -> list[Notification]:
    """The notifications an event causes; none for an event no rule is about.

    ``languages`` is the seam for each recipient's own language: the handler looks up what it knows
    (the case's language for the beneficiary, later a host's or a desk's) and passes it in; a recipient
    kind it has no language for is written to in ``DEFAULT_LANGUAGE``.
    """
    targets: list[tuple[str, RecipientKind, str]]
    if isinstance(event, MatchProposed):
        targets = [(PROPOSAL_TO_REVIEW, "caseworker", desk(event.pool_id))]
    elif isinstance(event, ApprovalDecided):
        if event.decision == "approved":
            targets = [(MATCH_OFFER, "beneficiary", event.case_id), (HOST_OFFER, "host", event.host_id)]
        else:
            # The decision names no pool: the rejection goes to the desk of the case.
            targets = [(PROPOSAL_REJECTED, "caseworker", desk(event.case_id))]
    elif isinstance(event, PlacementConfirmed):
        targets = [(PLACEMENT_CONFIRMED, "beneficiary", event.case_id), (PLACEMENT_CONFIRMED, "host", event.host_id)]
    elif isinstance(event, ProposalWithdrawn):
        targets = [(PROPOSAL_WITHDRAWN, "caseworker", desk(event.case_id))]
    else:
        return []
    languages = languages or {}
    case_id: str | None = getattr(event, "case_id", None)
    return [
        Notification(
            id=notification_id(cause_event_id, rule, kind, ref),
            rule=rule,
            recipient_kind=kind,
            recipient_ref=ref,
            channel=DEFAULT_CHANNEL,
            language=languages.get(kind, DEFAULT_LANGUAGE),
            case_id=case_id,
            cause_event_id=cause_event_id,
        )
        for rule, kind, ref in targets
    ]
