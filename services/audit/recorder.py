"""The recorder: every event of every topic appended to the hash chain, once, in a deterministic order.

Order. A record's position in the log is its seq, and the chain fixes it for good. Records are appended
batch by batch, as the consumer group delivers them. Within a batch, each partition's records keep their
offset order (so one case's events, keyed to one partition, stay in the order they were published), and
the partitions are interleaved by event time, then topic, partition and offset: a cause published on one
topic comes before its effect on another when both arrive in the same batch, and the same batch is always
appended in the same order. Batches follow one another in the order they are read.

Once. Each event id goes into the inbox in the same transaction as its record, and offsets are committed
only after that transaction: a restart mid-stream re-reads the uncommitted batch and the inbox drops what
was already recorded (``records.event_id`` is unique as a second line of defence). A record without a
usable CloudEvents id is known by its origin (``origin:topic/partition/offset``), as the runtime does.

Speed. The runtime's consumer handles a batch record by record: an inbox insert, then a savepoint and its
release around the handler, three round trips per record besides the handler's own. The audit service
has no per-type handlers and can seal a whole batch in memory, so it writes a batch in five round trips:
the writer role, the inbox rows at once, the append lock, the chain's head, and the sealed records in one
COPY, about ten times as fast (docs/audit.md has the figures). The append lock is held to the end
of the transaction, so several instances append in turn. When a batch fails for a reason other than a lost
connection, because of one record (a row the database refuses), it is appended again through the runtime's
own record-by-record path, which isolates the bad record in its savepoint and dead-letters it: one bad
record never stops the log.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace

from schemas.envelope import Envelope, EnvelopeError, decode_headers
from services.audit import store
from services.audit.chain import AuditRecord, seal
from services.runtime.consumer import TRANSIENT_ERRORS, Delivery, EventConsumer
from services.runtime.tracing import tracer

log = structlog.get_logger(__name__)

# What one bad record can cause: a repeated event id the inbox did not know, a value the database cannot
# store (a NUL in a header), a field that cannot be sealed. Anything else (a missing grant, a missing table)
# would fail every record alike: it stops the consumer loudly instead of dead-lettering the whole stream.
RECORD_ERRORS: tuple[type[Exception], ...] = (asyncpg.UniqueViolationError, asyncpg.DataError, ValueError)


def payload_of(record: ConsumerRecord) -> Any:
    """The event's JSON as it was sent; a value that is not strict JSON is kept whole, base64-encoded."""
    try:
        return json.loads(record.value, parse_constant=_refuse_constant)
    except (TypeError, ValueError, RecursionError):
        return unparseable(record)


def unparseable(record: ConsumerRecord) -> dict[str, str]:
    return {"unparseable_value_b64": base64.b64encode(record.value or b"").decode()}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def utc_time(envelope_time: datetime) -> str:
    """A partner's timestamp without an offset is read as UTC: the chain needs an unambiguous order."""
    return (envelope_time if envelope_time.tzinfo else envelope_time.replace(tzinfo=UTC)).isoformat()


def envelope_of(record: ConsumerRecord) -> Envelope:
    """The record's CloudEvents envelope; for a record without a valid one, a stand-in named after its origin.

    The stand-in takes what headers there are, and the Kafka timestamp as its time, so reading the same
    record again yields the same stand-in.
    """
    headers = decode_headers(record.headers)
    try:
        return Envelope.from_headers(headers)
    except EnvelopeError:
        return Envelope(
            id=headers.get("ce_id") or f"origin:{record.topic}/{record.partition}/{record.offset}",
            source=headers.get("ce_source") or "unknown",
            type=headers.get("ce_type") or "unknown",
            time=datetime.fromtimestamp(record.timestamp / 1000, UTC),
            subject=headers.get("ce_subject") or None,
            traceparent=headers.get("traceparent"),
        )


