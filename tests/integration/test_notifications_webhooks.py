"""Partner webhooks over a real HTTP receiver on loopback and the real PostgreSQL.

A partner hears only about its own hosts and about cases whose consent names it; a receiver that fails
and then recovers gets each delivery once (the same id and the same body on every attempt); dead letters
are listed and re-sent; a slow or dead partner holds up nobody else; and a tampered delivery fails the
verification that docs/partners.md gives partners.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from schemas import topics
from schemas.envelope import Envelope, Origin
from schemas.events import (
    ApprovalDecided,
    Capacity,
    ConsentObtained,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    Event,
    HostProfile,
    HostRegistered,
    MatchProposed,
)
from services.notifications import app as notifications_app
from services.notifications.channels import LogChannel
from services.notifications.dispatch import Dispatcher, RetryPolicy
from services.notifications.handlers import request_notifications
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.notifications.signing import DELIVERY_ID_HEADER, KEY_ID_HEADER, TIMESTAMP_HEADER
from services.notifications.webhooks import WebhookChannel
from services.runtime.access import TokenAuthority
from services.runtime.consumer import Delivery
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from tests.integration.in_process import until
from tests.integration.notifications_database import SCHEMA, SOURCE, emptied, notifications_database
from tests.partner_docs import PARTNER_DOCS_VERIFY

pytestmark = pytest.mark.integration

AUTHORITY = TokenAuthority.from_settings(ServiceSettings())
ADMIN = {"Authorization": f"Bearer {AUTHORITY.issue('admin-1', 'admin')}"}
SECRETS = {"key-a": b"secret of org-a", "key-b": b"secret of org-b", "key-c": b"secret of org-c"}
SETTINGS = NotificationsSettings(
    service_name=SCHEMA,
    notifications_webhook_keys={key: SecretStr(secret.decode()) for key, secret in SECRETS.items()},
    notifications_webhook_require_https=False,
)

PROPOSALS_AND_DECISIONS = [MatchProposed.type, ApprovalDecided.type]




# --- A partner's receiver --------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None = None


@dataclass
class Receiver:
    """An HTTP server on loopback whose paths behave like partners: fine, failing, slow or gone."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    # Path prefix -> the status answered while failing; removed when the partner recovers.
    failing: dict[str, int] = field(default_factory=dict)
    # A slow partner answers only once released (at the latest after a minute).
    release_slow: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str) -> int:
        if path.startswith("/slow"):
            self.release_slow.wait(timeout=60)
            return 200
        if path.startswith("/gone"):
            return 410
        for prefix, status in self.failing.items():
            if path.startswith(prefix):
                return status
        return 200

    def to(self, path: str) -> list[Request]:
        with self.lock:
            return [request for request in self.requests if request.path == path]

    def accepted(self, path: str) -> list[dict[str, Any]]:
        """The deliveries a partner accepted (answered 2xx) at a path, as their JSON bodies."""
        return [json.loads(request.body) for request in self.to(path) if 200 <= (request.answered or 0) < 300]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = Request(self.path, dict(self.headers.items()), body)
            with state.lock:
                state.requests.append(request)
            status = request.answered = state.answer(self.path)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the centre gave up waiting (a slow partner): nobody is listening any more

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release_slow.set()
        server.shutdown()
        server.server_close()


# --- The service's side ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[asyncpg.Pool]:
    async with notifications_database("webhooks", connections=8) as pool:
        yield pool


