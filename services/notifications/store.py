"""Notifications' SQL: the notifications table, and the wake-up call for the dispatcher."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

from services.notifications.rules import Notification

# The dispatcher listens here; NOTIFY is sent at commit, so it never wakes before the row is visible.
REQUESTED_CHANNEL: Final = "notifications_requested"

COLUMNS: Final = (
    "id, rule, recipient_kind, recipient_ref, channel, language, case_id, cause_event_id, status, attempts,"
    " next_attempt_at, last_failure, traceparent, created_at, delivered_at"
)


async def insert_notification(
    connection: asyncpg.Connection, notification: Notification, *, traceparent: str | None = None
) -> bool:
    """Store a requested notification; False when one with its id exists already (a repeated cause)."""
    status = await connection.execute(
        "INSERT INTO notifications (id, rule, recipient_kind, recipient_ref, channel, language, case_id,"
        " cause_event_id, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        notification.id, notification.rule, notification.recipient_kind, notification.recipient_ref,
        notification.channel, notification.language, notification.case_id, notification.cause_event_id, traceparent,
    )
    if status != "INSERT 0 1":
        return False
    await connection.execute("SELECT pg_notify($1, current_schema())", REQUESTED_CHANNEL)
    return True


async def claim_due(connection: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Lock up to ``limit`` notifications due for an attempt; rows another dispatcher holds are skipped."""
    return await connection.fetch(  # type: ignore[no-any-return]
        f"SELECT {COLUMNS} FROM notifications WHERE status = 'requested' AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )


async def mark_delivered(connection: asyncpg.Connection, notification_id: str) -> datetime:
    """Mark a notification delivered; return when."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "UPDATE notifications SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),"
        " last_failure = NULL WHERE id = $1 RETURNING delivered_at",
        notification_id,
    )


async def mark_failed(
    connection: asyncpg.Connection, notification_id: str, *, reason: str, final: bool, retry_in_s: float
) -> int:
    """Count a failed attempt: give up when ``final``, else try again in ``retry_in_s``; return the attempt."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "UPDATE notifications SET attempts = attempts + 1, last_failure = $2,"
        " status = CASE WHEN $3 THEN 'failed' ELSE 'requested' END,"
        " next_attempt_at = now() + make_interval(secs => $4)"
        " WHERE id = $1 RETURNING attempts",
        notification_id, reason, final, retry_in_s,
    )


async def notifications_of_case(connection: asyncpg.Connection, case_id: str, *, limit: int) -> list[asyncpg.Record]:
    """A case's notifications, oldest first."""
    return await connection.fetch(  # type: ignore[no-any-return]
        f"SELECT {COLUMNS} FROM notifications WHERE case_id = $1 ORDER BY created_at, id LIMIT $2",
        case_id, limit,
    )


async def notification(connection: asyncpg.Connection, notification_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(f"SELECT {COLUMNS} FROM notifications WHERE id = $1", notification_id)
