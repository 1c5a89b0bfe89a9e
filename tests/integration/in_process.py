"""Intake and consent running in the test's own process, over a real broker and a fresh PostgreSQL database.

Both services run as their real ASGI applications (``build_app`` with their own lifespans: database pool
and migrations, FastStream broker with the consumers, outbox relay, background tasks), reached with
httpx's ASGITransport. Starting a Tansu broker costs about a second, and in exchange the fixtures travel
the way production data does: a host registered at intake reaches consent as ``HostRegistered`` over the
broker, which is what tells consent which organisation owns it, and proposals arrive as ``MatchProposed``
events the way matching sends them. Matching and notifications run their HTTP routes only (no consumers,
no solver, no dispatcher), for the access matrix; audit is not started. These tests are about the HTTP
APIs.

A test module uses it with ``from tests.integration.in_process import in_process_centre``: the fixture is
called ``centre`` there, standing in for the whole-stack ``centre`` of ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pydantic import SecretStr

from deploy.local.broker import kafka
from deploy.local.database import fresh_database
from deploy.local.stack import throwaway_database_name
from schemas import topics
from schemas.envelope import Envelope
from schemas.events import MatchProposed, Urgency
from services.consent.app import definition as consent_definition
from services.intake.app import definition as intake_definition
from services.matching.app import definition as matching_definition
from services.notifications.app import definition as notifications_definition
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.runtime.access import Role, TokenAuthority
from services.runtime.service import ServiceContext, build_app
from services.runtime.settings import ServiceSettings

OWN_ORGANISATION = "org-matrix-own"
OTHER_ORGANISATION = "org-matrix-other"
POOL = "pool-matrix"

AUTHORITY = TokenAuthority.from_settings(ServiceSettings())
ROLE_TOKENS: dict[str, tuple[Role, str, str | None]] = {
    "caseworker": ("caseworker", "caseworker-mx", None),
    "approver": ("approver", "approver-mx", None),
    "auditor": ("auditor", "auditor-mx", None),
    "partner": ("partner", "partner-mx", OWN_ORGANISATION),
    "other partner": ("partner", "partner-other-mx", OTHER_ORGANISATION),
    "admin": ("admin", "admin-mx", None),
}
CALLERS = ("no token", "expired", "tampered", *ROLE_TOKENS)
# Notifications as the matrix runs it: one signing key partners may name, callbacks on plain HTTP.
MATRIX_KEY = "key-matrix"
MATRIX_NOTIFICATIONS = NotificationsSettings(
    service_name="notifications", notifications_webhook_keys={MATRIX_KEY: SecretStr("matrix-secret")},
    notifications_webhook_require_https=False,
)


def authorization(caller: str) -> dict[str, str]:
    """The Authorization header a caller sends; the broken ones are built from an admin's token."""
    if caller == "no token":
        return {}
    if caller == "expired":
        token = AUTHORITY.issue("admin-mx", "admin", lifetime=timedelta(minutes=5),
                                now=datetime.now(UTC) - timedelta(hours=1))
    elif caller == "tampered":
        # A partner turns its own token into an admin's by editing the payload; the signature no longer fits.
        genuine = AUTHORITY.issue("partner-mx", "partner", organisation_id=OWN_ORGANISATION)
        header, payload, signature = genuine.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims.update(role="admin")
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{header}.{forged}.{signature}"
    else:
        role, subject, organisation_id = ROLE_TOKENS[caller]
        token = AUTHORITY.issue(subject, role, organisation_id=organisation_id)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Centre:
    """Intake and consent in this process, and what the matrix prepares its targets with."""

    intake: httpx.AsyncClient
    consent: httpx.AsyncClient
    producer: AIOKafkaProducer
    versions: itertools.count[int]
    consent_app: FastAPI
    notifications: httpx.AsyncClient
    matching: httpx.AsyncClient
    notifications_app: FastAPI

    @property
    def consent_context(self) -> ServiceContext:
        """Consent's running parts: its pool, for checks and for running a background task once."""
        return self.consent_app.state.context  # type: ignore[no-any-return]

    @property
    def notifications_context(self) -> ServiceContext:
        """Notifications' running parts: its pool, to put deliveries, hosts and subscriptions in place."""
        return self.notifications_app.state.context  # type: ignore[no-any-return]

    async def as_admin(self, client: httpx.AsyncClient, method: str, path: str, body: Any = None,
                       role: str = "admin") -> Any:
        response = await client.request(method, path, json=body, headers=authorization(role))
        assert response.status_code < 300, f"setup {method} {path}: {response.status_code} {response.text}"
        return response.json()

    async def case(self) -> str:
        """A registered case that consent already knows about."""
        body = {"organisation_id": "org-matrix-desk", "pool_id": POOL,
                "profile": {"members": [{"age_band": "30-49", "sex": "female", "relationship": "applicant"}]}}
        case_id: str = (await self.as_admin(self.intake, "POST", "/cases", body))["id"]
        await until(lambda: self.consent_knows(case_id), f"consent to know {case_id}")
        return case_id

    async def consent_knows(self, case_id: str) -> bool:
        response = await self.consent.post(f"/cases/{case_id}/consents", json=matching_consent(),
                                           headers=authorization("admin"))
        return response.status_code == 201

    async def host(self, organisation_id: str = OWN_ORGANISATION) -> str:
        registered = await self.as_admin(self.intake, "POST", "/hosts", host_registration(organisation_id))
        return str(registered["id"])

    async def consent_record(self) -> str:
        case_id = await self.case()
        recorded = await self.as_admin(self.consent, "POST", f"/cases/{case_id}/consents", matching_consent())
        return str(recorded["consent_id"])

    async def proposal(self, state: str, organisation_id: str = OWN_ORGANISATION, case_id: str | None = None,
                       urgency: Urgency = "normal") -> str:
        """A proposal for a new host of the organisation, sent as matching sends it, then taken to ``state`` by
        the right people. It returns once consent knows the proposal and which organisation owns its host."""
        host_id = await self.host(organisation_id)
        owner = "partner" if organisation_id == OWN_ORGANISATION else "other partner"
        case_id = case_id or await self.case()
        event = MatchProposed(proposal_id=f"proposal-{uuid.uuid4()}", case_id=case_id, host_id=host_id,
                              pool_id=POOL, run_id="run-matrix", score=1.0, urgency=urgency)
        envelope = Envelope(id=str(uuid.uuid4()), source="/services/matching", type=event.type,
                            time=datetime.now(UTC), subject=event.key())
        await self.producer.send_and_wait(topics.PROPOSALS, event.model_dump_json().encode(), key=event.key().encode(),
                                          headers=[(k, v.encode()) for k, v in envelope.to_headers().items()])

        async def arrived() -> bool:
            # The owner's own queue shows the proposal only once consent has both it and the host's owner.
            queue = await self.as_admin(self.consent, "GET", "/proposals?state=proposed&limit=1000", role=owner)
            return any(row["proposal_id"] == event.proposal_id for row in queue)

        await until(arrived, f"consent to receive {event.proposal_id}")
        path = f"/proposals/{event.proposal_id}"
        if state in ("reviewed", "approved"):
            await self.as_admin(self.consent, "POST", f"{path}/review", {"recommendation": "approve"}, "caseworker")
        if state == "approved":
            await self.as_admin(self.consent, "POST", f"{path}/decision", {"decision": "approved"}, "approver")
        return event.proposal_id


