"""The consumer's use cases, one function per message: remember what later messages need, request notifications.

Each runs in the consumer's transaction (the inbox makes a redelivered event change nothing). A cause's
notifications are stored, and a NotificationRequested recorded for each new one, in that transaction; a
repeated cause derives the same notification ids, inserts nothing and announces nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg
import structlog

from schemas.events import (
    CaseErased,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    Event,
    HostRegistered,
    MatchProposed,
    NotificationFailed,
    NotificationRequested,
    Recipient,
)
from services.notifications import store
from services.notifications.messages import best_language
from services.notifications.partners import PROJECTIONS, Subscription, partner_notifications, subscribable_types
from services.notifications.rules import (
    Cause,
    ChannelName,
    Known,
    Notification,
    notifications_for,
)
from services.runtime.consumer import Delivery
from services.runtime.outbox import record_event

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the handlers apply: people's channel. Deadlines come on the events, set by consent."""

    people_channel: ChannelName = "log"


# --- What later messages need ----------------------------------------------------------------------


async def on_case_registered(event: CaseRegistered, delivery: Delivery) -> None:
    await store.remember_case(delivery.connection, event.case_id, event.pool_id, event.organisation_id, event.language)


async def on_case_updated(event: CaseUpdated, delivery: Delivery) -> None:
    await store.move_case(delivery.connection, event.case_id, event.pool_id)


async def on_case_withdrawn(event: CaseWithdrawn, delivery: Delivery) -> None:
    await store.mark_case_withdrawn(delivery.connection, event.case_id)


async def on_case_erased(event: CaseErased, delivery: Delivery) -> None:
    """The case's identity is erased: withhold its deliveries not made yet and forget its partner consents.

    Each withheld delivery is announced as a final ``NotificationFailed``, as the dispatcher does.
    """
    reason = "withheld: the case's data was erased"
    withheld = await store.forget_case(delivery.connection, event.case_id, reason=reason)
    for row in withheld:
        await delivery.publish(NotificationFailed(notification_id=row["id"], channel=row["channel"],
                                                  attempt=row["attempts"], reason=reason, final=True))
    log.info("erased case forgotten", case_id=event.case_id, withheld=len(withheld))


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

    Also remembers each proposal's pool, so that later messages about it reach its pool's desk. Returns how
    many notifications were new.
    """
    policy = policy or Policy()
    connection = delivery.connection
    if isinstance(event, HostRegistered):
        await store.remember_host(connection, event.host_id, event.pool_id, event.organisation_id)
    cause = Cause(delivery.envelope.id, delivery.envelope.time)
    if isinstance(event, MatchProposed):
        await store.remember_proposal(
            connection, event.proposal_id, event.case_id, event.host_id, event.pool_id, event.urgency
        )
    known = await _known(connection, event)

    people = notifications_for(event, cause, known, channel=policy.people_channel)
    people = [await _in_contact_language(connection, notification) for notification in people]
    partners = await _partner_notifications(connection, event, cause)
    return await store_and_announce(connection, [*people, *partners], delivery.source,
                                    traceparent=delivery.envelope.traceparent)


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
        languages={"beneficiary": best_language(case["language"])} if case is not None else {},
    )


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
    rows = {row["subscription_id"]: row for event_type in subscribable_types(event)
            for row in await store.subscriptions_to(connection, organisation, event_type)}.values()
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
