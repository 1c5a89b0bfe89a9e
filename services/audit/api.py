"""The auditor's read-only HTTP doors: verify, checkpoints and the key, proofs, a case's history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from services.audit import store
from services.audit.chain import AuditRecord
from services.audit.proofs import ProofUnavailable, prove_consistency, prove_inclusion
from services.audit.timeline import case_timeline
from services.audit.verification import verify_stored_log
from services.runtime.access import require
from services.runtime.service import context_of

# Every door is read-only and for auditors (and admins, whom ``require`` always admits): the log names who
# decided what about whom. One exception: a case's timeline is also the history the staff who act on the
# case read (issue 4's "read a case's history"); it names steps and actors, never identifying data.
router = APIRouter(prefix="/audit", tags=["audit"])
AUDITORS = [Depends(require("auditor"))]
CASE_HISTORY_READERS = [Depends(require("auditor", "caseworker", "approver"))]


@router.get("/verify", dependencies=AUDITORS)
async def verify(request: Request) -> dict[str, Any]:
    """Walk the whole chain and every checkpoint; name the first record that breaks them."""
    async with context_of(request).pool.acquire() as connection:
        verdict = await verify_stored_log(connection)
    return verdict.to_dict()


@router.get("/subjects/{subject}", dependencies=AUDITORS)
async def history_of(subject: str, request: Request) -> list[dict[str, Any]]:
    """Every record about one case (or host), in the order the log holds them."""
    async with context_of(request).pool.acquire() as connection:
        records: list[AuditRecord] = await store.records_about(connection, subject)
    return [record.to_dict() for record in records]


@router.get("/counts", dependencies=AUDITORS)
async def counts(request: Request) -> dict[str, int]:
    """How many records of each event type the log holds."""
    async with context_of(request).pool.acquire() as connection:
        return await store.count_by_type(connection)


@router.get("/cases/{case_id}/timeline", dependencies=CASE_HISTORY_READERS)
async def timeline(case_id: str, request: Request) -> list[dict[str, Any]]:
    """One case's history as a person reads it: registration to placement and notifications."""
    async with context_of(request).pool.acquire() as connection:
        records = await store.case_history(connection, case_id)
    return [entry.to_dict() for entry in case_timeline(case_id, records)]


@router.get("/checkpoints", dependencies=AUDITORS)
async def checkpoints(
    request: Request, after: int = Query(default=0, ge=0), limit: int = Query(default=1000, ge=1, le=10_000)
) -> list[dict[str, Any]]:
    """Signed checkpoints with a size above ``after``, smallest first. Keep them: they are your evidence."""
    async with context_of(request).pool.acquire() as connection:
        sealed = await store.checkpoints(connection, after_size=after, limit=limit)
    return [signed.to_dict() for signed in sealed]


@router.get("/public-key", dependencies=AUDITORS)
async def public_key(request: Request, key_id: str | None = None) -> dict[str, str]:
    """The checkpoint key (of the latest checkpoint, or ``key_id``). Compare its id with the published one."""
    async with context_of(request).pool.acquire() as connection:
        wanted = key_id or await store.current_key_id(connection)
        pem = (await store.public_keys(connection)).get(wanted) if wanted else None
    if wanted is None or pem is None:
        raise HTTPException(404, "no such checkpoint key" if key_id else "no checkpoint key registered yet")
    return {"key_id": wanted, "algorithm": "Ed25519", "public_key_pem": pem}


@router.get("/proofs/inclusion", dependencies=AUDITORS)
async def inclusion(
    request: Request, seq: int = Query(ge=1), size: int | None = Query(default=None, ge=1)
) -> dict[str, Any]:
    """RFC 6962 inclusion proof of record ``seq`` in the checkpoint of ``size`` records (default: latest)."""
    async with context_of(request).pool.acquire() as connection:
        try:
            proof = await prove_inclusion(connection, seq, size)
        except ProofUnavailable as unavailable:
            raise HTTPException(404 if unavailable.missing else 409, str(unavailable)) from unavailable
    return proof.to_dict()


@router.get("/proofs/consistency", dependencies=AUDITORS)
async def consistency(request: Request, old: int = Query(ge=1), new: int = Query(ge=1)) -> dict[str, Any]:
    """RFC 6962 consistency proof that the checkpoint of ``new`` records extends the one of ``old``."""
    async with context_of(request).pool.acquire() as connection:
        try:
            proof = await prove_consistency(connection, old, new)
        except ProofUnavailable as unavailable:
            raise HTTPException(404 if unavailable.missing else 409, str(unavailable)) from unavailable
    return proof.to_dict()
