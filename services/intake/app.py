"""Intake: cases and hosts come in over HTTP and from partners' events; validated, stored, announced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from schemas import topics
from schemas.events import (
    CapacitySubmitted,
    CaseSubmitted,
    HostSubmitted,
    Identifier,
    IdentityField,
    Label,
    PlacementConfirmed,
)
from services.intake import handlers, store
from services.intake.model import (
    CapacityChange,
    CaseRegistration,
    ErasureReceipt,
    ErasureRequest,
    HostProfileChange,
    HostRegistration,
    IdentityDisclosure,
    ProfileChange,
    Registered,
    Withdrawal,
)
from services.intake.settings import IntakeSettings, intake_settings
from services.runtime.access import Caller, require
from services.runtime.consumer import Delivery, EventConsumer
from services.runtime.service import ServiceContext, ServiceDefinition, context_of

log = structlog.get_logger(__name__)

router = APIRouter(tags=["intake"])

# Who may do what at intake: caseworkers bring cases in, partners their own hosts; auditors only read.
CaseworkerCaller = Annotated[Caller, Depends(require("caseworker"))]
CaseReader = Annotated[Caller, Depends(require("caseworker", "approver", "auditor"))]
# Identifying fields in clear: only the people who act on the case, each read recorded for the audit.
# Auditors read the record of who read what, never the plaintext (they verify, they do not contact).
IdentityReader = Annotated[Caller, Depends(require("caseworker", "approver"))]
HostOwner = Annotated[Caller, Depends(require("partner"))]
# A host's profile describes an organisation's offer, not a person: staff read every host, partners their own.
HostReader = Annotated[Caller, Depends(require("partner", "caseworker", "approver", "auditor"))]


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
    case = {key: row[key] for key in ("case_id", "pool_id", "organisation_id", "language", "status", "version")}
    return {**case, "profile": json.loads(row["profile"]), "erased_at": row["erased_at"]}


@router.get("/cases/{case_id}/identity", response_model=IdentityDisclosure,
            responses={404: {"description": "no such case, or no identifying data on record"},
                       410: {"description": "the case's identifying data was erased"}})
async def read_identity(
    case_id: Identifier, request: Request, caller: IdentityReader,
    purpose: Annotated[Label, Query(description="Why the identity is read; recorded with the read.")],
    fields: Annotated[list[IdentityField] | None, Query(description="Only these fields (default: all).")] = None,
) -> IdentityDisclosure:
    """A case's identifying fields in clear. Every read is recorded (``centre.case.identity-read.v1``: who,
    when, which fields, why) in the same transaction, before the fields are returned."""
    context = context_of(request)
    try:
        async with context.pool.acquire() as connection, connection.transaction():
            disclosed, read_at = await handlers.read_identity(
                connection, case_id, reader=caller.subject, role=caller.role,  # type: ignore[arg-type]
                purpose=purpose, fields=fields, master_key=context.settings.master_key.get_secret_value(),
                source=context.source,
            )
    except handlers.IdentityUnavailable as unavailable:
        code = status.HTTP_410_GONE if unavailable.kind == "erased" else status.HTTP_404_NOT_FOUND
        raise HTTPException(code, str(unavailable)) from None
    return IdentityDisclosure(case_id=case_id, fields=disclosed, read_by=caller.subject, purpose=purpose,
                              read_at=read_at)


@router.post("/cases/{case_id}/erasure", status_code=status.HTTP_202_ACCEPTED, response_model=ErasureReceipt)
async def erase_case(case_id: Identifier, erasure: ErasureRequest, request: Request, response: Response,
                     caller: CaseworkerCaller) -> ErasureReceipt:
    """Erase a case's identifying data: its key is deleted (crypto-shredding), ``centre.case.erased.v1`` is
    published, and every sealed copy becomes unreadable. A case still being matched is withdrawn first."""
    context = context_of(request)
    async with context.pool.acquire() as connection, connection.transaction():
        erased = await handlers.erase_case(connection, case_id, erasure.reason, erased_by=caller.subject,
                                           source=context.source)
    if erased is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id!r}")
    if erased.already:
        response.status_code = status.HTTP_200_OK
    return ErasureReceipt(case_id=case_id, reason=erased.reason,  # type: ignore[arg-type]
                          erased_at=erased.erased_at, already_erased=erased.already)


@router.put("/cases/{case_id}/profile", responses={404: {"description": "no such case"},
                                                   409: {"description": "stale version, or the case is closed"}})
async def update_profile(case_id: Identifier, change: ProfileChange, request: Request,
                         caller: CaseworkerCaller) -> dict[str, Any]:
    """Correct or update a case's pseudonymous profile; matching re-solves its pool with it."""
    context = context_of(request)
    try:
        async with context.pool.acquire() as connection, connection.transaction():
            await handlers.update_profile(connection, case_id, change, source=context.source)
    except handlers.ChangeRefused as refusal:
        code = status.HTTP_404_NOT_FOUND if refusal.unknown else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(refusal)) from None
    return {"case_id": case_id, "version": change.version}


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


