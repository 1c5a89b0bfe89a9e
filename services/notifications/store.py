"""Notifications' SQL: deliveries, what the service knows of cases and hosts, contacts and subscriptions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import asyncpg

from services.notifications.rules import Notification

# The dispatcher listens here; NOTIFY is sent at commit, so it never wakes before the row is visible.
REQUESTED_CHANNEL: Final = "notifications_requested"

COLUMNS: Final = (
    "id, rule, recipient_kind, recipient_ref, channel, language, case_id, cause_event_id, status, attempts,"
    " next_attempt_at, last_failure, traceparent, created_at, delivered_at, facts, receiver, resends"
)


# --- Deliveries ------------------------------------------------------------------------------------


async def insert_notification(
    connection: asyncpg.Connection, notification: Notification, *, traceparent: str | None = None
) -> bool:
    """Store a requested notification; False when one with its id exists already (a repeated cause)."""
    status = await connection.execute(
        "INSERT INTO notifications (id, rule, recipient_kind, recipient_ref, channel, language, case_id,"
        " cause_event_id, traceparent, facts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)"
        " ON CONFLICT (id) DO NOTHING",
        notification.id, notification.rule, notification.recipient_kind, notification.recipient_ref,
        notification.channel, notification.language, notification.case_id, notification.cause_event_id, traceparent,
        json.dumps(dict(notification.facts)),
    )
    if status != "INSERT 0 1":
        return False
    await connection.execute("SELECT pg_notify($1, current_schema())", REQUESTED_CHANNEL)
    return True


async def claim_due(
    connection: asyncpg.Connection,
    *,
    limit: int,
    lease_s: float,
    per_receiver: int,
    in_flight: Mapping[str, int] | None = None,
) -> tuple[str, list[asyncpg.Record]]:
    """Claim up to ``limit`` due deliveries for one attempt each; return the claim and the rows.

    At most ``per_receiver`` per receiver, counting those this dispatcher has in flight already, so a
    receiver with a long queue (or a slow one) cannot take every slot: receivers at their limit are
    skipped, and only the oldest due rows of the others are looked at, so a claim stays cheap however
    long the backlog. A claimed row is not due again until its lease has passed; rows another dispatcher
    is claiming right now are skipped.
    """
    in_flight = in_flight or {}
    saturated = [receiver for receiver, used in in_flight.items() if used >= per_receiver]
    claim = str(uuid.uuid4())
    rows = await connection.fetch(
        "WITH due AS ("
        "  SELECT id, receiver, next_attempt_at, created_at FROM notifications"
        "  WHERE status = 'requested' AND next_attempt_at <= now() AND NOT (receiver = ANY($7::text[]))"
        "  ORDER BY next_attempt_at, created_at LIMIT $1 * 10"
        "), ranked AS ("
        "  SELECT id, receiver, row_number() OVER (PARTITION BY receiver ORDER BY next_attempt_at, created_at) AS n"
        "  FROM due"
        "), allowed AS ("
        "  SELECT ranked.id FROM ranked"
        "  LEFT JOIN unnest($2::text[], $3::int[]) AS busy (receiver, used) USING (receiver)"
        "  WHERE ranked.n <= $4 - coalesce(busy.used, 0)"
        "), picked AS ("
        "  SELECT notifications.id FROM notifications JOIN allowed USING (id)"
        "  WHERE notifications.status = 'requested' AND notifications.next_attempt_at <= now()"
        "  ORDER BY notifications.next_attempt_at, notifications.created_at LIMIT $1"
        "  FOR UPDATE OF notifications SKIP LOCKED"
        ")"
        " UPDATE notifications SET claim = $5::uuid, next_attempt_at = now() + make_interval(secs => $6)"
        f" FROM picked WHERE notifications.id = picked.id RETURNING {_qualified(COLUMNS)}",
        limit, list(in_flight), list(in_flight.values()), per_receiver, claim, lease_s, saturated,
    )
    return claim, list(rows)


async def mark_delivered(connection: asyncpg.Connection, notification_id: str, claim: str) -> datetime | None:
    """Mark a claimed delivery delivered; return when, or None when the claim was lost to a later one."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "UPDATE notifications SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),"
        " last_failure = NULL, claim = NULL WHERE id = $1 AND claim = $2::uuid AND status = 'requested'"
        " RETURNING delivered_at",
        notification_id, claim,
    )


