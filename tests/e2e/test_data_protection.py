"""Data protection over the real broker and PostgreSQL, services as processes: erasure, recorded identity
reads, retention, no consent means never proposed, a decline is re-matched elsewhere, and no personal data
in any service's log.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from schemas.events import SealedIdentity
from services.intake.retention import sweep_once
from services.runtime.sealing import open_identity, unwrap_case_key, wrapping_key
from services.runtime.settings import ServiceSettings
from tests.e2e.centre import Centre, eventually

pytestmark = pytest.mark.integration

SERVICE_SCHEMAS = ("intake", "matching", "consent", "audit", "notifications")


def person(label: str) -> dict[str, Any]:
    """Identifying fields no other test uses, so finding one anywhere can only mean a leak."""
    tag = uuid.uuid4().hex[:10]
    born = date(1950, 1, 1) + timedelta(days=random.randrange(50 * 365))
    return {"full_name": f"{label} Testperson {tag}", "date_of_birth": born.isoformat(),
            "document_number": f"DOC{tag.upper()}", "phone": f"+41 79 {random.randrange(10**6, 10**7)}",
            "email": f"person.{tag}@example.org"}


async def tables_holding(centre: Centre, values: set[str]) -> dict[str, list[str]]:
    """Which table of any service's schema holds which of ``values`` in clear."""
    connection = await centre.database()
    try:
        tables = await connection.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'", list(SERVICE_SCHEMAS))
        found: dict[str, list[str]] = {}
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            # A row as text shows bytea as hex: the outbox's event values are decoded to be read as well.
            row_text = "convert_from(t.value, 'UTF8')" if table["table_name"] == "outbox" else "t::text"
            text = "\n".join(await connection.fetchval(
                f"SELECT coalesce(array_agg({row_text}), '{{}}') FROM {name} t"))
            hits = sorted(value for value in values if value in text)
            if hits:
                found[name] = hits
        return found
    finally:
        await connection.close()


async def records_until(centre: Centre, subject: str, event_type: str) -> list[dict[str, Any]]:
    async def arrived() -> list[dict[str, Any]] | None:
        records = await centre.audit_of(subject)
        return records if any(record["event_type"] == event_type for record in records) else None

    return await eventually(arrived, what=f"{event_type} about {subject} in the audit log")


def no_key_opens(sealed: SealedIdentity, keys: list[tuple[str, bytes]], master_key: str) -> bool:
    """Whether every key the system still holds (each case key, and the master's wrapping key) fails."""
    candidates = [unwrap_case_key(wrapped, case_id, master_key) for case_id, wrapped in keys]
    candidates.append(wrapping_key(master_key))
    for key in candidates:
        try:
            open_identity(sealed, key)
        except InvalidTag:
            continue
        return False
    return True


async def test_every_identity_read_is_on_the_audit_stream_with_its_reader(centre: Centre) -> None:
    identity = person("Reader")
    case_id = await centre.register_case(f"reads-{uuid.uuid4().hex[:8]}", consent=False, identity=identity)

    read = await centre.read_identity(case_id, token=centre.approver, purpose="confirm the household's papers",
                                      fields=["full_name", "document_number"])
    assert read.status_code == 200, read.text
    disclosure = read.json()
    assert disclosure["fields"] == {key: identity[key] for key in ("full_name", "document_number")}
    assert disclosure["read_by"] == "approver-b"

    refused = await centre.read_identity(case_id, token=centre.auditor)
    assert refused.status_code == 403, "an auditor reads who read what, never the identity itself"
    partner = await centre.read_identity(case_id, token=centre.partner)
    assert partner.status_code == 403
    missing_purpose = await centre.http.get(f"{centre.urls['intake']}/cases/{case_id}/identity",
                                            headers=centre.bearer(centre.caseworker))
    assert missing_purpose.status_code == 422, "a read without a purpose is refused"

    records = await records_until(centre, case_id, "centre.case.identity-read.v1")
    reads = [record for record in records if record["event_type"] == "centre.case.identity-read.v1"]
    assert len(reads) == 1, "refused reads record nothing; the one read is recorded once"
    payload = reads[0]["payload"]
    assert payload["read_by"] == "approver-b" and payload["role"] == "approver"
    assert payload["fields"] == ["full_name", "document_number"]
    assert payload["purpose"] == "confirm the household's papers"
    assert not set(identity.values()) & {str(value) for value in payload.values()}, "the record names no value"