@pytest.fixture
async def pool(database: asyncpg.Pool, receiver: Receiver) -> asyncpg.Pool:
    await emptied(database)
    with receiver.lock:
        receiver.requests.clear()
    receiver.failing.clear()
    return database


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    application = FastAPI()
    application.include_router(notifications_app.router)
    application.dependency_overrides[notifications_settings] = lambda: SETTINGS
    application.state.context = ServiceContext(
        settings=ServiceSettings(service_name=SCHEMA), pool=pool, broker=None, relay=None,  # type: ignore[arg-type]
        consumers=(),
    )
    application.state.token_authority = AUTHORITY
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://centre", headers=ADMIN) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def webhook_dispatcher(pool: asyncpg.Pool, http: httpx.AsyncClient, *, timeout_s: float = 2.0,
                       max_attempts: int = 5, receiver_concurrency: int = 2) -> Dispatcher:
    channel = WebhookChannel(pool, http, SECRETS, timeout_s=timeout_s)
    # People's notifications the same events cause go to the log channel, out of these tests' way.
    return Dispatcher(pool, {"webhook": channel, "log": LogChannel()}, source=SOURCE, timeout_s=timeout_s + 1,
                      retry=RetryPolicy(max_attempts=max_attempts, base_s=60.0), concurrency=16,
                      receiver_concurrency=receiver_concurrency)


async def handle(pool: asyncpg.Pool, event: Event) -> str:
    event_id = str(uuid.uuid4())
    async with pool.acquire() as connection, connection.transaction():
        envelope = Envelope(id=event_id, source="/services/test", type=event.type, time=datetime.now(UTC))
        delivery = Delivery(envelope=envelope, origin=Origin(topics.DECISIONS, 0, 0), connection=connection,
                            source=SOURCE)
        if type(event) in notifications_app.CAUSES:
            await request_notifications(event, delivery)
        else:
            await notifications_app.rules.handlers[type(event)](event, delivery)
    return event_id


async def subscribe(api: httpx.AsyncClient, organisation: str, url: str, key_id: str,
                    event_types: list[str] = PROPOSALS_AND_DECISIONS) -> str:
    response = await api.post("/subscriptions", json={"organisation_id": organisation, "event_types": event_types,
                                                      "callback_url": url, "key_id": key_id})
    assert response.status_code == 201, response.text
    return str(response.json()["subscription_id"])


def host(host_id: str, organisation: str) -> HostRegistered:
    return HostRegistered(host_id=host_id, pool_id="pool-north", organisation_id=organisation, external_ref=host_id,
                          profile=HostProfile(host_type="sponsor_group", place="North",
                                              capacity=Capacity(people=6, beds=6)))


def consent(case_id: str, partner: str) -> DataUseConsentRecorded:
    return DataUseConsentRecorded(
        consent_id=f"consent-{case_id}-{partner}", case_id=case_id, purpose="share_with_partner", partner_id=partner,
        obtained=ConsentObtained(information_language="uk", obtained_on=date(2026, 1, 5), recorded_by="caseworker-1"),
    )


def proposal(case_id: str, host_id: str, number: int = 1) -> MatchProposed:
    return MatchProposed(proposal_id=f"proposal-{case_id}-{number}", case_id=case_id, host_id=host_id,
                         pool_id="pool-north", run_id="run-1", score=2.0)


def decision(case_id: str, host_id: str) -> ApprovalDecided:
    return ApprovalDecided(proposal_id=f"proposal-{case_id}-1", case_id=case_id, host_id=host_id,
                           decision="approved", decided_by="approver-2", reviewed_by="caseworker-1")


async def statuses(pool: asyncpg.Pool) -> dict[str, str]:
    """The status of each partner delivery."""
    async with pool.acquire() as connection:
        found = await connection.fetch("SELECT id, status FROM notifications WHERE channel = 'webhook'")
    return {row["id"]: row["status"] for row in found}


async def delivered_to(pool: asyncpg.Pool, subscription_id: str) -> int:
    async with pool.acquire() as connection:
        return int(await connection.fetchval(
            "SELECT count(*) FROM notifications WHERE recipient_ref = $1 AND status = 'delivered'", subscription_id))


