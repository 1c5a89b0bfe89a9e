"""Test-side access to a running centre: its HTTP doors, its broker, its database, and patient waiting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from deploy.local.stack import LocalStack
from schemas.envelope import Envelope
from services.runtime.access import Role, TokenAuthority
from services.runtime.settings import ServiceSettings

T = TypeVar("T")

TEST_PARTNER = "org-test-partner"


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "condition",
                     interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` when the deadline passes."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within:.0f} s waiting for {what} (last: {last!r})")


class Centre:
    """The running stack as a test sees it."""

    def __init__(self, urls: dict[str, str], bootstrap_servers: str, database_url: str,
                 stack: LocalStack | None = None) -> None:
        self.urls = urls
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.stack = stack
        self.http = httpx.AsyncClient(timeout=30)
        # Signed with the settings the services read from the same environment, so the stack accepts them.
        self.authority = TokenAuthority.from_settings(ServiceSettings())
        self.caseworker = self.token("caseworker", "caseworker-a")
        self.approver = self.token("approver", "approver-b")
        self.auditor = self.token("auditor", "auditor-c")
        self.partner = self.token("partner", "partner-desk", organisation_id=TEST_PARTNER)
        # Every identifying value a test registered: the log scan looks for each of them.
        self.personal_values: set[str] = set()

    def token(self, role: Role, subject: str, organisation_id: str | None = None) -> str:
        """A bearer token for one role, valid for the whole session."""
        return self.authority.issue(subject, role, organisation_id=organisation_id, lifetime=timedelta(hours=6))

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def log_files(self) -> list[Path]:
        assert self.stack is not None
        return sorted(self.stack.log_dir.glob("*.log"))

    async def kill_and_restart(self, service: str, sig: int) -> None:
        """Kill a service the hard way and start it again; returns once it answers its health check."""
        assert self.stack is not None
        self.stack.services.signal(service, sig)
        await self.stack.services.wait_for_exit(service)
        await self.stack.services.start(service)

    async def close(self) -> None:
        await self.http.aclose()

    async def post(self, service: str, path: str, body: dict[str, Any], *, token: str,
                   expect: int | tuple[int, ...] = (200, 201, 202)) -> Any:
        response = await self.http.post(f"{self.urls[service]}{path}", json=body, headers=self.bearer(token))
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{service} {path}: {response.status_code} {response.text}"
        return response.json()

    async def put(self, service: str, path: str, body: dict[str, Any], *, token: str) -> httpx.Response:
        return await self.http.put(f"{self.urls[service]}{path}", json=body, headers=self.bearer(token))

    async def get(self, service: str, path: str, *, token: str | None = None, **params: Any) -> Any:
        """A read; by default as the auditor, who may read everything and change nothing."""
        response = await self.http.get(f"{self.urls[service]}{path}", params=params,
                                       headers=self.bearer(token or self.auditor))
        assert response.status_code == 200, f"{service} {path}: {response.status_code} {response.text}"
        return response.json()

    async def register_host(self, pool_id: str, *, people: int, school_places: int = 4, **profile: Any) -> str:
        body = {"organisation_id": TEST_PARTNER, "pool_id": pool_id, "profile": {
            "host_type": "sponsor_group", "place": f"{pool_id}-town",
            "capacity": {"people": people, "beds": people, "school_places": school_places, "accessible_units": 1},
            **profile}}
        return (await self.post("intake", "/hosts", body, token=self.partner))["id"]  # type: ignore[no-any-return]

    async def register_case(self, pool_id: str, *, adults: int = 1, children: int = 0, consent: bool = True,
                            urgency: str = "normal", external_ref: str | None = None,
                            identity: dict[str, Any] | None = None) -> str:
        members = [{"age_band": "30-49", "sex": "female", "relationship": "applicant"}]
        members += [{"age_band": "30-49", "sex": "male", "relationship": "adult"}] * (adults - 1)
        members += [{"age_band": "5-11", "sex": "male", "relationship": "child"}] * children
        body = {"organisation_id": "org-test-desk", "external_ref": external_ref or f"ref-{uuid.uuid4()}",
                "pool_id": pool_id, "profile": {"members": members, "urgency": urgency}}
        if identity is not None:
            body["identity"] = identity
            self.personal_values.update(str(value) for value in identity.values() if value)
        case_id: str = (await self.post("intake", "/cases", body, token=self.caseworker))["id"]
        if consent:
            await self.consent_to_matching(case_id)
        return case_id

    async def consent_to_matching(self, case_id: str) -> str:
        body = {"purpose": "matching",
                "obtained": {"information_language": "en", "obtained_on": date.today().isoformat()}}

        async def attempt() -> str | None:
            response = await self.http.post(f"{self.urls['consent']}/cases/{case_id}/consents", json=body,
                                            headers=self.bearer(self.caseworker))
            if response.status_code == 404:
                return None  # the registration has not reached the consent service yet
            assert response.status_code == 201, response.text
            return response.json()["consent_id"]  # type: ignore[no-any-return]

        return await eventually(attempt, what=f"consent service to know {case_id}")

    async def proposals(self, state: str) -> list[dict[str, Any]]:
        return await self.get("consent", "/proposals", state=state, limit=1000)  # type: ignore[no-any-return]

    async def proposal_for(self, case_id: str, state: str = "proposed", within: float = 30.0) -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            return next((p for p in await self.proposals(state) if p["case_id"] == case_id), None)

        return await eventually(find, within=within, what=f"a {state} proposal for {case_id}")

    async def read_identity(self, case_id: str, *, token: str, purpose: str = "contact the household",
                            **params: Any) -> httpx.Response:
        return await self.http.get(f"{self.urls['intake']}/cases/{case_id}/identity",
                                   params={"purpose": purpose, **params}, headers=self.bearer(token))

    def logs_holding(self, values: set[str]) -> dict[str, list[str]]:
        """Which service log holds which of ``values`` (none, in a centre that keeps personal data out)."""
        found: dict[str, list[str]] = {}
        for log in self.log_files():
            text = log.read_text(errors="replace")
            hits = sorted(value for value in values if value in text)
            if hits:
                found[log.name] = hits
        return found

    async def audit_of(self, subject: str) -> list[dict[str, Any]]:
        return await self.get("audit", f"/audit/subjects/{subject}")  # type: ignore[no-any-return]

    async def database(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url)

    async def send_raw(self, topic: str, value: bytes, headers: dict[str, str], key: bytes = b"test") -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
        finally:
            await producer.stop()


def envelope_headers(event_type: str, subject: str | None = None) -> dict[str, str]:
    return Envelope(id=str(uuid.uuid4()), source="/tests", type=event_type, time=datetime.now(UTC),
                    subject=subject).to_headers()
