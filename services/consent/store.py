"""Consent's SQL: cases it knows, data-use consents, and the proposals under review."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import asyncpg

from services.consent.model import Proposal

PROPOSAL_COLUMNS = (
    "proposal_id, case_id, host_id, pool_id, state, reviewed_by, recommendation, decided_by,"
    " beneficiary_accepted, host_accepted"
)


async def remember_case(connection: asyncpg.Connection, case_id: str, pool_id: str, organisation_id: str,
                        language: str) -> None:
    await connection.execute(
        "INSERT INTO cases (case_id, pool_id, organisation_id, language) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (case_id) DO NOTHING",
        case_id, pool_id, organisation_id, language,
    )


async def mark_case_withdrawn(connection: asyncpg.Connection, case_id: str) -> None:
    await connection.execute("UPDATE cases SET withdrawn = true WHERE case_id = $1", case_id)


async def case_exists(connection: asyncpg.Connection, case_id: str) -> bool:
    return bool(await connection.fetchval("SELECT true FROM cases WHERE case_id = $1 AND NOT withdrawn", case_id))


async def insert_consent(connection: asyncpg.Connection, *, consent_id: str, case_id: str, purpose: str,
                         partner_id: str | None, obtained: dict[str, Any], expires_on: date | None) -> None:
    await connection.execute(
        "INSERT INTO consents (consent_id, case_id, purpose, partner_id, obtained, expires_on)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        consent_id, case_id, purpose, partner_id, json.dumps(obtained), expires_on,
    )


async def withdraw_consent(connection: asyncpg.Connection, consent_id: str, withdrawn_by: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "UPDATE consents SET withdrawn_at = now(), withdrawn_by = $2 WHERE consent_id = $1 AND withdrawn_at IS NULL"
        " RETURNING consent_id, case_id, purpose, partner_id",
        consent_id, withdrawn_by,
    )


async def consents_of(connection: asyncpg.Connection, case_id: str) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT consent_id, purpose, partner_id, obtained, expires_on, recorded_at, withdrawn_at, withdrawn_by"
        " FROM consents WHERE case_id = $1 ORDER BY recorded_at",
        case_id,
    )


async def insert_proposal(connection: asyncpg.Connection, proposal: Proposal, urgency: str) -> None:
    await connection.execute(
        "INSERT INTO proposals (proposal_id, case_id, host_id, pool_id, urgency, state)"
        " VALUES ($1, $2, $3, $4, $5, 'proposed') ON CONFLICT (proposal_id) DO NOTHING",
        proposal.proposal_id, proposal.case_id, proposal.host_id, proposal.pool_id, urgency,
    )


async def proposal_for_update(connection: asyncpg.Connection, proposal_id: str) -> Proposal | None:
    row = await connection.fetchrow(
        f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE proposal_id = $1 FOR UPDATE", proposal_id
    )
    return Proposal(**dict(row)) if row is not None else None


async def save_proposal(connection: asyncpg.Connection, proposal: Proposal) -> None:
    await connection.execute(
        "UPDATE proposals SET state = $2, reviewed_by = $3, recommendation = $4, decided_by = $5,"
        " beneficiary_accepted = $6, host_accepted = $7, updated_at = now() WHERE proposal_id = $1",
        proposal.proposal_id, proposal.state, proposal.reviewed_by, proposal.recommendation, proposal.decided_by,
        proposal.beneficiary_accepted, proposal.host_accepted,
    )


async def queue(connection: asyncpg.Connection, state: str, limit: int) -> list[asyncpg.Record]:
    """Proposals in one state, most urgent first, then oldest first."""
    return await connection.fetch(
        f"SELECT {PROPOSAL_COLUMNS}, urgency, proposed_at FROM proposals WHERE state = $1"
        " ORDER BY CASE urgency WHEN 'emergency' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END, proposed_at LIMIT $2",
        state, limit,
    )
