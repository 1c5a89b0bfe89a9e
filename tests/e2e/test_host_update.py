"""A partner updates its host's profile: matching re-solves with it, and stale, foreign or unknown updates are
refused and change nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.e2e.centre import TEST_PARTNER, Centre, eventually
from tests.e2e.test_audit_replay import all_in_the_log, replay_cli, runs_of

pytestmark = pytest.mark.integration


def attributes(pool: str, **changes: Any) -> dict[str, Any]:
    """The host's profile as ``Centre.register_host`` registers it, but for its capacity, with ``changes``."""
    return {"host_type": "sponsor_group", "place": f"{pool}-town", **changes}


async def register_case(centre: Centre, pool: str, *, adults: int, medical: list[str] | None = None) -> str:
    members = [{"age_band": "30-49", "sex": "female", "relationship": "applicant"}]
    members += [{"age_band": "30-49", "sex": "male", "relationship": "adult"}] * (adults - 1)
    body = {"organisation_id": "org-test-desk", "external_ref": f"ref-{uuid.uuid4()}", "pool_id": pool,
            "profile": {"members": members, "needs": {"medical": medical or []}}}
    case_id: str = (await centre.post("intake", "/cases", body, token=centre.caseworker))["id"]
    await centre.consent_to_matching(case_id)
    return case_id


@pytest.mark.parametrize("change", ["stops offering the service", "household now too large", "excludes the case"])
async def test_a_host_that_can_no_longer_take_a_case_loses_its_proposal_to_another_host(
        centre: Centre, change: str) -> None:
    pool = f"host-update-{uuid.uuid4().hex[:8]}"
    first = await centre.register_host(pool, people=6, school_places=0, medical_services=["dialysis"])
    case_id = await register_case(centre, pool, adults=3, medical=["dialysis"])
    assert (await centre.proposal_for(case_id))["host_id"] == first
    other = await centre.register_host(pool, people=6, school_places=0, medical_services=["dialysis"])

    profile = {"stops offering the service": attributes(pool),
               "household now too large": attributes(pool, medical_services=["dialysis"], max_household_size=2),
               "excludes the case": attributes(pool, medical_services=["dialysis"], excluded_case_ids=[case_id]),
               }[change]
    updated = await centre.put("intake", f"/hosts/{first}/profile", {"version": 2, "profile": profile},
                               token=centre.partner)
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"host_id": first, "version": 2}

    async def moved() -> dict | None:
        live = [p for p in await centre.proposals("proposed") if p["case_id"] == case_id]
        return live[0] if len(live) == 1 and live[0]["host_id"] == other else None

    await eventually(moved, what=f"the case proposed to the other host after the first {change}")
    withdrawn = [p for p in await centre.proposals("withdrawn") if p["case_id"] == case_id]
    assert [p["host_id"] for p in withdrawn] == [first], "the proposal the host can no longer take was withdrawn"

    connection = await centre.database()
    try:
        held = await connection.fetchrow("SELECT version, profile FROM intake.hosts WHERE host_id = $1", first)
        matching = await connection.fetchrow("SELECT version, capacity FROM matching.hosts WHERE host_id = $1", first)
    finally:
        await connection.close()
    assert held["version"] == 2 and matching["version"] == 2
    kept = {"people": 6, "beds": 6, "school_places": 0, "accessible_units": 1}
    assert {k: json.loads(held["profile"])["capacity"][k] for k in kept} == kept, "the capacity stays as it was"
    assert {k: json.loads(matching["capacity"])[k] for k in kept} == kept


