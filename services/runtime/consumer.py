"""Idempotent consumption: read a batch, handle each event once, dead-letter what cannot be handled.

For every record of a batch, in one PostgreSQL transaction:

1. its CloudEvents envelope and its JSON are checked against the contract; a record that fails goes to
   the dead-letter topic (through the outbox) with the reason and its origin, and the batch goes on;
2. its event id is inserted into the inbox; if it was there already the record is a redelivery and
   changes nothing;
3. its handler runs in a savepoint; a handler that raises rolls back its own effects only, and the
   record is dead-lettered with the error.

The offsets are committed after the transaction. If the database itself fails, nothing of the batch is
kept and the batch is read again from its first offset: nothing is lost, and the inbox drops repeats.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace
from pydantic import ValidationError

from schemas.catalog import EVENT_TYPES
from schemas.envelope import Envelope, EnvelopeError, Origin, decode_headers
from schemas.events import DeadLettered, Event
from services.runtime.outbox import record_event
from services.runtime.settings import ServiceSettings
from services.runtime.tracing import context_from_headers, tracer

log = structlog.get_logger(__name__)

# Errors that say the database or the network is away, not that the message is bad: retry the batch.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # What a database session killed mid-batch raises.
    asyncpg.InternalClientError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    ConnectionError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event being handled: its envelope, where it came from, and the transaction it runs in."""

    envelope: Envelope
    origin: Origin
    connection: asyncpg.Connection
    source: str

    async def publish(self, event: Event, *, event_id: str | None = None) -> str:
        """Record an event caused by this one, in the same transaction (the outbox)."""
        return await record_event(self.connection, event, source=self.source, event_id=event_id)


Handler = Callable[[Any, Delivery], Awaitable[None]]
RawHandler = Callable[[ConsumerRecord, Delivery], Awaitable[None]]


class Rejected(Exception):
    """A record that does not meet the contract; its message is the dead letter's reason."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def parse_record(record: ConsumerRecord) -> tuple[Envelope, Event]:
    """The envelope and the validated event of a record, or Rejected saying what is wrong."""
    headers = decode_headers(record.headers)
    try:
        envelope = Envelope.from_headers(headers)
    except EnvelopeError as error:
        raise Rejected("unparseable", str(error)) from error
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise Rejected("unknown_type", f"unknown event type {envelope.type!r}")
    try:
        document = json.loads(record.value)
    except (TypeError, ValueError) as error:
        raise Rejected("unparseable", f"value is not JSON: {error}") from error
    try:
        return envelope, model.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        raise Rejected("schema_violation", f"{envelope.type}: {problems}") from error


class EventConsumer:
    """A consumer group of one service: the handlers it runs for each event type on some topics."""

    def __init__(
        self,
        name: str,
        topics: Sequence[str],
        handlers: dict[type[Event], Handler],
        *,
        raw_handler: RawHandler | None = None,
    ) -> None:
        self.name = name
        self.topics = tuple(topics)
        self.handlers = handlers
        # A raw handler sees every record, valid or not (the audit service records them all).
        self.raw_handler = raw_handler
        self.pool: asyncpg.Pool | None = None
        self.source = name
        self.handled = 0

    def subscribe(self, broker: KafkaBroker, settings: ServiceSettings, group_id: str) -> None:
        """Register this consumer's batch subscriber on the broker."""
        self.source = f"/services/{settings.service_name}"

        @broker.subscriber(
            *self.topics,
            group_id=group_id,
            batch=True,
            max_records=settings.consumer_batch_size,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            # FastStream would decode JSON by content type before the handler runs, and a value that is not
            # JSON would then be retried forever. Records reach parse_record raw; it decides what is bad.
            decoder=_raw_records,
            title=f"{settings.service_name}.{self.name}",
        )
        async def consume(message: KafkaMessage) -> None:
            records = message.raw_message
            await self.handle_batch(records if isinstance(records, tuple) else (records,))

    async def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        assert self.pool is not None, "the service sets the pool before the broker starts"
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                for record in records:
                    await self._handle(connection, record)
        except TRANSIENT_ERRORS:
            log.exception("batch not handled; it will be read again", consumer=self.name)
            await asyncio.sleep(1.0)
            raise
        self.handled += len(records)

    async def _handle(self, connection: asyncpg.Connection, record: ConsumerRecord) -> None:
        origin = Origin(record.topic, record.partition, record.offset)
        headers = decode_headers(record.headers)
        with tracer().start_as_current_span(
            f"consume {record.topic}",
            context=context_from_headers(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.kafka.offset": record.offset, "messaging.destination": record.topic},
        ):
            envelope_or_none: Envelope | None = None
            try:
                envelope_or_none, event = parse_record(record)
            except Rejected as rejection:
                event = None
                if self.raw_handler is None:
                    await self._dead_letter(connection, record, origin, rejection.kind, rejection.reason)
                    return
            envelope = envelope_or_none or _envelope_of_origin(origin, headers)
            handler = self.handlers.get(type(event)) if event is not None else None
            if handler is None and self.raw_handler is None:
                return  # an event of the contract that this consumer has no interest in
            if not await self._first_delivery(connection, envelope.id, origin):
                return
            structlog.contextvars.bind_contextvars(event_id=envelope.id, event_type=envelope.type)
            delivery = Delivery(envelope=envelope, origin=origin, connection=connection, source=self.source)
            try:
                async with connection.transaction():
                    if self.raw_handler is not None:
                        await self.raw_handler(record, delivery)
                    if handler is not None:
                        await handler(event, delivery)
            except TRANSIENT_ERRORS:
                raise
            except Exception as error:
                log.exception("handler failed; dead-lettering the event", consumer=self.name)
                await self._dead_letter(
                    connection, record, origin, "handler_error", f"{type(error).__name__}: {error}"[:1000]
                )
            finally:
                structlog.contextvars.unbind_contextvars("event_id", "event_type")

    async def _first_delivery(self, connection: asyncpg.Connection, event_id: str, origin: Origin) -> bool:
        status = await connection.execute(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            self.name,
            event_id,
        )
        return status == "INSERT 0 1"

    async def _dead_letter(
        self, connection: asyncpg.Connection, record: ConsumerRecord, origin: Origin, kind: str, reason: str
    ) -> None:
        # A bad record has no trustworthy id: its origin is its identity, so a redelivery is not doubled.
        if not await self._first_delivery(connection, f"origin:{origin.topic}/{origin.partition}/{origin.offset}",
                                          origin):
            return
        log.warning("dead letter", consumer=self.name, reason_kind=kind, topic=origin.topic,
                    partition=origin.partition, offset=origin.offset)
        await record_event(
            connection,
            DeadLettered(
                consumer=self.name,
                reason_kind=kind,  # type: ignore[arg-type]
                reason=reason,
                origin_topic=origin.topic,
                origin_partition=origin.partition,
                origin_offset=origin.offset,
                original_headers=decode_headers(record.headers),
                original_value_b64=base64.b64encode(record.value or b"").decode(),
            ),
            source=self.source,
        )


async def _raw_records(message: Any) -> None:
    return None


def _envelope_of_origin(origin: Origin, headers: dict[str, str]) -> Envelope:
    """A stand-in envelope for a record that has none, named after its origin."""
    from datetime import UTC, datetime

    return Envelope(
        id=headers.get("ce_id") or f"origin:{origin.topic}/{origin.partition}/{origin.offset}",
        source=headers.get("ce_source") or "unknown",
        type=headers.get("ce_type") or "unknown",
        time=datetime.now(UTC),
        traceparent=headers.get("traceparent"),
    )
