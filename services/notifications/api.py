"""The HTTP API: operators follow notifications and dead letters; partners subscribe; desks and hosts get contacts.

No route returns a message body or logs an address. Every route declares the roles it admits
(``services/runtime/access.py``; admin is always admitted): staff follow notifications and dead letters,
caseworkers re-send them, a partner manages only its own organisation's subscriptions and its own hosts'
contacts. docs/notifications.md has the table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import AnyHttpUrl, EmailStr, Field

from schemas.events import Contract, Identifier, LanguageCode
from services.notifications import store
from services.notifications.partners import PARTNER_EVENT_TYPES
from services.notifications.rules import ChannelName, RecipientKind
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.runtime.access import Caller, require
from services.runtime.service import context_of

log = structlog.get_logger(__name__)

router = APIRouter()
Settings = Annotated[NotificationsSettings, Depends(notifications_settings)]
DeliveryStatus = Literal["requested", "delivered", "dead", "withheld"]
ContactKind = Literal["caseworker", "approver", "host"]

# Who may do what. Staff read who was told what (ids and statuses only, never a message); caseworkers,
# who answer for the people told, re-send dead letters; partners manage their own subscriptions and their
# own hosts' contacts; auditors read and change nothing; admins may do anything.
NotificationReader = Annotated[Caller, Depends(require("caseworker", "approver", "auditor"))]
DeliveryReader = Annotated[Caller, Depends(require("caseworker", "auditor"))]
Resender = Annotated[Caller, Depends(require("caseworker"))]
PartnerOrAdmin = Annotated[Caller, Depends(require("partner"))]


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
    status: DeliveryStatus
    attempts: int
    resends: int
    last_failure: str | None
    created_at: datetime
    delivered_at: datetime | None


def status_of(row: object) -> NotificationStatus:
    return NotificationStatus(
        notification_id=row["id"],  # type: ignore[index]
        **{field: row[field] for field in NotificationStatus.model_fields if field != "notification_id"},  # type: ignore[index]
    )


@router.get("/notifications", response_model=list[NotificationStatus], tags=["notifications"])
async def notifications_of_case(
    request: Request, caller: NotificationReader, case_id: Identifier, limit: int = Query(default=100, ge=1, le=1000)
) -> list[NotificationStatus]:
    """A case's notifications, oldest first, for operators following up on who was told what."""
    async with context_of(request).pool.acquire() as connection:
        rows = await store.notifications_of_case(connection, case_id, limit=limit)
    return [status_of(row) for row in rows]


@router.get("/deliveries", response_model=list[NotificationStatus], tags=["deliveries"])
async def deliveries(
    request: Request,
    caller: DeliveryReader,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[NotificationStatus]:
    """Deliveries in one status, newest first; ``status=dead`` lists the dead letters to look into."""
    async with context_of(request).pool.acquire() as connection:
        rows = await store.deliveries(connection, status=status_, limit=limit)
    return [status_of(row) for row in rows]


@router.post("/deliveries/{notification_id}/resend", status_code=status.HTTP_202_ACCEPTED, tags=["deliveries"])
async def resend(request: Request, notification_id: Identifier, caller: Resender) -> dict[str, str]:
    """Send a dead delivery again, with a fresh round of attempts and the same delivery id."""
    async with context_of(request).pool.acquire() as connection, connection.transaction():
        before = await store.resend(connection, notification_id)
    if before is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {notification_id!r}")
    if before != "dead":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"delivery {notification_id} is {before}; only a dead delivery is re-sent"
        )
    log.info("dead delivery re-sent", notification_id=notification_id)
    return {"notification_id": notification_id, "status": "requested"}


# --- Partner subscriptions -------------------------------------------------------------------------


class SubscriptionRequest(Contract):
    organisation_id: Identifier = Field(description="The partner organisation; it receives events about its hosts.")
    event_types: list[str] = Field(
        min_length=1, max_length=20, description="CloudEvents types, e.g. centre.match.proposed.v1"
    )
    callback_url: AnyHttpUrl
    key_id: Identifier = Field(description="The id of the shared secret that signs deliveries.")


class SubscriptionView(Contract):
    subscription_id: str
    organisation_id: str
    event_types: list[str]
    callback_url: str
    key_id: str
    created_at: datetime


