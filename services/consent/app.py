"""Consent: data-use consent per purpose, and the approval workflow that gives people the final say."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status

from schemas import topics
from schemas.events import (
    CaseRegistered,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    MatchProposed,
    ProposalWithdrawn,
)
from services.consent import store
from services.consent.model import (
    ConsentRequest,
    ConsentWithdrawal,
    Decision,
    Proposal,
    Response,
    Review,
    State,
    TransitionRefused,
)
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.outbox import record_event
from services.runtime.service import ServiceDefinition, context_of

router = APIRouter(tags=["consent and approvals"])


@router.post("/cases/{case_id}/consents", status_code=status.HTTP_201_CREATED)
async def record_consent(case_id: str, request_body: ConsentRequest, request: Request) -> dict[str, str]:
    if request_body.purpose == "share_with_partner" and request_body.partner_id is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "share_with_partner consent names a partner_id")
    context = context_of(request)
    consent_id = f"consent-{uuid.uuid4()}"
    async with context.pool.acquire() as connection, connection.transaction():
        if not await store.case_exists(connection, case_id):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no registered case {case_id!r} (a new registration may still be in flight)"
            )
        await store.insert_consent(
            connection,
            consent_id=consent_id,
            case_id=case_id,
            purpose=request_body.purpose,
            partner_id=request_body.partner_id,
            obtained=request_body.obtained.model_dump(mode="json"),
            expires_on=request_body.expires_on,
        )
        await record_event(
            connection,
            DataUseConsentRecorded(
                consent_id=consent_id,
                case_id=case_id,
                purpose=request_body.purpose,
                partner_id=request_body.partner_id,
                obtained=request_body.obtained,
                expires_on=request_body.expires_on,
            ),
            source=context.source,
        )
    return {"consent_id": consent_id}


@router.post("/consents/{consent_id}/withdrawal")
async def withdraw_consent(consent_id: str, withdrawal: ConsentWithdrawal, request: Request) -> dict[str, str]:
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        row = await store.withdraw_consent(connection, consent_id, withdrawal.withdrawn_by)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no consent {consent_id!r} in force")
        await record_event(
            connection,
            DataUseConsentWithdrawn(
                consent_id=consent_id,
                case_id=row["case_id"],
                purpose=row["purpose"],
                partner_id=row["partner_id"],
                withdrawn_by=withdrawal.withdrawn_by,
            ),
            source=context.source,
        )
    return {"consent_id": consent_id, "status": "withdrawn"}


@router.get("/cases/{case_id}/consents")
async def list_consents(case_id: str, request: Request) -> list[dict[str, Any]]:
    async with context_of(request).pool.acquire() as connection:
        return [dict(row) for row in await store.consents_of(connection, case_id)]


@router.get("/proposals")
async def review_queue(
    request: Request, state: State = "proposed", limit: int = Query(default=100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """The proposals in one state, most urgent and oldest first: the review and decision queues."""
    async with context_of(request).pool.acquire() as connection:
        return [dict(row) for row in await store.queue(connection, state, limit)]


async def _step(request: Request, proposal_id: str, step: str, **arguments: Any) -> dict[str, Any]:
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        proposal = await store.proposal_for_update(connection, proposal_id)
        if proposal is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no proposal {proposal_id!r}")
        try:
            after, events = getattr(proposal, step)(**arguments)
        except TransitionRefused as refusal:
            raise HTTPException(status.HTTP_409_CONFLICT, str(refusal)) from None
        await store.save_proposal(connection, after)
        for event in events:
            await record_event(connection, event, source=context.source)
    return {"proposal_id": proposal_id, "state": after.state}


@router.post("/proposals/{proposal_id}/review")
async def review(proposal_id: str, body: Review, request: Request) -> dict[str, Any]:
    return await _step(request, proposal_id, "review", reviewed_by=body.reviewed_by,
                       recommendation=body.recommendation, note=body.note)


@router.post("/proposals/{proposal_id}/decision")
async def decide(proposal_id: str, body: Decision, request: Request) -> dict[str, Any]:
    return await _step(request, proposal_id, "decide", decided_by=body.decided_by, decision=body.decision,
                       reason=body.reason)


@router.post("/proposals/{proposal_id}/responses")
async def respond(proposal_id: str, body: Response, request: Request) -> dict[str, Any]:
    return await _step(request, proposal_id, "respond", party=body.party, accepted=body.accepted,
                       reason=body.reason, recorded_by=body.recorded_by, placement_id=f"placement-{proposal_id}")


async def on_case_registered(event: CaseRegistered, delivery: Delivery) -> None:
    await store.remember_case(delivery.connection, event.case_id, event.pool_id, event.organisation_id,
                              event.language)


async def on_case_withdrawn(event: CaseWithdrawn, delivery: Delivery) -> None:
    await store.mark_case_withdrawn(delivery.connection, event.case_id)


async def on_match_proposed(event: MatchProposed, delivery: Delivery) -> None:
    proposal = Proposal(event.proposal_id, event.case_id, event.host_id, event.pool_id)
    await store.insert_proposal(delivery.connection, proposal, event.urgency)


async def on_proposal_withdrawn(event: ProposalWithdrawn, delivery: Delivery) -> None:
    proposal = await store.proposal_for_update(delivery.connection, event.proposal_id)
    withdrawn = proposal.withdraw() if proposal is not None else None
    if withdrawn is not None:
        await store.save_proposal(delivery.connection, withdrawn)


workflow = EventConsumer(
    "workflow",
    [topics.CASES, topics.PROPOSALS],
    {
        CaseRegistered: on_case_registered,
        CaseWithdrawn: on_case_withdrawn,
        MatchProposed: on_match_proposed,
        ProposalWithdrawn: on_proposal_withdrawn,
    },
)

definition = ServiceDefinition(
    name="consent",
    migrations=Path(__file__).parent / "migrations",
    consumers=[workflow],
    router=router,
    description="Data-use consent per purpose; caseworker review, four-eyes approval, and people's final say.",
)
