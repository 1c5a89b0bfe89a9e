"""The audit topic: every record, in seq order, for partners and auditors to follow.

The records table is this topic's outbox. A record is published once its batch is committed, and the
published position moves in the transaction that saw the broker acknowledge, exactly as the runtime's
relay does for other events; keeping no second copy of each record lets the recorder write a batch with
one statement. A crash between the acknowledgement and the commit publishes some records again, with the
same event id (``audit:<seq>:<record hash>``), so a follower drops the repeat; a record rewritten in the
database would come out under a new id, next to the original a follower already holds.

The topic has one partition (one total order). It is never compacted or expired: on Apache Kafka it is
created with ``cleanup.policy=delete``, ``retention.ms=-1`` and ``retention.bytes=-1`` (docs/audit.md).
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from schemas import topics
from schemas.envelope import Envelope
from schemas.events import AuditRecorded
from services.audit import store
from services.audit.settings import AuditSettings
from services.runtime.service import ServiceContext

log = structlog.get_logger(__name__)

SOURCE = "/services/audit"


def announcement(row: asyncpg.Record) -> tuple[AuditRecorded, Envelope]:
    """The AuditRecorded event of one stored record and its envelope, the same every time it is published."""
    event = AuditRecorded(
        seq=row["seq"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        origin_topic=row["topic"],
        origin_partition=row["partition"],
        origin_offset=row["offset"],
        prev_hash=row["prev_hash"],
        record_hash=row["record_hash"],
    )
    envelope = Envelope(
        id=f"audit:{row['seq']}:{row['record_hash']}",
        source=SOURCE,
        type=AuditRecorded.type,
        time=row["recorded_at"],
        subject=event.key(),
        traceparent=row["traceparent"],  # the audited event's own trace continues onto the audit topic
    )
    return event, envelope


async def publish_pending(
    pool: asyncpg.Pool, broker: KafkaBroker, *, batch_size: int = 500, writer_role: str | None = None
) -> int:
    """Publish the next records after the published position; return how many."""
    async with pool.acquire() as connection, connection.transaction():
        await store.become(connection, writer_role)
        position = await store.claim_topic_position(connection, topics.AUDIT)
        if position is None:
            return 0  # another instance is publishing
        rows = await store.records_to_publish(connection, position, batch_size)
        if not rows:
            return 0
        acknowledgements = []
        for row in rows:
            event, envelope = announcement(row)
            acknowledgements.append(await broker.publish(
                event.model_dump_json().encode(), topics.AUDIT, key=event.key().encode(),
                headers=envelope.to_headers(), no_confirm=True,
            ))
        # Sent together, acknowledged together: the producer keeps the partition's order.
        await asyncio.gather(*acknowledgements)
        await store.advance_topic_position(connection, topics.AUDIT, rows[-1]["seq"])
    return len(rows)


async def publish_periodically(context: ServiceContext) -> None:
    """Background task: follow the log onto the audit topic."""
    settings = AuditSettings()
    while True:
        try:
            published = await publish_pending(context.pool, context.broker,
                                              batch_size=settings.audit_topic_batch_size,
                                              writer_role=settings.writer_role)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("audit topic not published; retrying")
            published = 0
            await asyncio.sleep(1.0)
        if published < settings.audit_topic_batch_size:
            await asyncio.sleep(settings.audit_topic_poll_interval_s)
