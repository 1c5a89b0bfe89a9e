"""Every door of the audit API, tried with no, expired and tampered tokens and with every role: only auditors
(and admins) read the log, except a case's timeline, which the staff who act on cases read as its history.
The audit rows of issue 4's access matrix (test_access_matrix.py covers intake,
consent, notifications and matching in one in-process centre; audit has its own small log here).

A log of 20 records under two signed checkpoints (10 and 20) is built once, so that every door has something
to answer and an allowed caller gets the endpoint's real success code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.audit.api import router
from services.audit.checkpoint import generate_private_key
from services.audit.checkpoints import seal_checkpoint
from services.audit.recorder import Recorder
from services.runtime.access import Role
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from tests.unit.audit.audit_scratch import centre_records, scratch_database, token_authority

pytestmark = pytest.mark.integration

ROLES: dict[str, tuple[Role, str | None]] = {
    "caseworker": ("caseworker", None),
    "approver": ("approver", None),
    "auditor": ("auditor", None),
    "partner": ("partner", "org-matrix-own"),
    "admin": ("admin", None),
}
CALLERS = ("no token", "expired", "tampered", *ROLES)
AUDITORS = {"auditor", "admin"}

# Every route of the audit router, with a request that succeeds on the log built below.
DOORS: dict[str, tuple[str, dict[str, object]]] = {
    "/audit/verify": ("/audit/verify", {}),
    "/audit/subjects/{subject}": ("/audit/subjects/case-0000001", {}),
    "/audit/counts": ("/audit/counts", {}),
    "/audit/cases/{case_id}/timeline": ("/audit/cases/case-0000001/timeline", {}),
    "/audit/checkpoints": ("/audit/checkpoints", {}),
    "/audit/public-key": ("/audit/public-key", {}),
    "/audit/proofs/inclusion": ("/audit/proofs/inclusion", {"seq": 3}),
    "/audit/proofs/consistency": ("/audit/proofs/consistency", {"old": 10, "new": 20}),
}


def authorization(caller: str) -> dict[str, str]:
    authority = token_authority()
    if caller == "no token":
        return {}
    if caller == "expired":
        token = authority.issue("auditor-x", "auditor", lifetime=timedelta(minutes=5),
                                now=datetime.now(UTC) - timedelta(hours=1))
    elif caller == "tampered":
        # A caseworker edits its own token into an auditor's; the signature no longer fits.
        header, payload, signature = authority.issue("caseworker-x", "caseworker").split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims.update(role="auditor")
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{header}.{forged}.{signature}"
    else:
        role, organisation_id = ROLES[caller]
        token = authority.issue(f"{caller}-x", role, organisation_id=organisation_id)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def audit_api() -> AsyncIterator[httpx.AsyncClient]:
    async with scratch_database("test_audit_access") as (_, pool):
        recorder = Recorder(["test"], writer_role="audit_writer")
        recorder.pool = pool
        await recorder.handle_batch(list(centre_records(2)))
        key = generate_private_key()
        async with pool.acquire() as connection:
            for _ in range(2):
                assert await seal_checkpoint(connection, key, max_records=10, writer_role="audit_writer")
        app = FastAPI()
        app.include_router(router)
        app.state.context = ServiceContext(settings=ServiceSettings(service_name="audit"), pool=pool,
                                           broker=None, relay=None, consumers=())  # type: ignore[arg-type]
        app.state.token_authority = token_authority()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit") as client:
            yield client


def test_the_matrix_names_every_door_of_the_audit_api() -> None:
    assert {route.path for route in router.routes} == set(DOORS)  # type: ignore[attr-defined]


def allowed(door: str) -> set[str]:
    if door == "/audit/cases/{case_id}/timeline":
        return AUDITORS | {"caseworker", "approver"}
    return AUDITORS


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("door", sorted(DOORS))
async def test_each_caller_reads_only_the_audit_doors_its_role_opens(audit_api: httpx.AsyncClient, door: str,
                                                                     caller: str) -> None:
    path, params = DOORS[door]
    response = await audit_api.get(path, params=params, headers=authorization(caller))
    if caller in allowed(door):
        assert response.status_code == 200, f"{caller} on {door}: {response.status_code} {response.text}"
    elif caller in ROLES:
        assert response.status_code == 403, f"{caller} on {door}: {response.status_code}"
        assert "auditor" in response.json()["detail"]
    else:
        assert response.status_code == 401, f"{caller} on {door}: {response.status_code}"
        assert response.headers.get("WWW-Authenticate") == "Bearer"


async def test_a_token_that_is_not_one_is_refused(audit_api: httpx.AsyncClient) -> None:
    response = await audit_api.get("/audit/verify", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
