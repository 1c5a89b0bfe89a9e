"""The dispatcher: delivers requested notifications through their channels, in batches, and says so.

Each batch is one transaction: due notifications are locked (``FOR UPDATE SKIP LOCKED``, so several
instances share the work without doubling it), each is handed to its channel, and its outcome (delivered,
or a failed attempt with a retry later) is stored together with the NotificationDelivered or
NotificationFailed event that announces it. A crash after a channel delivered but before the commit
delivers that notification again on restart: delivery is at least once, and the notification id travels
with every delivery so that a receiver can drop the repeat.

The dispatcher wakes on a NOTIFY sent when a notification is stored and polls as a fallback, which also
picks up retries as they fall due.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import structlog
from opentelemetry import trace
from pydantic_settings import SettingsConfigDict

from schemas.events import NotificationDelivered, NotificationFailed
from services.notifications import store
from services.notifications.channels import Channel, DeliveryFailed, default_channels
from services.notifications.rules import Notification
from services.runtime.outbox import record_event
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from services.runtime.tracing import context_from_headers, tracer

log = structlog.get_logger(__name__)

REASON_MAX_LENGTH = 80  # NotificationFailed.reason is a Label


class NotificationsSettings(ServiceSettings):
    """The dispatcher's settings, from the environment like every other (``NOTIFICATIONS_*``)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    notifications_batch_size: int = 50
    notifications_poll_interval_s: float = 0.5
    notifications_max_attempts: int = 5
    notifications_retry_base_s: float = 2.0
    notifications_retry_max_s: float = 600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how long apart, a notification is tried before it is given up."""

    max_attempts: int = 5
    base_s: float = 2.0
    max_s: float = 600.0

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1, 2, ...): doubling, up to ``max_s``."""
        return float(min(self.max_s, self.base_s * 2 ** (attempt - 1)))

    def is_final(self, attempt: int, *, retryable: bool) -> bool:
        return not retryable or attempt >= self.max_attempts


class Dispatcher:
    """Delivers due notifications of one service's schema through the given channels."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: Mapping[str, Channel],
        *,
        source: str,
        batch_size: int = 50,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._pool = pool
        self._channels = dict(channels)
        self._source = source
        self._batch_size = batch_size
        self._retry = retry or RetryPolicy()
        self.delivered = 0
        self.failed = 0

    async def run(self, poll_interval_s: float) -> None:
        """Dispatch until cancelled, waking on each stored notification and at least every poll interval."""
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        async with self._pool.acquire() as listener:
            await listener.add_listener(store.REQUESTED_CHANNEL, on_notify)
            try:
                while True:
                    # Cleared before the batch, so a notification stored during it is not waited for.
                    wake.clear()
                    try:
                        dispatched = await self.dispatch_due()
                    except Exception:
                        log.exception("notification dispatch failed; retrying")
                        dispatched = 0
                        await asyncio.sleep(poll_interval_s)
                    if dispatched < self._batch_size:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), poll_interval_s)
            finally:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(store.REQUESTED_CHANNEL, on_notify)

    async def dispatch_due(self) -> int:
        """Try one batch of due notifications; return how many were tried."""
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await store.claim_due(connection, self._batch_size)
            for row in rows:
                await self._attempt(connection, row)
        return len(rows)

    async def _attempt(self, connection: asyncpg.Connection, row: asyncpg.Record) -> None:
        notification = notification_of(row)
        headers = {"traceparent": row["traceparent"]} if row["traceparent"] else {}
        with tracer().start_as_current_span(
            "deliver notification",
            context=context_from_headers(headers),
            kind=trace.SpanKind.PRODUCER,
            attributes={"notification.id": notification.id, "notification.rule": notification.rule,
                        "notification.channel": notification.channel},
        ):
            channel = self._channels.get(notification.channel)
            try:
                if channel is None:
                    raise DeliveryFailed(f"channel {notification.channel} is not configured")
                await channel.deliver(notification)
            except DeliveryFailed as failure:
                reason, retryable = failure.reason, failure.retryable
            except Exception as error:
                # The type only: an error's text may quote an address or a message.
                reason, retryable = f"{type(error).__name__} in channel {notification.channel}", True
            else:
                delivered_at = await store.mark_delivered(connection, notification.id)
                await record_event(
                    connection,
                    NotificationDelivered(
                        notification_id=notification.id, channel=notification.channel, delivered_at=delivered_at
                    ),
                    source=self._source,
                )
                self.delivered += 1
                return
            reason = reason.strip()[:REASON_MAX_LENGTH].strip() or "delivery failed"
            attempt = row["attempts"] + 1
            final = self._retry.is_final(attempt, retryable=retryable)
            await store.mark_failed(
                connection, notification.id, reason=reason, final=final, retry_in_s=self._retry.delay_s(attempt)
            )
            await record_event(
                connection,
                NotificationFailed(
                    notification_id=notification.id,
                    channel=notification.channel,
                    attempt=attempt,
                    reason=reason,
                    final=final,
                ),
                source=self._source,
            )
            self.failed += 1
            log.warning(
                "notification not delivered",
                notification_id=notification.id,
                rule=notification.rule,
                channel=notification.channel,
                attempt=attempt,
                final=final,
                reason=reason,
            )


def notification_of(row: asyncpg.Record) -> Notification:
    """A stored notification as the rules made it."""
    return Notification(
        id=row["id"],
        rule=row["rule"],
        recipient_kind=row["recipient_kind"],
        recipient_ref=row["recipient_ref"],
        channel=row["channel"],
        language=row["language"],
        case_id=row["case_id"],
        cause_event_id=row["cause_event_id"],
    )


async def dispatch(context: ServiceContext) -> None:
    """The background task: deliver requested notifications until the service stops."""
    settings = NotificationsSettings()
    dispatcher = Dispatcher(
        context.pool,
        default_channels(),
        source=context.source,
        batch_size=settings.notifications_batch_size,
        retry=RetryPolicy(
            max_attempts=settings.notifications_max_attempts,
            base_s=settings.notifications_retry_base_s,
            max_s=settings.notifications_retry_max_s,
        ),
    )
    context.extras["dispatcher"] = dispatcher
    await dispatcher.run(settings.notifications_poll_interval_s)
