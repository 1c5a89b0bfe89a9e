"""Audit's SQL: append a sealed record, read records back in order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg

from services.audit.chain import AuditRecord

COLUMNS = (
    'seq, event_id, event_type, source, subject, event_time, topic, partition, "offset", traceparent, payload,'
    " prev_hash, record_hash"
)
# One writer at a time extends the chain; the lock is held until the appending transaction ends.
APPEND_LOCK = 7_461_001


def record_of(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(**{**dict(row), "payload": json.loads(row["payload"])})


async def last_record(connection: asyncpg.Connection) -> AuditRecord | None:
    await connection.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
    row = await connection.fetchrow(f"SELECT {COLUMNS} FROM records ORDER BY seq DESC LIMIT 1")
    return record_of(row) if row is not None else None


async def append(connection: asyncpg.Connection, record: AuditRecord) -> None:
    await connection.execute(
        f"INSERT INTO records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        record.seq, record.event_id, record.event_type, record.source, record.subject, record.event_time,
        record.topic, record.partition, record.offset, record.traceparent,
        json.dumps(record.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        record.prev_hash, record.record_hash,
    )


async def all_records(connection: asyncpg.Connection, *, prefetch: int = 5000) -> AsyncIterator[AuditRecord]:
    """Every record in seq order, streamed through a cursor (the caller holds a transaction)."""
    async for row in connection.cursor(f"SELECT {COLUMNS} FROM records ORDER BY seq", prefetch=prefetch):
        yield record_of(row)


async def records_about(connection: asyncpg.Connection, subject: str) -> list[AuditRecord]:
    rows = await connection.fetch(f"SELECT {COLUMNS} FROM records WHERE subject = $1 ORDER BY seq", subject)
    return [record_of(row) for row in rows]


async def count_by_type(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch("SELECT event_type, count(*) AS n FROM records GROUP BY event_type")
    return {row["event_type"]: row["n"] for row in rows}
