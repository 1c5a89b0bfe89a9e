"""Dynamic mode in the service, against the real PostgreSQL: with a planning horizon, each pool plans for as
many arrivals as it had over the last horizon, and the run records that estimate with its parameters.

The pool is test_mechanisms' ``accessible_pool``: nine earlier arrivals needed an accessible unit and
hold approved matches; case e, who needs none, ranks the last free accessible unit's place first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.matching import app as matching_app
from services.matching import store
from services.matching.model import SolverParams
from services.matching.pool import arrival_seq
from services.matching.resolver import resolve_pool
from tests.integration.service_database import service_database

pytestmark = pytest.mark.integration

DYNAMIC = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=0, scenarios=4)
DAY = timedelta(days=1)
ADULT = {"age_band": "30-49", "sex": "female", "relationship": "applicant"}


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[asyncpg.Pool]:
    migrations = Path(matching_app.__file__).parent / "migrations"
    async with service_database("matching_planning_horizon", "matching", migrations, connections=2) as pool:
        yield pool


async def accessible_pool(connection: asyncpg.Connection, pool_id: str, arrived: datetime, *,
                          second_place: bool = True, earlier_urgency: str = "normal") -> None:
    """The pool, every case of it arrived at ``arrived`` (in arrival order, a microsecond apart); without
    ``second_place``, host b is left out, so the unit is e's only place."""
    def host(place: str, people: int, accessible_units: int) -> dict[str, object]:
        return {"host_type": "municipality", "place": place,
                "capacity": {"people": people, "beds": people, "accessible_units": accessible_units}}

    await store.upsert_host(connection, f"{pool_id}-x", pool_id, host("p3", 9, 9))
    await store.upsert_host(connection, f"{pool_id}-a", pool_id, host("p1", 1, 1))
    if second_place:
        await store.upsert_host(connection, f"{pool_id}-b", pool_id, host("p2", 1, 0))
    seq = arrival_seq(arrived)
    for k in range(9):
        case_id = f"{pool_id}-f{k}"
        await store.upsert_case(connection, case_id, pool_id, {"members": [ADULT], "needs": {"accessible": True},
                                                               "urgency": earlier_urgency}, arrived_seq=seq + k)
        await connection.execute(
            "INSERT INTO proposals (proposal_id, case_id, host_id, pool_id, run_id, status, score)"
            " VALUES ($1, $2, $3, $4, 'run-earlier', 'approved', 1.0)",
            f"proposal-{case_id}", case_id, f"{pool_id}-x", pool_id)
    await store.upsert_case(connection, f"{pool_id}-e", pool_id, {"members": [ADULT], "preferred_places": ["p1", "p2"]},
                            arrived_seq=seq + 9)
    await store.record_consent(connection, f"consent-{pool_id}-e", f"{pool_id}-e", None)
    await store.mark_dirty(connection, pool_id)


async def solved(database: asyncpg.Pool, pool_id: str, planning_horizon: timedelta,
                 params: SolverParams = DYNAMIC) -> tuple[int, str]:
    """Solve the pool as the service does: the expected arrivals its run recorded, and where e is proposed."""
    assert await resolve_pool(database, "/services/matching", pool_id, params,
                              planning_horizon=planning_horizon) is not None
    async with database.acquire() as connection:
        parameters = await connection.fetchval("SELECT parameters FROM solver_runs WHERE pool_id = $1", pool_id)
        host = await connection.fetchval("SELECT host_id FROM proposals WHERE case_id = $1 AND status = 'pending'",
                                         f"{pool_id}-e")
    return json.loads(parameters)["expected_arrivals"], host.removeprefix(f"{pool_id}-")


async def test_a_pool_that_had_arrivals_over_the_last_horizon_plans_for_as_many_more(database: asyncpg.Pool) -> None:
    async with database.acquire() as connection:
        await accessible_pool(connection, "pool-busy", datetime.now(UTC) - timedelta(hours=2))
    # ten arrivals in the last day: ten more expected, most needing access, so e leaves the unit to them
    assert await solved(database, "pool-busy", DAY) == (10, "b")


async def test_a_pool_without_arrivals_over_the_last_horizon_is_placed_as_the_welfare_mode_places(
        database: asyncpg.Pool) -> None:
    async with database.acquire() as connection:
        await accessible_pool(connection, "pool-quiet", datetime.now(UTC) - 3 * DAY)
    assert await solved(database, "pool-quiet", DAY) == (0, "a")


async def test_without_a_horizon_every_pool_plans_for_the_configured_arrivals(database: asyncpg.Pool) -> None:
    async with database.acquire() as connection:
        await accessible_pool(connection, "pool-configured", datetime.now(UTC) - 3 * DAY)
    configured = dataclasses.replace(DYNAMIC, expected_arrivals=5)
    assert await solved(database, "pool-configured", timedelta(0), configured) == (5, "b")


async def test_a_case_held_back_for_the_arrivals_to_come_is_in_the_run_record_and_its_event(
        database: asyncpg.Pool) -> None:
    async with database.acquire() as connection:
        # the arrivals to come are like the earlier ones, urgent, so the plan keeps the unit for them
        await accessible_pool(connection, "pool-held", datetime.now(UTC) - timedelta(hours=2), second_place=False,
                              earlier_urgency="urgent")
    result = await resolve_pool(database, "/services/matching", "pool-held", DYNAMIC, planning_horizon=DAY)
    assert result is not None and result.held_back == ("pool-held-e",)
    async with database.acquire() as connection:
        run = await connection.fetchrow("SELECT run_id, held_back, phases, warnings FROM solver_runs"
                                        " WHERE pool_id = 'pool-held'")
        event = await connection.fetchval("SELECT value FROM outbox WHERE headers->>'ce_type' = $1 AND key = $2",
                                          "centre.match.solver-run-recorded.v3", "pool-held")
        proposed = await connection.fetchval("SELECT count(*) FROM proposals WHERE case_id = 'pool-held-e'")
    assert proposed == 0, "e waits in the pool: no proposal"
    assert run["held_back"] == ["pool-held-e"]
    phases = {phase["name"]: phase for phase in json.loads(run["phases"])}
    assert phases["dynamic:held_back"]["objective"] == 1
    recorded = json.loads(event)
    assert recorded["run_id"] == run["run_id"] and recorded["held_back"] == ["pool-held-e"]
    assert [phase["name"] for phase in recorded["phases"]] == list(phases)
    assert recorded["warnings"] == run["warnings"]
