"""Notifications against the real PostgreSQL: one notification per cause, delivered once, failures counted.

Each test gets a fresh database with a random name, migrated like the running service, and dropped after.
The handler is called directly with a Delivery on a real connection: no broker is needed to test what it
stores and what it records in the outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from schemas import topics
from schemas.envelope import Envelope, Origin
from schemas.events import ApprovalDecided, Event, MatchProposed, NotificationRequested
from services.notifications import app as notifications_app
from services.notifications.channels import DeliveryFailed, LogChannel
from services.notifications.dispatch import Dispatcher, RetryPolicy, dispatch
from services.notifications.handlers import request_notifications
from services.notifications.rules import ChannelName, Notification
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.database import create_pool, migrate
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
MIGRATIONS = Path(notifications_app.__file__).parent / "migrations"
SCHEMA = "notifications"
SOURCE = "/services/notifications"


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    name = f"test_notifications_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pool = await create_pool(f"{SERVER_URL}/{name}", SCHEMA, size=4)
        try:
            await migrate(pool, SCHEMA, MIGRATIONS)
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def approved(case_id: str = "case-1") -> ApprovalDecided:
    return ApprovalDecided(proposal_id="proposal-1", case_id=case_id, host_id="host-1", decision="approved",
                           decided_by="approver-1", reviewed_by="caseworker-1")


def proposed(case_id: str = "case-1") -> MatchProposed:
    return MatchProposed(proposal_id="proposal-1", case_id=case_id, host_id="host-1", pool_id="pool-north",
                         run_id="run-1", score=1.0)


def delivery_of(connection: asyncpg.Connection, event: Event, event_id: str) -> Delivery:
    envelope = Envelope(id=event_id, source="/services/consent", type=event.type, time=datetime.now(UTC))
    return Delivery(envelope=envelope, origin=Origin(topics.DECISIONS, 0, 0), connection=connection, source=SOURCE)


async def handle(pool: asyncpg.Pool, event: Event, event_id: str) -> int:
    async with pool.acquire() as connection, connection.transaction():
        return await request_notifications(event, delivery_of(connection, event, event_id))


async def outbox(pool: asyncpg.Pool, event_type: str) -> list[dict[str, Any]]:
    """The JSON of each event of a type in the outbox, in the order recorded."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT value FROM outbox WHERE headers->>'ce_type' = $1 ORDER BY id", event_type
        )
    return [json.loads(bytes(row["value"])) for row in rows]