async def test_erasure_leaves_the_identity_unreadable_everywhere_and_the_chain_verifiable(centre: Centre) -> None:
    pool = f"erasure-{uuid.uuid4().hex[:8]}"
    await centre.register_host(pool, people=4)
    identity = person("Erasure")
    case_id = await centre.register_case(pool, identity=identity)
    proposal = await centre.proposal_for(case_id)

    read = await centre.read_identity(case_id, token=centre.caseworker, purpose="call about the offer")
    assert read.status_code == 200 and read.json()["fields"] == identity, read.text

    receipt = await centre.post("intake", f"/cases/{case_id}/erasure", {"reason": "person_request"},
                                token=centre.caseworker, expect=202)
    assert receipt["already_erased"] is False
    again = await centre.post("intake", f"/cases/{case_id}/erasure", {"reason": "person_request"},
                              token=centre.caseworker, expect=200)
    assert again["already_erased"] is True and again["erased_at"] == receipt["erased_at"]

    gone = await centre.read_identity(case_id, token=centre.caseworker, purpose="call about the offer")
    assert gone.status_code == 410, gone.text
    assert "erased" in gone.json()["detail"]
    case = await centre.get("intake", f"/cases/{case_id}")
    assert case["erased_at"] and case["status"] == "withdrawn"

    # The audit stream keeps every record, the sealed identity included, and says who erased it and why.
    records = await records_until(centre, case_id, "centre.case.erased.v1")
    types = [record["event_type"] for record in records]
    assert types[0] == "centre.case.registered.v1"
    assert {"centre.case.identity-read.v1", "centre.case.withdrawn.v1", "centre.case.erased.v1"} <= set(types)
    erased = next(record for record in records if record["event_type"] == "centre.case.erased.v1")
    assert erased["payload"]["erased_by"] == "caseworker-a" and erased["payload"]["reason"] == "person_request"
    timeline = await centre.get("audit", f"/audit/cases/{case_id}/timeline")
    steps = {entry["step"]: entry for entry in timeline}
    assert steps["identity read"]["actor"] == "caseworker-a" and steps["erased"]["actor"] == "caseworker-a"
    sealed = SealedIdentity.model_validate(records[0]["payload"]["identity"])
    assert sealed.ciphertext, "the sealed blob stays in the audit record"

    master_key = ServiceSettings().master_key.get_secret_value()
    connection = await centre.database()
    try:
        keys = [(row["case_id"], bytes(row["wrapped_key"]))
                for row in await connection.fetch("SELECT case_id, wrapped_key FROM intake.case_keys")]
        intake_copy = await connection.fetchval("SELECT identity FROM intake.cases WHERE case_id = $1", case_id)
    finally:
        await connection.close()
    assert case_id not in {owner for owner, _ in keys}, "the case's key is deleted"
    assert keys, "other cases keep their keys: erasure is per case"
    assert no_key_opens(sealed, keys, master_key), "no key the centre still holds opens the erased identity"
    assert intake_copy is None, "intake drops its own sealed copy too"

    # Matching drops the case from its pool and withdraws the proposal; notifications withhold and forget.
    async def settled() -> bool:
        connection = await centre.database()
        try:
            withdrawn = await connection.fetchval("SELECT withdrawn FROM matching.cases WHERE case_id = $1", case_id)
            status = await connection.fetchval("SELECT status FROM matching.proposals WHERE proposal_id = $1",
                                               proposal["proposal_id"])
            forgotten = await connection.fetchval(
                "SELECT erased_at IS NOT NULL FROM notifications.cases WHERE case_id = $1", case_id)
            waiting = await connection.fetchval(
                "SELECT count(*) FROM notifications.notifications WHERE case_id = $1"
                " AND status IN ('requested', 'dead')", case_id)
        finally:
            await connection.close()
        return bool(withdrawn and status == "withdrawn" and forgotten and waiting == 0)

    await eventually(settled, what="matching and notifications to act on the erasure")
    values = {str(value) for value in identity.values()}
    assert await tables_holding(centre, values) == {}, "no service holds the identity in clear"
    assert centre.logs_holding(values) == {}, "no log holds the identity"
    # The scans would have found it: the case's id (not personal) is in every service's tables and outbox.
    holding_the_id = await tables_holding(centre, {case_id})
    assert {'"intake"."outbox"', '"audit"."records"', '"notifications"."cases"'} <= set(holding_the_id)
    assert centre.logs_holding({case_id}), "the logs name cases by id"

    verdict = await centre.get("audit", "/audit/verify")
    assert verdict["ok"], verdict


