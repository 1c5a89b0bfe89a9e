"""Intake's use cases, one function each, shared by the HTTP routes and the partner-submission consumer.

Each runs inside the caller's transaction: the state change and the events it announces commit together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from schemas.events import CapacityUpdated, CaseRegistered, CaseWithdrawn, HostRegistered
from services.intake import store
from services.intake.model import CapacityChange, CaseRegistration, HostRegistration
from services.runtime.outbox import record_event
from services.runtime.sealing import new_case_key, seal_identity, wrap_case_key


class CapacityRefused(Exception):
    """A capacity change that cannot be applied; the message says why."""

    def __init__(self, reason: str, *, unknown_host: bool = False) -> None:
        super().__init__(reason)
        self.unknown_host = unknown_host


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
        raise CapacityRefused(f"no host {host_id!r}", unknown_host=True)
    if change.version <= host["capacity_version"]:
        raise CapacityRefused(
            f"capacity version {change.version} is not newer than the current version {host['capacity_version']}"
        )
    await store.set_capacity(connection, host_id, change.version, change.capacity.model_dump(mode="json"))
    await record_event(
        connection,
        CapacityUpdated(host_id=host_id, pool_id=host["pool_id"], version=change.version, capacity=change.capacity),
        source=source,
    )
