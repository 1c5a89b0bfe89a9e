"""Notifications on ``centre.case.erased.v1``, against the real PostgreSQL: the case's deliveries not made
yet are withheld (and announced so), its partner consents forgotten; other cases are untouched.

Handlers are called directly with a Delivery on a real connection, as in ``test_notifications_store.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from schemas import topics
from schemas.envelope import Envelope, Origin
from schemas.events import (
    CaseErased,
    CaseProfile,
    CaseRegistered,
    ConsentObtained,
    DataUseConsentRecorded,
    Event,
    HouseholdMember,
    MatchProposed,
    NotificationFailed,
)
from services.notifications import app as notifications_app
from services.notifications import store
from services.notifications.handlers import request_notifications
from services.runtime.consumer import Delivery
from tests.integration.notifications_database import SOURCE, notifications_database

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with notifications_database("erasure", connections=4) as pool:
        yield pool


async def handle(pool: asyncpg.Pool, event: Event) -> None:
    async with pool.acquire() as connection, connection.transaction():
        envelope = Envelope(id=str(uuid.uuid4()), source="/tests", type=event.type, time=datetime.now(UTC))
        delivery = Delivery(envelope=envelope, origin=Origin(topics.CASES, 0, 0), connection=connection,
                            source=SOURCE)
        if type(event) in notifications_app.CAUSES:
            await request_notifications(event, delivery)
        else:
            await notifications_app.rules.handlers[type(event)](event, delivery)


def erased(case_id: str) -> CaseErased:
    return CaseErased(case_id=case_id, reason="person_request", erased_by="caseworker-1", erased_at=datetime.now(UTC))


async def test_an_erased_cases_waiting_deliveries_are_withheld_and_its_partner_consents_forgotten(
    pool: asyncpg.Pool,
) -> None:
    for case_id in ("case-erased", "case-kept"):
        await handle(pool, CaseRegistered(case_id=case_id, pool_id="pool-north", organisation_id="org-intake",
                                          profile=CaseProfile(members=[HouseholdMember(age_band="30-49",
                                                                                       sex="female")])))
        await handle(pool, DataUseConsentRecorded(
            consent_id=f"consent-{case_id}", case_id=case_id, purpose="share_with_partner", partner_id="org-p",
            obtained=ConsentObtained(information_language="en", obtained_on=date.today(), recorded_by="caseworker-1")))
        await handle(pool, MatchProposed(proposal_id=f"proposal-{case_id}", case_id=case_id, host_id="host-1",
                                         pool_id="pool-north", run_id="run-1", score=1.0))
    async with pool.acquire() as connection:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM notifications WHERE case_id = 'case-erased' AND status = 'requested'")
    assert waiting >= 1, "the proposal asked for notifications about the case"

    await handle(pool, erased("case-erased"))
    await handle(pool, erased("case-erased"))  # a second erasure (a replay) withholds nothing more

    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT id, case_id, status, facts FROM notifications ORDER BY id")
        failed = [json.loads(bytes(row["value"])) for row in await connection.fetch(
            "SELECT value FROM outbox WHERE headers->>'ce_type' = $1", NotificationFailed.type)]
        case = await store.case(connection, "case-erased")
        erased_at = await connection.fetchval("SELECT erased_at FROM cases WHERE case_id = 'case-erased'")
        partners = {row["case_id"] for row in await connection.fetch("SELECT case_id FROM partner_consents")}
        resent = await store.resend(connection, next(row["id"] for row in rows if row["case_id"] == "case-erased"))
    of_erased = [row for row in rows if row["case_id"] == "case-erased"]
    of_kept = [row for row in rows if row["case_id"] == "case-kept"]
    assert {row["status"] for row in of_erased} == {"withheld"}
    assert all(json.loads(row["facts"]) == {} for row in of_erased), "what they would have quoted is dropped"
    assert {row["status"] for row in of_kept} == {"requested"}, "another case's deliveries are untouched"
    assert sorted(event["notification_id"] for event in failed) == sorted(row["id"] for row in of_erased)
    assert all(event["final"] for event in failed)
    assert case is not None and case["withdrawn_at"] is not None and erased_at is not None
    assert partners == {"case-kept"}, "the erased case's data goes to no partner any more"
    assert resent == "withheld", "a withheld delivery is never re-sent"