async def mark_failed(
    connection: asyncpg.Connection, notification_id: str, claim: str, *, reason: str, final: bool, retry_in_s: float
) -> int | None:
    """Count a failed attempt: dead when ``final``, else due again in ``retry_in_s``; return the attempt.

    None when the claim was lost to a later one, whose outcome is the one that counts.
    """
    return await connection.fetchval(  # type: ignore[no-any-return]
        "UPDATE notifications SET attempts = attempts + 1, last_failure = $3, claim = NULL,"
        " status = CASE WHEN $4 THEN 'dead' ELSE 'requested' END,"
        " next_attempt_at = now() + make_interval(secs => $5)"
        " WHERE id = $1 AND claim = $2::uuid AND status = 'requested' RETURNING attempts",
        notification_id, claim, reason, final, retry_in_s,
    )


async def mark_withheld(connection: asyncpg.Connection, notification_id: str, claim: str, *, reason: str) -> int | None:
    """End a claimed delivery that must not happen any more; return the attempt it ends on."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "UPDATE notifications SET status = 'withheld', attempts = attempts + 1, last_failure = $3, claim = NULL"
        " WHERE id = $1 AND claim = $2::uuid AND status = 'requested' RETURNING attempts",
        notification_id, claim, reason,
    )


async def release(connection: asyncpg.Connection, claim: str, notification_ids: Sequence[str]) -> None:
    """Give back claimed deliveries not attempted after all (the dispatcher is stopping): due at once."""
    await connection.execute(
        "UPDATE notifications SET claim = NULL, next_attempt_at = now()"
        " WHERE id = ANY($2::text[]) AND claim = $1::uuid AND status = 'requested'",
        claim, list(notification_ids),
    )


async def resend(connection: asyncpg.Connection, notification_id: str) -> str | None:
    """Make a dead delivery due again with a fresh round of attempts; return its status before, or None.

    Only a dead delivery is re-sent: a delivered one was received, a withheld one must not be.
    """
    row = await connection.fetchrow(
        "SELECT status FROM notifications WHERE id = $1 FOR UPDATE", notification_id
    )
    if row is None:
        return None
    if row["status"] == "dead":
        await connection.execute(
            "UPDATE notifications SET status = 'requested', attempts = 0, resends = resends + 1, claim = NULL,"
            " next_attempt_at = now() WHERE id = $1",
            notification_id,
        )
        await connection.execute("SELECT pg_notify($1, current_schema())", REQUESTED_CHANNEL)
    return str(row["status"])


async def notifications_of_case(connection: asyncpg.Connection, case_id: str, *, limit: int) -> list[asyncpg.Record]:
    """A case's notifications, oldest first."""
    return await connection.fetch(  # type: ignore[no-any-return]
        f"SELECT {COLUMNS} FROM notifications WHERE case_id = $1 ORDER BY created_at, id LIMIT $2",
        case_id, limit,
    )


async def deliveries(connection: asyncpg.Connection, *, status: str | None, limit: int) -> list[asyncpg.Record]:
    """Deliveries in one status (all when None), newest first: what an operator follows up on."""
    return await connection.fetch(  # type: ignore[no-any-return]
        f"SELECT {COLUMNS} FROM notifications WHERE $1::text IS NULL OR status = $1"
        " ORDER BY created_at DESC, id LIMIT $2",
        status, limit,
    )


