"""A caseworker corrects a case's profile: matching re-solves with it, and stale or unknown updates are refused."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.centre import Centre, eventually

pytestmark = pytest.mark.integration

FOUR_ADULTS = {"members": [{"age_band": "30-49", "sex": "female", "relationship": "applicant"},
                           *[{"age_band": "30-49", "sex": "male", "relationship": "adult"}] * 3]}


async def test_a_household_that_grows_is_moved_to_a_host_with_room_for_it(centre: Centre) -> None:
    pool = f"update-{uuid.uuid4().hex[:8]}"
    small = await centre.register_host(pool, people=2, school_places=0)
    case_id = await centre.register_case(pool, adults=1)
    first = await centre.proposal_for(case_id)
    assert first["host_id"] == small
    large = await centre.register_host(pool, people=6, school_places=0)

    updated = await centre.put("intake", f"/cases/{case_id}/profile", {"version": 2, "profile": FOUR_ADULTS},
                               token=centre.caseworker)
    assert updated.status_code == 200, updated.text
    case = await centre.get("intake", f"/cases/{case_id}", token=centre.caseworker)
    assert (case["version"], len(case["profile"]["members"])) == (2, 4)

    async def moved() -> dict | None:
        live = [p for p in await centre.proposals("proposed") if p["case_id"] == case_id]
        return live[0] if len(live) == 1 and live[0]["host_id"] == large else None

    await eventually(moved, what="the grown household proposed to the host with room for it")
    withdrawn = [p for p in await centre.proposals("withdrawn") if p["case_id"] == case_id]
    assert [p["host_id"] for p in withdrawn] == [small], "the proposal that no longer fits was withdrawn"


async def test_a_stale_or_unknown_profile_update_is_refused_and_changes_nothing(centre: Centre) -> None:
    pool = f"update-{uuid.uuid4().hex[:8]}"
    case_id = await centre.register_case(pool, adults=1, consent=False)
    body = {"version": 2, "profile": FOUR_ADULTS}
    assert (await centre.put("intake", f"/cases/{case_id}/profile", body, token=centre.caseworker)).status_code == 200

    stale = await centre.put("intake", f"/cases/{case_id}/profile", body, token=centre.caseworker)
    assert stale.status_code == 409
    assert "does not follow the case's current version 2" in stale.json()["detail"]
    unknown = await centre.put("intake", "/cases/case-none/profile", body, token=centre.caseworker)
    assert unknown.status_code == 404

    await centre.post("intake", f"/cases/{case_id}/withdrawal", {"reason": "moved on"}, token=centre.caseworker)
    closed = await centre.put("intake", f"/cases/{case_id}/profile", {"version": 3, "profile": FOUR_ADULTS},
                              token=centre.caseworker)
    assert closed.status_code == 409
    case = await centre.get("intake", f"/cases/{case_id}", token=centre.caseworker)
    assert (case["version"], case["status"]) == (2, "withdrawn")
