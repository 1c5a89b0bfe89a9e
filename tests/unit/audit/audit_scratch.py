"""A made-up centre's consumer records and a scratch audit database, for the audit's tests and benchmark.

A plain module, not conftest.py, so that the integration tests and benchmarks/audit_benchmark.py can import
it. The database is real PostgreSQL (``TEST_POSTGRES_URL``, default 127.0.0.1:5432): a fresh database with
a random name, migrated like the running service, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.catalog import topic_of
from schemas.envelope import Envelope
from schemas.events import (
    ApprovalDecided,
    BeneficiaryResponded,
    CaseProfile,
    CaseRegistered,
    ConsentObtained,
    DataUseConsentRecorded,
    Event,
    HostResponded,
    HouseholdMember,
    MatchProposed,
    Needs,
    NotificationDelivered,
    NotificationRequested,
    PlacementConfirmed,
    ProposalReviewed,
    Recipient,
    SealedIdentity,
    SolverRunRecordedV3,
)
from services.audit import recorder as audit_recorder
from services.runtime.access import TokenAuthority
from services.runtime.database import create_pool, migrate
from services.runtime.settings import ServiceSettings

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
MIGRATIONS = Path(audit_recorder.__file__).parent / "migrations"
SCHEMA = "audit"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def token_authority() -> TokenAuthority:
    """The authority the services build from the environment's settings (``build_app`` sets the same)."""
    return TokenAuthority.from_settings(ServiceSettings())


def auditor_authorization() -> dict[str, str]:
    """The header of an auditor, the role every door of the audit API admits."""
    return {"Authorization": f"Bearer {token_authority().issue('auditor-t', 'auditor')}"}