async def make_due(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        await connection.execute("UPDATE notifications SET next_attempt_at = now() WHERE status = 'requested'")


async def outbox(pool: asyncpg.Pool, event_type: str) -> list[dict[str, Any]]:
    async with pool.acquire() as connection:
        found = await connection.fetch("SELECT value FROM outbox WHERE headers->>'ce_type' = $1 ORDER BY id",
                                       event_type)
    return [json.loads(bytes(row["value"])) for row in found]


# --- The tests -------------------------------------------------------------------------------------


async def test_a_partner_outside_a_cases_consent_receives_nothing_about_it(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(api, "org-a", receiver.url("/a"), "key-a")
    await subscribe(api, "org-b", receiver.url("/b"), "key-b")
    await handle(pool, host("host-a", "org-a"))
    await handle(pool, host("host-b", "org-b"))
    await handle(pool, consent("case-1", "org-a"))
    await handle(pool, consent("case-2", "org-b"))  # consent for org-b, but proposed to org-a's host
    await handle(pool, proposal("case-1", "host-a"))
    await handle(pool, proposal("case-2", "host-a"))
    await handle(pool, proposal("case-3", "host-a"))  # no consent to share at all
    await handle(pool, proposal("case-1", "host-b", 2))  # org-b's host, but case-1's consent names org-a only

    await webhook_dispatcher(pool, http).dispatch_due()
    to_a = receiver.accepted("/a")
    assert [(body["event"]["type"], body["event"]["data"]["case_id"]) for body in to_a] == [
        (MatchProposed.type, "case-1")
    ]
    assert receiver.to("/b") == []
    everything = b"".join(request.body for request in receiver.requests)
    assert b"case-2" not in everything and b"case-3" not in everything

    # Consent withdrawn: a delivery already requested is withheld, and later events are not requested.
    await handle(pool, decision("case-1", "host-a"))
    await handle(pool, DataUseConsentWithdrawn(consent_id="consent-case-1-org-a", case_id="case-1",
                                               purpose="share_with_partner", partner_id="org-a",
                                               withdrawn_by="caseworker-1"))
    await handle(pool, proposal("case-1", "host-a", 3))
    await webhook_dispatcher(pool, http).dispatch_due()
    assert len(receiver.accepted("/a")) == 1
    assert sorted((await statuses(pool)).values()) == ["delivered", "withheld"]


async def test_a_receiver_that_fails_then_recovers_gets_each_delivery_once(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(api, "org-a", receiver.url("/a"), "key-a")
    await handle(pool, host("host-a", "org-a"))
    for case_id in ("case-1", "case-2", "case-3"):
        await handle(pool, consent(case_id, "org-a"))
        await handle(pool, proposal(case_id, "host-a"))
    # Room for all three deliveries in one batch, so that each batch is one round of attempts.
    dispatcher = webhook_dispatcher(pool, http, receiver_concurrency=3)

    receiver.failing["/a"] = 503
    await dispatcher.dispatch_due()
    await make_due(pool)
    await dispatcher.dispatch_due()
    del receiver.failing["/a"]
    await make_due(pool)
    await dispatcher.dispatch_due()
    await make_due(pool)
    assert await dispatcher.dispatch_due() == 0
    assert set((await statuses(pool)).values()) == {"delivered"}

    accepted = [body["delivery_id"] for body in receiver.accepted("/a")]
    assert len(accepted) == len(set(accepted)) == 3, "each delivery accepted exactly once"
    attempts: dict[str, list[Request]] = {}
    for request in receiver.to("/a"):
        attempts.setdefault(request.headers[DELIVERY_ID_HEADER], []).append(request)
    for delivery_id, tried in attempts.items():
        assert [request.answered for request in tried] == [503, 503, 200]
        assert len({request.body for request in tried}) == 1, "the same body on every attempt"
        assert json.loads(tried[0].body)["delivery_id"] == delivery_id
    assert set(await statuses(pool)) == set(attempts)
    failed = await outbox(pool, "centre.notification.failed.v1")
    assert sorted((value["attempt"], value["reason"]) for value in failed) == [
        (1, "receiver answered 503")] * 3 + [(2, "receiver answered 503")] * 3
    delivered = {value["notification_id"] for value in await outbox(pool, "centre.notification.delivered.v1")}
    assert set(attempts) <= delivered


async def test_a_tampered_signature_is_rejected_by_the_documented_verification(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(api, "org-a", receiver.url("/a"), "key-a", [HostRegistered.type])
    await handle(pool, host("host-a", "org-a"))
    await webhook_dispatcher(pool, http).dispatch_due()
    [request] = receiver.to("/a")
    verify = PARTNER_DOCS_VERIFY
    assert request.headers[KEY_ID_HEADER] == "key-a"
    assert verify(SECRETS["key-a"], request.headers, request.body)

    tampered_body = request.body.replace(b"host-a", b"host-z")
    assert not verify(SECRETS["key-a"], request.headers, tampered_body)
    later = request.headers | {TIMESTAMP_HEADER: str(int(request.headers[TIMESTAMP_HEADER]) + 60)}
    assert not verify(SECRETS["key-a"], later, request.body)
    assert not verify(SECRETS["key-b"], request.headers, request.body)


async def test_dead_letters_are_listed_and_resent_once_the_partner_is_back(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(api, "org-a", receiver.url("/a"), "key-a")
    await handle(pool, host("host-a", "org-a"))
    await handle(pool, consent("case-1", "org-a"))
    await handle(pool, proposal("case-1", "host-a"))
    dispatcher = webhook_dispatcher(pool, http, max_attempts=2)
    receiver.failing["/a"] = 500
    await dispatcher.dispatch_due()
    await make_due(pool)
    await dispatcher.dispatch_due()

    dead = (await api.get("/deliveries", params={"status": "dead"})).json()
    assert [(item["recipient_kind"], item["channel"], item["attempts"], item["last_failure"]) for item in dead] == [
        ("partner", "webhook", 2, "receiver answered 500")
    ]
    await make_due(pool)
    assert await dispatcher.dispatch_due() == 0, "a dead letter waits for an operator"

    del receiver.failing["/a"]
    resent = await api.post(f"/deliveries/{dead[0]['notification_id']}/resend")
    assert resent.status_code == 202
    assert await dispatcher.dispatch_due() == 1
    assert [body["delivery_id"] for body in receiver.accepted("/a")] == [dead[0]["notification_id"]]
    assert (await api.get("/deliveries", params={"status": "dead"})).json() == []
    again = await api.post(f"/deliveries/{dead[0]['notification_id']}/resend")
    assert again.status_code == 409, "a delivered notification is not sent again"


async def test_a_partner_that_answers_gone_is_a_dead_letter_at_once(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(api, "org-a", receiver.url("/gone"), "key-a", [HostRegistered.type])
    await handle(pool, host("host-a", "org-a"))
    await webhook_dispatcher(pool, http).dispatch_due()
    assert list((await statuses(pool)).values()) == ["dead"]


async def has_delivered(pool: asyncpg.Pool, subscription_id: str, count: int) -> bool:
    return await delivered_to(pool, subscription_id) >= count


async def test_a_slow_or_dead_partner_holds_up_nobody_else(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}/dead"
    slow = await subscribe(api, "org-slow", receiver.url("/slow"), "key-a", [HostRegistered.type])
    dead = await subscribe(api, "org-dead", nobody_listens, "key-b", [HostRegistered.type])
    fast = await subscribe(api, "org-fast", receiver.url("/fast"), "key-c", [HostRegistered.type])
    for number in range(6):
        # The slow and dead partners' deliveries are stored first: first in line, they must not block.
        await handle(pool, host(f"host-slow-{number}", "org-slow"))
        await handle(pool, host(f"host-dead-{number}", "org-dead"))
    for number in range(6):
        await handle(pool, host(f"host-fast-{number}", "org-fast"))

    # The slow partner does not answer while this runs, and the attempt timeout is far away: whatever the
    # machine's speed, the fast partner's deliveries can only complete if nothing waits on the slow one.
    receiver.release_slow.clear()
    dispatcher = webhook_dispatcher(pool, http, timeout_s=60.0)
    running = asyncio.create_task(dispatcher.run(poll_interval_s=0.05))
    try:
        await until(lambda: has_delivered(pool, fast, 6), "the fast partner's six deliveries", timeout=20)
        assert len(receiver.accepted("/fast")) == 6
        waiting = receiver.to("/slow")
        assert 1 <= len(waiting) <= 2, "the slow partner was tried, at most two attempts at once to one receiver"
        assert all(request.answered is None for request in waiting), "the slow partner had not answered"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        receiver.release_slow.set()

    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT receiver, status, last_failure FROM notifications WHERE channel = 'webhook'")
    outcomes: dict[str, set[tuple[str, str | None]]] = {}
    for row in rows:
        outcomes.setdefault(row["receiver"].rsplit(":", 1)[1], set()).add((row["status"], row["last_failure"]))
    assert outcomes[fast] == {("delivered", None)}
    assert outcomes[dead] == {("requested", "receiver unreachable (ConnectError)")}, "failed fast, retried later"
    assert outcomes[slow] == {("requested", None)}, "cut off by the stop and given back, not failed"


async def test_subscriptions_are_checked_listed_and_ended(
    pool: asyncpg.Pool, api: httpx.AsyncClient, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    valid = {"organisation_id": "org-a", "event_types": [MatchProposed.type], "callback_url": receiver.url("/a"),
             "key_id": "key-a"}
    unknown_type = await api.post("/subscriptions", json=valid | {"event_types": ["centre.case.registered.v1"]})
    unknown_key = await api.post("/subscriptions", json=valid | {"key_id": "key-nobody-has"})
    not_a_url = await api.post("/subscriptions", json=valid | {"callback_url": "partner.example"})
    no_types = await api.post("/subscriptions", json=valid | {"event_types": []})
    assert [r.status_code for r in (unknown_type, unknown_key, not_a_url, no_types)] == [422, 422, 422, 422]
    assert "centre.case.registered.v1" in unknown_type.json()["detail"]

    strict = FastAPI()
    strict.include_router(notifications_app.router)
    strict.dependency_overrides[notifications_settings] = lambda: SETTINGS.model_copy(
        update={"notifications_webhook_require_https": True})
    strict.state.context = ServiceContext(settings=ServiceSettings(service_name=SCHEMA), pool=pool,
                                          broker=None, relay=None, consumers=())  # type: ignore[arg-type]
    strict.state.token_authority = AUTHORITY
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=strict), base_url="http://centre",
                                 headers=ADMIN) as client:
        plain_http = await client.post("/subscriptions", json=valid)
    assert plain_http.status_code == 422 and "https" in plain_http.json()["detail"]

    subscription_id = await subscribe(api, "org-a", receiver.url("/a"), "key-a", [MatchProposed.type])
    listed = (await api.get("/subscriptions", params={"organisation_id": "org-a"})).json()
    assert [item["subscription_id"] for item in listed] == [subscription_id]
    assert (await api.get("/subscriptions", params={"organisation_id": "org-b"})).json() == []

    # A delivery requested before the subscription ends is withheld; none is requested after.
    await handle(pool, host("host-a", "org-a"))
    await handle(pool, consent("case-1", "org-a"))
    await handle(pool, proposal("case-1", "host-a"))
    assert (await api.delete(f"/subscriptions/{subscription_id}")).status_code == 204
    assert (await api.delete(f"/subscriptions/{subscription_id}")).status_code == 404
    await handle(pool, proposal("case-1", "host-a", 2))
    await webhook_dispatcher(pool, http).dispatch_due()
    assert receiver.to("/a") == []
    assert list((await statuses(pool)).values()) == ["withheld"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