async def test_the_re_solve_after_a_host_update_rebuilds_from_the_audit_stream(centre: Centre) -> None:
    """Matching's audit replay folds ``centre.host.updated.v1`` as the handler applies it: the run that followed
    the update rebuilds to its recorded inputs digest from the audit log alone."""
    pool = f"host-update-{uuid.uuid4().hex[:8]}"
    first = await centre.register_host(pool, people=6, school_places=0, medical_services=["dialysis"])
    case_id = await register_case(centre, pool, adults=2, medical=["dialysis"])
    assert (await centre.proposal_for(case_id))["host_id"] == first
    other = await centre.register_host(pool, people=4, school_places=0, medical_services=["dialysis"])
    updated = await centre.put("intake", f"/hosts/{first}/profile",
                               {"version": 2, "profile": attributes(pool, excluded_case_ids=[case_id])},
                               token=centre.partner)
    assert updated.status_code == 200, updated.text
    await centre.proposal_for(case_id)  # some proposal; the one below must be on the other host

    connection = await centre.database()
    try:
        async def re_solved() -> list | None:
            live = [p for p in await centre.proposals("proposed") if p["case_id"] == case_id]
            dirty = await connection.fetchval("SELECT count(*) FROM matching.dirty_pools WHERE pool_id = $1", pool)
            runs = await runs_of(connection, pool)
            moved = len(live) == 1 and live[0]["host_id"] == other
            return runs if moved and not dirty and await all_in_the_log(connection, runs) else None

        runs = await eventually(re_solved, within=60, what="the re-solve after the update, recorded in the audit log")
    finally:
        await connection.close()
    status, output = await replay_cli(centre.database_url, runs[-1]["run_id"], "--json")
    verdict = json.loads(output[output.index("{"):])
    assert verdict["report"]["rebuilt_digest"] == verdict["report"]["recorded_digest"], output
    assert status == (0 if verdict["verdict"]["identical"] else 1), output


async def test_stale_foreign_unknown_and_capacity_carrying_updates_are_refused(centre: Centre) -> None:
    pool = f"host-update-{uuid.uuid4().hex[:8]}"
    host_id = await centre.register_host(pool, people=3)
    body = {"version": 2, "profile": attributes(pool, languages=["uk"])}
    assert (await centre.put("intake", f"/hosts/{host_id}/profile", body, token=centre.partner)).status_code == 200

    stale = await centre.put("intake", f"/hosts/{host_id}/profile", body, token=centre.partner)
    assert stale.status_code == 409
    assert "does not follow the host's current profile version 2" in stale.json()["detail"]
    assert "version 3" in stale.json()["detail"], "the refusal says which version to send"
    skipped = await centre.put("intake", f"/hosts/{host_id}/profile", {**body, "version": 4}, token=centre.partner)
    assert skipped.status_code == 409

    other_partner = centre.token("partner", "other-desk", organisation_id="org-someone-else")
    foreign = await centre.put("intake", f"/hosts/{host_id}/profile", {**body, "version": 3}, token=other_partner)
    assert foreign.status_code == 403 and "another organisation" in foreign.json()["detail"]
    unknown = await centre.put("intake", "/hosts/host-none/profile", body, token=centre.partner)
    assert unknown.status_code == 404
    with_capacity = await centre.put(
        "intake", f"/hosts/{host_id}/profile",
        {"version": 3, "profile": {**body["profile"], "capacity": {"people": 30, "beds": 30}}}, token=centre.partner)
    assert with_capacity.status_code == 422 and "PUT /hosts/{id}/capacity" in with_capacity.text

    connection = await centre.database()
    try:
        held = await connection.fetchrow("SELECT version, organisation_id, profile FROM intake.hosts"
                                         " WHERE host_id = $1", host_id)
        events = await connection.fetchval(
            "SELECT count(*) FROM intake.outbox WHERE headers->>'ce_type' = 'centre.host.updated.v1' AND key = $1",
            host_id)
    finally:
        await connection.close()
    assert (held["version"], held["organisation_id"]) == (2, TEST_PARTNER)
    profile = json.loads(held["profile"])
    assert profile["languages"] == ["uk"] and profile["capacity"]["people"] == 3, "nothing refused was applied"
    assert events == 1, "one accepted change, one event"

    read = await centre.get("intake", f"/hosts/{host_id}", token=centre.partner)
    assert (read["profile_version"], read["capacity_version"]) == (2, 1), "the partner reads what to send next"
    assert read["profile"]["languages"] == ["uk"] and read["profile"]["capacity"]["people"] == 3
    elsewhere = await centre.http.get(f"{centre.urls['intake']}/hosts/{host_id}",
                                      headers=centre.bearer(other_partner))
    assert elsewhere.status_code == 403
