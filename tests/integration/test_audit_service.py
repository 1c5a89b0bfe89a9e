"""The audit service over the real broker and the real PostgreSQL: events in, the log, the audit topic, checkpoints.

The local stack's Tansu broker is started on a free port; the service runs in this process with its own
lifespan (the recorder's consumer group, the sealer, the topic publisher), exactly as ``python -m
services.audit`` wires it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker

from deploy.local.broker import TansuBroker, create_topics
from schemas import topics
from schemas.events import AuditRecorded
from services.audit import store
from services.audit.app import definition
from services.audit.publication import publish_pending
from services.audit.recorder import Recorder
from services.runtime.service import build_app
from services.runtime.settings import ServiceSettings
from tests.e2e.centre import eventually
from tests.unit.audit.audit_scratch import auditor_authorization, centre_records, scratch_database

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    broker = TansuBroker(tmp_path_factory.mktemp("broker") / "broker.log")
    await broker.start()
    try:
        await create_topics(broker.bootstrap_servers, report=lambda line: None)
        yield broker.bootstrap_servers
    finally:
        await broker.stop()


async def audit_topic(bootstrap_servers: str) -> list[tuple[dict[str, str], AuditRecorded]]:
    """Everything on the audit topic so far, read from the beginning (no group: no join to wait for)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topics.AUDIT, 0)])
        await consumer.seek_to_beginning()
        messages: list[ConsumerRecord] = []
        while batches := await consumer.getmany(timeout_ms=300, max_records=10_000):
            messages += [message for batch in batches.values() for message in batch]
    finally:
        await asyncio.wait_for(consumer.stop(), 5)
    return [({name: value.decode() for name, value in message.headers},
             AuditRecorded.model_validate_json(message.value)) for message in messages]


async def test_the_publisher_follows_the_log_in_seq_order_and_republishes_under_the_same_ids(kafka: str) -> None:
    async with scratch_database("test_audit_topic") as (_, pool):
        recorder = Recorder(["test"], writer_role="audit_writer")
        recorder.pool = pool
        await recorder.handle_batch(list(centre_records(3)))
        broker = KafkaBroker(kafka, logger=None)
        await broker.start()
        try:
            published = [await publish_pending(pool, broker, batch_size=12, writer_role="audit_writer")
                         for _ in range(4)]
            assert published == [12, 12, 6, 0]
            async with pool.acquire() as connection:  # a crash after the broker's ack, before the commit
                await connection.execute("UPDATE topic_position SET published_seq = 20")
            assert await publish_pending(pool, broker, batch_size=100) == 10
        finally:
            await broker.stop()
        async with pool.acquire() as connection:
            stored = await store.records_between(connection, 1, 100)
    messages = await audit_topic(kafka)
    assert [event.seq for _, event in messages] == [*range(1, 31), *range(21, 31)]
    follower = {headers["ce_id"]: event for headers, event in messages}  # a follower drops repeats by id
    assert [event.seq for event in follower.values()] == list(range(1, 31))
    for (headers, event), record in zip(messages, stored, strict=False):
        assert headers["ce_id"] == f"audit:{record.seq}:{record.record_hash}"
        assert (event.record_hash, event.prev_hash, event.event_id) == (record.record_hash, record.prev_hash,
                                                                         record.event_id)
        assert headers["traceparent"] == record.traceparent


async def test_the_service_records_seals_and_publishes_what_the_broker_carries(
        kafka: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_CHECKPOINT_RECORDS", "1000")
    monkeypatch.setenv("AUDIT_CHECKPOINT_INTERVAL_S", "0.5")
    monkeypatch.setenv("AUDIT_SIGNING_KEY_FILE", str(tmp_path / "checkpoint.pem"))
    stream = list(centre_records(20))
    async with scratch_database("test_audit_service") as (url, pool):
        settings = ServiceSettings(service_name="audit", kafka_bootstrap_servers=kafka, database_url=url,
                                   kafka_session_timeout_ms=1500, kafka_heartbeat_interval_ms=300)
        app = build_app(definition, settings)
        async with app.router.lifespan_context(app):
            producer = AIOKafkaProducer(bootstrap_servers=kafka)
            await producer.start()
            try:
                for record in stream:
                    await producer.send(record.topic, record.value, key=record.key, partition=record.partition,
                                        headers=list(record.headers))
                await producer.flush()
            finally:
                await producer.stop()

            async def sealed() -> int:
                async with pool.acquire() as connection:
                    latest = await store.latest_checkpoint(connection)
                return latest[0].checkpoint.size if latest and latest[0].checkpoint.size == len(stream) else 0

            await eventually(sealed, what="every event recorded and sealed")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit",
                                         headers=auditor_authorization()) as client:
                verdict = (await client.get("/audit/verify")).json()
                proof = (await client.get("/audit/proofs/inclusion", params={"seq": 7})).json()
            messages = await eventually(lambda: _complete(kafka, stream), what="the audit topic")
    assert verdict["ok"] and verdict["records_checked"] == len(stream) and verdict["unsealed_records"] == 0
    assert proof["size"] == len(stream)
    assert [event.seq for _, event in messages] == list(range(1, len(stream) + 1))
    assert all(headers["ce_id"] == f"audit:{event.seq}:{event.record_hash}" for headers, event in messages)
    assert verdict["key_ids"]


async def _complete(kafka: str, stream: list[ConsumerRecord]) -> list[tuple[dict[str, str], AuditRecorded]]:
    """This test's messages on the audit topic (the module's broker also holds another test's), once all there."""
    ids = {dict(record.headers)["ce_id"].decode() for record in stream}
    messages = [(headers, event) for headers, event in await audit_topic(kafka)
                if event.event_id in ids]
    return messages if len(messages) >= len(stream) else []
