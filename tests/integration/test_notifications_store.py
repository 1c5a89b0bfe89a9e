"""Notifications against the real PostgreSQL: one notification per cause, delivered once, failures counted.

The module gets a fresh database with a random name, migrated like the running service, and dropped
after; each test starts from empty tables. Handlers are called directly with a Delivery on a real
connection: no broker is needed to test what they store and what they record in the outbox.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from schemas import topics
from schemas.envelope import Envelope, Origin
from schemas.events import (
    ApprovalDecided,
    CaseProfile,
    CaseRegistered,
    DecisionOverdue,
    Event,
    HouseholdMember,
    MatchProposed,
    NotificationRequested,
    ProposalReviewed,
)
from services.notifications import app as notifications_app
from services.notifications import store
from services.notifications.channels import DeliveryFailed, LogChannel, Withheld
from services.notifications.dispatch import Dispatcher, RetryPolicy, dispatch
from services.notifications.handlers import Policy, request_notifications
from services.notifications.rules import ChannelName, Notification
from services.runtime.access import TokenAuthority
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from tests.integration.in_process import until
from tests.integration.notifications_database import SCHEMA, SOURCE, emptied, notifications_database
from tests.integration.service_database import SERVER_URL

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
async def database() -> AsyncIterator[asyncpg.Pool]:
    async with notifications_database("store") as pool:
        yield pool


@pytest.fixture
async def pool(database: asyncpg.Pool) -> asyncpg.Pool:
    await emptied(database)
    return database


def approved(case_id: str = "case-1") -> ApprovalDecided:
    return ApprovalDecided(proposal_id="proposal-1", case_id=case_id, host_id="host-1", decision="approved",
                           decided_by="approver-1", reviewed_by="caseworker-1")


def proposed(case_id: str = "case-1", urgency: str = "normal") -> MatchProposed:
    return MatchProposed(proposal_id="proposal-1", case_id=case_id, host_id="host-1", pool_id="pool-north",
                         run_id="run-1", score=1.0, urgency=urgency)  # type: ignore[arg-type]


def reviewed(case_id: str = "case-1") -> ProposalReviewed:
    return ProposalReviewed(proposal_id="proposal-1", case_id=case_id, host_id="host-1", reviewed_by="caseworker-1",
                            recommendation="approve")


def registered(case_id: str = "case-1", language: str = "en") -> CaseRegistered:
    return CaseRegistered(case_id=case_id, pool_id="pool-north", organisation_id="org-intake", language=language,
                          profile=CaseProfile(members=[HouseholdMember(age_band="30-49", sex="female")]))


def delivery_of(connection: asyncpg.Connection, event: Event, event_id: str, at: datetime | None = None) -> Delivery:
    envelope = Envelope(id=event_id, source="/services/consent", type=event.type, time=at or datetime.now(UTC))
    return Delivery(envelope=envelope, origin=Origin(topics.DECISIONS, 0, 0), connection=connection, source=SOURCE)


async def handle(pool: asyncpg.Pool, event: Event, event_id: str | None = None, *, at: datetime | None = None,
                 policy: Policy | None = None) -> int:
    async with pool.acquire() as connection, connection.transaction():
        delivery = delivery_of(connection, event, event_id or str(uuid.uuid4()), at)
        if type(event) in notifications_app.CAUSES:
            return await request_notifications(event, delivery, policy)
        await notifications_app.rules.handlers[type(event)](event, delivery)
        return 0


async def outbox(pool: asyncpg.Pool, event_type: str) -> list[dict[str, Any]]:
    """The JSON of each event of a type in the outbox, in the order recorded."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT value FROM outbox WHERE headers->>'ce_type' = $1 ORDER BY id", event_type
        )
    return [json.loads(bytes(row["value"])) for row in rows]


