"""The rules consumer's one use case: store the notifications an event causes and announce each once."""

from __future__ import annotations

import asyncpg
import structlog

from schemas.events import Event, NotificationRequested, Recipient
from services.notifications import store
from services.notifications.rules import RecipientKind, notifications_for
from services.runtime.consumer import Delivery

log = structlog.get_logger(__name__)


async def recipient_languages(connection: asyncpg.Connection, event: Event) -> dict[RecipientKind, str]:
    """The languages known for the recipients of ``event``'s notifications; the rest get the default.

    The seam for the case's language: a later step keeps each case's language (from CaseRegistered and
    CaseUpdated on the cases topic) in this service's own table and returns it here for "beneficiary".
    """
    return {}


async def request_notifications(event: Event, delivery: Delivery) -> int:
    """Store the notifications ``event`` causes and record a NotificationRequested for each new one.

    Runs in the consumer's transaction. A repeated cause (redelivered, or replayed past the inbox) derives
    the same notification ids, inserts nothing and announces nothing. Returns how many were new.
    """
    connection = delivery.connection
    languages = await recipient_languages(connection, event)
    created = 0
    for notification in notifications_for(event, delivery.envelope.id, languages=languages):
        if not await store.insert_notification(connection, notification, traceparent=delivery.envelope.traceparent):
            continue
        await delivery.publish(
            NotificationRequested(
                notification_id=notification.id,
                rule=notification.rule,
                recipient=Recipient(kind=notification.recipient_kind, ref=notification.recipient_ref),
                channel=notification.channel,
                language=notification.language,
                case_id=notification.case_id,
                cause_event_id=notification.cause_event_id,
            )
        )
        created += 1
    if created:
        log.info("notifications requested", count=created)
    return created
