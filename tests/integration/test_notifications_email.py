"""Email over a real SMTP server (aiosmtpd on loopback) and the real PostgreSQL.

Each rule's message reaches the right address in the right language, with the notification id as its
Message-ID, a plain-text part and an HTML part marked with the language and its direction; a beneficiary's
message reaches their caseworkers' desk with a note to pass it on; failures are retried without an
address or a message in any reason or log line; and a restarted dispatcher sends nothing twice.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from structlog.testing import capture_logs

from schemas import topics
from schemas.envelope import Envelope as EventEnvelope
from schemas.envelope import Origin
from schemas.events import (
    ApprovalDecidedV2,
    CaseProfile,
    CaseRegistered,
    DecisionOverdue,
    Event,
    HouseholdMember,
    MatchProposed,
    PlacementConfirmed,
    ProposalReviewedV2,
    ProposalWithdrawn,
    ResponseExpired,
)
from services.notifications import app as notifications_app
from services.notifications import store
from services.notifications.addresses import AddressBook
from services.notifications.dispatch import Dispatcher, RetryPolicy, notification_of
from services.notifications.handlers import Policy, request_notifications
from services.notifications.mail import EmailChannel, SmtpServer
from services.notifications.messages import LANGUAGES, write_message
from services.notifications.rules import MESSAGES
from services.runtime.consumer import Delivery
from tests.integration.notifications_database import SOURCE, emptied, notifications_database

pytestmark = pytest.mark.integration

SENDER = "Matching centre <notifications@centre.invalid>"
DOMAIN = "notifications.centre.invalid"
REFUSED = "nobody@centre.example"
POLICY = Policy(people_channel="email")


@dataclass
class Inbox:
    """An SMTP server's handler that keeps what arrived, and refuses one address for good."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(content, policy=policy.default)))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def by_message_id(self) -> dict[str, list[EmailMessage]]:
        found: dict[str, list[EmailMessage]] = {}
        for _, message in self.messages:
            found.setdefault(str(message["Message-ID"]).strip(), []).append(message)
        return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[asyncpg.Pool]:
    async with notifications_database("email") as pool:
        yield pool


@pytest.fixture
async def pool(database: asyncpg.Pool, smtp: tuple[Inbox, int]) -> asyncpg.Pool:
    await emptied(database)
    smtp[0].messages.clear()
    return database


def email_dispatcher(pool: asyncpg.Pool, port: int, configured: dict[str, str] | None = None) -> Dispatcher:
    channel = EmailChannel(pool, SmtpServer(host="127.0.0.1", port=port, timeout_s=5.0), AddressBook(configured),
                           sender=SENDER, domain=DOMAIN)
    return Dispatcher(pool, {"email": channel}, source=SOURCE, batch_size=100, timeout_s=5.0,
                      retry=RetryPolicy(max_attempts=3, base_s=60))


async def handle(pool: asyncpg.Pool, event: Event, *, at: datetime | None = None) -> None:
    async with pool.acquire() as connection, connection.transaction():
        envelope = EventEnvelope(id=str(uuid.uuid4()), source="/services/test", type=event.type,
                                 time=at or datetime.now(UTC))
        delivery = Delivery(envelope=envelope, origin=Origin(topics.DECISIONS, 0, 0), connection=connection,
                            source=SOURCE)
        if type(event) in notifications_app.CAUSES:
            await request_notifications(event, delivery, POLICY)
        else:
            await notifications_app.rules.handlers[type(event)](event, delivery)


async def rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as connection:
        return await connection.fetch(f"SELECT {store.COLUMNS} FROM notifications ORDER BY created_at, id")


def registered(case_id: str, pool_id: str, language: str) -> CaseRegistered:
    return CaseRegistered(case_id=case_id, pool_id=pool_id, organisation_id="org-intake", language=language,
                          profile=CaseProfile(members=[HouseholdMember(age_band="30-49", sex="female")]))