def matching_consent() -> dict[str, Any]:
    return {"purpose": "matching", "obtained": {"information_language": "en", "obtained_on": date.today().isoformat()}}


def host_registration(organisation_id: str) -> dict[str, Any]:
    return {"organisation_id": organisation_id, "pool_id": POOL, "profile": {
        "host_type": "sponsor_group", "place": "matrix-town",
        "capacity": {"people": 4, "beds": 4, "school_places": 1, "accessible_units": 0}}}


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module", name="centre")
async def in_process_centre(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Centre]:
    state: Path = tmp_path_factory.mktemp("access-matrix")
    quiet = lambda _line: None  # noqa: E731
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(kafka(state, report=quiet))
        database_url = await stack.enter_async_context(
            fresh_database(throwaway_database_name(), state / "pgdata", drop_on_exit=True, report=quiet))
        clients, apps = [], []
        routes_only = [replace(definition, consumers=(), background=())
                       for definition in (notifications_definition, matching_definition)]
        for definition in (intake_definition, consent_definition, *routes_only):
            settings = ServiceSettings(service_name=definition.name, kafka_bootstrap_servers=broker.bootstrap_servers,
                                       database_url=database_url, kafka_session_timeout_ms=3000,
                                       kafka_heartbeat_interval_ms=500, outbox_poll_interval_s=0.05,
                                       log_level="WARNING")
            app = build_app(definition, settings)
            app.dependency_overrides[notifications_settings] = lambda: MATRIX_NOTIFICATIONS
            apps.append(app)
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{definition.name}")))
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        stack.push_async_callback(producer.stop)
        yield Centre(clients[0], clients[1], producer, itertools.count(2), apps[1], clients[2], clients[3], apps[2])


