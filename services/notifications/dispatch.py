"""The dispatcher: delivers requested notifications through their channels, side by side, and says so.

A delivery is claimed in a short transaction (``FOR UPDATE SKIP LOCKED``, so several instances share the
work without doubling it) that pushes its next attempt past a lease; then it is attempted with no
transaction open and under its own timeout; then its outcome (delivered, a failed attempt with a retry
later, dead after the last attempt, or withheld) is stored together with the NotificationDelivered or
NotificationFailed event that announces it, the outcomes of attempts that finish together in one
transaction. Only the claim's own outcome counts, so each notification is announced delivered once.

The system sends each notification once: it records what it sent, and a delivered one is never tried
again. A crash after a channel delivered but before the outcome was stored sends it again once the lease
has passed; the notification id travels with every delivery (Message-ID, delivery id) so the receiver
can drop that repeat.

Deliveries run side by side up to a limit, and at most a few at a time per receiver, so a slow or dead
receiver holds up no one else. The dispatcher wakes on a NOTIFY sent when a notification is stored, when
an attempt finishes, and at the poll interval, which also picks up retries as they fall due.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx
import structlog
from opentelemetry import trace

from schemas.events import NotificationDelivered, NotificationFailed
from services.notifications import store
from services.notifications.addresses import AddressBook
from services.notifications.channels import Channel, DeliveryFailed, LogChannel, Withheld
from services.notifications.mail import EmailChannel, SmtpServer
from services.notifications.rules import Notification
from services.notifications.settings import NotificationsSettings
from services.notifications.webhooks import WebhookChannel
from services.runtime.outbox import record_event
from services.runtime.service import ServiceContext
from services.runtime.tracing import context_from_headers, tracer

log = structlog.get_logger(__name__)

REASON_MAX_LENGTH = 80  # NotificationFailed.reason is a Label
OUTCOMES_PER_TRANSACTION = 200


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how far apart, a delivery is tried before it becomes a dead letter."""

    max_attempts: int = 12
    base_s: float = 5.0
    max_s: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1, 2, ...): doubling up to ``max_s``, with jitter.

        Half the wait is fixed and half is random, so deliveries that failed together (a partner's outage)
        do not all come back at the same instant when it recovers.
        """
        ceiling = min(self.max_s, self.base_s * 2 ** min(attempt - 1, 62))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def is_final(self, attempt: int, *, retryable: bool) -> bool:
        return not retryable or attempt >= self.max_attempts


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool = False
    withheld: bool = False
    reason: str = ""
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class Attempted:
    """One finished attempt, waiting for its outcome to be stored."""

    claim: str
    row: asyncpg.Record
    notification: Notification
    outcome: Outcome


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
        concurrency: int = 64,
        receiver_concurrency: int = 4,
        timeout_s: float = 10.0,
        lease_s: float | None = None,
    ) -> None:
        self._pool = pool
        self._channels = dict(channels)
        self._source = source
        self._batch_size = batch_size
        self._retry = retry or RetryPolicy()
        self._concurrency = concurrency
        self._receiver_concurrency = receiver_concurrency
        self._timeout_s = timeout_s
        self._lease_s = lease_s if lease_s is not None else 2 * timeout_s + 30.0
        self.delivered = 0
        self.failed = 0

    async def run(self, poll_interval_s: float) -> None:
        """Dispatch until cancelled: keep up to ``concurrency`` attempts in flight, claiming as slots free up."""
        wake = asyncio.Event()
        in_flight: dict[asyncio.Task[None], tuple[str, str, str]] = {}
        attempted: asyncio.Queue[tuple[Attempted, asyncio.Future[None]]] = asyncio.Queue()
        writer = asyncio.create_task(self._write(attempted))

        def on_notify(*_: object) -> None:
            wake.set()

        def on_done(task: asyncio.Task[None]) -> None:
            in_flight.pop(task, None)
            wake.set()

        async def attempt_and_store(claim: str, row: asyncpg.Record) -> None:
            stored = asyncio.get_running_loop().create_future()
            attempted.put_nowait((await self._attempt(claim, row), stored))
            await stored

        async with self._pool.acquire() as listener:
            await listener.add_listener(store.REQUESTED_CHANNEL, on_notify)
            try:
                while True:
                    # Cleared before claiming, so a notification stored meanwhile is not waited for.
                    wake.clear()
                    free = self._concurrency - len(in_flight)
                    claimed = 0
                    if free > 0:
                        busy = Counter(receiver for receiver, _, _ in in_flight.values())
                        try:
                            claim, rows = await self._claim(min(free, self._batch_size), busy)
                        except Exception:
                            log.exception("claiming notifications failed; retrying")
                            await asyncio.sleep(poll_interval_s)
                            continue
                        claimed = len(rows)
                        for row in rows:
                            task = asyncio.create_task(attempt_and_store(claim, row))
                            in_flight[task] = (row["receiver"], claim, row["id"])
                            task.add_done_callback(on_done)
                    if claimed:
                        # More may be due, or due to receivers this claim left out: claim again at once.
                        await asyncio.sleep(0)
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), poll_interval_s)
            finally:
                await self._stop(in_flight, writer, attempted)
                with contextlib.suppress(Exception):
                    await listener.remove_listener(store.REQUESTED_CHANNEL, on_notify)

    async def dispatch_due(self) -> int:
        """Claim one batch of due notifications, attempt them side by side, store the outcomes; return how many."""
        claim, rows = await self._claim(self._batch_size, {})
        attempted = await asyncio.gather(*(self._attempt(claim, row) for row in rows))
        await self._store(attempted)
        return len(rows)

    async def _claim(self, limit: int, busy: Mapping[str, int]) -> tuple[str, list[asyncpg.Record]]:
        async with self._pool.acquire() as connection, connection.transaction():
            return await store.claim_due(
                connection, limit=limit, lease_s=self._lease_s, per_receiver=self._receiver_concurrency,
                in_flight=busy,
            )

    async def _write(self, attempted: asyncio.Queue[tuple[Attempted, asyncio.Future[None]]]) -> None:
        """Store outcomes as attempts finish, many to a transaction: one commit per attempt would cap the pace."""
        while True:
            batch = [await attempted.get()]
            while not attempted.empty() and len(batch) < OUTCOMES_PER_TRANSACTION:
                batch.append(attempted.get_nowait())
            try:
                await self._store([item for item, _ in batch])
            except Exception:
                # The lease brings them back; the receivers drop the repeats by their ids.
                log.exception("delivery outcomes not stored", count=len(batch))
            for _, stored in batch:
                if not stored.done():
                    stored.set_result(None)

    async def _stop(
        self,
        in_flight: dict[asyncio.Task[None], tuple[str, str, str]],
        writer: asyncio.Task[None],
        attempted: asyncio.Queue[tuple[Attempted, asyncio.Future[None]]],
    ) -> None:
        """Store the outcomes of finished attempts, cancel the others and give their deliveries back at once.

        Given back, they are due again without waiting for their leases; only an attempt cut off mid-way
        can reach its receiver twice, with the same id.
        """
        unfinished = dict(in_flight)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        finished = []
        while not attempted.empty():
            finished.append(attempted.get_nowait()[0])
        with contextlib.suppress(Exception):
            await self._store(finished)
        stored_ids = {item.row["id"] for item in finished}
        by_claim: dict[str, list[str]] = {}
        for _, claim, notification_id in unfinished.values():
            if notification_id not in stored_ids:
                by_claim.setdefault(claim, []).append(notification_id)
        with contextlib.suppress(Exception):
            async with self._pool.acquire() as connection:
                for claim, ids in by_claim.items():
                    await store.release(connection, claim, ids)

    async def _attempt(self, claim: str, row: asyncpg.Record) -> Attempted:
        notification = notification_of(row)
        headers = {"traceparent": row["traceparent"]} if row["traceparent"] else {}
        with tracer().start_as_current_span(
            "deliver notification",
            context=context_from_headers(headers),
            kind=trace.SpanKind.PRODUCER,
            attributes={"notification.id": notification.id, "notification.rule": notification.rule,
                        "notification.channel": notification.channel},
        ):
            return Attempted(claim, row, notification, await self._try(notification))

    async def _store(self, attempted: Sequence[Attempted]) -> None:
        if not attempted:
            return
        async with self._pool.acquire() as connection, connection.transaction():
            for item in attempted:
                await self._record(connection, item)

    async def _try(self, notification: Notification) -> Outcome:
        channel = self._channels.get(notification.channel)
        try:
            if channel is None:
                raise DeliveryFailed(f"channel {notification.channel} is not configured")
            async with asyncio.timeout(self._timeout_s):
                await channel.deliver(notification)
        except Withheld as withheld:
            return Outcome(withheld=True, reason=withheld.reason, retryable=False)
        except DeliveryFailed as failure:
            return Outcome(reason=failure.reason, retryable=failure.retryable)
        except TimeoutError:
            return Outcome(reason=f"no answer within {self._timeout_s:g} s")
        except Exception as error:
            # The type only: an error's text may quote an address or a message.
            return Outcome(reason=f"{type(error).__name__} in channel {notification.channel}")
        return Outcome(delivered=True)

    async def _record(self, connection: asyncpg.Connection, attempted: Attempted) -> None:
        """Store one attempt's outcome and the event announcing it, if its claim is still the delivery's own."""
        claim, row, notification, outcome = attempted.claim, attempted.row, attempted.notification, attempted.outcome
        if outcome.delivered:
            delivered_at = await store.mark_delivered(connection, notification.id, claim)
            if delivered_at is None:
                return
            await record_event(
                connection,
                NotificationDelivered(
                    notification_id=notification.id, channel=notification.channel, delivered_at=delivered_at
                ),
                source=self._source,
            )
            self.delivered += 1
            log.debug("notification delivered", notification_id=notification.id, rule=notification.rule,
                      channel=notification.channel, attempt=row["attempts"] + 1)
            return
        reason = outcome.reason.strip()[:REASON_MAX_LENGTH].strip() or "delivery failed"
        if outcome.withheld:
            attempt = await store.mark_withheld(connection, notification.id, claim, reason=reason)
            final = True
        else:
            attempt_number = row["attempts"] + 1
            final = self._retry.is_final(attempt_number, retryable=outcome.retryable)
            attempt = await store.mark_failed(
                connection, notification.id, claim, reason=reason, final=final,
                retry_in_s=self._retry.delay_s(attempt_number),
            )
        if attempt is None:
            return
        await record_event(
            connection,
            NotificationFailed(
                notification_id=notification.id, channel=notification.channel, attempt=attempt, reason=reason,
                final=final,
            ),
            source=self._source,
        )
        self.failed += 1
        log.warning(
            "notification withheld" if outcome.withheld else "notification not delivered",
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
        facts=store.facts_of(row),
    )


def channels_for(
    settings: NotificationsSettings, pool: asyncpg.Pool, client: httpx.AsyncClient
) -> dict[str, Channel]:
    """The channels the settings turn on, by name: log always, email with an SMTP host, webhooks always."""
    keys = {key: secret.get_secret_value().encode() for key, secret in settings.notifications_webhook_keys.items()}
    channels: list[Channel] = [
        LogChannel(),
        WebhookChannel(
            pool,
            client,
            keys,
            timeout_s=settings.notifications_delivery_timeout_s,
        ),
    ]
    if settings.notifications_smtp_host:
        channels.append(
            EmailChannel(
                pool,
                SmtpServer(
                    host=settings.notifications_smtp_host,
                    port=settings.notifications_smtp_port,
                    username=settings.notifications_smtp_username,
                    password=(settings.notifications_smtp_password.get_secret_value()
                              if settings.notifications_smtp_password else None),
                    start_tls=settings.notifications_smtp_starttls,
                    timeout_s=settings.notifications_delivery_timeout_s,
                ),
                AddressBook(settings.notifications_addresses),
                sender=settings.notifications_mail_from,
                domain=settings.notifications_message_id_domain,
            )
        )
    return {channel.name: channel for channel in channels}


def dispatcher_for(
    settings: NotificationsSettings, pool: asyncpg.Pool, client: httpx.AsyncClient, *, source: str
) -> Dispatcher:
    """A dispatcher configured from the settings."""
    return Dispatcher(
        pool,
        channels_for(settings, pool, client),
        source=source,
        batch_size=settings.notifications_batch_size,
        retry=RetryPolicy(
            max_attempts=settings.notifications_max_attempts,
            base_s=settings.notifications_retry_base_s,
            max_s=settings.notifications_retry_max_s,
        ),
        concurrency=settings.notifications_concurrency,
        receiver_concurrency=settings.notifications_receiver_concurrency,
        timeout_s=settings.notifications_delivery_timeout_s,
        lease_s=settings.lease_s,
    )


async def dispatch(context: ServiceContext, settings: NotificationsSettings | None = None) -> None:
    """The background task: deliver requested notifications until the service stops."""
    settings = settings or NotificationsSettings(service_name="notifications")
    async with httpx.AsyncClient(follow_redirects=False) as client:
        dispatcher = dispatcher_for(settings, context.pool, client, source=context.source)
        context.extras["dispatcher"] = dispatcher
        await dispatcher.run(settings.notifications_poll_interval_s)