async def notification(connection: asyncpg.Connection, notification_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(f"SELECT {COLUMNS} FROM notifications WHERE id = $1", notification_id)


def facts_of(row: asyncpg.Record) -> dict[str, Any]:
    """A row's facts (asyncpg hands jsonb over as text)."""
    value = row["facts"]
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _qualified(columns: str) -> str:
    return ", ".join(f"notifications.{column.strip()}" for column in columns.split(","))


# --- Cases, hosts, consents, proposals -------------------------------------------------------------


async def remember_case(
    connection: asyncpg.Connection, case_id: str, pool_id: str, organisation_id: str, language: str
) -> None:
    await connection.execute(
        "INSERT INTO cases (case_id, pool_id, organisation_id, language) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (case_id) DO UPDATE SET pool_id = excluded.pool_id,"
        " organisation_id = excluded.organisation_id, language = excluded.language",
        case_id, pool_id, organisation_id, language,
    )


async def move_case(connection: asyncpg.Connection, case_id: str, pool_id: str) -> None:
    await connection.execute("UPDATE cases SET pool_id = $2 WHERE case_id = $1", case_id, pool_id)


async def mark_case_withdrawn(connection: asyncpg.Connection, case_id: str) -> None:
    await connection.execute(
        "UPDATE cases SET withdrawn_at = coalesce(withdrawn_at, now()) WHERE case_id = $1", case_id
    )


async def case(connection: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT case_id, pool_id, organisation_id, language, withdrawn_at FROM cases WHERE case_id = $1", case_id
    )


async def remember_host(connection: asyncpg.Connection, host_id: str, pool_id: str, organisation_id: str) -> None:
    await connection.execute(
        "INSERT INTO hosts (host_id, pool_id, organisation_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (host_id) DO UPDATE SET pool_id = excluded.pool_id, organisation_id = excluded.organisation_id",
        host_id, pool_id, organisation_id,
    )


async def host_organisation(connection: asyncpg.Connection, host_id: str) -> str | None:
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT organisation_id FROM hosts WHERE host_id = $1", host_id
    )


async def record_partner_consent(
    connection: asyncpg.Connection, consent_id: str, case_id: str, partner_id: str, expires_on: date | None
) -> None:
    await connection.execute(
        "INSERT INTO partner_consents (consent_id, case_id, partner_id, expires_on) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (consent_id) DO NOTHING",
        consent_id, case_id, partner_id, expires_on,
    )


async def withdraw_partner_consent(connection: asyncpg.Connection, consent_id: str) -> None:
    await connection.execute(
        "UPDATE partner_consents SET withdrawn_at = coalesce(withdrawn_at, now()) WHERE consent_id = $1", consent_id
    )


CONSENT_IN_FORCE: Final = "withdrawn_at IS NULL AND (expires_on IS NULL OR expires_on >= current_date)"


async def consented_partners(connection: asyncpg.Connection, case_id: str) -> set[str]:
    """The partners a case's consent covers today."""
    rows = await connection.fetch(
        f"SELECT DISTINCT partner_id FROM partner_consents WHERE case_id = $1 AND {CONSENT_IN_FORCE}", case_id
    )
    return {row["partner_id"] for row in rows}


async def partner_may_see(connection: asyncpg.Connection, case_id: str, partner_id: str) -> bool:
    return bool(await connection.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM partner_consents WHERE case_id = $1 AND partner_id = $2 AND {CONSENT_IN_FORCE})",
        case_id, partner_id,
    ))


async def remember_proposal(
    connection: asyncpg.Connection, proposal_id: str, case_id: str, host_id: str, pool_id: str, urgency: str
) -> None:
    # A review read before its proposal (they travel on different topics) has made the row already.
    await connection.execute(
        "INSERT INTO proposals (proposal_id, case_id, host_id, pool_id, urgency) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (proposal_id) DO UPDATE SET pool_id = excluded.pool_id, urgency = excluded.urgency",
        proposal_id, case_id, host_id, pool_id, urgency,
    )


async def proposal(connection: asyncpg.Connection, proposal_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT proposal_id, case_id, host_id, pool_id, urgency FROM proposals WHERE proposal_id = $1",
        proposal_id,
    )


# --- Contacts --------------------------------------------------------------------------------------


async def put_contact(
    connection: asyncpg.Connection, recipient_kind: str, recipient_ref: str, address: str, language: str | None
) -> None:
    await connection.execute(
        "INSERT INTO contacts (recipient_kind, recipient_ref, address, language) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (recipient_kind, recipient_ref) DO UPDATE SET address = excluded.address,"
        " language = excluded.language, updated_at = now()",
        recipient_kind, recipient_ref, address, language,
    )