async def notifications(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as connection:
        return await connection.fetch("SELECT * FROM notifications ORDER BY recipient_kind")


async def test_the_same_cause_handled_twice_stores_and_announces_each_notification_once(pool: asyncpg.Pool) -> None:
    cause = str(uuid.uuid4())
    assert await handle(pool, approved(), cause) == 2
    assert await handle(pool, approved(), cause) == 0

    rows = await notifications(pool)
    assert [(row["rule"], row["recipient_kind"], row["recipient_ref"]) for row in rows] == [
        ("match_offer", "beneficiary", "case-1"),
        ("host_offer", "host", "host-1"),
    ]
    assert {row["status"] for row in rows} == {"requested"}
    assert {row["attempts"] for row in rows} == {0}
    assert {row["cause_event_id"] for row in rows} == {cause}

    recorded = await outbox(pool, NotificationRequested.type)
    requested = [NotificationRequested.model_validate(value) for value in recorded]
    assert sorted(event.notification_id for event in requested) == sorted(row["id"] for row in rows)
    assert {(event.rule, event.recipient.kind, event.channel, event.language) for event in requested} == {
        ("match_offer", "beneficiary", "log", "en"),
        ("host_offer", "host", "log", "en"),
    }


async def test_a_different_cause_makes_new_notifications(pool: asyncpg.Pool) -> None:
    assert await handle(pool, proposed(), str(uuid.uuid4())) == 1
    assert await handle(pool, proposed(), str(uuid.uuid4())) == 1
    assert len(await notifications(pool)) == 2


async def test_the_rules_consumer_dedupes_a_redelivered_record_and_ignores_what_no_rule_is_about(
    pool: asyncpg.Pool,
) -> None:
    consumer = EventConsumer("rules", notifications_app.rules.topics, notifications_app.rules.handlers)
    consumer.pool = pool

    def record(event: Event, offset: int, event_id: str) -> ConsumerRecord:
        envelope = Envelope(id=event_id, source="/services/consent", type=event.type, time=datetime.now(UTC))
        return ConsumerRecord(
            topic=topics.DECISIONS, partition=0, offset=offset, timestamp=0, timestamp_type=0,
            key=event.key().encode(), value=event.model_dump_json().encode(), checksum=None,
            serialized_key_size=0, serialized_value_size=0,
            headers=[(name, value.encode()) for name, value in envelope.to_headers().items()],
        )

    cause = str(uuid.uuid4())
    await consumer.handle_batch([record(approved(), 0, cause), record(approved(), 1, cause)])
    await consumer.handle_batch([record(approved(), 0, cause)])
    assert len(await notifications(pool)) == 2
    assert len(await outbox(pool, NotificationRequested.type)) == 2
    assert await outbox(pool, "centre.deadletter.recorded.v1") == []


async def test_the_dispatcher_delivers_each_notification_once_and_says_so(pool: asyncpg.Pool) -> None:
    await handle(pool, approved(), str(uuid.uuid4()))
    dispatcher = Dispatcher(pool, {"log": LogChannel()}, source=SOURCE, batch_size=10)

    assert await dispatcher.dispatch_due() == 2
    assert await dispatcher.dispatch_due() == 0

    rows = await notifications(pool)
    assert {row["status"] for row in rows} == {"delivered"}
    assert {row["attempts"] for row in rows} == {1}
    assert all(row["delivered_at"] is not None for row in rows)
    delivered = await outbox(pool, "centre.notification.delivered.v1")
    assert sorted(value["notification_id"] for value in delivered) == sorted(row["id"] for row in rows)
    assert {value["channel"] for value in delivered} == {"log"}


class BrokenChannel:
    name: ChannelName = "log"

    def __init__(self, *, retryable: bool = True) -> None:
        self.retryable = retryable
        self.tried: list[str] = []

    async def deliver(self, notification: Notification) -> None:
        self.tried.append(notification.id)
        raise DeliveryFailed("relay unavailable", retryable=self.retryable)


async def make_due(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        await connection.execute("UPDATE notifications SET next_attempt_at = now() WHERE status = 'requested'")


async def test_failed_attempts_are_counted_retried_later_and_given_up_after_the_last(pool: asyncpg.Pool) -> None:
    await handle(pool, proposed(), str(uuid.uuid4()))
    channel = BrokenChannel()
    dispatcher = Dispatcher(pool, {"log": channel}, source=SOURCE, retry=RetryPolicy(max_attempts=2, base_s=60))

    assert await dispatcher.dispatch_due() == 1
    [row] = await notifications(pool)
    assert (row["status"], row["attempts"], row["last_failure"]) == ("requested", 1, "relay unavailable")
    assert await dispatcher.dispatch_due() == 0, "not due again before its retry time"

    await make_due(pool)
    assert await dispatcher.dispatch_due() == 1
    [row] = await notifications(pool)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    await make_due(pool)
    assert await dispatcher.dispatch_due() == 0, "a failed notification is not tried again"

    failures = await outbox(pool, "centre.notification.failed.v1")
    assert [(value["attempt"], value["final"], value["reason"]) for value in failures] == [
        (1, False, "relay unavailable"),
        (2, True, "relay unavailable"),
    ]
    assert len(channel.tried) == 2
    assert await outbox(pool, "centre.notification.delivered.v1") == []


async def test_a_channel_that_is_not_configured_or_breaks_unexpectedly_fails_without_its_error_text(
    pool: asyncpg.Pool,
) -> None:
    await handle(pool, proposed(), str(uuid.uuid4()))

    class Exploding:
        name: ChannelName = "log"

        async def deliver(self, notification: Notification) -> None:
            raise RuntimeError("could not reach someone@example.org")

    assert await Dispatcher(pool, {}, source=SOURCE).dispatch_due() == 1
    await make_due(pool)
    assert await Dispatcher(pool, {"log": Exploding()}, source=SOURCE).dispatch_due() == 1
    reasons = [value["reason"] for value in await outbox(pool, "centre.notification.failed.v1")]
    assert reasons == ["channel log is not configured", "RuntimeError in channel log"]


async def test_the_background_dispatcher_wakes_when_a_notification_is_stored(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A poll interval far beyond the test's patience: only the NOTIFY can wake it in time.
    monkeypatch.setenv("NOTIFICATIONS_POLL_INTERVAL_S", "60")
    context = ServiceContext(
        settings=ServiceSettings(service_name=SCHEMA, database_url=f"{SERVER_URL}/unused"),
        pool=pool,
        broker=None,  # type: ignore[arg-type]
        relay=None,  # type: ignore[arg-type]
        consumers=(),
    )
    task = asyncio.create_task(dispatch(context))
    try:
        await asyncio.sleep(0.3)  # the first, empty batch; then it waits
        await handle(pool, proposed(), str(uuid.uuid4()))
        started = asyncio.get_running_loop().time()
        for _ in range(150):
            if {row["status"] for row in await notifications(pool)} == {"delivered"}:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the dispatcher did not wake for the stored notification")
        woke_after_s = asyncio.get_running_loop().time() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert woke_after_s < 1.0
    assert len(await outbox(pool, "centre.notification.delivered.v1")) == 1


async def test_operators_see_a_cases_notifications_without_bodies(pool: asyncpg.Pool) -> None:
    await handle(pool, proposed("case-1"), str(uuid.uuid4()))
    await handle(pool, approved("case-1"), str(uuid.uuid4()))
    await handle(pool, approved("case-2"), str(uuid.uuid4()))
    await Dispatcher(pool, {"log": LogChannel()}, source=SOURCE, batch_size=1).dispatch_due()

    api = FastAPI()
    api.include_router(notifications_app.router)
    api.state.context = ServiceContext(
        settings=ServiceSettings(service_name=SCHEMA), pool=pool, broker=None, relay=None,  # type: ignore[arg-type]
        consumers=(),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test") as client:
        response = await client.get("/notifications", params={"case_id": "case-1"})
        missing = await client.get("/notifications")
    assert response.status_code == 200
    listed = response.json()
    assert sorted(item["rule"] for item in listed) == ["host_offer", "match_offer", "proposal_to_review"]
    assert sorted(item["status"] for item in listed) == ["delivered", "requested", "requested"]
    assert all(item["case_id"] == "case-1" for item in listed)
    assert not {"body", "message", "subject"} & set(listed[0])
    assert missing.status_code == 422
