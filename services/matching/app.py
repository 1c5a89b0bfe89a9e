"""Matching: keeps each pool's state from events and re-solves dirty pools with OR-Tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from schemas import topics
from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    BeneficiaryResponded,
    CapacityUpdated,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    HostRegistered,
    HostResponded,
    HostUpdated,
    Identifier,
    PlacementConfirmed,
    ResponseExpired,
)
from services.matching import handlers
from services.matching.resolver import resolve_dirty_pools
from services.runtime.access import Caller, require
from services.runtime.consumer import EventConsumer
from services.runtime.service import ServiceDefinition, context_of

router = APIRouter(prefix="/pools", tags=["matching"])

# Solver runs describe pools (digests, objectives, counts), never a person: the staff who act on proposals
# and the auditors who re-run solves read them; partners do not.
RunReader = Annotated[Caller, Depends(require("caseworker", "approver", "auditor"))]


@router.get("/runs")
async def solver_runs(request: Request, caller: RunReader, pool_id: Identifier | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    """The latest solver runs, with their inputs' digest, objective, bound and gap, the blocking pairs of
    their solution (a case and a host that would both rather have each other), in every mode, the cases
    a dynamic run held back for the arrivals it expects, and each step's status, value and bound."""
    async with context_of(request).pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT run_id, pool_id, inputs_digest, solver_version, seed, status, objective, bound, gap, duration_s,"
            " proposals, withdrawals, started_at, mechanism, blocking_pairs, stability, held_back, phases, warnings"
            " FROM solver_runs WHERE $1::text IS NULL OR pool_id = $1"
            " ORDER BY started_at DESC LIMIT $2",
            pool_id, limit,
        )
    return [dict(row) | {"phases": None if row["phases"] is None else json.loads(row["phases"])} for row in rows]


pool_inputs = EventConsumer(
    "pool-inputs",
    [topics.CASES, topics.HOSTS, topics.CONSENTS, topics.DECISIONS],
    # What each event means for a pool; services/matching/replay.py folds the audit stream the same way
    # (tests/unit/matching/test_replay_fold.py checks that it knows every type handled here).
    handlers.positioned({
        CaseRegistered: handlers.on_case_registered,
        CaseUpdated: handlers.on_case_updated,
        CaseWithdrawn: handlers.on_case_withdrawn,
        DataUseConsentRecorded: handlers.on_consent_recorded,
        DataUseConsentWithdrawn: handlers.on_consent_withdrawn,
        HostRegistered: handlers.on_host_registered,
        CapacityUpdated: handlers.on_capacity_updated,
        HostUpdated: handlers.on_host_updated,
        ApprovalDecided: handlers.on_approval_decided,
        ApprovalDecidedV2: handlers.on_approval_decided,
        BeneficiaryResponded: handlers.on_response,
        HostResponded: handlers.on_response,
        ResponseExpired: handlers.on_response_expired,
        PlacementConfirmed: handlers.on_placement_confirmed,
    }),
)

definition = ServiceDefinition(
    name="matching",
    migrations=Path(__file__).parent / "migrations",
    consumers=[pool_inputs],
    router=router,
    background=[resolve_dirty_pools],
    description="Per-pool OR-Tools matching, re-solved incrementally as capacity and caseloads change.",
)
