"""Consent: data-use consent per purpose, and the approval workflow that gives people the final say."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from schemas import topics
from schemas.events import (
    CaseRegistered,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    HostRegistered,
    Identifier,
    MatchProposed,
    ProposalWithdrawn,
)
from services.consent import store
from services.consent.deadlines import watch_deadlines
from services.consent.model import (
    ConsentRequest,
    Decision,
    Proposal,
    Response,
    Review,
    State,
    TransitionRefused,
)
from services.consent.settings import consent_settings
from services.runtime.access import Caller, require
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.outbox import record_event
from services.runtime.service import ServiceContext, ServiceDefinition, context_of

router = APIRouter(tags=["consent and approvals"])

# Who may do what: caseworkers record consent, review and record beneficiaries' answers; approvers decide;
# partners answer for their own hosts and see only their proposals; auditors read; admins may do anything.
CaseworkerCaller = Annotated[Caller, Depends(require("caseworker"))]
ApproverCaller = Annotated[Caller, Depends(require("approver"))]
ConsentReader = Annotated[Caller, Depends(require("caseworker", "approver", "auditor"))]
ProposalReader = Annotated[Caller, Depends(require("caseworker", "approver", "auditor", "partner"))]
Responder = Annotated[Caller, Depends(require("caseworker", "partner"))]


@router.post("/cases/{case_id}/consents", status_code=status.HTTP_201_CREATED)
async def record_consent(case_id: Identifier, request_body: ConsentRequest, request: Request,
                         caller: CaseworkerCaller) -> dict[str, str]:
    if request_body.purpose == "share_with_partner" and request_body.partner_id is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "share_with_partner consent names a partner_id")
    if request_body.expires_on is not None and request_body.expires_on < today():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"expires_on {request_body.expires_on} has already passed; consent must be in force")
    context = context_of(request)
    consent_id = f"consent-{uuid.uuid4()}"
    obtained = request_body.obtained.recorded_by(caller.subject)
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
            obtained=obtained.model_dump(mode="json"),
            expires_on=request_body.expires_on,
        )
        await record_event(
            connection,
            DataUseConsentRecorded(
                consent_id=consent_id,
                case_id=case_id,
                purpose=request_body.purpose,
                partner_id=request_body.partner_id,
                obtained=obtained,
                expires_on=request_body.expires_on,
            ),
            source=context.source,
        )
    return {"consent_id": consent_id}


@router.post("/consents/{consent_id}/withdrawal")
async def withdraw_consent(consent_id: Identifier, request: Request, caller: CaseworkerCaller) -> dict[str, str]:
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        row = await store.withdraw_consent(connection, consent_id, caller.subject)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no consent {consent_id!r} in force")
        await end_consent(connection, row, withdrawn_by=caller.subject, source=context.source)
    return {"consent_id": consent_id, "status": "withdrawn"}


async def end_consent(connection: asyncpg.Connection, row: asyncpg.Record, *, withdrawn_by: str, source: str) -> None:
    """Announce an ended consent; without consent for matching, the case's open proposals go at once.

    Matching and notifications act on the event too (the case leaves its pool, sharing stops); consent
    does not wait for them to withdraw proposals nobody should review any more.
    """
    await record_event(
        connection,
        DataUseConsentWithdrawn(consent_id=row["consent_id"], case_id=row["case_id"], purpose=row["purpose"],
                                partner_id=row["partner_id"], withdrawn_by=withdrawn_by),
        source=source,
    )
    if row["purpose"] == "matching" and not await store.matching_consent_in_force(connection, row["case_id"],
                                                                                  today()):
        await store.withdraw_open_proposals_of_case(connection, row["case_id"])


def today() -> date:
    return datetime.now(UTC).date()


CONSENT_EXPIRY = "consent-expiry"
EXPIRY_CHECK_INTERVAL_S = 60.0


async def expire_consents(context: ServiceContext, *, once: bool = False) -> None:
    """End consents whose expiry date has passed, exactly as if they had been withdrawn that day."""
    while True:
        async with context.pool.acquire() as connection, connection.transaction():
            for row in await store.expire_consents(connection, today(), CONSENT_EXPIRY):
                await end_consent(connection, row, withdrawn_by=CONSENT_EXPIRY, source=context.source)
        if once:
            return
        await asyncio.sleep(EXPIRY_CHECK_INTERVAL_S)


@router.get("/cases/{case_id}/consents")
async def list_consents(case_id: Identifier, request: Request, caller: ConsentReader) -> list[dict[str, Any]]:
    async with context_of(request).pool.acquire() as connection:
        return [dict(row) for row in await store.consents_of(connection, case_id)]


@router.get("/proposals")
async def review_queue(
    request: Request, caller: ProposalReader, state: State = "proposed",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The proposals in one state, most urgent and oldest first: the review and decision queues.

    A partner sees only the proposals for its own hosts.
    """
    organisation_id = caller.organisation_id if caller.role == "partner" else None
    async with context_of(request).pool.acquire() as connection:
        return [dict(row) for row in await store.queue(connection, state, limit, organisation_id)]


