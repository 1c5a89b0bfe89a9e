"""Incremental re-solving: pools marked dirty by events are solved again, a few at a time.

Marks are coalesced: a pool is solved once its events pause for a moment, or at the latest a short window
after it became dirty, so a single update is solved at once and a burst becomes a few solves. A solve reads
a consistent snapshot, runs the solver in a worker thread (CP-SAT releases the interpreter, so the
service keeps consuming events meanwhile), then applies the result in one transaction against the pool
as it is *now*: a proposal that no longer fits (capacity cut, consent withdrawn, pair declined during the
solve) is not made, and the pool, marked dirty again by that very change, is solved once more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.events import (
    MOST_RUN_WARNINGS,
    MatchProposed,
    ProposalWithdrawn,
    SolverPhase,
    SolverRunRecordedV3,
)
from services.matching import store
from services.matching.model import (
    Case,
    Host,
    Mechanism,
    PoolSnapshot,
    Scope,
    SolverParams,
    Weights,
    compatible,
    inputs_part_digests,
)
from services.matching.pool import arrival_seq, snapshot_from_rows
from services.matching.solver import SolveResult, solve
from services.runtime.outbox import record_event
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from services.runtime.tracing import context_from_headers, tracer

log = structlog.get_logger(__name__)


def recorded_warnings(warnings: Sequence[str]) -> list[str]:
    """A run's warnings as its record carries them: at most MOST_RUN_WARNINGS, the last saying how many more
    (a capacity cut below the approved matches of many hosts gives one warning per host)."""
    if len(warnings) <= MOST_RUN_WARNINGS:
        return list(warnings)
    return [*warnings[:MOST_RUN_WARNINGS - 1], f"and {len(warnings) - MOST_RUN_WARNINGS + 1} more warnings like these"]


class MatchingSettings(ServiceSettings):
    """Matching's own settings, from the environment like every other (``MATCHING_*``)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Coalescing: a dirty pool is solved once no event has marked it for the quiet time, or once it has
    # been dirty for the window, whichever comes first (a steady stream of events still gets a solve per
    # window). The loop looks for due pools every half quiet time.
    matching_coalesce_quiet_s: float = 0.2
    matching_coalesce_window_s: float = 1.0
    # Deterministic budget (replayable), then a wall-clock stop so a surge never waits on one pool.
    matching_time_limit_s: float = 1.0
    matching_wall_time_limit_s: float = 4.0
    matching_relative_gap: float = 0.005
    matching_seed: int = 0
    matching_top_k: int = 30
    matching_weight_beneficiary_preference: float = 1.0
    matching_weight_host_preference: float = 0.5
    matching_weight_prospects: float = 1.0
    matching_weight_ties: float = 0.5
    matching_disruption_cost: float = 0.25
    # "welfare" (default), "stable" (fewest blocking pairs after protection) or "dynamic" (plans for
    # expected arrivals); see services/matching/solver.py
    matching_mechanism: Mechanism = "welfare"
    # dynamic mode: cases still expected in the period, sampled scenarios, recent arrivals sampled from.
    # With a planning horizon (hours), each pool instead expects as many arrivals over the next horizon as
    # it had over the last one (expected_arrivals_at), so a busy pool keeps more back than a quiet one.
    matching_expected_arrivals: int = 0
    matching_planning_horizon_h: float = Field(default=0.0, ge=0.0, le=24 * 366)  # up to a year
    matching_scenarios: int = 16
    matching_arrival_history: int = 200
    # Between whole-pool solves a pool is re-solved around its changes (services/matching/neighbourhood.py):
    # the first solve of a pool after a start, and every n-th after it, search the whole pool. 25: under a
    # steady stream of events that is a whole-pool solve about every 40 s, and fewer than 1 run in 20 pays
    # its seconds, so the 95th percentile of re-solves is that of the fast ones (docs/matching.md).
    matching_full_solve_every: int = 25

    def solver_params(self) -> SolverParams:
        return SolverParams(
            weights=Weights(
                beneficiary_preference=self.matching_weight_beneficiary_preference,
                host_preference=self.matching_weight_host_preference,
                prospects=self.matching_weight_prospects,
                ties=self.matching_weight_ties,
                disruption_cost=self.matching_disruption_cost,
            ),
            time_limit_s=self.matching_time_limit_s,
            wall_time_limit_s=self.matching_wall_time_limit_s,
            relative_gap=self.matching_relative_gap,
            seed=self.matching_seed,
            top_k=self.matching_top_k,
            mechanism=self.matching_mechanism,
            expected_arrivals=self.matching_expected_arrivals,
            scenarios=self.matching_scenarios,
            arrival_history=self.matching_arrival_history,
        )


