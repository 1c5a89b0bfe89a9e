"""Intake's SQL: cases, hosts, and the cases' own keys."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg


async def find_case_by_ref(connection: asyncpg.Connection, organisation_id: str, external_ref: str) -> str | None:
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT case_id FROM cases WHERE organisation_id = $1 AND external_ref = $2", organisation_id, external_ref
    )


async def insert_case(
    connection: asyncpg.Connection,
    *,
    case_id: str,
    pool_id: str,
    organisation_id: str,
    external_ref: str | None,
    language: str,
    profile: dict[str, Any],
    identity: dict[str, Any] | None,
) -> None:
    await connection.execute(
        "INSERT INTO cases (case_id, pool_id, organisation_id, external_ref, language, profile, identity)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        case_id, pool_id, organisation_id, external_ref, language, json.dumps(profile),
        json.dumps(identity) if identity is not None else None,
    )


async def insert_case_key(connection: asyncpg.Connection, case_id: str, wrapped_key: bytes) -> None:
    await connection.execute("INSERT INTO case_keys (case_id, wrapped_key) VALUES ($1, $2)", case_id, wrapped_key)


async def case(connection: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT case_id, pool_id, organisation_id, external_ref, language, profile, version, status, registered_at,"
        " closed_at, erased_at, erasure_reason"
        " FROM cases WHERE case_id = $1",
        case_id,
    )


async def case_for_update(connection: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT case_id, pool_id, version, status FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )


async def set_profile(connection: asyncpg.Connection, case_id: str, version: int, profile: dict[str, Any]) -> None:
    await connection.execute(
        "UPDATE cases SET version = $2, profile = $3 WHERE case_id = $1", case_id, version, json.dumps(profile)
    )


async def withdraw_case(connection: asyncpg.Connection, case_id: str) -> bool:
    status = await connection.execute(
        "UPDATE cases SET status = 'withdrawn', closed_at = coalesce(closed_at, now())"
        " WHERE case_id = $1 AND status = 'registered'",
        case_id,
    )
    return status == "UPDATE 1"


# --- Erasure, identity reads and retention --------------------------------------------------------


async def case_for_erasure(connection: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    """The case's status and erasure, locked until the transaction ends (erasure and reads serialise)."""
    return await connection.fetchrow(
        "SELECT case_id, status, erased_at, erasure_reason FROM cases WHERE case_id = $1 FOR UPDATE", case_id
    )


async def erase_case(connection: asyncpg.Connection, case_id: str, reason: str) -> datetime:
    """Delete the case's key (crypto-shredding) and its sealed identity here; return when."""
    await connection.execute("DELETE FROM case_keys WHERE case_id = $1", case_id)
    erased_at: datetime = await connection.fetchval(
        "UPDATE cases SET identity = NULL, erased_at = now(), erasure_reason = $2,"
        " closed_at = coalesce(closed_at, now()) WHERE case_id = $1 RETURNING erased_at",
        case_id, reason,
    )
    return erased_at


async def sealed_identity(connection: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    """The case's sealed identity, wrapped key and erasure, the row locked against a concurrent erasure."""
    return await connection.fetchrow(
        "SELECT c.case_id, c.identity, c.erased_at, k.wrapped_key FROM cases c"
        " LEFT JOIN case_keys k ON k.case_id = c.case_id WHERE c.case_id = $1 FOR SHARE OF c",
        case_id,
    )


async def mark_placed(connection: asyncpg.Connection, case_id: str, placed_at: datetime) -> None:
    """The case was placed: it is closed, and its retention period starts (the first closing counts)."""
    await connection.execute(
        "UPDATE cases SET status = 'placed', closed_at = coalesce(closed_at, $2)"
        " WHERE case_id = $1 AND status = 'registered'",
        case_id, placed_at,
    )


async def cases_due_for_erasure(connection: asyncpg.Connection, closed_before: datetime, limit: int) -> list[str]:
    """Cases closed before ``closed_before`` and not erased yet, locked; others' sweeps skip them."""
    rows = await connection.fetch(
        "SELECT case_id FROM cases WHERE erased_at IS NULL AND closed_at < $1"
        " ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        closed_before, limit,
    )
    return [row["case_id"] for row in rows]


async def find_host_by_ref(connection: asyncpg.Connection, organisation_id: str, external_ref: str) -> str | None:
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT host_id FROM hosts WHERE organisation_id = $1 AND external_ref = $2", organisation_id, external_ref
    )


async def insert_host(
    connection: asyncpg.Connection,
    *,
    host_id: str,
    pool_id: str,
    organisation_id: str,
    external_ref: str | None,
    profile: dict[str, Any],
) -> None:
    await connection.execute(
        "INSERT INTO hosts (host_id, pool_id, organisation_id, external_ref, profile) VALUES ($1, $2, $3, $4, $5)",
        host_id, pool_id, organisation_id, external_ref, json.dumps(profile),
    )


async def host(connection: asyncpg.Connection, host_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT host_id, pool_id, organisation_id, external_ref, profile, capacity_version, version, registered_at"
        " FROM hosts WHERE host_id = $1",
        host_id,
    )


async def host_for_update(connection: asyncpg.Connection, host_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT host_id, pool_id, organisation_id, capacity_version, version FROM hosts WHERE host_id = $1 FOR UPDATE",
        host_id,
    )


async def set_capacity(connection: asyncpg.Connection, host_id: str, version: int, capacity: dict[str, Any]) -> None:
    await connection.execute(
        "UPDATE hosts SET capacity_version = $2, profile = jsonb_set(profile, '{capacity}', $3::jsonb)"
        " WHERE host_id = $1",
        host_id, version, json.dumps(capacity),
    )


async def set_host_profile(connection: asyncpg.Connection, host_id: str, version: int,
                           attributes: dict[str, Any]) -> None:
    """Replace a host's profile but for its capacity, which stays as its own versioned updates left it."""
    await connection.execute(
        "UPDATE hosts SET version = $2, profile = $3::jsonb || jsonb_build_object('capacity', profile->'capacity')"
        " WHERE host_id = $1",
        host_id, version, json.dumps(attributes),
    )
