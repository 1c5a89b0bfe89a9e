"""Matching's SQL: the state of each pool, its proposals, and its solver runs."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import asyncpg

from schemas.events import SolverRunRecordedV3

LIVE = ("pending", "approved", "placed")


async def mark_dirty(connection: asyncpg.Connection, pool_id: str) -> None:
    await connection.execute(
        "INSERT INTO dirty_pools (pool_id) VALUES ($1)"
        " ON CONFLICT (pool_id) DO UPDATE SET marked_at = clock_timestamp()",
        pool_id,
    )


async def mark_case_pool_dirty(connection: asyncpg.Connection, case_id: str) -> None:
    pool_id = await connection.fetchval("SELECT pool_id FROM cases WHERE case_id = $1", case_id)
    if pool_id is not None:
        await mark_dirty(connection, pool_id)


async def due_pools(connection: asyncpg.Connection, quiet_s: float, window_s: float) -> list[asyncpg.Record]:
    """Dirty pools due for a solve: no mark for ``quiet_s`` seconds (the events have paused), or dirty for
    ``window_s`` seconds (a steady stream still gets a solve per window); longest waiting first."""
    return await connection.fetch(
        "SELECT pool_id, marked_at FROM dirty_pools"
        " WHERE marked_at <= clock_timestamp() - make_interval(secs => $1)"
        " OR dirty_since <= clock_timestamp() - make_interval(secs => $2)"
        " ORDER BY dirty_since",
        quiet_s, window_s,
    )


async def clear_dirty(connection: asyncpg.Connection, pool_id: str, marked_at: datetime) -> None:
    """Clear the mark a solve has answered; a mark renewed during the solve stays, and its window starts
    now, so a steady stream of events gets one solve per window, not one after another."""
    cleared = await connection.execute("DELETE FROM dirty_pools WHERE pool_id = $1 AND marked_at = $2",
                                       pool_id, marked_at)
    if cleared == "DELETE 0":
        await connection.execute("UPDATE dirty_pools SET dirty_since = clock_timestamp() WHERE pool_id = $1",
                                 pool_id)


async def upsert_case(connection: asyncpg.Connection, case_id: str, pool_id: str, profile: dict[str, Any],
                      version: int = 1, traceparent: str | None = None, *, arrived_seq: int) -> None:
    """Insert or update a case; ``arrived_seq`` counts only when the case is new (``pool.arrival_seq``)."""
    await connection.execute(
        "INSERT INTO cases (case_id, pool_id, profile, version, traceparent, arrived_seq)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (case_id) DO UPDATE SET pool_id = EXCLUDED.pool_id, profile = EXCLUDED.profile,"
        " version = EXCLUDED.version WHERE cases.version < EXCLUDED.version",
        case_id, pool_id, json.dumps(profile), version, traceparent, arrived_seq,
    )


async def record_input_position(connection: asyncpg.Connection, topic: str, partition: int, offset: int) -> None:
    """Matching has applied this input record: raise its partition's watermark (same transaction as the effect)."""
    await connection.execute(
        'INSERT INTO input_positions (topic, partition, "offset") VALUES ($1, $2, $3)'
        ' ON CONFLICT (topic, partition)'
        ' DO UPDATE SET "offset" = GREATEST(input_positions."offset", EXCLUDED."offset")',
        topic, partition, offset,
    )


async def input_positions(connection: asyncpg.Connection) -> list[dict[str, Any]]:
    """The watermark: the last applied input record per topic partition, in a stable order."""
    rows = await connection.fetch('SELECT topic, partition, "offset" FROM input_positions ORDER BY topic, partition')
    return [{"topic": row["topic"], "partition": row["partition"], "offset": row["offset"]} for row in rows]


async def withdraw_case(connection: asyncpg.Connection, case_id: str) -> None:
    await connection.execute("UPDATE cases SET withdrawn = true WHERE case_id = $1", case_id)


async def record_consent(connection: asyncpg.Connection, consent_id: str, case_id: str, expires_on: Any) -> None:
    await connection.execute(
        "INSERT INTO matching_consents (consent_id, case_id, expires_on) VALUES ($1, $2, $3)"
        " ON CONFLICT (consent_id) DO NOTHING",
        consent_id, case_id, expires_on,
    )


async def withdraw_consent(connection: asyncpg.Connection, consent_id: str) -> None:
    await connection.execute("UPDATE matching_consents SET withdrawn = true WHERE consent_id = $1", consent_id)


async def has_consent_in_force(connection: asyncpg.Connection, case_id: str) -> bool:
    return bool(await connection.fetchval(
        "SELECT true FROM matching_consents WHERE case_id = $1 AND NOT withdrawn"
        " AND (expires_on IS NULL OR expires_on >= current_date) LIMIT 1",
        case_id,
    ))


async def upsert_host(connection: asyncpg.Connection, host_id: str, pool_id: str, profile: dict[str, Any]) -> None:
    await connection.execute(
        "INSERT INTO hosts (host_id, pool_id, profile, capacity) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (host_id) DO NOTHING",
        host_id, pool_id, json.dumps(profile), json.dumps(profile["capacity"]),
    )


