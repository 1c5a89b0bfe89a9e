"""The consumer's use cases, one function per message: remember what later messages need, request notifications.

Each runs in the consumer's transaction (the inbox makes a redelivered event change nothing). A cause's
notifications are stored, and a NotificationRequested recorded for each new one, in that transaction; a
repeated cause derives the same notification ids, inserts nothing and announces nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import asyncpg
import structlog

from schemas.events import (
    ApprovalDecided,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    Event,
    HostRegistered,
    MatchProposed,
    NotificationRequested,
    ProposalReviewed,
    ProposalWithdrawn,
    Recipient,
)
from services.notifications import store
from services.notifications.messages import best_language
from services.notifications.partners import PROJECTIONS, Subscription, partner_notifications
from services.notifications.rules import (
    Cause,
    ChannelName,
    Deadlines,
    Known,
    Notification,
    notifications_for,
    overdue_notification,
)
from services.runtime.consumer import Delivery
from services.runtime.outbox import record_event

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the handlers apply: people's channel and the deadlines messages quote."""

    people_channel: ChannelName = "log"
    deadlines: Deadlines = field(default_factory=Deadlines)


# --- What later messages need ----------------------------------------------------------------------


async def on_case_registered(event: CaseRegistered, delivery: Delivery) -> None:
    await store.remember_case(delivery.connection, event.case_id, event.pool_id, event.organisation_id, event.language)


async def on_case_updated(event: CaseUpdated, delivery: Delivery) -> None:
    await store.move_case(delivery.connection, event.case_id, event.pool_id)


async def on_case_withdrawn(event: CaseWithdrawn, delivery: Delivery) -> None:
    await store.mark_case_withdrawn(delivery.connection, event.case_id)


async def on_consent_recorded(event: DataUseConsentRecorded, delivery: Delivery) -> None:
    if event.purpose == "share_with_partner" and event.partner_id is not None:
        await store.record_partner_consent(
            delivery.connection, event.consent_id, event.case_id, event.partner_id, event.expires_on
        )


async def on_consent_withdrawn(event: DataUseConsentWithdrawn, delivery: Delivery) -> None:
    if event.purpose == "share_with_partner":
        await store.withdraw_partner_consent(delivery.connection, event.consent_id)


# --- Notifications ---------------------------------------------------------------------------------


async def request_notifications(event: Event, delivery: Delivery, policy: Policy | None = None) -> int:
    """Store and announce the notifications ``event`` causes, to people and to partner systems.

    Also keeps the proposal's state for the overdue reminder. Returns how many notifications were new.
    """
    policy = policy or Policy()
    connection = delivery.connection
    if isinstance(event, HostRegistered):
        await store.remember_host(connection, event.host_id, event.pool_id, event.organisation_id)
    cause = Cause(delivery.envelope.id, delivery.envelope.time)
    known = await _known(connection, event)
    await _follow_proposal(connection, event, cause, known, policy.deadlines)

    people = notifications_for(event, cause, known, deadlines=policy.deadlines, channel=policy.people_channel)
    people = [await _in_contact_language(connection, notification) for notification in people]
    partners = await _partner_notifications(connection, event, cause)
    return await store_and_announce(connection, [*people, *partners], delivery.source,
                                    traceparent=delivery.envelope.traceparent)


async def request_overdue_notifications(
    connection: asyncpg.Connection, *, source: str, policy: Policy | None = None, limit: int = 100
) -> int:
    """Remind approvers' desks of every reviewed proposal whose decision is overdue; return how many reminders.

    Run by a timer rather than by an event: nothing happens when a deadline passes. Runs in the caller's
    transaction; the proposals it reminds of are marked so, and each reminder's id is derived from the
    review, so a second sweep (here or in another instance) reminds of nothing twice.
    """
    policy = policy or Policy()
    reminders: list[Notification] = []
    for row in await store.claim_overdue(connection, limit):
        reminder = overdue_notification(
            reviewed_event_id=row["reviewed_event_id"],
            proposal_id=row["proposal_id"],
            case_id=row["case_id"],
            host_id=row["host_id"],
            pool_id=row["pool_id"],
            decide_by=row["decide_by"],
            channel=policy.people_channel,
        )
        reminders.append(await _in_contact_language(connection, reminder))
        await store.mark_overdue_requested(connection, row["proposal_id"])
    return await store_and_announce(connection, reminders, source)


