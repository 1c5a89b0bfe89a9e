"""The recorder against the real PostgreSQL: every event once, in audit order, whatever happens mid-stream.

Batches are handed to ``Recorder.handle_batch`` as the broker would hand them (aiokafka ConsumerRecords),
on a real pool: a restart is a new Recorder that is given again what the old one had not committed offsets
for; a crash is a database session killed in the middle of a batch. No broker is needed for either.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.events import CaseWithdrawn
from services.audit import store
from services.audit.recorder import Recorder
from services.audit.verification import verify_stored_log
from services.runtime.consumer import TRANSIENT_ERRORS, EventConsumer
from tests.unit.audit.audit_scratch import (
    START,
    Offsets,
    centre_records,
    consumer_record,
    raw_record,
    scratch_database,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_database("test_audit_recorder") as (_, pool):
        yield pool


def recorder_on(pool: asyncpg.Pool) -> Recorder:
    recorder = Recorder(["test"], writer_role="audit_writer")
    recorder.pool = pool
    return recorder


async def logged(pool: asyncpg.Pool) -> list[tuple[str, str, int, int]]:
    async with pool.acquire() as connection:
        rows = await connection.fetch('SELECT event_id, topic, partition, "offset" FROM records ORDER BY seq')
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def assert_whole(pool: asyncpg.Pool, records: Sequence[ConsumerRecord], *, dead_letters: int = 0) -> None:
    """Every record is in the log exactly once, the chain verifies, and the inbox agrees.

    A dead-lettered record leaves two inbox rows: its event id, and its origin (so its dead letter is not
    sent twice).
    """
    ids = [dict(record.headers)["ce_id"].decode() for record in records]
    entries = await logged(pool)
    assert sorted(entry[0] for entry in entries) == sorted(set(ids)), "every event once, none twice"
    async with pool.acquire() as connection:
        assert (await verify_stored_log(connection)).ok
        inbox = await connection.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'recorder'")
    assert inbox == len(set(ids)) + 2 * dead_letters


async def test_a_restart_mid_stream_neither_loses_nor_doubles(pool: asyncpg.Pool) -> None:
    stream = list(centre_records(40))  # 400 records over five topics and three partitions each
    first = recorder_on(pool)
    await first.handle_batch(stream[:150])
    await first.handle_batch(stream[150:250])  # appended, but the process dies before committing offsets
    restarted = recorder_on(pool)
    # The group re-reads from the last committed offset; batches now fall differently.
    for start in range(150, len(stream), 70):
        await restarted.handle_batch(stream[start:start + 70])
    await restarted.handle_batch(stream[300:])  # and a broker redelivers once more for good measure
    await assert_whole(pool, stream)


class CrashingRecorder(Recorder):
    """A recorder whose database session dies after its batch is written and before it commits."""

    def __init__(self, pool: asyncpg.Pool, admin: asyncpg.Connection) -> None:
        super().__init__(["test"], writer_role="audit_writer")
        self.pool, self.admin, self.crashes = pool, admin, 1

    async def append_batch(self, connection: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> int:
        appended = await super().append_batch(connection, records)
        if self.crashes:
            self.crashes -= 1
            await self.admin.execute("SELECT pg_terminate_backend($1)", connection.get_server_pid())
        return appended


async def test_a_session_killed_mid_batch_commits_nothing_and_the_batch_is_read_again(pool: asyncpg.Pool) -> None:
    stream = list(centre_records(20))
    await recorder_on(pool).handle_batch(stream[:80])
    async with pool.acquire() as admin:
        crashing = CrashingRecorder(pool, admin)
        # Depending on when the client notices, a lost connection or a protocol error: either way the batch
        # fails, the consumer does not commit its offsets, and the batch is read again.
        with pytest.raises((*TRANSIENT_ERRORS, asyncpg.InternalClientError)):
            await crashing.handle_batch(stream[80:160])
        assert len(await logged(pool)) == 80, "nothing of the killed batch is kept"
        await crashing.handle_batch(stream[80:160])  # what the consumer does after the error: read it again
    await recorder_on(pool).handle_batch(stream[160:])
    await assert_whole(pool, stream)


async def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_recorded_in_order(
        pool: asyncpg.Pool) -> None:
    stream = list(centre_records(10))
    recorder = recorder_on(pool)
    await recorder.handle_batch(stream[:30])
    # An event id that is in the log but not in the inbox (the inbox lost it): the batch as a whole is refused.
    duplicate_id = dict(stream[12].headers)["ce_id"].decode()
    async with pool.acquire() as connection:
        await connection.execute("DELETE FROM inbox WHERE event_id = $1", duplicate_id)
    again = consumer_record(CaseWithdrawn(case_id="case-0000001", reason="moved"), topic=topics.CASES,
                            partition=1, offset=999, event_id=duplicate_id, time=START + timedelta(seconds=30))
    batch = [*stream[30:60], again, *stream[60:]]
    await recorder.handle_batch(batch)
    assert recorder.batches_appended_one_by_one == 1
    entries = await logged(pool)
    assert len(entries) == len(stream) and len({entry[0] for entry in entries}) == len(stream)
    async with pool.acquire() as connection:
        assert (await verify_stored_log(connection)).ok
        reasons = await connection.fetch("SELECT value FROM outbox WHERE topic = 'deadletter'")
    assert len(reasons) == 1 and b"UniqueViolation" in bytes(reasons[0]["value"])
    # Record by record, the rest of the batch kept the audit order.
    assert [entry[0] for entry in entries[30:]] == [dict(r.headers)["ce_id"].decode() for r in stream[30:]]


async def test_a_value_postgresql_cannot_store_is_dead_lettered_with_its_origin(pool: asyncpg.Pool) -> None:
    stream = list(centre_records(2))
    poisoned = raw_record(b"{}", {"ce_id": "evt-nul", "ce_source": "/partner\x00x", "ce_type": "centre.x.v1",
                                  "ce_specversion": "1.0"}, topic=topics.PARTNER_SUBMISSIONS, partition=1, offset=4)
    recorder = recorder_on(pool)
    await recorder.handle_batch([*stream[:10], poisoned, *stream[10:]])
    assert recorder.batches_appended_one_by_one == 1
    async with pool.acquire() as connection:
        letters = [json.loads(bytes(row["value"])) for row in
                   await connection.fetch("SELECT value FROM outbox WHERE topic = 'deadletter'")]
    assert [(letter["origin_topic"], letter["origin_offset"], letter["reason_kind"]) for letter in letters] == [
        (topics.PARTNER_SUBMISSIONS, 4, "handler_error")]
    await assert_whole(pool, stream, dead_letters=1)


async def test_partitions_are_interleaved_by_event_time_and_each_keeps_its_offset_order(pool: asyncpg.Pool) -> None:
    def event(partition: int, offset: int, seconds: int) -> ConsumerRecord:
        return consumer_record(CaseWithdrawn(case_id=f"case-{partition}", reason="moved"), topic=topics.CASES,
                               partition=partition, offset=offset, event_id=f"evt-{partition}-{offset}",
                               time=START + timedelta(seconds=seconds))

    # Partition 1's clock runs backwards at offset 1: its offsets still decide its own order.
    batch = [event(1, 0, 5), event(1, 1, 1), event(1, 2, 6), event(0, 0, 2), event(0, 1, 4), event(2, 0, 3)]
    await recorder_on(pool).handle_batch(batch)
    assert [entry[0] for entry in await logged(pool)] == [
        "evt-0-0", "evt-2-0", "evt-0-1", "evt-1-0", "evt-1-1", "evt-1-2"]


async def test_invalid_records_are_recorded_too_and_a_redelivery_is_not_doubled(pool: asyncpg.Pool) -> None:
    bad = [
        raw_record(b"\xff not json", {}, topic=topics.PARTNER_SUBMISSIONS, partition=0, offset=0),
        raw_record(b'{"a": NaN}', {"ce_id": "evt-nan", "ce_type": "centre.x.v1"}, topic=topics.CASES,
                   partition=0, offset=1),
        raw_record(b"[" * 300 + b"]" * 300, {"ce_id": "evt-deep", "ce_source": "/x", "ce_type": "centre.x.v1",
                                             "ce_specversion": "1.0"}, topic=topics.CASES, partition=0, offset=2),
        raw_record(b'{"case_id": "c"}', {"ce_id": "evt-naive", "ce_source": "/x", "ce_type": "centre.x.v1",
                                         "ce_specversion": "1.0", "ce_time": "2026-03-01T10:00:00"},
                   topic=topics.CASES, partition=0, offset=3),
    ]
    recorder = recorder_on(pool)
    await recorder.handle_batch(bad)
    await recorder.handle_batch(bad)
    async with pool.acquire() as connection:
        records = await store.records_between(connection, 1, 100)
        assert (await verify_stored_log(connection)).ok
    by_id = {record.event_id: record for record in records}
    assert sorted(by_id) == ["evt-deep", "evt-naive", "evt-nan", "origin:partner.submissions/0/0"]
    assert all("unparseable_value_b64" in by_id[name].payload
               for name in ("evt-deep", "evt-nan", "origin:partner.submissions/0/0"))
    assert by_id["evt-naive"].event_time == "2026-03-01T10:00:00+00:00"


async def test_two_recorders_appending_at_once_keep_one_chain(pool: asyncpg.Pool) -> None:
    offsets = Offsets({})
    left = list(centre_records(30, offsets=offsets))
    right = list(centre_records(30, first_case=30, offsets=offsets))
    one, other = recorder_on(pool), recorder_on(pool)

    async def feed(recorder: Recorder, stream: list[ConsumerRecord]) -> None:
        for start in range(0, len(stream), 25):
            await recorder.handle_batch(stream[start:start + 25])

    await asyncio.gather(feed(one, left), feed(other, right))
    await assert_whole(pool, left + right)


async def test_the_raw_handler_path_appends_one_record_at_a_time(pool: asyncpg.Pool) -> None:
    """The runtime's record-by-record path (the fallback) on its own: a head read and an insert per record."""
    stream = list(centre_records(3))
    recorder = recorder_on(pool)
    await recorder.handle_batch(stream[:5])
    await EventConsumer.handle_batch(recorder, stream[5:])
    await assert_whole(pool, stream)