def _event_time(record: ConsumerRecord) -> float:
    for name, value in record.headers or ():
        if name == "ce_time":
            try:
                moment = datetime.fromisoformat(value.decode())
            except (UnicodeDecodeError, ValueError):
                break
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(record.timestamp) / 1000


def audit_order(records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
    """The order a batch is appended in: partitions interleaved by event time, each kept in offset order."""
    partitions: dict[tuple[str, int], list[ConsumerRecord]] = {}
    for record in records:
        partitions.setdefault((record.topic, record.partition), []).append(record)
    # heapq.merge only ever compares the heads of the partitions, so each partition's own order is kept even
    # where its event times go backwards.
    return list(heapq.merge(
        *(sorted(partition, key=lambda record: record.offset) for partition in partitions.values()),
        key=lambda record: (_event_time(record), record.topic, record.partition, record.offset),
    ))


def seal_event(record: ConsumerRecord, envelope: Envelope, prev: AuditRecord | None) -> AuditRecord:
    """The record of one consumed event, sealed onto ``prev``."""
    fields: dict[str, Any] = dict(
        event_id=envelope.id,
        event_type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        event_time=utc_time(envelope.time),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        traceparent=envelope.traceparent,
        prev=prev,
    )
    try:
        return seal(**fields, payload=payload_of(record))
    except ValueError:
        # JSON that the chain cannot hold as a value (e.g. nested deeper than it verifies) is kept as bytes.
        return seal(**fields, payload=unparseable(record))


class Recorder(EventConsumer):
    """The audit service's consumer: all audited topics, every record, appended to the chain."""

    def __init__(self, topics: Sequence[str], *, writer_role: str | None = None) -> None:
        super().__init__("recorder", topics, {}, raw_handler=self.append)
        self.writer_role = writer_role
        self.batches_appended_one_by_one = 0

    async def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        """Append one batch in audit order, in one transaction; record by record if the database refuses it."""
        assert self.pool is not None, "the service sets the pool before the broker starts"
        ordered = audit_order(records)
        try:
            with tracer().start_as_current_span("record batch", kind=trace.SpanKind.CONSUMER,
                                                attributes={"messaging.batch.message_count": len(ordered)}):
                async with self.pool.acquire() as connection, connection.transaction():
                    await self.append_batch(connection, ordered)
        except TRANSIENT_ERRORS:
            log.exception("batch not recorded; it will be read again", consumer=self.name)
            await asyncio.sleep(1.0)
            raise
        except RECORD_ERRORS:
            log.exception("batch refused as a whole; recording it record by record", consumer=self.name)
            self.batches_appended_one_by_one += 1
            await super().handle_batch(ordered)
            return
        self.handled += len(records)

    async def append_batch(self, connection: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> int:
        """Inbox, lock, head, COPY: append every first delivery of ``records`` inside the caller's transaction.

        Returns how many records were appended.
        """
        envelopes: dict[str, tuple[ConsumerRecord, Envelope]] = {}
        for record in records:
            envelope = envelope_of(record)
            envelopes.setdefault(envelope.id, (record, envelope))  # a repeat within the batch is a redelivery
        if not envelopes:
            return 0
        await store.become(connection, self.writer_role)
        first = await store.first_deliveries(connection, self.name, list(envelopes))
        if not first:
            return 0
        await store.take_append_lock(connection)
        prev = await store.last_record(connection)
        sealed: list[AuditRecord] = []
        for event_id, (record, envelope) in envelopes.items():
            if event_id in first:
                prev = seal_event(record, envelope, prev)
                sealed.append(prev)
        await store.append_many(connection, sealed)
        return len(sealed)

    async def append(self, record: ConsumerRecord, delivery: Delivery) -> None:
        """Seal one event onto the chain: the raw handler of the runtime's record-by-record path."""
        connection = delivery.connection
        await store.become(connection, self.writer_role)
        await store.take_append_lock(connection)
        prev = await store.last_record(connection)
        await store.append(connection, seal_event(record, envelope_of(record), prev))