async def resolve_dirty_pools(context: ServiceContext) -> None:
    """The background task: solve each dirty pool once it is due (its events paused, or its window passed)."""
    settings = MatchingSettings()
    params = settings.solver_params()
    solved: dict[str, int] = defaultdict(int)  # solves per pool since this process started
    while True:
        await asyncio.sleep(settings.matching_coalesce_quiet_s / 2)
        async with context.pool.acquire() as connection:
            dirty = await store.due_pools(connection, settings.matching_coalesce_quiet_s,
                                          settings.matching_coalesce_window_s)
        for row in dirty:
            pool_id = row["pool_id"]
            scope = scope_of_solve(solved[pool_id], settings.matching_full_solve_every)
            scoped = dataclasses.replace(params, scope=scope)
            if await resolve_pool(context.pool, context.source, pool_id, scoped,
                                  planning_horizon=timedelta(hours=settings.matching_planning_horizon_h)) is not None:
                solved[pool_id] += 1


def scope_of_solve(solves_so_far: int, full_solve_every: int) -> Scope:
    """The first solve of a pool after a start, and every ``full_solve_every``-th after it, search the
    whole pool; the others re-solve around the changes (services/matching/neighbourhood.py)."""
    return "pool" if solves_so_far % max(full_solve_every, 1) == 0 else "changes"


def expected_arrivals_at(snapshot: PoolSnapshot, now: datetime, horizon: timedelta) -> int:
    """The cases a pool can expect over the next ``horizon``: as many as arrived in it over the last one
    (cases still in the pool, by the time of the event that brought each to matching)."""
    since = arrival_seq(now - horizon)
    return sum(case.arrived_seq > since for case in snapshot.cases)


async def resolve_pool(database: asyncpg.Pool, source: str, pool_id: str, params: SolverParams, *,
                       planning_horizon: timedelta = timedelta(0)) -> SolveResult | None:
    """Solve one dirty pool and apply the result, its events recorded in the outbox as ``source``. In
    dynamic mode with a ``planning_horizon``, the pool's expected arrivals are estimated from its own pace
    (``expected_arrivals_at``); the run records the estimate with its other parameters, so a replay plans
    for the same number."""
    started_at = datetime.now(UTC)
    async with database.acquire() as connection:
        # One snapshot: the pool, the date its consents are judged against, and how far each input partition
        # had been applied (the watermark). The run records the last two so that an auditor can rebuild it.
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            marked_at = await connection.fetchval("SELECT marked_at FROM dirty_pools WHERE pool_id = $1", pool_id)
            as_of = await connection.fetchval("SELECT current_date")
            rows = await store.pool_inputs(connection, pool_id, as_of)
            watermark = await store.input_positions(connection)
        if marked_at is None:
            return None
        snapshot, pending_ids = snapshot_from_rows(pool_id, rows)
        if params.mechanism == "dynamic" and planning_horizon > timedelta(0):
            params = dataclasses.replace(params, expected_arrivals=expected_arrivals_at(snapshot, started_at,
                                                                                         planning_horizon))
        result = await asyncio.to_thread(solve, snapshot, params)
        replay = {"watermark": watermark, "as_of": as_of.isoformat(),
                  "digests": inputs_part_digests(snapshot, params), "wall_limit_hit": result.wall_limit_hit}
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"apply:{pool_id}")
            made, withdrawn = await apply(connection, source, snapshot, pending_ids, result, params,
                                          started_at, replay=replay)
            await store.clear_dirty(connection, pool_id, marked_at)
    log.info("pool solved", pool_id=pool_id, cases=len(snapshot.cases), hosts=len(snapshot.hosts),
             status=result.status, proposals=made, withdrawals=withdrawn, blocking_pairs=result.blocking_pairs,
             held_back=len(result.held_back),
             duration_s=round(result.duration_s, 3))
    return result