@router.post("/subscriptions", status_code=status.HTTP_201_CREATED, response_model=SubscriptionView,
             tags=["partners"])
async def subscribe(request: Request, body: SubscriptionRequest, settings: Settings,
                    caller: PartnerOrAdmin) -> SubscriptionView:
    """Subscribe a partner system to event types; deliveries are signed with the named key."""
    caller.refuse_unless_speaks_for(body.organisation_id, f"organisation {body.organisation_id!r}")
    unknown = sorted(set(body.event_types) - PARTNER_EVENT_TYPES)
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"event types a partner cannot subscribe to: {', '.join(unknown)};"
            f" choose from {', '.join(sorted(PARTNER_EVENT_TYPES))}",
        )
    if body.key_id not in settings.notifications_webhook_keys:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no signing key with id {body.key_id!r}")
    if settings.notifications_webhook_require_https and body.callback_url.scheme != "https":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the callback URL must use https")
    async with context_of(request).pool.acquire() as connection:
        row = await store.insert_subscription(
            connection, f"subscription-{uuid.uuid4()}", body.organisation_id, body.event_types,
            str(body.callback_url), body.key_id,
        )
    log.info("partner subscribed", subscription_id=row["subscription_id"], organisation_id=body.organisation_id)
    return SubscriptionView(**dict(row))


@router.get("/subscriptions", response_model=list[SubscriptionView], tags=["partners"])
async def list_subscriptions(request: Request, caller: PartnerOrAdmin,
                             organisation_id: Identifier | None = None) -> list[SubscriptionView]:
    """Active subscriptions; a partner sees its own organisation's only."""
    if caller.role == "partner":
        if organisation_id is not None:
            caller.refuse_unless_speaks_for(organisation_id, f"organisation {organisation_id!r}")
        organisation_id = caller.organisation_id
    async with context_of(request).pool.acquire() as connection:
        rows = await store.subscriptions(connection, organisation_id)
    return [SubscriptionView(**dict(row)) for row in rows]


@router.delete("/subscriptions/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["partners"])
async def unsubscribe(request: Request, subscription_id: Identifier, caller: PartnerOrAdmin) -> Response:
    """End a subscription; its deliveries not yet made are withheld."""
    async with context_of(request).pool.acquire() as connection:
        if caller.role == "partner":
            active = await store.active_subscription(connection, subscription_id)
            if active is not None:
                caller.refuse_unless_speaks_for(active["organisation_id"], f"subscription {subscription_id!r}")
        if not await store.delete_subscription(connection, subscription_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active subscription {subscription_id!r}")
    log.info("partner unsubscribed", subscription_id=subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Contacts of desks and hosts -------------------------------------------------------------------


class ContactRequest(Contract):
    address: EmailStr
    language: LanguageCode | None = None


@router.put("/contacts/{recipient_kind}/{recipient_ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["contacts"])
async def put_contact(
    request: Request, recipient_kind: ContactKind, recipient_ref: Identifier, body: ContactRequest,
    caller: PartnerOrAdmin,
) -> Response:
    """Where a desk ("desk:<pool>") or a host ("<host id>") is reached by email, and in which language."""
    async with context_of(request).pool.acquire() as connection:
        await _refuse_unless_own_host(connection, caller, recipient_kind, recipient_ref)
        await store.put_contact(connection, recipient_kind, recipient_ref, str(body.address), body.language)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/contacts/{recipient_kind}/{recipient_ref}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["contacts"])
async def delete_contact(request: Request, recipient_kind: ContactKind, recipient_ref: Identifier,
                         caller: PartnerOrAdmin) -> Response:
    async with context_of(request).pool.acquire() as connection:
        await _refuse_unless_own_host(connection, caller, recipient_kind, recipient_ref)
        if not await store.delete_contact(connection, recipient_kind, recipient_ref):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such contact")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _refuse_unless_own_host(connection: asyncpg.Connection, caller: Caller, recipient_kind: str,
                                  recipient_ref: str) -> None:
    """A partner sets only its own hosts' contacts; desks' contacts are the centre's (admin)."""
    if caller.role != "partner":
        return
    if recipient_kind != "host":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a partner sets only its own hosts' contacts")
    caller.refuse_unless_speaks_for(await store.host_organisation(connection, recipient_ref),
                                    f"host {recipient_ref!r}")
