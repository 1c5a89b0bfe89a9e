"""Notifications: tells caseworkers, beneficiaries and hosts what happened, by rules, through channels."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Query, Request

from schemas import topics
from schemas.events import Contract, Event, Identifier
from services.notifications import store
from services.notifications.dispatch import dispatch
from services.notifications.handlers import request_notifications
from services.notifications.rules import CAUSES, ChannelName, RecipientKind
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.service import ServiceDefinition, context_of

router = APIRouter(tags=["notifications"])


class NotificationStatus(Contract):
    """What an operator sees of a notification: ids, rule, recipient, status. Never a message."""

    notification_id: str
    rule: str
    recipient_kind: RecipientKind
    recipient_ref: str
    channel: ChannelName
    language: str
    case_id: str | None
    cause_event_id: str
    status: str
    attempts: int
    last_failure: str | None
    created_at: datetime
    delivered_at: datetime | None


@router.get("/notifications", response_model=list[NotificationStatus])
async def notifications_of_case(
    request: Request, case_id: Identifier, limit: int = Query(default=100, ge=1, le=1000)
) -> list[NotificationStatus]:
    """A case's notifications, oldest first, for operators following up on who was told what."""
    async with context_of(request).pool.acquire() as connection:
        rows = await store.notifications_of_case(connection, case_id, limit=limit)
    return [
        NotificationStatus(
            notification_id=row["id"],
            **{field: row[field] for field in NotificationStatus.model_fields if field != "notification_id"},
        )
        for row in rows
    ]


async def on_cause(event: Event, delivery: Delivery) -> None:
    await request_notifications(event, delivery)


rules = EventConsumer("rules", [topics.PROPOSALS, topics.DECISIONS], {cause: on_cause for cause in CAUSES})

definition = ServiceDefinition(
    name="notifications",
    migrations=Path(__file__).parent / "migrations",
    consumers=[rules],
    router=router,
    background=[dispatch],
    description="Turns proposals and decisions into notifications by rules and delivers them through channels.",
)