async def notifications(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as connection:
        return await connection.fetch("SELECT * FROM notifications ORDER BY recipient_kind, rule")


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


async def test_the_beneficiary_is_written_to_in_the_cases_language_and_desks_in_their_contacts(
    pool: asyncpg.Pool,
) -> None:
    await handle(pool, registered(language="fa-AF"))
    async with pool.acquire() as connection:
        await store.put_contact(connection, "host", "host-1", "host@example.org", "nl")
    await handle(pool, approved())
    languages = {row["recipient_kind"]: row["language"] for row in await notifications(pool)}
    assert languages == {"beneficiary": "prs", "host": "nl"}


async def test_a_desk_message_goes_to_the_desk_of_the_cases_pool(pool: asyncpg.Pool) -> None:
    await handle(pool, registered())
    await handle(pool, ApprovalDecided(proposal_id="proposal-1", case_id="case-1", host_id="host-1",
                                       decision="rejected", decided_by="approver-1", reviewed_by="caseworker-1",
                                       reason="no school places"))
    [row] = await notifications(pool)
    assert (row["rule"], row["recipient_ref"]) == ("proposal_rejected", "desk:pool-north")


async def test_an_overdue_decision_is_told_once_to_the_desk_consent_escalated_it_to(pool: asyncpg.Pool) -> None:
    decide_by = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    escalation = DecisionOverdue(proposal_id="proposal-1", case_id="case-1", host_id="host-1", pool_id="pool-north",
                                 urgency="urgent", reviewed_by="caseworker-1", decide_by=decide_by,
                                 escalated_to="desk:pool-north")
    await handle(pool, proposed(urgency="urgent"))
    await handle(pool, reviewed())
    assert await handle(pool, escalation, "overdue-1") == 1
    assert await handle(pool, escalation, "overdue-1") == 0, "a redelivered escalation tells nobody again"

    reminders = [row for row in await notifications(pool) if row["rule"] == "decision_overdue"]
    assert [(row["recipient_kind"], row["recipient_ref"], row["case_id"]) for row in reminders] == [
        ("approver", "desk:pool-north", "case-1")
    ]
    assert json.loads(reminders[0]["facts"])["decide_by"] == "2026-03-02 09:30 UTC"


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
    assert set(consumer.topics) == {topics.CASES, topics.HOSTS, topics.CONSENTS, topics.PROPOSALS, topics.DECISIONS}


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

    # A dispatcher started later (a restart) finds nothing to send again.
    assert await Dispatcher(pool, {"log": LogChannel()}, source=SOURCE).dispatch_due() == 0


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


async def test_failed_attempts_are_counted_retried_later_and_dead_after_the_last(pool: asyncpg.Pool) -> None:
    await handle(pool, proposed(), str(uuid.uuid4()))
    channel = BrokenChannel()
    dispatcher = Dispatcher(pool, {"log": channel}, source=SOURCE, retry=RetryPolicy(max_attempts=2, base_s=60))

    assert await dispatcher.dispatch_due() == 1
    [row] = await notifications(pool)
    assert (row["status"], row["attempts"], row["last_failure"]) == ("requested", 1, "relay unavailable")
    assert row["next_attempt_at"] > datetime.now(UTC) + timedelta(seconds=29), "backoff with jitter: 30-60 s"
    assert await dispatcher.dispatch_due() == 0, "not due again before its retry time"

    await make_due(pool)
    assert await dispatcher.dispatch_due() == 1
    [row] = await notifications(pool)
    assert (row["status"], row["attempts"]) == ("dead", 2)
    await make_due(pool)
    assert await dispatcher.dispatch_due() == 0, "a dead notification is not tried again"

    failures = await outbox(pool, "centre.notification.failed.v1")
    assert [(value["attempt"], value["final"], value["reason"]) for value in failures] == [
        (1, False, "relay unavailable"),
        (2, True, "relay unavailable"),
    ]
    assert len(channel.tried) == 2
    assert await outbox(pool, "centre.notification.delivered.v1") == []


async def test_a_receiver_that_refuses_for_good_is_dead_at_once(pool: asyncpg.Pool) -> None:
    await handle(pool, proposed())
    assert await Dispatcher(pool, {"log": BrokenChannel(retryable=False)}, source=SOURCE).dispatch_due() == 1
    [row] = await notifications(pool)
    assert (row["status"], row["attempts"]) == ("dead", 1)


async def test_a_withheld_delivery_ends_without_retry_or_resend(pool: asyncpg.Pool) -> None:
    class Withholding:
        name: ChannelName = "log"

        async def deliver(self, notification: Notification) -> None:
            raise Withheld("consent does not cover this partner")

    await handle(pool, proposed())
    assert await Dispatcher(pool, {"log": Withholding()}, source=SOURCE).dispatch_due() == 1
    [row] = await notifications(pool)
    assert (row["status"], row["last_failure"]) == ("withheld", "consent does not cover this partner")
    [failed] = await outbox(pool, "centre.notification.failed.v1")
    assert (failed["final"], failed["reason"]) == (True, "consent does not cover this partner")
    async with pool.acquire() as connection, connection.transaction():
        assert await store.resend(connection, row["id"]) == "withheld"
    [row] = await notifications(pool)
    assert row["status"] == "withheld"


async def test_a_channel_that_is_not_configured_breaks_or_hangs_fails_without_its_error_text(
    pool: asyncpg.Pool,
) -> None:
    await handle(pool, proposed(), str(uuid.uuid4()))

    class Exploding:
        name: ChannelName = "log"

        async def deliver(self, notification: Notification) -> None:
            raise RuntimeError("could not reach someone@example.org")

    class Hanging:
        name: ChannelName = "log"

        async def deliver(self, notification: Notification) -> None:
            await asyncio.sleep(30)

    assert await Dispatcher(pool, {}, source=SOURCE).dispatch_due() == 1
    await make_due(pool)
    assert await Dispatcher(pool, {"log": Exploding()}, source=SOURCE).dispatch_due() == 1
    await make_due(pool)
    assert await Dispatcher(pool, {"log": Hanging()}, source=SOURCE, timeout_s=0.2).dispatch_due() == 1
    reasons = [value["reason"] for value in await outbox(pool, "centre.notification.failed.v1")]
    assert reasons == ["channel log is not configured", "RuntimeError in channel log", "no answer within 0.2 s"]


async def test_an_attempt_whose_claim_was_lost_changes_nothing_and_a_lapsed_lease_is_tried_again(
    pool: asyncpg.Pool,
) -> None:
    await handle(pool, proposed())
    async with pool.acquire() as connection, connection.transaction():
        first_claim, [row] = await store.claim_due(connection, limit=10, lease_s=0.0, per_receiver=4)
    # The first dispatcher "died" mid-attempt: its lease (zero here) lapses and another claims the delivery.
    async with pool.acquire() as connection, connection.transaction():
        second_claim, [again] = await store.claim_due(connection, limit=10, lease_s=60.0, per_receiver=4)
        assert again["id"] == row["id"]
    async with pool.acquire() as connection:
        assert await store.mark_delivered(connection, row["id"], first_claim) is None
        assert await store.mark_delivered(connection, row["id"], second_claim) is not None
        assert await store.mark_delivered(connection, row["id"], second_claim) is None


async def test_one_receiver_gets_a_limited_share_of_a_claim(pool: asyncpg.Pool) -> None:
    for _ in range(6):
        await handle(pool, proposed())  # six causes, all for the desk of pool-north
    await handle(pool, approved(case_id="case-9"))  # a beneficiary and a host: two other receivers
    async with pool.acquire() as connection, connection.transaction():
        _, rows = await store.claim_due(connection, limit=50, lease_s=60.0, per_receiver=2,
                                        in_flight={"log:caseworker:desk:pool-north": 1})
    receivers = sorted(row["receiver"] for row in rows)
    assert receivers == ["log:beneficiary:case-9", "log:caseworker:desk:pool-north", "log:host:host-1"]


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
    first_batch_done = asyncio.Event()
    claim_due = store.claim_due

    async def claim_and_tell(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim_due(*args, **kwargs)
        first_batch_done.set()
        return claimed

    monkeypatch.setattr(store, "claim_due", claim_and_tell)
    task = asyncio.create_task(dispatch(context))
    try:
        await asyncio.wait_for(first_batch_done.wait(), timeout=10)  # the first, empty batch; now it waits
        assert await notifications(pool) == []
        await handle(pool, proposed(), str(uuid.uuid4()))

        async def delivered() -> bool:
            return {row["status"] for row in await notifications(pool)} == {"delivered"}

        # Far less than the 60 s poll interval: only the NOTIFY can have woken it.
        await until(delivered, "the dispatcher to wake for the stored notification", timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(await outbox(pool, "centre.notification.delivered.v1")) == 1


async def test_a_stopping_dispatcher_gives_back_what_it_had_not_finished(pool: asyncpg.Pool) -> None:
    attempting = asyncio.Event()

    class Hanging:
        name: ChannelName = "log"

        async def deliver(self, notification: Notification) -> None:
            attempting.set()
            await asyncio.sleep(30)

    await handle(pool, proposed())
    dispatcher = Dispatcher(pool, {"log": Hanging()}, source=SOURCE, timeout_s=30, lease_s=600)
    task = asyncio.create_task(dispatcher.run(poll_interval_s=0.05))
    await asyncio.wait_for(attempting.wait(), timeout=10)  # claimed, under a 600 s lease, mid-attempt
    [claimed] = await notifications(pool)
    assert claimed["next_attempt_at"] > datetime.now(UTC), "the claim holds it for the lease"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [row] = await notifications(pool)
    assert row["status"] == "requested"
    assert row["next_attempt_at"] <= datetime.now(UTC), "due again at once, not after its lease"
    assert await Dispatcher(pool, {"log": LogChannel()}, source=SOURCE).dispatch_due() == 1


async def test_operators_see_a_cases_notifications_and_the_dead_letters_and_resend_them(pool: asyncpg.Pool) -> None:
    await handle(pool, proposed("case-1"), str(uuid.uuid4()))
    await handle(pool, approved("case-1"), str(uuid.uuid4()))
    await handle(pool, approved("case-2"), str(uuid.uuid4()))
    await Dispatcher(pool, {"log": LogChannel()}, source=SOURCE, batch_size=1).dispatch_due()
    await Dispatcher(pool, {"log": BrokenChannel(retryable=False)}, source=SOURCE, batch_size=1).dispatch_due()

    api = FastAPI()
    api.include_router(notifications_app.router)
    api.state.context = ServiceContext(
        settings=ServiceSettings(service_name=SCHEMA), pool=pool, broker=None, relay=None,  # type: ignore[arg-type]
        consumers=(),
    )
    authority = TokenAuthority.from_settings(ServiceSettings())
    api.state.token_authority = authority
    caseworker = {"Authorization": f"Bearer {authority.issue('caseworker-1', 'caseworker')}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test",
                                 headers=caseworker) as client:
        response = await client.get("/notifications", params={"case_id": "case-1"})
        missing = await client.get("/notifications")
        dead = (await client.get("/deliveries", params={"status": "dead"})).json()
        assert len(dead) == 1
        resent = await client.post(f"/deliveries/{dead[0]['notification_id']}/resend")
        again = await client.post(f"/deliveries/{dead[0]['notification_id']}/resend")
        unknown = await client.post("/deliveries/no-such-delivery/resend")
        bad_status = await client.get("/deliveries", params={"status": "lost"})
    assert response.status_code == 200
    listed = response.json()
    assert sorted(item["rule"] for item in listed) == ["host_offer", "match_offer", "proposal_to_review"]
    assert sorted(item["status"] for item in listed).count("delivered") == 1
    assert all(item["case_id"] == "case-1" for item in listed)
    assert not {"body", "message", "subject", "facts"} & set(listed[0])
    assert missing.status_code == 422
    assert dead[0]["last_failure"] == "relay unavailable"
    assert (resent.status_code, again.status_code, unknown.status_code, bad_status.status_code) == (
        202, 409, 404, 422)

    async with pool.acquire() as connection:
        row = await store.notification(connection, dead[0]["notification_id"])
    assert row is not None
    assert (row["status"], row["attempts"], row["resends"]) == ("requested", 0, 1)
    assert await Dispatcher(pool, {"log": LogChannel()}, source=SOURCE).dispatch_due() >= 1
    async with pool.acquire() as connection:
        row = await store.notification(connection, dead[0]["notification_id"])
    assert row is not None and row["status"] == "delivered"
