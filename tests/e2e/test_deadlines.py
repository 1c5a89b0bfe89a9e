"""Deadlines across the whole centre: consent escalates an overdue decision and expires an unanswered offer;
notifications tell the approvers' desk and the people once; matching excludes the pair and looks elsewhere.

Time does not pass in a test. The proposal's own deadline is moved into the past in consent's table (as if
its hours had gone by) and the sweep is run from here, twice at once, against the running centre's
database; the running consent service publishes what it recorded, as it does for its own sweeps.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from schemas.events import DecisionOverdue, ResponseExpired
from services.consent.deadlines import sweep_deadlines
from services.consent.model import DeadlinePolicy
from services.runtime.database import create_pool
from tests.e2e.centre import Centre, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def consent_db(centre: Centre) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(centre.database_url, "consent", size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def sweep_twice_at_once(pool: asyncpg.Pool) -> None:
    """What two instances of consent do when their sweeps meet: both run, neither doubles anything."""
    await asyncio.gather(*(sweep_deadlines(pool, source="/services/consent", policy=DeadlinePolicy())
                           for _ in range(2)))


async def recorded(pool: asyncpg.Pool, event_type: str, proposal_id: str) -> list[dict[str, Any]]:
    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT value FROM outbox WHERE headers->>'ce_type' = $1", event_type)
    return [value for value in (json.loads(bytes(row["value"])) for row in rows)
            if value["proposal_id"] == proposal_id]


async def notes_of(centre: Centre, case_id: str, rule: str) -> list[dict[str, Any]]:
    notes = await centre.get("notifications", "/notifications", case_id=case_id)
    return [note for note in notes if note["rule"] == rule]


async def test_an_overdue_urgent_decision_is_escalated_once_and_the_approvers_desk_told_once(
    centre: Centre, consent_db: asyncpg.Pool
) -> None:
    pool_id = f"overdue-{uuid.uuid4().hex[:8]}"
    await centre.register_host(pool_id, people=4)
    case_id = await centre.register_case(pool_id, urgency="urgent")
    proposal_id = (await centre.proposal_for(case_id))["proposal_id"]
    await centre.post("consent", f"/proposals/{proposal_id}/review", {"recommendation": "approve"},
                      token=centre.caseworker)

    async def review_recorded() -> dict[str, Any] | None:
        return next((record for record in await centre.audit_of(case_id)
                     if record["event_type"] == "centre.approval.reviewed.v2"), None)

    review = await eventually(review_recorded, what="the review in the audit log")
    reviewed_at = datetime.fromisoformat(review["event_time"])
    decide_by = datetime.fromisoformat(review["payload"]["decide_by"])
    assert abs(decide_by - (reviewed_at + timedelta(hours=72))) < timedelta(minutes=1), "urgent: 72 hours"

    async with consent_db.acquire() as connection:  # 72 hours pass
        await connection.execute("UPDATE proposals SET decide_by = now() - interval '1 second'"
                                 " WHERE proposal_id = $1", proposal_id)
    await sweep_twice_at_once(consent_db)
    await sweep_twice_at_once(consent_db)
    [overdue] = await recorded(consent_db, DecisionOverdue.type, proposal_id)
    assert overdue["escalated_to"] == f"desk:{pool_id}"

    async def told() -> list[dict[str, Any]] | None:
        notes = await notes_of(centre, case_id, "decision_overdue")
        return notes if notes and all(note["status"] == "delivered" for note in notes) else None

    [note] = await eventually(told, what="the overdue decision told to the approvers' desk")
    assert (note["recipient_kind"], note["recipient_ref"]) == ("approver", f"desk:{pool_id}")
    # The escalation reaches the audit log once; the audit service consumes it on its own time, so
    # being told (by notifications) says nothing about whether it is recorded yet.
    async def escalations() -> list[dict[str, Any]] | None:
        found = [record for record in await centre.audit_of(case_id)
                 if record["event_type"] == "centre.approval.overdue.v1"]
        return found or None

    assert len(await eventually(escalations, what="the escalation in the audit log")) == 1


async def test_an_unanswered_offer_expires_as_a_decline_and_the_case_is_matched_elsewhere_never_there_again(
    centre: Centre, consent_db: asyncpg.Pool
) -> None:
    pool_id = f"expiry-{uuid.uuid4().hex[:8]}"
    hosts = {await centre.register_host(pool_id, people=4), await centre.register_host(pool_id, people=4)}
    case_id = await centre.register_case(pool_id)
    first = await centre.proposal_for(case_id)
    await centre.post("consent", f"/proposals/{first['proposal_id']}/review", {"recommendation": "approve"},
                      token=centre.caseworker)
    await centre.post("consent", f"/proposals/{first['proposal_id']}/decision", {"decision": "approved"},
                      token=centre.approver)
    await centre.post("consent", f"/proposals/{first['proposal_id']}/responses", {"party": "host", "accepted": True},
                      token=centre.partner)

    async with consent_db.acquire() as connection:  # seven days pass; the household never answers
        await connection.execute("UPDATE proposals SET respond_by = now() - interval '1 second'"
                                 " WHERE proposal_id = $1", first["proposal_id"])
    await sweep_twice_at_once(consent_db)
    [expired] = await recorded(consent_db, ResponseExpired.type, first["proposal_id"])
    assert expired["unanswered"] == ["beneficiary"]
    late = await centre.post("consent", f"/proposals/{first['proposal_id']}/responses",
                             {"party": "beneficiary", "accepted": True}, token=centre.caseworker, expect=409)
    assert "declined" in late["detail"]

    # Matching excludes the pair and proposes the case to the other host, where there is room.
    second = await centre.proposal_for(case_id)
    assert second["host_id"] in hosts - {first["host_id"]}

    async def people_told() -> list[dict[str, Any]] | None:
        notes = await notes_of(centre, case_id, "offer_expired")
        return notes if len(notes) == 2 else None

    told = await eventually(people_told, what="the beneficiary and the host told that the offer expired")
    assert {note["recipient_kind"] for note in told} == {"beneficiary", "host"}

    # With the other host rejected too, nothing is left: the re-solve proposes the first pair never again.
    await centre.post("consent", f"/proposals/{second['proposal_id']}/review", {"recommendation": "reject"},
                      token=centre.caseworker)
    rejected_at = datetime.now(UTC)
    await centre.post("consent", f"/proposals/{second['proposal_id']}/decision",
                      {"decision": "rejected", "reason": "no room after all"}, token=centre.approver)

    async def solved_since_rejection() -> list[dict[str, Any]] | None:
        runs = await centre.get("matching", "/pools/runs", pool_id=pool_id)
        return [run for run in runs if datetime.fromisoformat(run["started_at"]) > rejected_at] or None

    await eventually(solved_since_rejection, what="matching to re-solve the pool after the rejection")
    proposals = [proposal for state in ("proposed", "reviewed", "approved")
                 for proposal in await centre.proposals(state) if proposal["case_id"] == case_id]
    assert proposals == [], "no host is left that the case has not declined or been refused by"