async def apply(
    connection: asyncpg.Connection,
    source: str,
    solved: PoolSnapshot,
    pending_ids: dict[str, str],
    result: SolveResult,
    params: SolverParams,
    started_at: datetime,
    *,
    replay: dict[str, object] | None = None,
) -> tuple[int, int]:
    """Withdraw superseded proposals and make new ones that still fit the pool as it is now.

    ``replay`` (watermark, as-of date, part digests, wall-limit flag) goes into the run's ``inputs`` as
    ``inputs["replay"]``, with the cases whose decision was not applied (``not_applied``)."""
    run_id = f"run-{uuid.uuid4()}"
    rows = await store.pool_inputs(connection, solved.pool_id)
    current, current_pending_ids = snapshot_from_rows(solved.pool_id, rows)
    traceparents = {row["case_id"]: row["traceparent"] for row in rows["cases"]}
    withdrawn = 0
    not_applied: set[str] = set()
    for case_id in result.withdrawn:
        proposal_id = pending_ids.get(case_id)
        if proposal_id is None or current_pending_ids.get(case_id) != proposal_id:
            not_applied.add(case_id)
            continue
        if not await store.set_proposal_status(connection, proposal_id, "withdrawn", only_from=("pending",)):
            not_applied.add(case_id)
        else:
            withdrawn += 1
            reason = ("superseded by a better match" if case_id in result.new_proposals
                      else "no longer fits after a change in the pool")
            await record_event(connection, ProposalWithdrawn(
                proposal_id=proposal_id, case_id=case_id, host_id=solved.pending[case_id], reason=reason,
                run_id=run_id), source=source)
            current = dataclasses.replace(current, pending={k: v for k, v in current.pending.items() if k != case_id})

    cases = {case.case_id: case for case in current.cases}
    hosts = {host.host_id: host for host in current.hosts}
    load = Load(cases, hosts)
    for case_id, host_id in (*current.fixed.items(), *current.pending.items()):
        load.add(case_id, host_id)
    made = 0
    for case_id, host_id in sorted(result.new_proposals.items()):
        case, host = cases.get(case_id), hosts.get(host_id)
        if (case is None or host is None or case_id in current.fixed or case_id in current.pending
                or (case_id, host_id) in current.forbidden or compatible(case, host) is not None
                or not load.fits(case, host)):
            not_applied.add(case_id)
            continue  # the pool changed during the solve; it is dirty again and will be solved again
        load.add(case_id, host_id)
        proposal_id = f"proposal-{uuid.uuid4()}"
        explanation = result.explanations[case_id].to_dict() if case_id in result.explanations else {}
        score = float(explanation.get("score", 0.0))
        await store.insert_proposal(connection, proposal_id=proposal_id, case_id=case_id, host_id=host_id,
                                    pool_id=solved.pool_id, run_id=run_id, score=score)
        with tracer().start_as_current_span("propose", context=context_from_headers(
                {"traceparent": traceparents.get(case_id) or ""})):
            await record_event(connection, MatchProposed(
                proposal_id=proposal_id, case_id=case_id, host_id=host_id, pool_id=solved.pool_id, run_id=run_id,
                urgency=case.urgency, score=score, explanation=explanation), source=source)
        made += 1

    parameters: dict[str, object] = params.to_record()
    inputs: dict[str, object] = {
        "cases": len(solved.cases), "hosts": len(solved.hosts), "fixed": len(solved.fixed),
        "pending": len(solved.pending), "forbidden": len(solved.forbidden),
    }
    if replay is not None:
        # In the open ``inputs`` object: new keys there break no consumer of the v1 event (docs/audit.md).
        inputs["replay"] = {**replay, "not_applied": sorted(not_applied)}
    run = SolverRunRecordedV3(
        run_id=run_id, pool_id=solved.pool_id, inputs_digest=result.inputs_digest, inputs=inputs,
        parameters=parameters, solver_version=result.solver_version, seed=params.seed, status=result.status,
        objective=result.objective, bound=result.bound, gap=result.gap, duration_s=result.duration_s,
        proposals=made, withdrawals=withdrawn, mechanism=result.mechanism, blocking_pairs=result.blocking_pairs,
        blocking_pairs_bound=result.blocking_pairs_bound, stability=result.stability,
        held_back=sorted(result.held_back), phases=[SolverPhase(
            name=phase.name, status=phase.status, objective=phase.objective, bound=phase.bound,
            deterministic_time=phase.deterministic_time, wall_time_s=phase.wall_time_s) for phase in result.phases],
        warnings=recorded_warnings(result.warnings),
    )
    await store.record_run(connection, run, started_at=started_at)
    await record_event(connection, run, source=source)
    return made, withdrawn


class Load:
    """What each host already holds, to check that a proposal still fits when it is applied."""

    def __init__(self, cases: dict[str, Case], hosts: dict[str, Host]) -> None:
        self.cases = cases
        self.hosts = hosts
        self.used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    @staticmethod
    def demand(case: Case) -> dict[str, int]:
        return {"people": case.people, "beds": case.beds, "accessible_units": int(case.needs_accessible),
                "school_places": case.school_places}

    def add(self, case_id: str, host_id: str) -> None:
        case = self.cases.get(case_id)
        if case is not None:
            for dimension, amount in self.demand(case).items():
                self.used[host_id][dimension] += amount

    def fits(self, case: Case, host: Host) -> bool:
        capacity = host.capacity
        return all(
            self.used[host.host_id][dimension] + amount <= getattr(capacity, dimension)
            for dimension, amount in self.demand(case).items()
        )