async def test_the_retention_sweep_erases_cases_closed_longer_than_the_period(centre: Centre) -> None:
    pool = f"retention-{uuid.uuid4().hex[:8]}"
    old = await centre.register_case(pool, consent=False, identity=person("Retention"))
    recent = await centre.register_case(pool, consent=False, identity=person("Recent"))
    for case_id in (old, recent):
        await centre.post("intake", f"/cases/{case_id}/withdrawal", {"reason": "moved on"}, token=centre.caseworker)
    connection = await centre.database()
    try:
        await connection.execute("UPDATE intake.cases SET closed_at = now() - interval '40 days' WHERE case_id = $1",
                                 old)
    finally:
        await connection.close()

    erased = await sweep_once(centre.database_url, timedelta(days=30))
    assert old in erased and recent not in erased
    assert await sweep_once(centre.database_url, timedelta(days=30)) == [], "a second sweep erases nothing twice"

    gone = await centre.read_identity(old, token=centre.caseworker)
    assert gone.status_code == 410, gone.text
    kept = await centre.read_identity(recent, token=centre.caseworker)
    assert kept.status_code == 200, kept.text
    records = await records_until(centre, old, "centre.case.erased.v1")
    erasure = next(record for record in records if record["event_type"] == "centre.case.erased.v1")
    assert erasure["payload"]["reason"] == "retention_expired"
    assert erasure["payload"]["erased_by"] == "retention-sweep"


async def test_a_placement_starts_the_retention_period(centre: Centre) -> None:
    pool = f"placed-{uuid.uuid4().hex[:8]}"
    await centre.register_host(pool, people=4)
    case_id = await centre.register_case(pool, identity=person("Placed"))
    proposal_id = (await centre.proposal_for(case_id))["proposal_id"]
    await centre.post("consent", f"/proposals/{proposal_id}/review", {"recommendation": "approve"},
                      token=centre.caseworker)
    await centre.post("consent", f"/proposals/{proposal_id}/decision", {"decision": "approved"}, token=centre.approver)
    await centre.post("consent", f"/proposals/{proposal_id}/responses", {"party": "beneficiary", "accepted": True},
                      token=centre.caseworker)
    await centre.post("consent", f"/proposals/{proposal_id}/responses", {"party": "host", "accepted": True},
                      token=centre.partner)

    async def closed() -> bool:
        case = await centre.get("intake", f"/cases/{case_id}", token=centre.caseworker)
        return bool(case["status"] == "placed")

    await eventually(closed, what="intake to learn of the placement")
    assert case_id not in await sweep_once(centre.database_url, timedelta(days=1), dry_run=True), "not due yet"
    later = datetime.now(UTC) + timedelta(days=2)
    assert case_id in await sweep_once(centre.database_url, timedelta(days=1), now=later, dry_run=True)
    assert (await centre.read_identity(case_id, token=centre.caseworker)).status_code == 200

    # A placed household is erased, never withdrawn: the stream must not say it left the flow.
    await centre.post("intake", f"/cases/{case_id}/erasure", {"reason": "person_request"}, token=centre.caseworker)
    records = await records_until(centre, case_id, "centre.case.erased.v1")
    assert "centre.case.withdrawn.v1" not in {record["event_type"] for record in records}
    changed = await centre.put("intake", f"/cases/{case_id}/profile", {"version": 2, "profile": {
        "members": [{"age_band": "30-49", "sex": "female"}]}}, token=centre.caseworker)
    assert changed.status_code == 409 and "placed" in changed.json()["detail"]


