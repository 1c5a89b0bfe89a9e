"""Consent's SQL: cases it knows, data-use consents, and the proposals under review."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import asyncpg

from services.consent.model import Proposal

PROPOSAL_COLUMNS = (
    "proposal_id, case_id, host_id, pool_id, state, reviewed_by, recommendation, decided_by,"
    " beneficiary_accepted, host_accepted, urgency, decide_by, respond_by, escalated_at"
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
        " beneficiary_accepted = $6, host_accepted = $7, decide_by = $8, respond_by = $9, escalated_at = $10,"
        " updated_at = now() WHERE proposal_id = $1",
        proposal.proposal_id, proposal.state, proposal.reviewed_by, proposal.recommendation, proposal.decided_by,
        proposal.beneficiary_accepted, proposal.host_accepted, proposal.decide_by, proposal.respond_by,
        proposal.escalated_at,
    )


async def overdue_decisions(connection: asyncpg.Connection, now: datetime, limit: int) -> list[Proposal]:
    """Lock reviewed proposals whose decision is overdue and not escalated yet; skip those locked elsewhere.

    Another sweep (another instance) skips what this one holds, and sees it escalated once this commits.
    """
    rows = await connection.fetch(
        f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE state = 'reviewed' AND escalated_at IS NULL"
        " AND decide_by <= $1 ORDER BY decide_by LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )
    return [Proposal(**dict(row)) for row in rows]


async def expired_offers(connection: asyncpg.Connection, now: datetime, limit: int) -> list[Proposal]:
    """Lock approved proposals whose response deadline has passed; skip those locked elsewhere."""
    rows = await connection.fetch(
        f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE state = 'approved' AND respond_by <= $1"
        " ORDER BY respond_by LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )
    return [Proposal(**dict(row)) for row in rows]


async def queue(connection: asyncpg.Connection, state: str, limit: int,
                organisation_id: str | None = None) -> list[asyncpg.Record]:
    """Proposals in one state, most urgent first, then oldest first; only one organisation's hosts if named."""
    return await connection.fetch(
        f"SELECT {PROPOSAL_COLUMNS}, proposed_at FROM proposals WHERE state = $1"
        " AND ($3::text IS NULL OR host_id IN (SELECT host_id FROM hosts WHERE organisation_id = $3))"
        " ORDER BY CASE urgency WHEN 'emergency' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END, proposed_at LIMIT $2",
        state, limit, organisation_id,
    )


async def remember_host(connection: asyncpg.Connection, host_id: str, organisation_id: str) -> None:
    await connection.execute(
        "INSERT INTO hosts (host_id, organisation_id) VALUES ($1, $2) ON CONFLICT (host_id) DO NOTHING",
        host_id, organisation_id,
    )


async def host_organisation(connection: asyncpg.Connection, host_id: str) -> str | None:
    organisation_id: str | None = await connection.fetchval(
        "SELECT organisation_id FROM hosts WHERE host_id = $1", host_id
    )
    return organisation_id


async def withdraw_open_proposals_of_case(connection: asyncpg.Connection, case_id: str) -> list[str]:
    """Withdraw the case's proposals nobody has approved yet; an approval stands for the people's final say."""
    rows = await connection.fetch(
        "UPDATE proposals SET state = 'withdrawn', updated_at = now()"
        " WHERE case_id = $1 AND state IN ('proposed', 'reviewed') RETURNING proposal_id",
        case_id,
    )
    return [row["proposal_id"] for row in rows]


async def matching_consent_in_force(connection: asyncpg.Connection, case_id: str, today: date) -> bool:
    return bool(await connection.fetchval(
        "SELECT true FROM consents WHERE case_id = $1 AND purpose = 'matching' AND withdrawn_at IS NULL"
        " AND (expires_on IS NULL OR expires_on >= $2) LIMIT 1",
        case_id, today,
    ))


async def expire_consents(connection: asyncpg.Connection, today: date, expired_by: str) -> list[asyncpg.Record]:
    """End every consent whose expiry date has passed, as a withdrawal by ``expired_by``."""
    return await connection.fetch(
        "UPDATE consents SET withdrawn_at = now(), withdrawn_by = $2"
        " WHERE withdrawn_at IS NULL AND expires_on < $1 RETURNING consent_id, case_id, purpose, partner_id",
        today, expired_by,
    )


async def approved_match_of_case(connection: asyncpg.Connection, case_id: str, other_than: str) -> str | None:
    """The case's approved or placed proposal other than ``other_than``, under a per-case lock."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('case:' || $1))", case_id)
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT proposal_id FROM proposals WHERE case_id = $1 AND proposal_id <> $2"
        " AND state IN ('approved', 'placed') LIMIT 1",
        case_id, other_than,
    )