async def set_capacity(connection: asyncpg.Connection, host_id: str, version: int, capacity: dict[str, Any]) -> bool:
    """Apply an absolute capacity if it is newer than what is held; a replayed or late one changes nothing."""
    status = await connection.execute(
        "UPDATE hosts SET capacity = $3, capacity_version = $2 WHERE host_id = $1 AND capacity_version < $2",
        host_id, version, json.dumps(capacity),
    )
    return status == "UPDATE 1"


async def set_host_profile(connection: asyncpg.Connection, host_id: str, version: int,
                           attributes: dict[str, Any]) -> bool:
    """Replace a host's profile but for its capacity (the ``capacity`` column, which its own versioned updates
    govern), if the version is newer than what is held; a replayed or late one changes nothing."""
    status = await connection.execute(
        "UPDATE hosts SET profile = $3::jsonb || jsonb_build_object('capacity', profile->'capacity'), version = $2"
        " WHERE host_id = $1 AND version < $2",
        host_id, version, json.dumps(attributes),
    )
    return status == "UPDATE 1"


async def proposal(connection: asyncpg.Connection, proposal_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT proposal_id, case_id, host_id, pool_id, status FROM proposals WHERE proposal_id = $1 FOR UPDATE",
        proposal_id,
    )


async def set_proposal_status(connection: asyncpg.Connection, proposal_id: str, status: str,
                              only_from: tuple[str, ...] | None = None) -> bool:
    if only_from is None:
        result = await connection.execute(
            "UPDATE proposals SET status = $2, updated_at = now() WHERE proposal_id = $1", proposal_id, status
        )
    else:
        result = await connection.execute(
            "UPDATE proposals SET status = $2, updated_at = now() WHERE proposal_id = $1 AND status = ANY($3::text[])",
            proposal_id, status, list(only_from),
        )
    return result == "UPDATE 1"


async def pending_proposals_of_case(connection: asyncpg.Connection, case_id: str) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT proposal_id, case_id, host_id, pool_id FROM proposals WHERE case_id = $1 AND status = 'pending'"
        " FOR UPDATE",
        case_id,
    )


async def has_approved_match(connection: asyncpg.Connection, case_id: str) -> bool:
    return bool(await connection.fetchval(
        "SELECT true FROM proposals WHERE case_id = $1 AND status IN ('approved', 'placed')", case_id
    ))


async def forbid_pair(connection: asyncpg.Connection, case_id: str, host_id: str, reason: str) -> None:
    await connection.execute(
        "INSERT INTO forbidden_pairs (case_id, host_id, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        case_id, host_id, reason,
    )


async def insert_proposal(connection: asyncpg.Connection, *, proposal_id: str, case_id: str, host_id: str,
                          pool_id: str, run_id: str, score: float) -> None:
    await connection.execute(
        "INSERT INTO proposals (proposal_id, case_id, host_id, pool_id, run_id, status, score)"
        " VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        proposal_id, case_id, host_id, pool_id, run_id, score,
    )


async def pool_inputs(connection: asyncpg.Connection, pool_id: str,
                      as_of: date | None = None) -> dict[str, list[asyncpg.Record]]:
    """Everything one solve of a pool needs, read in one snapshot; consents expire as of ``as_of`` (default:
    the transaction's ``current_date``). Cases come in arrival order, ties by id (the solver's unit order)."""
    cases = await connection.fetch(
        "SELECT c.case_id, c.profile, c.arrived_seq, c.traceparent FROM cases c"
        " WHERE c.pool_id = $1 AND NOT c.withdrawn"
        " AND (EXISTS (SELECT 1 FROM proposals p WHERE p.case_id = c.case_id AND p.status IN ('approved', 'placed'))"
        "      OR EXISTS (SELECT 1 FROM matching_consents m WHERE m.case_id = c.case_id AND NOT m.withdrawn"
        "                 AND (m.expires_on IS NULL OR m.expires_on >= COALESCE($2::date, current_date))))"
        " ORDER BY c.arrived_seq, c.case_id",
        pool_id, as_of,
    )
    hosts = await connection.fetch(
        "SELECT host_id, profile, capacity FROM hosts WHERE pool_id = $1 ORDER BY host_id", pool_id
    )
    proposals = await connection.fetch(
        "SELECT proposal_id, case_id, host_id, status FROM proposals"
        " WHERE pool_id = $1 AND status = ANY($2::text[])",
        pool_id, list(LIVE),
    )
    forbidden = await connection.fetch(
        "SELECT f.case_id, f.host_id FROM forbidden_pairs f JOIN cases c USING (case_id) WHERE c.pool_id = $1",
        pool_id,
    )
    return {"cases": cases, "hosts": hosts, "proposals": proposals, "forbidden": forbidden}


async def record_run(connection: asyncpg.Connection, run: SolverRunRecordedV3, *, started_at: datetime) -> None:
    await connection.execute(
        "INSERT INTO solver_runs (run_id, pool_id, inputs_digest, parameters, solver_version, seed, status,"
        " objective, bound, gap, duration_s, proposals, withdrawals, started_at, mechanism, blocking_pairs,"
        " stability, held_back, phases, warnings)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        run.run_id, run.pool_id, run.inputs_digest, json.dumps(run.parameters), run.solver_version, run.seed,
        run.status, run.objective, run.bound, run.gap, run.duration_s, run.proposals, run.withdrawals, started_at,
        run.mechanism, run.blocking_pairs, run.stability, run.held_back,
        json.dumps([phase.model_dump(mode="json") for phase in run.phases]), run.warnings,
    )