def consumer_record(
    event: Event,
    *,
    offset: int,
    partition: int = 0,
    topic: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    source: str = "/services/test",
    headers: dict[str, str] | None = None,
) -> ConsumerRecord:
    """The record a consumer would read for ``event``: CloudEvents headers and the event's JSON."""
    envelope = Envelope(id=event_id or str(uuid.uuid4()), source=source, type=event.type,
                        time=time or datetime.now(UTC), subject=event.key(),
                        traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
    return raw_record(event.model_dump_json().encode(), headers if headers is not None else envelope.to_headers(),
                      topic=topic or topic_of(event), partition=partition, offset=offset, key=event.key(),
                      time=time)


def raw_record(value: bytes | None, headers: dict[str, str], *, topic: str, partition: int, offset: int,
               key: str = "", time: datetime | None = None) -> ConsumerRecord:
    """A record exactly as given, valid or not."""
    timestamp = int((time or datetime.now(UTC)).timestamp() * 1000)
    return ConsumerRecord(topic, partition, offset, timestamp, 0, key.encode(), value, None, len(key),
                          len(value or b""), tuple((name, text.encode()) for name, text in headers.items()))


def sealed_identity(case_id: str) -> SealedIdentity:
    return SealedIdentity(key_id=case_id, nonce="bm9uY2Ugbm9uY2U=", ciphertext="c2VhbGVkIGlkZW50aXR5IGJsb2I=")


def registered(case_id: str, pool_id: str = "pool-north") -> CaseRegistered:
    return CaseRegistered(
        case_id=case_id, pool_id=pool_id, organisation_id="org-desk", external_ref=f"ref-{case_id}",
        profile=CaseProfile(
            members=[HouseholdMember(age_band="30-49", sex="female", relationship="applicant"),
                     HouseholdMember(age_band="30-49", sex="male", relationship="partner"),
                     HouseholdMember(age_band="5-11", sex="female", relationship="child")],
            needs=Needs(medical=["dialysis"], accessible=True), languages=["ar", "en"],
            occupations=["nurse"], urgency="urgent", vulnerabilities=["single-income"]),
        identity=sealed_identity(case_id))


def held_back_run(run_id: str, held_back: list[str], pool_id: str = "pool-north") -> SolverRunRecordedV3:
    """A run in dynamic mode that held ``held_back`` back for the 40 arrivals it expected."""
    return SolverRunRecordedV3(
        run_id=run_id, pool_id=pool_id, inputs_digest="0" * 64, inputs={"cases": 3},
        parameters={"mechanism": "dynamic", "expected_arrivals": 40}, solver_version="ortools 9.15; engine test",
        seed=0, status="OPTIMAL", objective=1.0, bound=1.0, gap=0.0, duration_s=0.1, proposals=0, withdrawals=0,
        mechanism="dynamic", blocking_pairs=0, stability="stable: no case and host would both rather be matched",
        held_back=held_back, phases=[], warnings=[])


EXPLANATION: dict[str, object] = {
    "score": 0.83, "contributions": {"beneficiary_preference": 0.4, "host_preference": 0.18, "prospects": 0.25,
                                     "ties": 0.0},
    "priority": {"urgency": "urgent", "vulnerability": 1}, "binding": ["people", "school_places"],
    "fixed": False, "kept_pending": False, "job": "nurse", "study_place": False,
    "alternatives": [{"host_id": "host-2", "score": 0.61, "reason": "lower_score", "detail": "fewer languages"}],
}


def journey(case_id: str, host_id: str = "host-1", pool_id: str = "pool-north") -> list[Event]:
    """One case's whole way, registration to placement and a delivered notification, in causal order."""
    proposal_id, notification_id = f"proposal-{case_id}", f"note-{case_id}"
    return [
        registered(case_id, pool_id),
        DataUseConsentRecorded(consent_id=f"consent-{case_id}", case_id=case_id, purpose="matching",
                               obtained=ConsentObtained(information_language="ar", interpreter=True,
                                                        obtained_on=date(2026, 3, 1), recorded_by="caseworker-a")),
        MatchProposed(proposal_id=proposal_id, case_id=case_id, host_id=host_id, pool_id=pool_id, run_id="run-1",
                      urgency="urgent", score=0.83, explanation=EXPLANATION),
        ProposalReviewed(proposal_id=proposal_id, case_id=case_id, host_id=host_id, reviewed_by="caseworker-a",
                         recommendation="approve"),
        ApprovalDecided(proposal_id=proposal_id, case_id=case_id, host_id=host_id, decision="approved",
                        decided_by="approver-b", reviewed_by="caseworker-a"),
        BeneficiaryResponded(proposal_id=proposal_id, case_id=case_id, host_id=host_id, accepted=True,
                             recorded_by="caseworker-a"),
        HostResponded(proposal_id=proposal_id, case_id=case_id, host_id=host_id, accepted=True,
                      recorded_by="org-sponsor"),
        PlacementConfirmed(placement_id=f"placement-{case_id}", proposal_id=proposal_id, case_id=case_id,
                           host_id=host_id, pool_id=pool_id),
        NotificationRequested(notification_id=notification_id, rule="placement_confirmed",
                              recipient=Recipient(kind="beneficiary", ref=case_id), channel="log", language="ar",
                              case_id=case_id, cause_event_id=f"cause-{case_id}"),
        NotificationDelivered(notification_id=notification_id, channel="log", delivered_at=START),
    ]


@dataclass
class Offsets:
    """The next offset of each partition, as a broker would hand them out."""

    next: dict[tuple[str, int], int]

    def take(self, topic: str, partition: int) -> int:
        offset = self.next.get((topic, partition), 0)
        self.next[(topic, partition)] = offset + 1
        return offset


def centre_records(cases: int, *, first_case: int = 0, offsets: Offsets | None = None,
                   start: datetime = START) -> Iterator[ConsumerRecord]:
    """The journeys of ``cases`` cases as consumer records: keyed by case, 3 partitions per topic, one
    second apart per case so that event times order causes before effects."""
    offsets = offsets or Offsets({})
    for number in range(first_case, first_case + cases):
        case_id = f"case-{number:07d}"
        for step, event in enumerate(journey(case_id, host_id=f"host-{number % 50}")):
            topic = topic_of(event)
            partition = number % topics.PARTITIONS[topic]
            yield consumer_record(event, topic=topic, partition=partition, offset=offsets.take(topic, partition),
                                  time=start + timedelta(seconds=number, milliseconds=step))


@contextlib.asynccontextmanager
async def scratch_database(prefix: str = "test_audit") -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A fresh database migrated like the audit service, its URL and a pool on it; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await create_database(name)
    url = f"{SERVER_URL}/{name}"
    try:
        pool = await create_pool(url, SCHEMA, size=4)
        try:
            await migrate(pool, SCHEMA, MIGRATIONS)
            yield url, pool
        finally:
            await pool.close()
    finally:
        await drop_database(name)


async def create_database(name: str, template: str | None = None) -> str:
    """Create a database (a copy of ``template`` when given); return its URL."""
    admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
    try:
        # FILE_COPY copies a small template far faster than the default, which WAL-logs every block.
        await admin.execute(f'CREATE DATABASE "{name}"'
                            + (f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""))
    finally:
        await admin.close()
    return f"{SERVER_URL}/{name}"


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