async def _step(request: Request, proposal_id: str, step: str, caller: Caller, **arguments: Any) -> dict[str, Any]:
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        proposal = await store.proposal_for_update(connection, proposal_id)
        if proposal is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no proposal {proposal_id!r}")
        if caller.role == "partner":
            host_organisation = await store.host_organisation(connection, proposal.host_id)
            caller.refuse_unless_speaks_for(host_organisation, f"host {proposal.host_id!r}")
        if step == "decide" and arguments["decision"] == "approved":
            # One approved match per case: a proposal superseded while it was being approved must not
            # stand beside its successor, or the household could be placed twice.
            other = await store.approved_match_of_case(connection, proposal.case_id, proposal_id)
            if other is not None:
                raise HTTPException(status.HTTP_409_CONFLICT,
                                    f"case {proposal.case_id} already has an approved match ({other})")
        try:
            after, events = getattr(proposal, step)(**arguments, now=datetime.now(UTC))
        except TransitionRefused as refusal:
            raise HTTPException(status.HTTP_409_CONFLICT, str(refusal)) from None
        await store.save_proposal(connection, after)
        for event in events:
            await record_event(connection, event, source=context.source)
    return {"proposal_id": proposal_id, "state": after.state}


@router.post("/proposals/{proposal_id}/review")
async def review(proposal_id: Identifier, body: Review, request: Request, caller: CaseworkerCaller) -> dict[str, Any]:
    return await _step(request, proposal_id, "review", caller, reviewed_by=caller.subject,
                       recommendation=body.recommendation, note=body.note,
                       policy=consent_settings().deadline_policy)


@router.post("/proposals/{proposal_id}/decision")
async def decide(proposal_id: Identifier, body: Decision, request: Request, caller: ApproverCaller) -> dict[str, Any]:
    return await _step(request, proposal_id, "decide", caller, decided_by=caller.subject, decision=body.decision,
                       reason=body.reason, policy=consent_settings().deadline_policy)


@router.post("/proposals/{proposal_id}/responses")
async def respond(proposal_id: Identifier, body: Response, request: Request, caller: Responder) -> dict[str, Any]:
    """The beneficiary's answer is recorded by a caseworker; the host's by the host's own partner organisation."""
    if caller.role != "admin":
        answering_for = "host" if caller.role == "partner" else "beneficiary"
        if body.party != answering_for:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {caller.role!r} records only the {answering_for}'s response")
    return await _step(request, proposal_id, "respond", caller, party=body.party, accepted=body.accepted,
                       reason=body.reason, recorded_by=caller.subject, placement_id=f"placement-{proposal_id}")


async def on_case_registered(event: CaseRegistered, delivery: Delivery) -> None:
    await store.remember_case(delivery.connection, event.case_id, event.pool_id, event.organisation_id,
                              event.language)


async def on_host_registered(event: HostRegistered, delivery: Delivery) -> None:
    await store.remember_host(delivery.connection, event.host_id, event.organisation_id)


async def on_case_withdrawn(event: CaseWithdrawn, delivery: Delivery) -> None:
    await store.mark_case_withdrawn(delivery.connection, event.case_id)
    await store.withdraw_open_proposals_of_case(delivery.connection, event.case_id)


async def on_match_proposed(event: MatchProposed, delivery: Delivery) -> None:
    proposal = Proposal(event.proposal_id, event.case_id, event.host_id, event.pool_id, urgency=event.urgency)
    await store.insert_proposal(delivery.connection, proposal, event.urgency)


async def on_proposal_withdrawn(event: ProposalWithdrawn, delivery: Delivery) -> None:
    proposal = await store.proposal_for_update(delivery.connection, event.proposal_id)
    withdrawn = proposal.withdraw() if proposal is not None else None
    if withdrawn is not None:
        await store.save_proposal(delivery.connection, withdrawn)


workflow = EventConsumer(
    "workflow",
    [topics.CASES, topics.HOSTS, topics.PROPOSALS],
    {
        CaseRegistered: on_case_registered,
        HostRegistered: on_host_registered,
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
    background=[expire_consents, watch_deadlines],
    description="Data-use consent per purpose; caseworker review, four-eyes approval, and people's final say.",
)