async def delete_contact(connection: asyncpg.Connection, recipient_kind: str, recipient_ref: str) -> bool:
    status = await connection.execute(
        "DELETE FROM contacts WHERE recipient_kind = $1 AND recipient_ref = $2", recipient_kind, recipient_ref
    )
    return status == "DELETE 1"


async def contact(connection: asyncpg.Connection, recipient_kind: str, recipient_ref: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT address, language FROM contacts WHERE recipient_kind = $1 AND recipient_ref = $2",
        recipient_kind, recipient_ref,
    )


# --- Subscriptions ---------------------------------------------------------------------------------

SUBSCRIPTION_COLUMNS: Final = "subscription_id, organisation_id, event_types, callback_url, key_id, created_at"


async def insert_subscription(
    connection: asyncpg.Connection,
    subscription_id: str,
    organisation_id: str,
    event_types: Sequence[str],
    callback_url: str,
    key_id: str,
) -> asyncpg.Record:
    return await connection.fetchrow(  # type: ignore[no-any-return]
        "INSERT INTO subscriptions (subscription_id, organisation_id, event_types, callback_url, key_id)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {SUBSCRIPTION_COLUMNS}",
        subscription_id, organisation_id, sorted(set(event_types)), callback_url, key_id,
    )


async def delete_subscription(connection: asyncpg.Connection, subscription_id: str) -> bool:
    status = await connection.execute(
        "UPDATE subscriptions SET deleted_at = now() WHERE subscription_id = $1 AND deleted_at IS NULL",
        subscription_id,
    )
    return status == "UPDATE 1"


async def subscriptions(connection: asyncpg.Connection, organisation_id: str | None) -> list[asyncpg.Record]:
    """Active subscriptions, of one organisation or of all."""
    return await connection.fetch(  # type: ignore[no-any-return]
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE deleted_at IS NULL"
        " AND ($1::text IS NULL OR organisation_id = $1) ORDER BY created_at, subscription_id",
        organisation_id,
    )


async def subscriptions_to(
    connection: asyncpg.Connection, organisation_id: str, event_type: str
) -> list[asyncpg.Record]:
    """An organisation's active subscriptions to one event type."""
    return await connection.fetch(  # type: ignore[no-any-return]
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE deleted_at IS NULL AND organisation_id = $1"
        " AND $2 = ANY(event_types) ORDER BY subscription_id",
        organisation_id, event_type,
    )


async def active_subscription(connection: asyncpg.Connection, subscription_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = $1 AND deleted_at IS NULL",
        subscription_id,
    )


# --- Erasure ---------------------------------------------------------------------------------------


async def forget_case(connection: asyncpg.Connection, case_id: str, *, reason: str) -> list[asyncpg.Record]:
    """Drop what this service keeps about an erased case; return the deliveries withheld (id, channel, attempt).

    Deliveries not made yet (waiting, or dead and so re-sendable) are withheld with what they would quote;
    a claim in flight is voided, so its late outcome changes nothing. Partner consents are deleted: the
    case's data goes to no partner any more. The case row stays, marked erased, so later events about it
    (a proposal withdrawn) still find its pool.
    """
    withheld = await connection.fetch(
        "UPDATE notifications SET status = 'withheld', attempts = attempts + 1, last_failure = $2, claim = NULL,"
        " facts = '{}'::jsonb WHERE case_id = $1 AND status IN ('requested', 'dead')"
        " RETURNING id, channel, attempts",
        case_id, reason,
    )
    await connection.execute("DELETE FROM partner_consents WHERE case_id = $1", case_id)
    await connection.execute(
        "INSERT INTO cases (case_id, pool_id, organisation_id, language, erased_at)"
        " VALUES ($1, 'unknown', 'unknown', 'en', now())"
        " ON CONFLICT (case_id) DO UPDATE SET erased_at = coalesce(cases.erased_at, now()),"
        " withdrawn_at = coalesce(cases.withdrawn_at, now())",
        case_id,
    )
    return list(withheld)
