"""Matching: keeps each pool's state from events and re-solves dirty pools with OR-Tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from schemas import topics
from schemas.events import (
    ApprovalDecided,
    BeneficiaryResponded,
    CapacityUpdated,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    HostRegistered,
    HostResponded,
    PlacementConfirmed,
)
from services.matching import handlers
from services.matching.resolver import resolve_dirty_pools
from services.runtime.consumer import EventConsumer
from services.runtime.service import ServiceDefinition, context_of

router = APIRouter(prefix="/pools", tags=["matching"])


@router.get("/runs")
async def solver_runs(request: Request, pool_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest solver runs, with their inputs' digest, objective, bound and gap."""
    async with context_of(request).pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT run_id, pool_id, inputs_digest, solver_version, seed, status, objective, bound, gap, duration_s,"
            " proposals, withdrawals, started_at FROM solver_runs WHERE $1::text IS NULL OR pool_id = $1"
            " ORDER BY started_at DESC LIMIT $2",
            pool_id, limit,
        )
    return [dict(row) for row in rows]


pool_inputs = EventConsumer(
    "pool-inputs",
    [topics.CASES, topics.HOSTS, topics.CONSENTS, topics.DECISIONS],
    {
        CaseRegistered: handlers.on_case_registered,
        CaseUpdated: handlers.on_case_updated,
        CaseWithdrawn: handlers.on_case_withdrawn,
        DataUseConsentRecorded: handlers.on_consent_recorded,
        DataUseConsentWithdrawn: handlers.on_consent_withdrawn,
        HostRegistered: handlers.on_host_registered,
        CapacityUpdated: handlers.on_capacity_updated,
        ApprovalDecided: handlers.on_approval_decided,
        BeneficiaryResponded: handlers.on_response,
        HostResponded: handlers.on_response,
        PlacementConfirmed: handlers.on_placement_confirmed,
    },
)

definition = ServiceDefinition(
    name="matching",
    migrations=Path(__file__).parent / "migrations",
    consumers=[pool_inputs],
    router=router,
    background=[resolve_dirty_pools],
    description="Per-pool OR-Tools matching, re-solved incrementally as capacity and caseloads change.",
)
