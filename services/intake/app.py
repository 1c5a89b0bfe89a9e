"""Intake: cases and hosts come in over HTTP and from partners' events; validated, stored, announced."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from schemas import topics
from schemas.events import CapacitySubmitted, CaseSubmitted, HostSubmitted, Identifier
from services.intake import handlers, store
from services.intake.model import CapacityChange, CaseRegistration, HostRegistration, Registered, Withdrawal
from services.runtime.access import Caller, require
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.service import ServiceDefinition, context_of

router = APIRouter(tags=["intake"])

# Who may do what at intake: caseworkers bring cases in, partners their own hosts; auditors only read.
CaseworkerCaller = Annotated[Caller, Depends(require("caseworker"))]
CaseReader = Annotated[Caller, Depends(require("caseworker", "approver", "auditor"))]
HostOwner = Annotated[Caller, Depends(require("partner"))]


@router.post("/cases", status_code=status.HTTP_201_CREATED, response_model=Registered)
async def register_case(registration: CaseRegistration, request: Request, response: Response,
                        caller: CaseworkerCaller) -> Registered:
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        outcome = await handlers.register_case(
            connection, registration, source=context.source, master_key=context.settings.master_key.get_secret_value()
        )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return Registered(id=outcome.id, created=outcome.created)


@router.get("/cases/{case_id}")
async def read_case(case_id: Identifier, request: Request,
                    caller: CaseReader) -> dict[str, Any]:
    async with context_of(request).pool.acquire() as connection:
        row = await store.case(connection, case_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id!r}")
    return {key: row[key] for key in ("case_id", "pool_id", "organisation_id", "language", "status", "version")}


@router.post("/cases/{case_id}/withdrawal", status_code=status.HTTP_202_ACCEPTED)
async def withdraw_case(case_id: Identifier, withdrawal: Withdrawal, request: Request,
                        caller: CaseworkerCaller) -> dict[str, str]:
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        if not await handlers.withdraw_case(connection, case_id, withdrawal.reason, source=context.source):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no registered case {case_id!r}")
    return {"case_id": case_id, "status": "withdrawn"}


@router.post("/hosts", status_code=status.HTTP_201_CREATED, response_model=Registered)
async def register_host(registration: HostRegistration, request: Request, response: Response,
                        caller: HostOwner) -> Registered:
    caller.refuse_unless_speaks_for(registration.organisation_id, f"organisation {registration.organisation_id!r}")
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        outcome = await handlers.register_host(connection, registration, source=context.source)
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return Registered(id=outcome.id, created=outcome.created)


@router.put("/hosts/{host_id}/capacity")
async def update_capacity(host_id: Identifier, change: CapacityChange, request: Request,
                          caller: HostOwner) -> dict[str, Any]:
    context = context_of(request)
    try:
        async with context.pool.acquire() as connection, connection.transaction():
            host = await store.host_for_update(connection, host_id)
            if host is not None:
                caller.refuse_unless_speaks_for(host["organisation_id"], f"host {host_id!r}")
            await handlers.update_capacity(connection, host_id, change, source=context.source)
    except handlers.CapacityRefused as refusal:
        code = status.HTTP_404_NOT_FOUND if refusal.unknown_host else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(refusal)) from None
    return {"host_id": host_id, "version": change.version}


async def on_case_submitted(event: CaseSubmitted, delivery: Delivery) -> None:
    registration = CaseRegistration(
        organisation_id=event.organisation_id,
        external_ref=event.external_ref,
        pool_id=event.pool_id,
        language=event.language,
        profile=event.profile,
    )
    await handlers.register_case(delivery.connection, registration, source=delivery.source, master_key="")


async def on_host_submitted(event: HostSubmitted, delivery: Delivery) -> None:
    registration = HostRegistration(
        organisation_id=event.organisation_id,
        external_ref=event.external_ref,
        pool_id=event.pool_id,
        profile=event.profile,
    )
    await handlers.register_host(delivery.connection, registration, source=delivery.source)


async def on_capacity_submitted(event: CapacitySubmitted, delivery: Delivery) -> None:
    # A refused change raises: the consumer dead-letters it with the reason, for the partner to see.
    await handlers.update_capacity(
        delivery.connection,
        event.host_id,
        CapacityChange(version=event.version, capacity=event.capacity),
        source=delivery.source,
        organisation_id=event.organisation_id,
    )


submissions = EventConsumer(
    "submissions",
    [topics.PARTNER_SUBMISSIONS],
    {
        CaseSubmitted: on_case_submitted,
        HostSubmitted: on_host_submitted,
        CapacitySubmitted: on_capacity_submitted,
    },
)

definition = ServiceDefinition(
    name="intake",
    migrations=Path(__file__).parent / "migrations",
    consumers=[submissions],
    router=router,
    description="Cases and hosts come in over HTTP and as partner events; validated, stored and announced.",
)
