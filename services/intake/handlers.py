"""Intake's use cases, one function each, shared by the HTTP routes and the partner-submission consumer.

Each runs inside the caller's transaction: the state change and the events it announces commit together.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from schemas.events import (
    CapacityUpdated,
    CaseErased,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    HostRegistered,
    HostUpdated,
    IdentityField,
    IdentityRead,
    SealedIdentity,
)
from services.intake import store
from services.intake.model import (
    CapacityChange,
    CaseRegistration,
    HostProfileChange,
    HostRegistration,
    ProfileChange,
)
from services.runtime.outbox import record_event
from services.runtime.sealing import new_case_key, open_identity, seal_identity, unwrap_case_key, wrap_case_key


class ChangeRefused(Exception):
    """A change to a case or host that cannot be applied (``unknown``: there is no such case or host);
    the message says why."""

    def __init__(self, reason: str, *, unknown: bool = False) -> None:
        super().__init__(reason)
        self.unknown = unknown


@dataclass(frozen=True)
class Outcome:
    id: str
    created: bool


async def register_case(
    connection: asyncpg.Connection, registration: CaseRegistration, *, source: str, master_key: str
) -> Outcome:
    """Register a case once per (organisation, external reference); a repeat returns the same case."""
    if registration.external_ref is not None:
        existing = await store.find_case_by_ref(connection, registration.organisation_id, registration.external_ref)
        if existing is not None:
            return Outcome(existing, created=False)
    case_id = f"case-{uuid.uuid4()}"
    sealed = None
    if registration.identity is not None:
        case_key = new_case_key()
        await store.insert_case_key(connection, case_id, wrap_case_key(case_key, case_id, master_key))
        sealed = seal_identity(registration.identity.model_dump(mode="json"), case_id, case_key)
    await store.insert_case(
        connection,
        case_id=case_id,
        pool_id=registration.pool_id,
        organisation_id=registration.organisation_id,
        external_ref=registration.external_ref,
        language=registration.language,
        profile=registration.profile.model_dump(mode="json"),
        identity=sealed.model_dump() if sealed else None,
    )
    await record_event(
        connection,
        CaseRegistered(
            case_id=case_id,
            pool_id=registration.pool_id,
            organisation_id=registration.organisation_id,
            external_ref=registration.external_ref,
            language=registration.language,
            profile=registration.profile,
            identity=sealed,
        ),
        source=source,
    )
    return Outcome(case_id, created=True)


async def update_profile(connection: asyncpg.Connection, case_id: str, change: ProfileChange, *, source: str) -> None:
    """Replace a registered case's profile; the version must be the next one, so no update is lost unseen."""
    case = await store.case_for_update(connection, case_id)
    if case is None:
        raise ChangeRefused(f"no case {case_id!r}", unknown=True)
    if case["status"] != "registered":
        raise ChangeRefused(f"case {case_id!r} is {case['status']}: its profile can no longer change")
    if change.version != case["version"] + 1:
        raise ChangeRefused(f"version {change.version} does not follow the case's current version {case['version']}:"
                            " read the case again and apply the change to what it holds now")
    await store.set_profile(connection, case_id, change.version, change.profile.model_dump(mode="json"))
    await record_event(
        connection,
        CaseUpdated(case_id=case_id, pool_id=case["pool_id"], version=change.version, profile=change.profile),
        source=source,
    )


async def withdraw_case(connection: asyncpg.Connection, case_id: str, reason: str, *, source: str) -> bool:
    """Withdraw a registered case; False when there is no such registered case."""
    if not await store.withdraw_case(connection, case_id):
        return False
    await record_event(connection, CaseWithdrawn(case_id=case_id, reason=reason), source=source)
    return True


async def register_host(connection: asyncpg.Connection, registration: HostRegistration, *, source: str) -> Outcome:
    if registration.external_ref is not None:
        existing = await store.find_host_by_ref(connection, registration.organisation_id, registration.external_ref)
        if existing is not None:
            return Outcome(existing, created=False)
    host_id = f"host-{uuid.uuid4()}"
    await store.insert_host(
        connection,
        host_id=host_id,
        pool_id=registration.pool_id,
        organisation_id=registration.organisation_id,
        external_ref=registration.external_ref,
        profile=registration.profile.model_dump(mode="json"),
    )
    await record_event(
        connection,
        HostRegistered(
            host_id=host_id,
            pool_id=registration.pool_id,
            organisation_id=registration.organisation_id,
            external_ref=registration.external_ref,
            profile=registration.profile,
        ),
        source=source,
    )
    return Outcome(host_id, created=True)


async def update_capacity(
    connection: asyncpg.Connection,
    host_id: str,
    change: CapacityChange,
    *,
    source: str,
    organisation_id: str | None = None,
) -> None:
    """Set a host's capacity to absolute values; a version not above the current one is refused."""
    host = await store.host_for_update(connection, host_id)
    if host is None or (organisation_id is not None and host["organisation_id"] != organisation_id):
        raise ChangeRefused(f"no host {host_id!r}", unknown=True)
    if change.version <= host["capacity_version"]:
        raise ChangeRefused(
            f"capacity version {change.version} is not newer than the current version {host['capacity_version']}"
        )
    await store.set_capacity(connection, host_id, change.version, change.capacity.model_dump(mode="json"))
    await record_event(
        connection,
        CapacityUpdated(host_id=host_id, pool_id=host["pool_id"], version=change.version, capacity=change.capacity),
        source=source,
    )


