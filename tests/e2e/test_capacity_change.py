"""A capacity change for a host makes matching re-solve its pool, and the new proposals respect it."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.centre import Centre, eventually

pytestmark = pytest.mark.integration


async def test_a_capacity_cut_withdraws_and_replaces_pending_proposals(centre: Centre) -> None:
    pool = f"capacity-{uuid.uuid4().hex[:8]}"
    big = await centre.register_host(pool, people=6, place="near-relatives", school_places=0)
    cases = [await centre.register_case(pool, adults=2) for _ in range(3)]

    async def all_proposed() -> list[dict] | None:
        mine = [p for p in await centre.proposals("proposed") if p["case_id"] in cases]
        return mine if len(mine) == 3 else None

    await eventually(all_proposed, what="three pending proposals")

    small = await centre.register_host(pool, people=2, school_places=0)
    cut = await centre.put("intake", f"/hosts/{big}/capacity", {"version": 2, "capacity": {"people": 2, "beds": 2}},
                           token=centre.partner)
    assert cut.status_code == 200, cut.text

    async def respects_the_cut() -> list[dict] | None:
        mine = [p for p in await centre.proposals("proposed") if p["case_id"] in cases]
        on_big = [p for p in mine if p["host_id"] == big]
        on_small = [p for p in mine if p["host_id"] == small]
        return mine if len(on_big) == 1 and len(on_small) == 1 else None

    await eventually(respects_the_cut, what="one proposal on each host after the cut")

    connection = await centre.database()
    try:
        withdrawn = await connection.fetchval(
            "SELECT count(*) FROM matching.proposals WHERE host_id = $1 AND status = 'withdrawn'", big)
        runs = await connection.fetchval("SELECT count(*) FROM matching.solver_runs WHERE pool_id = $1", pool)
    finally:
        await connection.close()
    assert withdrawn >= 2, "the proposals that no longer fit were withdrawn"
    assert runs >= 2, "the cut made matching solve the pool again"
    reported = await centre.get("matching", "/pools/runs", token=centre.caseworker, pool_id=pool)
    assert len(reported) == runs
    # Every solution's stability is reported: these hosts state no wishes, so no pair can block.
    assert {(run["mechanism"], run["blocking_pairs"]) for run in reported} == {("welfare", 0)}
    assert all(run["stability"] for run in reported)

    stale = await centre.put("intake", f"/hosts/{big}/capacity", {"version": 2, "capacity": {"people": 50, "beds": 50}},
                             token=centre.partner)
    assert stale.status_code == 409, "a replayed or late capacity version changes nothing"
