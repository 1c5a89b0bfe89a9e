"""Audit's SQL: the records, the checkpoints and their keys, the stored Merkle subtrees, the topic position."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import asyncpg

from schemas.events import CaseRegistered, CaseSubmitted, NotificationRequested, SolverRunRecordedV3
from services.audit.chain import AuditRecord, payload_json
from services.audit.checkpoint import Checkpoint, SignedCheckpoint

COLUMNS = (
    'seq, event_id, event_type, source, subject, event_time, topic, partition, "offset", traceparent, payload,'
    " prev_hash, record_hash"
)
# One writer at a time extends the chain; the lock is held until the appending transaction ends.
APPEND_LOCK = 7_461_001
CHECKPOINT_COLUMNS = "size, root_hash, last_record_hash, sealed_at, key_id, signature"
NOTIFICATION_REQUESTED = NotificationRequested.type
CASE_REGISTERED = CaseRegistered.type
CASE_SUBMITTED = CaseSubmitted.type
#: solver runs that name the cases they held back (v3 on)
RUN_WITH_HELD_BACK = SolverRunRecordedV3.type


def record_of(row: asyncpg.Record) -> AuditRecord:
    """A stored row as a record; positional, because verify builds a million of these."""
    return AuditRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                       json.loads(row[10]), row[11], row[12])


# --- appending ------------------------------------------------------------------------------------------


async def take_append_lock(connection: asyncpg.Connection) -> None:
    """Hold the chain's append lock until the transaction ends: appenders extend the chain one at a time."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)


async def become(connection: asyncpg.Connection, role: str | None) -> None:
    """Act as ``role`` until the transaction ends (SET LOCAL ROLE); nothing when no role is configured."""
    if role:
        await connection.execute("SELECT set_config('role', $1, true)", role)


async def last_record(connection: asyncpg.Connection) -> AuditRecord | None:
    row = await connection.fetchrow(f"SELECT {COLUMNS} FROM records ORDER BY seq DESC LIMIT 1")
    return record_of(row) if row is not None else None


async def append(connection: asyncpg.Connection, record: AuditRecord) -> None:
    await connection.execute(
        f"INSERT INTO records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        record.seq, record.event_id, record.event_type, record.source, record.subject, record.event_time,
        record.topic, record.partition, record.offset, record.traceparent, payload_json(record.payload),
        record.prev_hash, record.record_hash,
    )


async def append_many(connection: asyncpg.Connection, records: Sequence[AuditRecord]) -> None:
    """Append sealed records with one COPY (the batch path: one round trip for the whole batch)."""
    await connection.copy_records_to_table(
        "records",
        columns=[name.strip().strip('"') for name in COLUMNS.split(",")],
        records=[
            (record.seq, record.event_id, record.event_type, record.source, record.subject, record.event_time,
             record.topic, record.partition, record.offset, record.traceparent, payload_json(record.payload),
             record.prev_hash, record.record_hash)
            for record in records
        ],
    )


