"""A case's history from the audit log: over HTTP, from the CLI, in order, with its notifications, sealed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from schemas import topics
from schemas.events import CaseSubmitted
from services.audit.api import router
from services.audit.recorder import Recorder
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from tests.unit.audit.audit_scratch import (
    START,
    auditor_authorization,
    centre_records,
    consumer_record,
    held_back_run,
    journey,
    registered,
    scratch_database,
    token_authority,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CASE = "case-0000001"
STEPS = ["submitted", "registered", "consent", "held back", "proposed", "reviewed", "decided", "response", "response",
         "placed", "notification", "notification"]


def submission(organisation_id: str) -> CaseSubmitted:
    profile = registered(CASE).profile
    return CaseSubmitted(organisation_id=organisation_id, external_ref=f"ref-{CASE}", pool_id="pool-north",
                         profile=profile)


@pytest.fixture(scope="module")
async def log() -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    async with scratch_database("test_audit_timeline") as (url, pool):
        recorder = Recorder(["test"], writer_role="audit_writer")
        recorder.pool = pool
        # The same partner reference from another partner is another case.
        submitted = [consumer_record(submission(organisation), topic=topics.PARTNER_SUBMISSIONS, partition=0,
                                     offset=offset, time=START - timedelta(seconds=1))
                     for offset, organisation in enumerate(("org-desk", "org-other"))]
        journeys = list(centre_records(3))
        consented = len(journey(CASE)) + 2  # the first case's whole journey, then CASE's registration and consent
        # after its consent, a run held CASE back (and another run held back another case only)
        held = [consumer_record(held_back_run(f"run-held-{n}", cases), topic=topics.SOLVER_RUNS, partition=0,
                                offset=n, time=START + timedelta(seconds=1, milliseconds=2))
                for n, cases in enumerate(([CASE, "case-0000002"], ["case-0000002"]))]
        for batch in ([*submitted, *journeys[:consented]], held, journeys[consented:]):
            await recorder.handle_batch(batch)
        yield url, pool


async def test_the_timeline_over_http_tells_the_case_in_order(log: tuple[str, asyncpg.Pool]) -> None:
    app = FastAPI()
    app.include_router(router)
    app.state.context = ServiceContext(settings=ServiceSettings(service_name="audit"), pool=log[1],
                                       broker=None, relay=None, consumers=())  # type: ignore[arg-type]
    app.state.token_authority = token_authority()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit",
                                 headers=auditor_authorization()) as client:
        entries = (await client.get(f"/audit/cases/{CASE}/timeline")).json()
        unknown = (await client.get("/audit/cases/case-nobody/timeline")).json()
    assert [entry["step"] for entry in entries] == STEPS
    assert entries[0]["actor"] == "org-desk", "only the submission of the partner that registered the case"
    assert [entry["seq"] for entry in entries] == sorted(entry["seq"] for entry in entries)
    decided = next(entry for entry in entries if entry["step"] == "decided")
    assert decided["summary"].startswith("approved by approver-b (reviewed by caseworker-a)")
    assert decided["actor"] == "approver-b"
    proposed = next(entry for entry in entries if entry["step"] == "proposed")
    assert any(line.startswith("contributions: beneficiary_preference +0.400") for line in proposed["details"])
    assert entries[-1]["summary"] == f"note-{CASE} delivered via log"
    assert unknown == []


async def test_the_cli_prints_it_for_a_person_with_personal_data_sealed(log: tuple[str, asyncpg.Pool]) -> None:
    async def timeline(case_id: str, *options: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "services.audit.cli", "--database-url", log[0], "timeline", case_id,
                   *options]
        return await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True,
                                       timeout=60)

    text = await timeline(CASE)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"Case {CASE}: 12 records in the audit log")
    assert "identity sealed under key case-0000001" in text.stdout
    assert "household of 3 (2 adults, 1 child), urgency urgent, 1 medical need(s) recorded" in text.stdout
    identity = registered(CASE).identity
    assert identity is not None
    for secret in (identity.ciphertext, identity.nonce, "dialysis"):
        assert secret not in text.stdout
    assert "beneficiary accepted host host-1, recorded by caseworker-a" in text.stdout
    as_json = json.loads((await timeline(CASE, "--json")).stdout)
    assert [entry["step"] for entry in as_json] == STEPS
    assert (await timeline("case-nobody")).returncode == 1
