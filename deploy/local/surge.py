"""A surge a newcomer can watch: thousands of households and hundreds of hosts arrive over a minute or
two, capacity changes mid-run, an operator reviews and approves, beneficiaries and hosts answer.

Everything goes through the centre's public doors only: the services' HTTP APIs, each actor with a bearer
token of its own role (caseworkers, approvers, the beneficiaries' desk, and each partner organisation for
its own hosts), and the partner submission topic for the hosts that a partner network sends as events
(plus a few malformed messages, so the dead-letter path shows up in the summary). The summary comes from
the audit log, the auditor's own view of what happened.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from deploy.local import synthetic
from schemas import topics
from schemas.envelope import Envelope
from schemas.events import HostProfile, HostSubmitted
from services.runtime.access import Role, TokenAuthority
from services.runtime.settings import ServiceSettings

CASEWORKERS = ("caseworker-1", "caseworker-2")
APPROVERS = ("approver-1", "approver-2")
# Beneficiaries answer at the centre's desk, where a caseworker records what they said.
BENEFICIARY_DESK = "caseworker-desk"
# The scenario reads its progress and the final verdict from the audit log, as an auditor.
AUDITOR = "auditor-1"
DECLINE_REASONS = {"beneficiary": "prefers to stay closer to relatives", "host": "no longer available"}


@dataclass
class SurgeSettings:
    cases: int = 3000
    hosts: int = 300
    pools: int = 4
    arrival_seconds: float = 100.0
    seed: int = 7
    partner_event_share: float = 0.2
    malformed_messages: int = 3
    approve_share: float = 0.95
    beneficiary_accept_share: float = 0.88
    host_accept_share: float = 0.92
    settle_timeout_s: float = 180.0


@dataclass
class Tally:
    registered: int = 0
    hosts: int = 0
    capacity_changes: int = 0
    reviewed: int = 0
    approved: int = 0
    rejected: int = 0
    accepted: int = 0
    declined: int = 0
    proposals_per_case: Counter[str] = field(default_factory=Counter)
    turned_down: set[str] = field(default_factory=set)

    @property
    def rematched(self) -> int:
        return sum(1 for case_id in self.turned_down if self.proposals_per_case[case_id] > 1)


class Surge:
    def __init__(self, urls: dict[str, str], bootstrap_servers: str, settings: SurgeSettings,
                 say: Callable[[str], None] = print) -> None:
        self.urls = urls
        self.bootstrap_servers = bootstrap_servers
        self.settings = settings
        self.say = say
        self.rng = random.Random(settings.seed)
        self.pools = synthetic.pools(settings.pools)
        self.tally = Tally()
        self.host_versions: dict[str, int] = {}
        self.host_capacity: dict[str, dict[str, Any]] = {}
        self.arrivals_done = asyncio.Event()
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=40))
        self.host_organisation: dict[str, str] = {}
        self.partner_organisations: set[str] = set()
        # Signed with the settings the services read from the same environment, so the stack accepts them.
        self.authority = TokenAuthority.from_settings(ServiceSettings())
        self.tokens: dict[tuple[Role, str, str | None], str] = {}

    def as_(self, role: Role, subject: str, organisation_id: str | None = None) -> dict[str, str]:
        """The Authorization header of one actor, issued once and kept for the whole surge."""
        key = (role, subject, organisation_id)
        if key not in self.tokens:
            self.tokens[key] = self.authority.issue(subject, role, organisation_id=organisation_id,
                                                    lifetime=timedelta(hours=4))
        return {"Authorization": f"Bearer {self.tokens[key]}"}

    def partner_of(self, organisation_id: str) -> dict[str, str]:
        return self.as_("partner", f"{organisation_id}-system", organisation_id)

    async def play(self) -> dict[str, Any]:
        started = time.monotonic()
        s = self.settings
        self.say(f"surge: {s.cases} households and {s.hosts} hosts in {s.pools} pools over {s.arrival_seconds:.0f} s")
        try:
            await self.register_hosts()
            # A failing operator or responder ends the surge with its error instead of dying silently.
            async with asyncio.TaskGroup() as team:
                workers = [team.create_task(self.operator()), team.create_task(self.responders()),
                           team.create_task(self.progress(started))]
                await asyncio.gather(self.arrive(), self.change_capacity())
                self.arrivals_done.set()
                await self.settle()
                for worker in workers:
                    worker.cancel()
            return await self.summary(time.monotonic() - started)
        finally:
            await self.http.aclose()

    async def register_hosts(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await producer.start()
        try:
            semaphore = asyncio.Semaphore(20)

            async def one(index: int) -> None:
                pool = self.pools[index % len(self.pools)]
                body = synthetic.host_registration(self.rng, pool, index)
                self.partner_organisations.add(body["organisation_id"])
                if self.rng.random() < self.settings.partner_event_share:
                    await self.submit_as_partner(producer, body)
                    return
                async with semaphore:
                    response = await self.http.post(f"{self.urls['intake']}/hosts", json=body,
                                                    headers=self.partner_of(body["organisation_id"]))
                response.raise_for_status()
                host_id = response.json()["id"]
                self.host_organisation[host_id] = body["organisation_id"]
                self.host_versions[host_id] = 1
                self.host_capacity[host_id] = body["profile"]["capacity"]
                self.tally.hosts += 1

            await asyncio.gather(*(one(index) for index in range(self.settings.hosts)))
            for number in range(self.settings.malformed_messages):
                await self.send_malformed(producer, number)
            await producer.flush()
        finally:
            await producer.stop()
        self.say(f"hosts: {len(self.host_versions)} over HTTP, {self.tally.hosts - len(self.host_versions)} as partner"
                 f" events (+{self.settings.malformed_messages} malformed messages, for the dead-letter topic)")

    async def submit_as_partner(self, producer: AIOKafkaProducer, body: dict[str, Any]) -> None:
        event = HostSubmitted(organisation_id=body["organisation_id"], external_ref=body["external_ref"],
                              pool_id=body["pool_id"], profile=HostProfile.model_validate(body["profile"]))
        envelope = Envelope(id=str(uuid.uuid4()), source="/partners/sponsor-network", type=event.type,
                            time=datetime.now(UTC), subject=event.key())
        await producer.send(topics.PARTNER_SUBMISSIONS, event.model_dump_json().encode(), key=event.key().encode(),
                            headers=[(k, v.encode()) for k, v in envelope.to_headers().items()])
        self.tally.hosts += 1

    async def send_malformed(self, producer: AIOKafkaProducer, number: int) -> None:
        kind = number % 3
        event_type = HostSubmitted.type if kind != 2 else "centre.partner.host-submitted.v9"
        envelope = Envelope(id=str(uuid.uuid4()), source="/partners/sponsor-network", type=event_type,
                            time=datetime.now(UTC))
        value = b"{not json" if kind == 0 else json.dumps({"organisation_id": "org-x"}).encode()
        await producer.send(topics.PARTNER_SUBMISSIONS, value, key=b"malformed",
                            headers=[(k, v.encode()) for k, v in envelope.to_headers().items()])

    async def arrive(self) -> None:
        s = self.settings
        semaphore = asyncio.Semaphore(24)
        interval = s.arrival_seconds / max(1, s.cases)
        start = time.monotonic()

        consents: list[asyncio.Task[None]] = []
        consent_slots = asyncio.Semaphore(16)

        async def consent(case_id: str, language: str) -> None:
            async with consent_slots:
                await self.record_matching_consent(case_id, language)

        async def one(index: int) -> None:
            pool = self.pools[index % len(self.pools)]
            body = synthetic.case_registration(self.rng, pool, index)
            async with semaphore:
                response = await self.http.post(f"{self.urls['intake']}/cases", json=body,
                                                headers=self.as_("caseworker", self.rng.choice(CASEWORKERS)))
            response.raise_for_status()
            self.tally.registered += 1
            # Consent is recorded by the caseworker right after registration, without holding up the next arrival.
            consents.append(asyncio.create_task(consent(response.json()["id"], body["language"])))

        tasks = []
        for index in range(s.cases):
            delay = start + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
        await asyncio.gather(*consents)

    async def record_matching_consent(self, case_id: str, language: str) -> None:
        body = {
            "purpose": "matching",
            "obtained": {"information_language": language, "interpreter": language != "en",
                         "obtained_on": date.today().isoformat()},
        }
        caseworker = self.as_("caseworker", self.rng.choice(CASEWORKERS))
        deadline = time.monotonic() + 30
        while True:
            response = await self.http.post(f"{self.urls['consent']}/cases/{case_id}/consents", json=body,
                                            headers=caseworker)
            if response.status_code != 404 or time.monotonic() > deadline:
                response.raise_for_status()
                return
            await asyncio.sleep(0.1)  # the registration is still on its way to the consent service

    async def change_capacity(self) -> None:
        s = self.settings
        rounds = max(1, int(s.arrival_seconds // 10))
        for _ in range(rounds):
            await asyncio.sleep(s.arrival_seconds / (rounds + 1))
            for host_id in self.rng.sample(sorted(self.host_versions), min(8, len(self.host_versions))):
                capacity = dict(self.host_capacity[host_id])
                change = self.rng.choice([-2, -1, 1, 2, 3])
                capacity["people"] = max(0, capacity["people"] + change)
                capacity["beds"] = max(0, capacity["beds"] + change)
                self.host_versions[host_id] += 1
                response = await self.http.put(f"{self.urls['intake']}/hosts/{host_id}/capacity",
                                               json={"version": self.host_versions[host_id], "capacity": capacity},
                                               headers=self.partner_of(self.host_organisation[host_id]))
                response.raise_for_status()
                self.host_capacity[host_id] = capacity
                self.tally.capacity_changes += 1

    async def queue(self, state: str, reader: dict[str, str] | None = None) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.urls['consent']}/proposals", params={"state": state, "limit": 500},
                                       headers=reader or self.as_("caseworker", BENEFICIARY_DESK))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def step(self, proposal_id: str, action: str, body: dict[str, Any], actor: dict[str, str]) -> bool:
        for attempt in range(3):
            try:
                response = await self.http.post(f"{self.urls['consent']}/proposals/{proposal_id}/{action}", json=body,
                                                headers=actor)
                break
            except httpx.TransportError:
                # A dropped connection under load; the workflow refuses a repeated step, so retrying is safe.
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5)
        if response.status_code == 409:
            return False  # withdrawn by a re-solve meanwhile, or already answered: the workflow said no
        response.raise_for_status()
        return True

    async def operator(self) -> None:
        """Caseworkers review proposals; approvers (never the same person) decide them."""
        while True:
            await self.each(await self.queue("proposed"), self.review)
            await self.each(await self.queue("reviewed"), self.decide)
            await asyncio.sleep(0.5)

    async def responders(self) -> None:
        """Beneficiaries (through the desk) and hosts (through their own organisation) give their final say."""
        while True:
            await self.each(await self.queue("approved"), self.beneficiary_answers)
            for organisation_id in sorted(self.partner_organisations):
                # A partner sees only the approved matches of its own hosts, and answers for those.
                mine = await self.queue("approved", self.partner_of(organisation_id))
                await self.each(mine, functools.partial(self.host_answers, organisation_id=organisation_id))
            await asyncio.sleep(0.5)

    async def each(self, proposals: list[dict[str, Any]], act: Callable[[dict[str, Any]], Any]) -> None:
        """Work through a queue as a team of a dozen operators would: several at a time."""
        desks = asyncio.Semaphore(12)

        async def at_a_desk(proposal: dict[str, Any]) -> None:
            async with desks:
                await act(proposal)

        await asyncio.gather(*(at_a_desk(proposal) for proposal in proposals))

    async def review(self, proposal: dict[str, Any]) -> None:
        self.tally.proposals_per_case[proposal["case_id"]] += 1
        if await self.step(proposal["proposal_id"], "review", {"recommendation": "approve"},
                           self.as_("caseworker", self.rng.choice(CASEWORKERS))):
            self.tally.reviewed += 1

    async def decide(self, proposal: dict[str, Any]) -> None:
        approve = self.rng.random() < self.settings.approve_share
        body = {"decision": "approved" if approve else "rejected"}
        if not approve:
            body["reason"] = "host cannot meet the household's needs"
        if await self.step(proposal["proposal_id"], "decision", body, self.as_("approver", self.rng.choice(APPROVERS))):
            if approve:
                self.tally.approved += 1
            else:
                self.tally.rejected += 1
                self.tally.turned_down.add(proposal["case_id"])

    async def beneficiary_answers(self, proposal: dict[str, Any]) -> None:
        if proposal["beneficiary_accepted"] is None:
            await self.answer(proposal, "beneficiary", self.settings.beneficiary_accept_share,
                              self.as_("caseworker", BENEFICIARY_DESK))

    async def host_answers(self, proposal: dict[str, Any], organisation_id: str) -> None:
        if proposal["host_accepted"] is None:
            await self.answer(proposal, "host", self.settings.host_accept_share, self.partner_of(organisation_id))

    async def answer(self, proposal: dict[str, Any], party: str, accept_share: float, actor: dict[str, str]) -> None:
        accepted = self.rng.random() < accept_share
        body = {"party": party, "accepted": accepted}
        if not accepted:
            body["reason"] = DECLINE_REASONS[party]
        if not await self.step(proposal["proposal_id"], "responses", body, actor):
            return
        if accepted:
            self.tally.accepted += 1
        else:
            self.tally.declined += 1
            self.tally.turned_down.add(proposal["case_id"])

    async def audit_counts(self) -> Counter[str]:
        response = await self.http.get(f"{self.urls['audit']}/audit/counts", headers=self.as_("auditor", AUDITOR))
        response.raise_for_status()
        return Counter(response.json())

    async def progress(self, started: float) -> None:
        while True:
            await asyncio.sleep(5)
            counts = await self.audit_counts()
            self.say(
                f"[{time.monotonic() - started:5.0f} s] registered {self.tally.registered:5d}"
                f" | proposed {counts['centre.match.proposed.v1']:5d}"
                f" | approved {self.tally.approved:5d} | placed {counts['centre.placement.confirmed.v1']:5d}"
                f" | declined {self.tally.declined:4d} | capacity changes {self.tally.capacity_changes:3d}"
                f" | audit records {sum(counts.values()):6d}"
            )

    async def settle(self) -> None:
        """Wait until no proposal waits for anyone and the audit log has stopped growing."""
        deadline = time.monotonic() + self.settings.settle_timeout_s
        quiet_rounds, last_total = 0, -1
        while time.monotonic() < deadline and quiet_rounds < 6:
            await asyncio.sleep(1)
            waiting = sum([len(await self.queue(state)) for state in ("proposed", "reviewed", "approved")])
            total = sum((await self.audit_counts()).values())
            quiet_rounds = quiet_rounds + 1 if waiting == 0 and total == last_total else 0
            last_total = total
        if quiet_rounds < 6:
            self.say("warning: the centre had not settled when the scenario's time ran out")

    async def summary(self, elapsed: float) -> dict[str, Any]:
        counts = await self.audit_counts()
        verdict = (await self.http.get(f"{self.urls['audit']}/audit/verify",
                                       headers=self.as_("auditor", AUDITOR))).json()
        return {
            "cases registered": counts["centre.case.registered.v1"],
            "hosts registered": counts["centre.host.registered.v1"],
            "capacity changes": counts["centre.host.capacity-updated.v1"],
            "proposals made": counts["centre.match.proposed.v1"],
            "proposals withdrawn by re-solves": counts["centre.match.proposal-withdrawn.v1"],
            "proposals reviewed by a caseworker": self.tally.reviewed,
            "approved": self.tally.approved,
            "rejected by approvers": self.tally.rejected,
            "accepted (responses)": self.tally.accepted,
            "declined (responses)": self.tally.declined,
            "placed": counts["centre.placement.confirmed.v1"],
            "re-matched after a decline or rejection": self.tally.rematched,
            "notifications delivered": counts["centre.notification.delivered.v1"],
            "dead letters": counts["centre.deadletter.recorded.v1"],
            "solver runs": counts["centre.match.solver-run-recorded.v3"],
            "audit records": sum(counts.values()),
            "audit chain verified": bool(verdict["ok"]),
            "time taken (s)": round(elapsed, 1),
        }
