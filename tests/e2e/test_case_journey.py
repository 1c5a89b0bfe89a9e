"""One household travels the whole way, over the real broker and the real PostgreSQL, services as processes."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.centre import Centre, eventually

pytestmark = pytest.mark.integration

JOURNEY = [
    "centre.case.registered.v1",
    "centre.consent.recorded.v1",
    "centre.match.proposed.v1",
    "centre.approval.reviewed.v2",
    "centre.approval.decided.v2",
    "centre.response.beneficiary.v1",
    "centre.response.host.v1",
    "centre.placement.confirmed.v1",
]


async def test_one_case_is_proposed_approved_accepted_placed_notified_and_audited(centre: Centre) -> None:
    pool = f"journey-{uuid.uuid4().hex[:8]}"
    host_id = await centre.register_host(pool, people=4)
    case_id = await centre.register_case(pool, children=1)

    proposal = await centre.proposal_for(case_id)
    assert proposal["host_id"] == host_id
    proposal_id = proposal["proposal_id"]

    await centre.post("consent", f"/proposals/{proposal_id}/review", {"recommendation": "approve"},
                      token=centre.caseworker)
    not_an_approver = await centre.post("consent", f"/proposals/{proposal_id}/decision", {"decision": "approved"},
                                        token=centre.caseworker, expect=403)
    assert "approver" in not_an_approver["detail"]
    # The reviewer also holds an approver's token: the four-eyes rule still refuses them.
    reviewer_as_approver = centre.token("approver", "caseworker-a")
    refusal = await centre.post("consent", f"/proposals/{proposal_id}/decision", {"decision": "approved"},
                                token=reviewer_as_approver, expect=409)
    assert "four-eyes" in refusal["detail"]
    await centre.post("consent", f"/proposals/{proposal_id}/decision", {"decision": "approved"},
                      token=centre.approver)
    await centre.post("consent", f"/proposals/{proposal_id}/responses", {"party": "beneficiary", "accepted": True},
                      token=centre.caseworker)
    placed = await centre.post("consent", f"/proposals/{proposal_id}/responses", {"party": "host", "accepted": True},
                               token=centre.partner)
    assert placed["state"] == "placed"

    async def delivered() -> list[dict] | None:
        notes = await centre.get("notifications", "/notifications", case_id=case_id)
        done = [note for note in notes if note["status"] == "delivered" and note["rule"] == "placement_confirmed"]
        return notes if len(done) == 2 else None

    notes = await eventually(delivered, what="placement notifications to beneficiary and host")
    placement_notes = [note for note in notes if note["rule"] == "placement_confirmed"]
    assert {note["recipient_kind"] for note in placement_notes} == {"beneficiary", "host"}

    async def journey_recorded() -> list[dict] | None:
        records = await centre.audit_of(case_id)
        return records if records and records[-1]["event_type"] == JOURNEY[-1] else None

    records = await eventually(journey_recorded, what="the whole journey in the audit log")
    assert [record["event_type"] for record in records] == JOURNEY
    sequence = [record["seq"] for record in records]
    assert sequence == sorted(sequence)

    proposed = next(record for record in records if record["event_type"] == "centre.match.proposed.v1")
    assert proposed["payload"]["explanation"]["contributions"], "a proposal carries its explanation"
    registered = records[0]
    trace_of = lambda record: record["traceparent"].split("-")[1]  # noqa: E731
    assert trace_of(proposed) == trace_of(registered), "the proposal continues the registration's trace"

    verdict = await centre.get("audit", "/audit/verify")
    assert verdict["ok"], verdict


async def test_identifying_data_stays_sealed_in_events_and_never_reaches_the_logs(centre: Centre) -> None:
    pool = f"privacy-{uuid.uuid4().hex[:8]}"
    secret_name = f"Testperson {uuid.uuid4().hex[:10]}"
    case_id = await centre.register_case(pool, consent=False,
                                         identity={"full_name": secret_name, "email": "hidden@example.org"})
    records = await eventually(lambda: centre.audit_of(case_id), what="the registration in the audit log")
    text = json.dumps(records)
    assert secret_name not in text and "hidden@example.org" not in text
    assert records[0]["payload"]["identity"]["ciphertext"]
    for log in centre.log_files():
        assert secret_name not in log.read_text(errors="replace"), f"{log.name} holds personal data"
