"""Notifications: tells caseworkers, approvers, beneficiaries, hosts and partner systems what concerns them.

The composition root: the consumer and what each event type is handled by, the HTTP routes, and the two
background tasks (the dispatcher, and the sweep that finds overdue decisions).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog

from schemas import topics
from schemas.events import (
    ApprovalDecided,
    BeneficiaryResponded,
    CapacityUpdated,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    Event,
    HostRegistered,
    HostResponded,
    MatchProposed,
    PlacementConfirmed,
    ProposalReviewed,
    ProposalWithdrawn,
)
from services.notifications import handlers
from services.notifications.api import router
from services.notifications.dispatch import dispatch
from services.notifications.handlers import Policy
from services.notifications.rules import Deadlines
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.runtime.consumer import Delivery, EventConsumer, Handler
from services.runtime.service import ServiceContext, ServiceDefinition

log = structlog.get_logger(__name__)

# Events that may cause notifications, to people (rules.py) or to partner systems (partners.py).
CAUSES: tuple[type[Event], ...] = (
    MatchProposed, ProposalReviewed, ApprovalDecided, BeneficiaryResponded, HostResponded, PlacementConfirmed,
    ProposalWithdrawn, HostRegistered, CapacityUpdated,
)


def policy_of(settings: NotificationsSettings) -> Policy:
    return Policy(
        people_channel=settings.people_channel,
        deadlines=Deadlines(
            decision_hours=settings.notifications_decision_hours,
            offer_response_days=settings.notifications_offer_response_days,
        ),
    )


def consumer_handlers(policy: Policy) -> dict[type[Event], Handler]:
    """What each event type is handled by."""

    async def cause(event: Any, delivery: Delivery) -> None:
        await handlers.request_notifications(event, delivery, policy)

    return {
        CaseRegistered: handlers.on_case_registered,
        CaseUpdated: handlers.on_case_updated,
        CaseWithdrawn: handlers.on_case_withdrawn,
        DataUseConsentRecorded: handlers.on_consent_recorded,
        DataUseConsentWithdrawn: handlers.on_consent_withdrawn,
        **{event_type: cause for event_type in CAUSES},
    }


async def remind_overdue(context: ServiceContext, settings: NotificationsSettings | None = None) -> None:
    """The background task: every sweep interval, remind approvers of decisions whose deadline has passed."""
    settings = settings or notifications_settings()
    policy = policy_of(settings)
    while True:
        try:
            async with context.pool.acquire() as connection, connection.transaction():
                await handlers.request_overdue_notifications(connection, source=context.source, policy=policy)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("overdue sweep failed; trying again at the next sweep")
        await asyncio.sleep(settings.notifications_overdue_sweep_s)


async def deliver(context: ServiceContext) -> None:
    """The background task that runs the dispatcher with this process's settings."""
    await dispatch(context, notifications_settings())


rules = EventConsumer(
    "rules",
    [topics.CASES, topics.HOSTS, topics.CONSENTS, topics.PROPOSALS, topics.DECISIONS],
    consumer_handlers(policy_of(notifications_settings())),
)

definition = ServiceDefinition(
    name="notifications",
    migrations=Path(__file__).parent / "migrations",
    consumers=[rules],
    router=router,
    background=[deliver, remind_overdue],
    description="Turns the centre's events into messages to people (email, in their language) and into signed "
    "webhooks to partner systems, and delivers each once.",
)
