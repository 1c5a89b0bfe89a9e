"""The transactional outbox and its relay.

A service never publishes directly. It records the events it will publish in the same PostgreSQL
transaction as the change they announce (``record_event``); the relay then publishes them in order
with acks from every in-sync replica and marks them published. A crash between the two publishes an
event again, never loses one: consumers drop the repeat by its event id (the inbox).

faststream-outbox exists, but it is built on SQLAlchemy; this project speaks plain SQL over asyncpg,
and what it needs here is one table and two statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from schemas.catalog import topic_of
from schemas.envelope import Envelope
from schemas.events import Event
from services.runtime.tracing import current_trace_headers

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "outbox"


async def record_event(
    connection: asyncpg.Connection,
    event: Event,
    *,
    source: str,
    event_id: str | None = None,
    subject: str | None = None,
) -> str:
    """Record ``event`` for publication inside the caller's transaction; return its event id.

    The current span's trace context is stored with it, so the consumer's span continues this trace.
    """
    event_id = event_id or str(uuid.uuid4())
    trace_headers = current_trace_headers()
    envelope = Envelope(
        id=event_id,
        source=source,
        type=event.type,
        time=datetime.now(UTC),
        subject=subject if subject is not None else event.key(),
        traceparent=trace_headers.get("traceparent"),
        tracestate=trace_headers.get("tracestate"),
    )
    await connection.execute(
        "INSERT INTO outbox (event_id, topic, key, headers, value) VALUES ($1, $2, $3, $4, $5)",
        event_id,
        topic_of(event),
        event.key(),
        json.dumps(envelope.to_headers()),
        event.model_dump_json().encode(),
    )
    await connection.execute("SELECT pg_notify($1, current_schema())", NOTIFY_CHANNEL)
    return event_id


class OutboxRelay:
    """Publishes a service's outbox in id order; wakes on NOTIFY and polls as a fallback."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: KafkaBroker,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self.published = 0

    async def start(self) -> None:
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop after the batch in flight; what is left is published by the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self._pool.release(self._listener)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                published = 0
                await asyncio.sleep(self._poll_interval_s)
            if published < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events; return how many."""
        async with self._pool.acquire() as connection, connection.transaction():
            # One relay at a time per service, however many replicas run: batches stay in id order.
            if not await connection.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || ':outbox'))"
            ):
                return 0
            rows = await connection.fetch(
                "SELECT id, topic, key, headers, value FROM outbox WHERE published_at IS NULL"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            # Sent together, acknowledged together: the producer keeps each partition's order.
            acknowledgements = [
                await self._broker.publish(
                    bytes(row["value"]),
                    row["topic"],
                    key=row["key"].encode(),
                    headers=json.loads(row["headers"]),
                    no_confirm=True,
                )
                for row in rows
            ]
            await asyncio.gather(*acknowledgements)
            await connection.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        self.published += len(rows)
        return len(rows)

    async def pending(self) -> int:
        async with self._pool.acquire() as connection:
            return int(await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
