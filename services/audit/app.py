"""Audit: every event of every topic, appended to a hash-chained, insert-only log that anyone can verify."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, Request

from schemas import topics
from schemas.events import AuditRecorded
from services.audit import store
from services.audit.chain import AuditRecord, seal, verify_chain
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.service import ServiceDefinition, context_of

# Everything but the audit topic itself, which this service writes.
AUDITED_TOPICS = sorted(set(topics.PARTITIONS) - {topics.AUDIT})

router = APIRouter(prefix="/audit", tags=["audit"])


def payload_of(record: ConsumerRecord) -> Any:
    """The event's JSON as it was sent; a value that is not JSON is kept whole, base64-encoded."""
    try:
        return json.loads(record.value)
    except (TypeError, ValueError):
        return {"unparseable_value_b64": base64.b64encode(record.value or b"").decode()}


async def append_record(record: ConsumerRecord, delivery: Delivery) -> None:
    """Seal the event onto the chain and announce the new record on the audit topic."""
    envelope = delivery.envelope
    previous = await store.last_record(delivery.connection)
    sealed = seal(
        event_id=envelope.id,
        event_type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        event_time=envelope.time.isoformat(),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        traceparent=envelope.traceparent,
        payload=payload_of(record),
        prev=previous,
    )
    await store.append(delivery.connection, sealed)
    await delivery.publish(
        AuditRecorded(
            seq=sealed.seq,
            event_id=sealed.event_id,
            event_type=sealed.event_type,
            origin_topic=sealed.topic,
            origin_partition=sealed.partition,
            origin_offset=sealed.offset,
            prev_hash=sealed.prev_hash,
            record_hash=sealed.record_hash,
        )
    )


@router.get("/verify")
async def verify(request: Request) -> dict[str, Any]:
    """Walk the whole chain; name the first record that breaks it."""
    async with context_of(request).pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
        records = [record async for record in store.all_records(connection)]
    verdict = verify_chain(records)
    return {
        "ok": verdict.ok,
        "records_checked": verdict.records_checked,
        "first_bad_seq": verdict.first_bad_seq,
        "reason": verdict.reason,
    }


@router.get("/subjects/{subject}")
async def history_of(subject: str, request: Request) -> list[dict[str, Any]]:
    """Every record about one case (or host), in the order the log holds them."""
    async with context_of(request).pool.acquire() as connection:
        records: list[AuditRecord] = await store.records_about(connection, subject)
    return [record.to_dict() for record in records]


@router.get("/counts")
async def counts(request: Request) -> dict[str, int]:
    """How many records of each event type the log holds."""
    async with context_of(request).pool.acquire() as connection:
        return await store.count_by_type(connection)


recorder = EventConsumer("recorder", AUDITED_TOPICS, {}, raw_handler=append_record)

definition = ServiceDefinition(
    name="audit",
    migrations=Path(__file__).parent / "migrations",
    consumers=[recorder],
    router=router,
    description="Append-only, hash-chained audit log of every event, verifiable by anyone.",
)
