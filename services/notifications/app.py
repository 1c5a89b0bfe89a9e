"""Notifications: tells caseworkers, approvers, beneficiaries, hosts and partner systems what concerns them.

The composition root: the consumer and what each event type is handled by, the HTTP routes, and the
dispatcher. Deadlines are the consent service's: it sets them on its events and announces an overdue
decision (``centre.approval.overdue.v1``) and an expired offer (``centre.response.expired.v1``) itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from schemas import topics
from schemas.events import (
    CaseErased,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    Event,
)
from services.notifications import handlers
from services.notifications.api import router
from services.notifications.dispatch import dispatch
from services.notifications.handlers import Policy
from services.notifications.partners import PROJECTIONS
from services.notifications.rules import CAUSES as PEOPLE_CAUSES
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.runtime.consumer import Delivery, EventConsumer, Handler
from services.runtime.service import ServiceContext, ServiceDefinition

log = structlog.get_logger(__name__)

# Events that may cause notifications: to people (rules.py) or to partner systems (partners.py).
CAUSES: tuple[type[Event], ...] = tuple(dict.fromkeys((*PEOPLE_CAUSES, *PROJECTIONS)))


def policy_of(settings: NotificationsSettings) -> Policy:
    return Policy(people_channel=settings.people_channel)


def consumer_handlers(policy: Policy) -> dict[type[Event], Handler]:
    """What each event type is handled by."""

    async def cause(event: Any, delivery: Delivery) -> None:
        await handlers.request_notifications(event, delivery, policy)

    return {
        CaseRegistered: handlers.on_case_registered,
        CaseUpdated: handlers.on_case_updated,
        CaseWithdrawn: handlers.on_case_withdrawn,
        CaseErased: handlers.on_case_erased,
        DataUseConsentRecorded: handlers.on_consent_recorded,
        DataUseConsentWithdrawn: handlers.on_consent_withdrawn,
        **{event_type: cause for event_type in CAUSES},
    }


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
    background=[deliver],
    description="Turns the centre's events into messages to people (email, in their language) and into signed "
    "webhooks to partner systems, and delivers each once.",
)