async def journey(pool: asyncpg.Pool, language: str) -> dict[str, str]:
    """Every message a person can receive, for one case, its desk and its host, all reading ``language``."""
    pool_id, case_id, host_id = f"pool-{language}", f"case-{language}", f"host-{language}"
    addresses = {
        "caseworker": f"caseworkers-{language}@centre.example",
        "approver": f"approvers-{language}@centre.example",
        "host": f"host-{language}@partner.example",
    }
    async with pool.acquire() as connection:
        await store.put_contact(connection, "caseworker", f"desk:{pool_id}", addresses["caseworker"], language)
        await store.put_contact(connection, "approver", f"desk:{pool_id}", addresses["approver"], language)
        await store.put_contact(connection, "host", host_id, addresses["host"], language)
    await handle(pool, registered(case_id, pool_id, language))

    ids: dict[str, Any] = {"case_id": case_id, "host_id": host_id}
    await handle(pool, MatchProposed(proposal_id=f"{case_id}-p1", pool_id=pool_id, run_id="run-1", score=1.0, **ids))
    reviewed_at = datetime.now(UTC) - timedelta(hours=2)
    await handle(pool, ProposalReviewedV2(proposal_id=f"{case_id}-p1", reviewed_by="caseworker-1", pool_id=pool_id,
                                          urgency="normal", recommendation="approve",
                                          decide_by=reviewed_at + timedelta(hours=1), **ids), at=reviewed_at)
    await handle(pool, DecisionOverdue(proposal_id=f"{case_id}-p1", pool_id=pool_id, urgency="normal",
                                       reviewed_by="caseworker-1", decide_by=reviewed_at + timedelta(hours=1),
                                       escalated_to=f"desk:{pool_id}", **ids))
    await handle(pool, ApprovalDecidedV2(proposal_id=f"{case_id}-p1", pool_id=pool_id, decision="approved",
                                         decided_by="approver-2", reviewed_by="caseworker-1",
                                         respond_by=datetime.now(UTC) + timedelta(days=7), **ids))
    await handle(pool, PlacementConfirmed(placement_id=f"placement-{case_id}", proposal_id=f"{case_id}-p1",
                                          pool_id=pool_id, **ids))
    await handle(pool, MatchProposed(proposal_id=f"{case_id}-p2", pool_id=pool_id, run_id="run-2", score=1.0, **ids))
    await handle(pool, ApprovalDecidedV2(proposal_id=f"{case_id}-p2", pool_id=pool_id, decision="rejected",
                                         decided_by="approver-2", reviewed_by="caseworker-1",
                                         reason="no school places", **ids))
    await handle(pool, ProposalWithdrawn(proposal_id=f"{case_id}-p3", reason="superseded", **ids))
    await handle(pool, ResponseExpired(proposal_id=f"{case_id}-p4", pool_id=pool_id, unanswered=["beneficiary"],
                                       respond_by=datetime.now(UTC) - timedelta(minutes=1), **ids))
    return addresses


@pytest.mark.parametrize("language", sorted(LANGUAGES))
async def test_each_rule_sends_the_right_message_in_the_right_language(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int], language: str
) -> None:
    inbox, port = smtp
    addresses = await journey(pool, language)
    with capture_logs() as logs:
        assert await email_dispatcher(pool, port).dispatch_due() == 12
    stored = await rows(pool)
    assert {(row["rule"], row["recipient_kind"]) for row in stored} == set(MESSAGES)
    assert {row["status"] for row in stored} == {"delivered"}

    received = inbox.by_message_id()
    assert len(inbox.messages) == len(stored) == len(received), "one email per notification"
    for row in stored:
        [email] = received[f"<{row['id']}@{DOMAIN}>"]
        facts = json.loads(row["facts"])
        for_household = row["recipient_kind"] == "beneficiary"
        expected = write_message(row["rule"], row["recipient_kind"], language, facts, notification_id=row["id"],
                                 for_household_in=language if for_household else None)
        assert email["Subject"] == expected.subject
        assert email["To"] == addresses["caseworker" if for_household else row["recipient_kind"]]
        assert email["Content-Language"] == language
        text, html = email.get_body(("plain",)), email.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().replace("\r\n", "\n") == expected.text
        direction = LANGUAGES[language].direction
        assert f'<html lang="{language}" dir="{direction}">' in html.get_content()
        for value in facts.values():
            assert value in text.get_content()

    delivered = {value["notification_id"] for value in await outbox(pool, "centre.notification.delivered.v1")}
    assert delivered == {row["id"] for row in stored}
    assert_no_personal_data(logs, addresses.values(), inbox)