async def first_deliveries(connection: asyncpg.Connection, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Put the event ids into the runtime's inbox at once; return those that were not there yet.

    Sorted, so that two instances given overlapping batches during a rebalance take the rows' locks in the
    same order and wait for each other instead of deadlocking.
    """
    rows = await connection.fetch(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, event_id FROM unnest($2::text[]) AS event_id"
        " ON CONFLICT DO NOTHING RETURNING event_id", consumer, sorted(event_ids))
    return {row[0] for row in rows}


async def max_seq(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT coalesce(max(seq), 0) FROM records"))


# --- reading the log ------------------------------------------------------------------------------------


async def row_chunks(
    connection: asyncpg.Connection, first_seq: int = 1, last_seq: int | None = None, *, chunk: int = 10_000
) -> AsyncIterator[list[asyncpg.Record]]:
    """Rows of records ``first_seq``..``last_seq`` (``COLUMNS``) in seq order, a chunk at a time (the caller
    holds a transaction).

    One cursor over one ORDER BY, not pages keyed on seq: a page boundary would step over a second row of
    the same seq, which is exactly what a tampered table may hold.
    """
    cursor = await connection.cursor(
        f"SELECT {COLUMNS} FROM records WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
        first_seq, last_seq if last_seq is not None else 2**63 - 1,
    )
    while rows := await cursor.fetch(chunk):
        yield rows


async def record_chunks(
    connection: asyncpg.Connection, first_seq: int = 1, last_seq: int | None = None, *, chunk: int = 10_000
) -> AsyncIterator[list[AuditRecord]]:
    """Records ``first_seq``..``last_seq`` in seq order, a chunk at a time (the caller holds a transaction)."""
    async for rows in row_chunks(connection, first_seq, last_seq, chunk=chunk):
        yield [record_of(row) for row in rows]


async def records_between(connection: asyncpg.Connection, first_seq: int, last_seq: int) -> list[AuditRecord]:
    rows = await connection.fetch(
        f"SELECT {COLUMNS} FROM records WHERE seq >= $1 AND seq <= $2 ORDER BY seq", first_seq, last_seq)
    return [record_of(row) for row in rows]


async def record_hashes(connection: asyncpg.Connection, after_seq: int, upto_seq: int) -> list[bytes]:
    """The record hashes of records ``after_seq + 1``..``upto_seq``: the leaves of the Merkle tree."""
    rows = await connection.fetch(
        "SELECT record_hash FROM records WHERE seq > $1 AND seq <= $2 ORDER BY seq", after_seq, upto_seq)
    return [bytes.fromhex(row[0]) for row in rows]


async def record_at(connection: asyncpg.Connection, seq: int) -> AuditRecord | None:
    row = await connection.fetchrow(f"SELECT {COLUMNS} FROM records WHERE seq = $1", seq)
    return record_of(row) if row is not None else None


async def records_about(connection: asyncpg.Connection, subject: str) -> list[AuditRecord]:
    rows = await connection.fetch(f"SELECT {COLUMNS} FROM records WHERE subject = $1 ORDER BY seq", subject)
    return [record_of(row) for row in rows]


async def count_by_type(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch("SELECT event_type, count(*) AS n FROM records GROUP BY event_type")
    return {row["event_type"]: row["n"] for row in rows}


async def seq_range_recorded(
    connection: asyncpg.Connection, since: datetime | None, before: datetime | None
) -> tuple[int, int]:
    """First and last seq recorded at or after ``since`` and before ``before`` (an empty range is n+1..n)."""
    first = 1 if since is None else await connection.fetchval(
        "SELECT coalesce(min(seq), (SELECT coalesce(max(seq), 0) + 1 FROM records)) FROM records"
        " WHERE recorded_at >= $1", since)
    last = await max_seq(connection) if before is None else await connection.fetchval(
        "SELECT coalesce(max(seq), 0) FROM records WHERE recorded_at < $1", before)
    return int(first), int(last)


async def case_history(connection: asyncpg.Connection, case_id: str) -> list[AuditRecord]:
    """Every record about one case, in log order: those keyed by it, its notifications (keyed by their own
    ids, linked through NotificationRequested.case_id), the partner submission it was registered from, and
    the solver runs (keyed by pool) that held it back for the arrivals they expected."""
    rows = await connection.fetch(
        f"""
        WITH notifications AS (
            SELECT subject FROM records
            WHERE event_type = '{NOTIFICATION_REQUESTED}' AND ((payload::jsonb) ->> 'case_id') = $1
        ), submissions AS (
            SELECT (payload::jsonb) ->> 'external_ref' AS ref FROM records
            WHERE subject = $1 AND event_type = '{CASE_REGISTERED}'
        )
        SELECT {COLUMNS} FROM records
        WHERE subject = $1
           OR subject IN (SELECT subject FROM notifications)
           OR (event_type = '{CASE_SUBMITTED}' AND subject IN (SELECT ref FROM submissions))
           OR (event_type = '{RUN_WITH_HELD_BACK}' AND (payload::jsonb) -> 'held_back' ? $1)
        ORDER BY seq
        """,
        case_id,
    )
    return [record_of(row) for row in rows]


async def records_of_run(connection: asyncpg.Connection, run_id: str) -> list[AuditRecord]:
    """The record of a solver run and every record that names the run (its proposals and withdrawals)."""
    rows = await connection.fetch(
        f"SELECT {COLUMNS} FROM records WHERE event_type LIKE 'centre.match.%'"
        " AND ((payload::jsonb) ->> 'run_id') = $1 ORDER BY seq", run_id)
    return [record_of(row) for row in rows]


async def replay_sources(connection: asyncpg.Connection, watermark: Sequence[tuple[str, int, int]],
                         own_types: Sequence[str], dead_letter_topic: str) -> list[AuditRecord]:
    """What a replay of a run reads: the records of each (topic, partition) at or below its offset, every
    record of ``own_types`` (the solver runs, proposals and withdrawals the run's service made before it) and
    every dead letter, in log order."""
    rows = await connection.fetch(
        f"""
        SELECT {COLUMNS} FROM records r
        WHERE EXISTS (SELECT 1 FROM unnest($1::text[], $2::int[], $3::bigint[]) AS w(topic, part, upto)
                      WHERE w.topic = r.topic AND w.part = r.partition AND r."offset" <= w.upto)
           OR r.event_type = ANY($4::text[])
           OR r.topic = $5
        ORDER BY seq
        """,
        [topic for topic, _, _ in watermark], [partition for _, partition, _ in watermark],
        [offset for _, _, offset in watermark], list(own_types), dead_letter_topic)
    return [record_of(row) for row in rows]


async def recorded_offsets(connection: asyncpg.Connection,
                           partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The highest offset recorded of each (topic, partition) named; partitions with none are left out."""
    rows = await connection.fetch(
        'SELECT topic, partition, max("offset") AS upto FROM records'
        " WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))"
        " GROUP BY topic, partition",
        [topic for topic, _ in partitions], [partition for _, partition in partitions])
    return {(row["topic"], row["partition"]): row["upto"] for row in rows}


# --- checkpoints and keys -------------------------------------------------------------------------------


def signed_checkpoint_of(row: asyncpg.Record) -> SignedCheckpoint:
    return SignedCheckpoint(
        Checkpoint(size=row["size"], root_hash=row["root_hash"], last_record_hash=row["last_record_hash"],
                   sealed_at=row["sealed_at"], key_id=row["key_id"]),
        row["signature"],
    )


async def checkpoints(
    connection: asyncpg.Connection, *, after_size: int = 0, upto_size: int | None = None, limit: int | None = None
) -> list[SignedCheckpoint]:
    rows = await connection.fetch(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size > $1 AND size <= $2 ORDER BY size LIMIT $3",
        after_size, upto_size if upto_size is not None else 2**63 - 1, limit)
    return [signed_checkpoint_of(row) for row in rows]


async def checkpoint_at(connection: asyncpg.Connection, size: int) -> SignedCheckpoint | None:
    row = await connection.fetchrow(f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size = $1", size)
    return signed_checkpoint_of(row) if row is not None else None


async def latest_checkpoint(
    connection: asyncpg.Connection, upto_size: int | None = None
) -> tuple[SignedCheckpoint, list[bytes]] | None:
    """The checkpoint of the largest size (at most ``upto_size``) with its stored Merkle frontier."""
    row = await connection.fetchrow(
        f"SELECT {CHECKPOINT_COLUMNS}, merkle_frontier FROM checkpoints WHERE size <= $1"
        " ORDER BY size DESC LIMIT 1", upto_size if upto_size is not None else 2**63 - 1)
    if row is None:
        return None
    return signed_checkpoint_of(row), [bytes.fromhex(node) for node in row["merkle_frontier"]]


async def insert_checkpoint(
    connection: asyncpg.Connection, signed: SignedCheckpoint, frontier: Sequence[bytes]
) -> bool:
    """Store a sealed checkpoint; False when one of that size exists (another instance sealed it first)."""
    checkpoint = signed.checkpoint
    status = await connection.execute(
        f"INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}, merkle_frontier) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (size) DO NOTHING",
        checkpoint.size, checkpoint.root_hash, checkpoint.last_record_hash, checkpoint.sealed_at,
        checkpoint.key_id, signed.signature, [node.hex() for node in frontier])
    return bool(status == "INSERT 0 1")


async def unsealed_records(connection: asyncpg.Connection) -> int:
    """How many records no checkpoint covers yet."""
    return int(await connection.fetchval(
        "SELECT coalesce((SELECT max(seq) FROM records), 0) - coalesce((SELECT max(size) FROM checkpoints), 0)"))


async def register_key(connection: asyncpg.Connection, key_id: str, public_key_pem: str) -> None:
    await connection.execute(
        "INSERT INTO signing_keys (key_id, public_key_pem) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
        key_id, public_key_pem)


async def public_keys(connection: asyncpg.Connection) -> dict[str, str]:
    """Every registered public key (PEM) by key id, oldest first."""
    rows = await connection.fetch("SELECT key_id, public_key_pem FROM signing_keys ORDER BY registered_at, key_id")
    return {row["key_id"]: row["public_key_pem"] for row in rows}


async def current_key_id(connection: asyncpg.Connection) -> str | None:
    """The key of the latest checkpoint, else the last key registered."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce((SELECT key_id FROM checkpoints ORDER BY size DESC LIMIT 1),"
        " (SELECT key_id FROM signing_keys ORDER BY registered_at DESC, key_id LIMIT 1))")


# --- the stored Merkle tree -----------------------------------------------------------------------------


async def insert_subtrees(connection: asyncpg.Connection, height: int, nodes: Sequence[tuple[int, bytes]]) -> None:
    await connection.execute(
        "INSERT INTO merkle_subtrees (height, index, hash)"
        " SELECT $1, node.index, node.hash FROM unnest($2::bigint[], $3::bytea[]) AS node(index, hash)"
        " ON CONFLICT (height, index) DO NOTHING",
        height, [index for index, _ in nodes], [hashed for _, hashed in nodes])


async def subtrees(connection: asyncpg.Connection, height: int, first_index: int, count: int) -> list[bytes]:
    """The roots of ``count`` consecutive stored subtrees of ``height``, from ``first_index``."""
    rows = await connection.fetch(
        "SELECT hash FROM merkle_subtrees WHERE height = $1 AND index >= $2 AND index < $3 ORDER BY index",
        height, first_index, first_index + count)
    return [bytes(row[0]) for row in rows]


# --- the audit topic ------------------------------------------------------------------------------------


async def claim_topic_position(connection: asyncpg.Connection, topic: str) -> int | None:
    """The last seq published to ``topic``, locked for this transaction; None while another instance holds it."""
    await connection.execute(
        "INSERT INTO topic_position (topic) VALUES ($1) ON CONFLICT (topic) DO NOTHING", topic)
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT published_seq FROM topic_position WHERE topic = $1 FOR UPDATE SKIP LOCKED", topic)


async def records_to_publish(connection: asyncpg.Connection, after_seq: int, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(  # type: ignore[no-any-return]
        'SELECT seq, event_id, event_type, topic, partition, "offset", traceparent, prev_hash, record_hash,'
        " recorded_at FROM records WHERE seq > $1 ORDER BY seq LIMIT $2", after_seq, limit)


async def advance_topic_position(connection: asyncpg.Connection, topic: str, published_seq: int) -> None:
    await connection.execute("UPDATE topic_position SET published_seq = $2 WHERE topic = $1", topic, published_seq)
