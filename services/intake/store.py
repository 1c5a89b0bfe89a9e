"""Intake's SQL: cases, hosts, and the cases' own keys."""

from __future__ import annotations

import json
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
        "SELECT case_id, pool_id, organisation_id, external_ref, language, profile, version, status, registered_at"
        " FROM cases WHERE case_id = $1",
        case_id,
    )


async def withdraw_case(connection: asyncpg.Connection, case_id: str) -> bool:
    status = await connection.execute(
        "UPDATE cases SET status = 'withdrawn' WHERE case_id = $1 AND status = 'registered'", case_id
    )
    return status == "UPDATE 1"


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


async def host_for_update(connection: asyncpg.Connection, host_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT host_id, pool_id, organisation_id, capacity_version FROM hosts WHERE host_id = $1 FOR UPDATE",
        host_id,
    )


async def set_capacity(connection: asyncpg.Connection, host_id: str, version: int, capacity: dict[str, Any]) -> None:
    await connection.execute(
        "UPDATE hosts SET capacity_version = $2, profile = jsonb_set(profile, '{capacity}', $3::jsonb)"
        " WHERE host_id = $1",
        host_id, version, json.dumps(capacity),
    )