async def test_a_case_without_consent_for_matching_is_never_proposed(centre: Centre) -> None:
    pool = f"no-consent-{uuid.uuid4().hex[:8]}"
    await centre.register_host(pool, people=8)
    unconsented = await centre.register_case(pool, consent=False)
    consented = await centre.register_case(pool, consent=False)

    async def matching_knows_both() -> bool:
        connection = await centre.database()
        try:
            known = await connection.fetchval(
                "SELECT count(*) FROM matching.cases WHERE case_id = ANY($1::text[])", [unconsented, consented])
        finally:
            await connection.close()
        return bool(known == 2)

    # Both cases are in matching's view of the pool before the one consent arrives.
    await eventually(matching_knows_both, what="matching to know both cases")
    await centre.consent_to_matching(consented)
    await centre.proposal_for(consented)

    async def run_recorded() -> list[dict[str, Any]] | None:
        runs = [record["payload"] for record in await centre.audit_of(pool)
                if record["event_type"] == "centre.match.solver-run-recorded.v3"]
        return runs if any(run["proposals"] for run in runs) else None

    runs = await eventually(run_recorded, what="the solver run that made the proposal in the audit log")
    # Matching knew both cases before the consent arrived: had the unconsented one been in the pool, the run
    # that proposed would have counted two cases (runs before the consent, on the host alone, count none).
    assert all(run["inputs"]["cases"] <= 1 for run in runs), "the unconsented case was never in the pool"
    assert [run["inputs"]["cases"] for run in runs if run["proposals"]] == [1]

    connection = await centre.database()
    try:
        proposed = await connection.fetchval("SELECT count(*) FROM matching.proposals WHERE case_id = $1", unconsented)
    finally:
        await connection.close()
    assert proposed == 0
    assert not [p for p in await centre.proposals("proposed") if p["case_id"] == unconsented]


async def decline(centre: Centre, proposal_id: str, party: str) -> None:
    await centre.post("consent", f"/proposals/{proposal_id}/review", {"recommendation": "approve"},
                      token=centre.caseworker)
    await centre.post("consent", f"/proposals/{proposal_id}/decision", {"decision": "approved"},
                      token=centre.approver)
    answer = await centre.post("consent", f"/proposals/{proposal_id}/responses",
                               {"party": party, "accepted": False, "reason": "not the right place"},
                               token=centre.caseworker if party == "beneficiary" else centre.partner)
    assert answer["state"] == "declined", answer


async def test_a_declined_match_is_rematched_elsewhere_and_never_proposed_again(centre: Centre) -> None:
    pool = f"decline-{uuid.uuid4().hex[:8]}"
    hosts = {await centre.register_host(pool, people=4) for _ in range(2)}
    case_id = await centre.register_case(pool)

    async def new_proposal(excluded: set[str]) -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            return next((p for p in await centre.proposals("proposed")
                         if p["case_id"] == case_id and p["proposal_id"] not in excluded), None)

        return await eventually(find, what=f"a new proposal for {case_id}")

    first = await new_proposal(set())
    await decline(centre, first["proposal_id"], "beneficiary")
    second = await new_proposal({first["proposal_id"]})
    assert second["host_id"] != first["host_id"], "re-matched elsewhere"
    assert {first["host_id"], second["host_id"]} == hosts

    # The host declines too; a third host arrives, and the case goes there, never back to either.
    await decline(centre, second["proposal_id"], "host")
    third_host = await centre.register_host(pool, people=4)
    third = await new_proposal({first["proposal_id"], second["proposal_id"]})
    assert third["host_id"] == third_host

    connection = await centre.database()
    try:
        pairs = await connection.fetch(
            "SELECT host_id, count(*) AS times FROM matching.proposals WHERE case_id = $1 GROUP BY host_id", case_id)
        forbidden = await connection.fetch("SELECT host_id FROM matching.forbidden_pairs WHERE case_id = $1", case_id)
    finally:
        await connection.close()
    assert {row["host_id"]: row["times"] for row in pairs} == {first["host_id"]: 1, second["host_id"]: 1,
                                                               third_host: 1}
    assert {row["host_id"] for row in forbidden} == hosts


async def test_no_service_log_holds_the_test_cases_personal_data(centre: Centre) -> None:
    # Runs after the flows above (and whatever ran before in the session): registration, identity reads,
    # erasure and the retention sweep have all been through every service by now.
    assert centre.personal_values, "the flows above registered identities"
    assert centre.logs_holding(centre.personal_values) == {}