@router.get("/hosts/{host_id}", responses={403: {"description": "the host belongs to another organisation"},
                                          404: {"description": "no such host"}})
async def read_host(host_id: Identifier, request: Request, caller: HostReader) -> dict[str, Any]:
    """A host as intake holds it now, with the versions its next capacity or profile change must follow."""
    async with context_of(request).pool.acquire() as connection:
        row = await store.host(connection, host_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no host {host_id!r}")
    caller.refuse_unless_speaks_for(row["organisation_id"], f"host {host_id!r}")
    host = {key: row[key] for key in ("host_id", "pool_id", "organisation_id", "external_ref", "registered_at")}
    return {**host, "profile": json.loads(row["profile"]), "capacity_version": row["capacity_version"],
            "profile_version": row["version"]}


@router.put("/hosts/{host_id}/capacity")
async def update_capacity(host_id: Identifier, change: CapacityChange, request: Request,
                          caller: HostOwner) -> dict[str, Any]:
    context = context_of(request)
    await change_own_host(request, caller, host_id, lambda connection: handlers.update_capacity(
        connection, host_id, change, source=context.source))
    return {"host_id": host_id, "version": change.version}


@router.put("/hosts/{host_id}/profile",
            responses={403: {"description": "the host belongs to another organisation"},
                       404: {"description": "no such host"},
                       409: {"description": "the version is not the host's current profile version plus one"},
                       422: {"description": "bad input, e.g. a capacity in the profile (it has its own route)"}})
async def update_host_profile(host_id: Identifier, change: HostProfileChange, request: Request,
                              caller: HostOwner) -> dict[str, Any]:
    """Replace the host's profile (services, languages, preferences, exclusions, place, maximum household
    size...) as a whole, without its capacity, which changes only through ``PUT /hosts/{id}/capacity``.
    Matching re-solves the host's pool with it: a pending proposal the host can no longer take is withdrawn
    and its case proposed elsewhere."""
    context = context_of(request)
    await change_own_host(request, caller, host_id, lambda connection: handlers.update_host_profile(
        connection, host_id, change, source=context.source))
    return {"host_id": host_id, "version": change.version}


async def change_own_host(request: Request, caller: Caller, host_id: str,
                          change: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    """Apply one change to a host of the caller's own organisation in one transaction; a refusal becomes
    404 (no such host) or 409 (the change does not follow what the host holds now)."""
    try:
        async with context_of(request).pool.acquire() as connection, connection.transaction():
            host = await store.host_for_update(connection, host_id)
            if host is not None:
                caller.refuse_unless_speaks_for(host["organisation_id"], f"host {host_id!r}")
            await change(connection)
    except handlers.ChangeRefused as refusal:
        code = status.HTTP_404_NOT_FOUND if refusal.unknown else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(refusal)) from None


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


async def on_placement_confirmed(event: PlacementConfirmed, delivery: Delivery) -> None:
    await store.mark_placed(delivery.connection, event.case_id, delivery.envelope.time)


async def sweep_retention(context: ServiceContext, settings: IntakeSettings | None = None) -> None:
    """The background task: erase the cases whose retention period has ended, every sweep interval."""
    settings = settings or intake_settings()
    retention = settings.retention
    if retention is None:
        return  # no retention period set: erasure happens on request only
    while True:
        try:
            async with context.pool.acquire() as connection, connection.transaction():
                erased = await handlers.erase_due_cases(connection, retention=retention, now=datetime.now(UTC),
                                                        source=context.source)
            if erased:
                log.info("retention sweep erased cases", count=len(erased))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; trying again at the next sweep")
        await asyncio.sleep(settings.intake_retention_sweep_s)


outcomes = EventConsumer("outcomes", [topics.DECISIONS], {PlacementConfirmed: on_placement_confirmed})

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
    consumers=[submissions, outcomes],
    router=router,
    background=[sweep_retention],
    description="Cases and hosts come in over HTTP and as partner events; validated, stored and announced.",
)