async def update_host_profile(connection: asyncpg.Connection, host_id: str, change: HostProfileChange, *,
                              source: str) -> None:
    """Replace a host's profile (all but its capacity); the version must be the next one, so no change is lost
    unseen. The caller has checked who may change the host (``store.host_for_update`` locks the row)."""
    host = await store.host_for_update(connection, host_id)
    if host is None:
        raise ChangeRefused(f"no host {host_id!r}", unknown=True)
    if change.version != host["version"] + 1:
        raise ChangeRefused(
            f"version {change.version} does not follow the host's current profile version {host['version']}:"
            f" someone changed it since you last read it; send the whole profile as it should be now with"
            f" version {host['version'] + 1}"
        )
    await store.set_host_profile(connection, host_id, change.version, change.profile.model_dump(mode="json"))
    await record_event(
        connection,
        HostUpdated(host_id=host_id, pool_id=host["pool_id"], version=change.version, profile=change.profile),
        source=source,
    )


# --- Erasure and identity reads --------------------------------------------------------------------

ErasureReason = Literal["person_request", "retention_expired"]
IDENTITY_FIELDS: tuple[IdentityField, ...] = ("full_name", "date_of_birth", "document_number", "phone", "email")
RETENTION_SWEEP = "retention-sweep"


class IdentityUnavailable(Exception):
    """The identity cannot be read; ``kind`` says why ("unknown case", "erased", "none on record")."""

    def __init__(self, kind: Literal["unknown", "erased", "none"], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Erasure:
    case_id: str
    reason: str
    erased_at: datetime
    already: bool


async def erase_case(
    connection: asyncpg.Connection, case_id: str, reason: ErasureReason, *, erased_by: str, source: str
) -> Erasure | None:
    """Crypto-shred a case: delete its key, announce ``CaseErased``; None when there is no such case.

    A case still in the matching flow is withdrawn first (``CaseWithdrawn``), so it leaves its pool and its
    pending proposals are withdrawn the way any withdrawal does. Erasing twice changes nothing.
    """
    row = await store.case_for_erasure(connection, case_id)
    if row is None:
        return None
    if row["erased_at"] is not None:
        return Erasure(case_id, row["erasure_reason"], row["erased_at"], already=True)
    if row["status"] == "registered":
        await store.withdraw_case(connection, case_id)
        await record_event(connection, CaseWithdrawn(case_id=case_id, reason="identifying data erased"),
                           source=source)
    erased_at = await store.erase_case(connection, case_id, reason)
    await record_event(
        connection, CaseErased(case_id=case_id, reason=reason, erased_by=erased_by, erased_at=erased_at),
        source=source,
    )
    return Erasure(case_id, reason, erased_at, already=False)


async def erase_due_cases(
    connection: asyncpg.Connection, *, retention: timedelta, now: datetime, source: str, limit: int = 100
) -> list[str]:
    """Erase every case closed (withdrawn or placed) longer than ``retention`` ago; return their ids."""
    erased = []
    for case_id in await store.cases_due_for_erasure(connection, now - retention, limit):
        if await erase_case(connection, case_id, "retention_expired", erased_by=RETENTION_SWEEP, source=source):
            erased.append(case_id)
    return erased


async def read_identity(
    connection: asyncpg.Connection,
    case_id: str,
    *,
    reader: str,
    role: Literal["caseworker", "approver", "admin"],
    purpose: str,
    fields: Sequence[IdentityField] | None,
    master_key: str,
    source: str,
) -> tuple[dict[IdentityField, Any], datetime]:
    """Open a case's identity and record who read which fields and why, in the caller's transaction.

    The read is recorded (``IdentityRead``, through the outbox) before anything is returned: if the
    transaction does not commit, the caller gets nothing. Only the fields asked for (all, by default)
    that are on record are disclosed.
    """
    row = await store.sealed_identity(connection, case_id)
    if row is None:
        raise IdentityUnavailable("unknown", f"no case {case_id!r}")
    if row["erased_at"] is not None:
        raise IdentityUnavailable(
            "erased", f"the identifying data of case {case_id!r} was erased on {row['erased_at']:%Y-%m-%d}"
            " (its key is deleted) and can no longer be read by anyone"
        )
    if row["identity"] is not None and row["wrapped_key"] is None:
        raise IdentityUnavailable("erased", f"the key of case {case_id!r} is deleted; its identity cannot be read")
    if row["identity"] is None:
        raise IdentityUnavailable("none", f"case {case_id!r} has no identifying data on record")
    sealed = SealedIdentity.model_validate(json.loads(row["identity"]))
    identity = open_identity(sealed, unwrap_case_key(bytes(row["wrapped_key"]), case_id, master_key))
    wanted = tuple(dict.fromkeys(fields)) if fields else IDENTITY_FIELDS
    disclosed = {field: identity[field] for field in wanted if identity.get(field) is not None}
    if not disclosed:
        raise IdentityUnavailable("none", f"none of the fields asked for is on record for case {case_id!r}")
    read_at: datetime = await connection.fetchval("SELECT now()")
    await record_event(
        connection,
        IdentityRead(case_id=case_id, read_by=reader, role=role, fields=list(disclosed), purpose=purpose,
                     read_at=read_at),
        source=source,
    )
    return disclosed, read_at
