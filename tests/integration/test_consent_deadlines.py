"""Consent owns the workflow's deadlines: reviews and approvals carry them, and the sweep acts on them once.

Intake and consent run in this process over a real broker and PostgreSQL. Time does not pass in a test:
the sweep is called directly with the moment it should believe it is (``now``), which is how it runs in
the service too, with the clock's value.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import DecisionOverdue, ProposalReviewedV2, ResponseExpired
from services.consent.deadlines import sweep_deadlines
from services.consent.model import DeadlinePolicy
from tests.integration.in_process import (
    Centre,
    authorization,
    in_process_centre,  # noqa: F401 - the ``centre`` fixture
)

POLICY = DeadlinePolicy()
SOURCE = "/services/consent"


async def announced(centre: Centre, event_type: str, proposal_id: str) -> list[dict[str, Any]]:
    """What consent recorded for publication about one proposal, of one event type (its outbox)."""
    async with centre.consent_context.pool.acquire() as connection:
        rows = await connection.fetch("SELECT value FROM outbox WHERE headers->>'ce_type' = $1 ORDER BY id",
                                      event_type)
    values = [json.loads(bytes(row["value"])) for row in rows]
    return [value for value in values if value["proposal_id"] == proposal_id]


async def proposal_row(centre: Centre, proposal_id: str) -> dict[str, Any]:
    async with centre.consent_context.pool.acquire() as connection:
        row = await connection.fetchrow("SELECT * FROM proposals WHERE proposal_id = $1", proposal_id)
    assert row is not None
    return dict(row)


async def sweep(centre: Centre, now: datetime) -> None:
    """One sweep at ``now``; it acts on every proposal of this module's centre that is due by then."""
    await sweep_deadlines(centre.consent_context.pool, source=SOURCE, policy=POLICY, now=now)


async def test_a_review_of_an_urgent_case_carries_the_decision_deadline_of_the_policy(centre: Centre) -> None:
    before = datetime.now(UTC)
    proposal_id = await centre.proposal("reviewed", urgency="urgent")
    after = datetime.now(UTC)

    [review] = await announced(centre, ProposalReviewedV2.type, proposal_id)
    decide_by = datetime.fromisoformat(review["decide_by"])
    assert before + timedelta(hours=72) <= decide_by <= after + timedelta(hours=72), "urgent: 72 hours"
    assert review["urgency"] == "urgent"
    row = await proposal_row(centre, proposal_id)
    assert row["decide_by"] == decide_by and row["escalated_at"] is None
    queue = await centre.as_admin(centre.consent, "GET", "/proposals?state=reviewed&limit=1000")
    [listed] = [item for item in queue if item["proposal_id"] == proposal_id]
    assert datetime.fromisoformat(listed["decide_by"]) == decide_by, "the decision queue shows the deadline"


async def test_a_passed_decision_deadline_is_escalated_exactly_once_by_concurrent_and_repeated_sweeps(
    centre: Centre,
) -> None:
    proposal_id = await centre.proposal("reviewed", urgency="emergency")
    decide_by = (await proposal_row(centre, proposal_id))["decide_by"]

    await sweep(centre, decide_by - timedelta(seconds=1))
    assert await announced(centre, DecisionOverdue.type, proposal_id) == [], "not overdue yet"
    late = decide_by + timedelta(minutes=1)
    # Two instances of the service sweeping at the same moment, then again.
    await asyncio.gather(*(sweep(centre, late) for _ in range(4)))
    await sweep(centre, late + timedelta(days=1))

    [overdue] = await announced(centre, DecisionOverdue.type, proposal_id)
    assert datetime.fromisoformat(overdue["decide_by"]) == decide_by
    assert overdue["escalated_to"] == "desk:pool-matrix" and overdue["urgency"] == "emergency"
    assert overdue["reviewed_by"] == "caseworker-mx"
    row = await proposal_row(centre, proposal_id)
    assert row["state"] == "reviewed" and row["escalated_at"] is not None

    # Escalated is not decided: an approver still decides it.
    decided = await centre.consent.post(f"/proposals/{proposal_id}/decision", json={"decision": "approved"},
                                        headers=authorization("approver"))
    assert decided.status_code == 200, decided.text


async def test_a_passed_response_deadline_declines_the_offer_with_its_expiry_event(centre: Centre) -> None:
    proposal_id = await centre.proposal("approved")
    answered = await centre.consent.post(f"/proposals/{proposal_id}/responses", headers=authorization("partner"),
                                         json={"party": "host", "accepted": True})
    assert answered.status_code == 200, answered.text
    respond_by = (await proposal_row(centre, proposal_id))["respond_by"]
    assert respond_by is not None

    await sweep(centre, respond_by - timedelta(seconds=1))
    assert (await proposal_row(centre, proposal_id))["state"] == "approved", "not expired yet"
    await asyncio.gather(sweep(centre, respond_by), sweep(centre, respond_by))

    [expired] = await announced(centre, ResponseExpired.type, proposal_id)
    assert expired["unanswered"] == ["beneficiary"] and expired["reason"] == "no answer by deadline"
    assert datetime.fromisoformat(expired["respond_by"]) == respond_by
    assert (await proposal_row(centre, proposal_id))["state"] == "declined"
    late = await centre.consent.post(f"/proposals/{proposal_id}/responses", headers=authorization("caseworker"),
                                     json={"party": "beneficiary", "accepted": True})
    assert late.status_code == 409, "an expired offer takes no answer"


async def test_an_offer_answered_by_both_in_time_never_expires(centre: Centre) -> None:
    proposal_id = await centre.proposal("approved")
    for caller, party in (("caseworker", "beneficiary"), ("partner", "host")):
        response = await centre.consent.post(f"/proposals/{proposal_id}/responses", headers=authorization(caller),
                                             json={"party": party, "accepted": True})
        assert response.status_code == 200, response.text
    row = await proposal_row(centre, proposal_id)
    await sweep(centre, row["respond_by"] + timedelta(days=30))
    assert (await proposal_row(centre, proposal_id))["state"] == "placed"
    assert await announced(centre, ResponseExpired.type, proposal_id) == []