async def test_a_restarted_dispatcher_sends_nothing_twice_and_a_crash_mid_send_repeats_the_same_message_id(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    await journey(pool, "nl")
    assert await email_dispatcher(pool, port).dispatch_due() == 12
    assert await email_dispatcher(pool, port).dispatch_due() == 0, "a new dispatcher (a restart) sends nothing"
    assert len(inbox.messages) == 12

    # A dispatcher that sent an email and died before recording it: the lease lapses, and the same email,
    # with the same Message-ID, goes again; the receiver's mail system can tell it is the same message.
    await handle(pool, PlacementConfirmed(placement_id="placement-2", proposal_id="case-nl-p9", case_id="case-nl",
                                          host_id="host-nl", pool_id="pool-nl"))
    async with pool.acquire() as connection, connection.transaction():
        _, claimed = await store.claim_due(connection, limit=10, lease_s=0.0, per_receiver=4)
    channel = EmailChannel(pool, SmtpServer(host="127.0.0.1", port=port), AddressBook(), sender=SENDER,
                           domain=DOMAIN)
    for row in claimed:
        await channel.deliver(notification_of(row))
    assert await email_dispatcher(pool, port).dispatch_due() == 2
    repeated = [ids for ids, messages in inbox.by_message_id().items() if len(messages) > 1]
    assert sorted(repeated) == sorted(f"<{row['id']}@{DOMAIN}>" for row in claimed)
    assert len(await outbox(pool, "centre.notification.delivered.v1")) == 14, "each announced delivered once"


async def test_without_an_address_a_delivery_fails_and_succeeds_once_a_contact_is_added(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    await handle(pool, registered("case-1", "pool-1", "uk"))
    await handle(pool, ApprovalDecidedV2(proposal_id="p1", case_id="case-1", host_id="host-1", pool_id="pool-1",
                                         decision="approved", decided_by="approver-2", reviewed_by="caseworker-1",
                                         respond_by=datetime.now(UTC) + timedelta(days=7)))
    # The beneficiary's desk is reached through the settings' catch-all; the host has no address yet.
    configured = {"caseworker:*": "all-desks@centre.example"}
    with capture_logs() as logs:
        assert await email_dispatcher(pool, port, configured).dispatch_due() == 2
    by_kind = {row["recipient_kind"]: row for row in await rows(pool)}
    assert by_kind["beneficiary"]["status"] == "delivered"
    assert (by_kind["host"]["status"], by_kind["host"]["last_failure"]) == (
        "requested", "no email address for this host")
    [(recipients, email)] = inbox.messages
    assert recipients == ["all-desks@centre.example"]
    assert email["Content-Language"] == "uk"

    async with pool.acquire() as connection:
        await store.put_contact(connection, "host", "host-1", "host-1@partner.example", None)
        await connection.execute("UPDATE notifications SET next_attempt_at = now()")
    assert await email_dispatcher(pool, port, configured).dispatch_due() == 1
    assert len(inbox.messages) == 2
    assert inbox.messages[1][0] == ["host-1@partner.example"]
    assert_no_personal_data(logs, ["all-desks@centre.example", "host-1@partner.example"], inbox)


async def test_a_refused_mailbox_is_a_dead_letter_at_once_and_an_unreachable_server_is_retried(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int]
) -> None:
    _, port = smtp
    async with pool.acquire() as connection:
        await store.put_contact(connection, "host", "host-1", REFUSED, None)
    await handle(pool, ApprovalDecidedV2(proposal_id="p1", case_id="case-1", host_id="host-1", pool_id="pool-1",
                                         decision="approved", decided_by="approver-2", reviewed_by="caseworker-1",
                                         respond_by=datetime.now(UTC) + timedelta(days=7)))
    assert await email_dispatcher(pool, port).dispatch_due() == 2
    by_kind = {row["recipient_kind"]: row for row in await rows(pool)}
    assert (by_kind["host"]["status"], by_kind["host"]["last_failure"]) == ("dead", "recipient refused (550)")

    async with pool.acquire() as connection:
        await store.put_contact(connection, "caseworker", "desk:case-1", "desk@centre.example", None)
        await connection.execute("UPDATE notifications SET next_attempt_at = now()")
    assert await email_dispatcher(pool, free_port()).dispatch_due() == 1
    by_kind = {row["recipient_kind"]: row for row in await rows(pool)}
    assert by_kind["beneficiary"]["status"] == "requested"
    assert by_kind["beneficiary"]["last_failure"] == "SMTP SMTPConnectError"
    failures = await outbox(pool, "centre.notification.failed.v1")
    assert all("@" not in value["reason"] for value in failures)


async def outbox(pool: asyncpg.Pool, event_type: str) -> list[dict[str, Any]]:
    async with pool.acquire() as connection:
        found = await connection.fetch("SELECT value FROM outbox WHERE headers->>'ce_type' = $1 ORDER BY id",
                                       event_type)
    return [json.loads(bytes(row["value"])) for row in found]


def assert_no_personal_data(logs: Sequence[Mapping[str, Any]], addresses: Iterable[str], inbox: Inbox) -> None:
    """No address, and nothing of any message that was sent, in the log lines."""
    text = repr(logs)
    assert logs, "the dispatcher logged something to look at"
    for address in addresses:
        assert address not in text
    for _, email in inbox.messages:
        assert str(email["Subject"]) not in text
        body = email.get_body(("plain",))
        assert body is not None
        assert body.get_content().splitlines()[0] not in text