async def store_and_announce(
    connection: asyncpg.Connection,
    notifications: Sequence[Notification],
    source: str,
    *,
    traceparent: str | None = None,
) -> int:
    """Store each notification not stored yet and record its NotificationRequested; return how many were new."""
    created = 0
    for notification in notifications:
        if not await store.insert_notification(connection, notification, traceparent=traceparent):
            continue
        await record_event(
            connection,
            NotificationRequested(
                notification_id=notification.id,
                rule=notification.rule,
                recipient=Recipient(kind=notification.recipient_kind, ref=notification.recipient_ref),
                channel=notification.channel,
                language=notification.language,
                case_id=notification.case_id,
                cause_event_id=notification.cause_event_id,
            ),
            source=source,
        )
        created += 1
    if created:
        log.info("notifications requested", count=created)
    return created


async def _known(connection: asyncpg.Connection, event: Event) -> Known:
    """What earlier events said about this event's case and proposal: its pool, urgency and language."""
    case_id: str | None = getattr(event, "case_id", None)
    proposal_id: str | None = getattr(event, "proposal_id", None)
    case = await store.case(connection, case_id) if case_id else None
    proposal = await store.proposal(connection, proposal_id) if proposal_id else None
    pool_id = (proposal["pool_id"] if proposal is not None else None) or (case["pool_id"] if case else None)
    return Known(
        pool_id=pool_id,
        urgency=proposal["urgency"] if proposal is not None else "normal",
        languages={"beneficiary": best_language(case["language"])} if case is not None else {},
    )


async def _follow_proposal(
    connection: asyncpg.Connection, event: Event, cause: Cause, known: Known, deadlines: Deadlines
) -> None:
    if isinstance(event, MatchProposed):
        await store.remember_proposal(
            connection, event.proposal_id, event.case_id, event.host_id, event.pool_id, event.urgency
        )
    elif isinstance(event, ProposalReviewed):
        await store.mark_reviewed(
            connection, event.proposal_id, event.case_id, event.host_id,
            reviewed_event_id=cause.event_id, decide_by=deadlines.decide_by(cause.time, known.urgency),
        )
    elif isinstance(event, ApprovalDecided):
        await store.end_proposal(connection, event.proposal_id, "decided")
    elif isinstance(event, ProposalWithdrawn):
        await store.end_proposal(connection, event.proposal_id, "withdrawn")


async def _in_contact_language(connection: asyncpg.Connection, notification: Notification) -> Notification:
    """A desk's or a host's notification in the language its contact reads, where the contact names one."""
    if notification.recipient_kind not in ("caseworker", "approver", "host"):
        return notification
    contact = await store.contact(connection, notification.recipient_kind, notification.recipient_ref)
    if contact is None or not contact["language"]:
        return notification
    return replace(notification, language=best_language(contact["language"]))


async def _partner_notifications(connection: asyncpg.Connection, event: Event, cause: Cause) -> list[Notification]:
    host_id: str | None = getattr(event, "host_id", None)
    if type(event) not in PROJECTIONS or host_id is None:
        return []
    organisation = await store.host_organisation(connection, host_id)
    if organisation is None:
        return []
    rows = await store.subscriptions_to(connection, organisation, event.type)
    if not rows:
        return []
    case_id: str | None = getattr(event, "case_id", None)
    consented = await store.consented_partners(connection, case_id) if case_id else set()
    subscriptions = [
        Subscription(row["subscription_id"], row["organisation_id"], frozenset(row["event_types"]),
                     row["callback_url"], row["key_id"])
        for row in rows
    ]
    return partner_notifications(
        event, cause, subscriptions, host_organisation=organisation, consented_partners=consented
    )
