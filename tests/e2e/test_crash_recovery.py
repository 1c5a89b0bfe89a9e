"""Every service killed with SIGKILL mid-flow and started again: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import signal
import uuid

import httpx
import pytest

from tests.e2e.centre import Centre, eventually

pytestmark = pytest.mark.integration

CASES = 300
KILLS = {60: "matching", 120: "audit", 160: "notifications", 200: "consent", 240: "intake"}
SERVICE_SCHEMAS = ("intake", "consent", "matching", "notifications")


async def with_retries(call, *, attempts: int = 100):  # type: ignore[no-untyped-def]
    """Call an HTTP door that may be down for a restart; the requests are idempotent, so retrying is safe."""
    for attempt in range(attempts):
        try:
            return await call()
        except (httpx.TransportError, AssertionError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)


async def test_sigkill_of_each_service_mid_flow_loses_and_doubles_nothing(centre: Centre) -> None:
    pool = f"crash-{uuid.uuid4().hex[:8]}"
    for _ in range(30):
        await centre.register_host(pool, people=20, school_places=0)

    case_ids: list[str] = []
    for index in range(CASES):
        if index in KILLS:
            await centre.kill_and_restart(KILLS[index], signal.SIGKILL)
        case_id = await with_retries(lambda index=index: centre.register_case(
            pool, external_ref=f"{pool}-case-{index}", consent=False))
        await with_retries(lambda case_id=case_id: centre.consent_to_matching(case_id))
        case_ids.append(case_id)
    assert len(set(case_ids)) == CASES

    mine = set(case_ids)

    async def everyone_placed() -> bool:
        for proposal in await with_retries(lambda: centre.proposals("proposed")):
            if proposal["case_id"] in mine:
                await centre.post("consent", f"/proposals/{proposal['proposal_id']}/review",
                                  {"recommendation": "approve"}, token=centre.caseworker, expect=(200, 409))
        for proposal in await centre.proposals("reviewed"):
            if proposal["case_id"] in mine:
                await centre.post("consent", f"/proposals/{proposal['proposal_id']}/decision",
                                  {"decision": "approved"}, token=centre.approver, expect=(200, 409))
        for proposal in await centre.proposals("approved"):
            if proposal["case_id"] in mine:
                for party in ("beneficiary", "host"):
                    if proposal[f"{party}_accepted"] is None:
                        answering = centre.caseworker if party == "beneficiary" else centre.partner
                        await centre.post("consent", f"/proposals/{proposal['proposal_id']}/responses",
                                          {"party": party, "accepted": True}, token=answering, expect=(200, 409))
        placed = await centre.proposals("placed")
        return sum(1 for proposal in placed if proposal["case_id"] in mine) == CASES

    await eventually(everyone_placed, within=240, interval=1.0, what=f"all {CASES} cases placed")

    connection = await centre.database()
    try:
        async def quiet() -> bool:
            unpublished = 0
            for schema in (*SERVICE_SCHEMAS, "audit"):
                unpublished += await connection.fetchval(
                    f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")
            pending = await connection.fetchval(
                "SELECT count(*) FROM notifications.notifications WHERE status <> 'delivered'")
            published = await connection.fetchval(
                "SELECT count(*) FROM (" + " UNION ALL ".join(
                    f"SELECT event_id FROM {schema}.outbox" for schema in SERVICE_SCHEMAS) + ") AS events")
            audited = await connection.fetchval(
                "SELECT count(*) FROM audit.records WHERE source LIKE '/services/%' AND source <> '/services/audit'")
            # Services keep working beside this test (retries, sweeps), so "nothing missing" is part of the
            # condition rather than a check after it: an event made in between would be missing for a moment.
            missing = await connection.fetchval(
                "SELECT count(*) FROM (" + " UNION ALL ".join(
                    f"SELECT event_id FROM {schema}.outbox" for schema in SERVICE_SCHEMAS)
                + ") AS published WHERE event_id NOT IN (SELECT event_id FROM audit.records)")
            # Notifications, like audit, consumes on its own time: its rows for the last proposals and placements
            # may not exist yet even when every row that exists has been delivered.
            unnotified = await connection.fetchval(
                "SELECT count(*) FROM (SELECT event_id, headers FROM matching.outbox"
                " UNION ALL SELECT event_id, headers FROM consent.outbox) AS published"
                " WHERE headers->>'ce_type' IN ('centre.match.proposed.v1', 'centre.placement.confirmed.v1')"
                " AND event_id NOT IN (SELECT event_id FROM notifications.inbox)")
            return (unpublished == 0 and pending == 0 and missing == 0 and unnotified == 0
                    and published == audited)

        await eventually(quiet, within=120, interval=0.5,
                         what="every published event audited, none missing and none extra")

        placements = await connection.fetch(
            "SELECT subject, count(*) AS n FROM audit.records WHERE event_type = 'centre.placement.confirmed.v1'"
            " AND subject = ANY($1::text[]) GROUP BY subject", case_ids)
        assert len(placements) == CASES and all(row["n"] == 1 for row in placements), "one placement per case"

        # Matching follows consent's decisions on its own time: the audit being complete does not mean that
        # matching has applied the last placements yet.
        async def matching_knows_every_placement() -> bool:
            live = await connection.fetchval(
                "SELECT count(*) FROM matching.proposals WHERE case_id = ANY($1::text[]) AND status = 'placed'",
                case_ids)
            return bool(live == CASES)

        await eventually(matching_knows_every_placement, within=60, interval=0.5,
                         what=f"matching to hold all {CASES} placements")
        proposed = await connection.fetchval(
            "SELECT count(*) FROM audit.records WHERE event_type = 'centre.match.proposed.v1'"
            " AND subject = ANY($1::text[])", case_ids)
        made = await connection.fetchval("SELECT count(*) FROM matching.proposals WHERE case_id = ANY($1::text[])",
                                         case_ids)
        assert proposed == made, "every proposal made was announced once"

        notes = await connection.fetch(
            "SELECT rule, count(*) AS n FROM notifications.notifications WHERE case_id = ANY($1::text[])"
            " GROUP BY rule", case_ids)
        by_rule = {row["rule"]: row["n"] for row in notes}
        assert by_rule["placement_confirmed"] == 2 * CASES
        assert by_rule["proposal_to_review"] == proposed
        deliveries = await connection.fetchval(
            "SELECT count(*) FROM notifications.outbox WHERE headers->>'ce_type' = 'centre.notification.delivered.v1'")
        delivered = await connection.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE status = 'delivered'")
        assert deliveries == delivered, "one delivery event per notification"
    finally:
        await connection.close()
    verdict = await centre.get("audit", "/audit/verify")
    assert verdict["ok"], verdict
