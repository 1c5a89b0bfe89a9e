"""Consent over its life, through the real HTTP APIs and broker: withdrawal mid-flow, expiry, purposes.

Withdrawal takes effect at once (issue 4): without consent for matching, or once the case itself is
withdrawn, the case's proposals that nobody has approved yet are withdrawn by consent without waiting
for matching; an approved match stays for the beneficiary's and the host's final say.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from services.consent.app import CONSENT_EXPIRY, expire_consents
from tests.integration.in_process import (
    Centre,
    authorization,
    in_process_centre,  # noqa: F401 - the ``centre`` fixture
    matching_consent,
    until,
)


async def states_of(centre: Centre, proposal_ids: list[str]) -> list[str]:
    async with centre.consent_context.pool.acquire() as connection:
        rows = await connection.fetch("SELECT proposal_id, state FROM proposals WHERE proposal_id = ANY($1)",
                                      proposal_ids)
    by_id = {row["proposal_id"]: row["state"] for row in rows}
    return [by_id[proposal_id] for proposal_id in proposal_ids]


async def consents_of(centre: Centre, case_id: str) -> list[dict[str, Any]]:
    response = await centre.consent.get(f"/cases/{case_id}/consents", headers=authorization("auditor"))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def withdrawals_announced(centre: Centre, case_id: str) -> list[dict[str, Any]]:
    async with centre.consent_context.pool.acquire() as connection:
        values = await connection.fetch("SELECT value FROM outbox WHERE key = $1 ORDER BY id", case_id)
    events = [json.loads(row["value"]) for row in values]
    return [event for event in events if "withdrawn_by" in event]


async def test_withdrawing_matching_consent_mid_flow_withdraws_open_proposals_at_once(centre: Centre) -> None:
    case_id = await centre.case()
    proposed = await centre.proposal("proposed", case_id=case_id)
    reviewed = await centre.proposal("reviewed", case_id=case_id)
    approved = await centre.proposal("approved", case_id=case_id)
    [consent] = await consents_of(centre, case_id)

    response = await centre.consent.post(f"/consents/{consent['consent_id']}/withdrawal",
                                         headers=authorization("caseworker"))
    assert response.status_code == 200, response.text

    assert await states_of(centre, [proposed, reviewed, approved]) == ["withdrawn", "withdrawn", "approved"]
    [withdrawal] = await withdrawals_announced(centre, case_id)
    assert withdrawal["withdrawn_by"] == "caseworker-mx", "who withdrew is the token's subject"
    review = await centre.consent.post(f"/proposals/{reviewed}/decision", json={"decision": "approved"},
                                       headers=authorization("approver"))
    assert review.status_code == 409, "a withdrawn proposal cannot be decided"
    again = await centre.consent.post(f"/consents/{consent['consent_id']}/withdrawal",
                                      headers=authorization("caseworker"))
    assert again.status_code == 404 and "in force" in again.json()["detail"]


async def test_other_purposes_leave_the_proposals_alone(centre: Centre) -> None:
    case_id = await centre.case()
    proposed = await centre.proposal("proposed", case_id=case_id)
    share = {**matching_consent(), "purpose": "share_with_host"}
    recorded = await centre.as_admin(centre.consent, "POST", f"/cases/{case_id}/consents", share, "caseworker")
    await centre.as_admin(centre.consent, "POST", f"/consents/{recorded['consent_id']}/withdrawal", None, "caseworker")
    assert await states_of(centre, [proposed]) == ["proposed"]
    ended = {row["purpose"]: row["withdrawn_by"] for row in await consents_of(centre, case_id)}
    assert ended == {"matching": None, "share_with_host": "caseworker-mx"}


async def test_a_second_matching_consent_in_force_keeps_the_case_in_play(centre: Centre) -> None:
    case_id = await centre.case()
    proposed = await centre.proposal("proposed", case_id=case_id)
    [first] = await consents_of(centre, case_id)
    await centre.as_admin(centre.consent, "POST", f"/cases/{case_id}/consents", matching_consent(), "caseworker")
    await centre.as_admin(centre.consent, "POST", f"/consents/{first['consent_id']}/withdrawal", None, "caseworker")
    assert await states_of(centre, [proposed]) == ["proposed"]


async def test_consent_that_has_already_expired_is_refused(centre: Centre) -> None:
    case_id = await centre.case()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    response = await centre.consent.post(f"/cases/{case_id}/consents", headers=authorization("caseworker"),
                                         json={**matching_consent(), "expires_on": yesterday})
    assert response.status_code == 422 and "already passed" in response.json()["detail"]
    partner_share = await centre.consent.post(f"/cases/{case_id}/consents", headers=authorization("caseworker"),
                                              json={**matching_consent(), "purpose": "share_with_partner"})
    assert partner_share.status_code == 422 and "partner_id" in partner_share.json()["detail"]


async def test_expiry_ends_consent_like_a_withdrawal(centre: Centre) -> None:
    case_id = await centre.case()
    proposed = await centre.proposal("proposed", case_id=case_id)
    [consent] = await consents_of(centre, case_id)
    async with centre.consent_context.pool.acquire() as connection:
        # Time passes: the programme's expiry date for this consent is now behind us.
        await connection.execute("UPDATE consents SET expires_on = current_date - 1 WHERE consent_id = $1",
                                 consent["consent_id"])

    await expire_consents(centre.consent_context, once=True)

    [ended] = await consents_of(centre, case_id)
    assert ended["withdrawn_by"] == CONSENT_EXPIRY and ended["withdrawn_at"] is not None
    assert await states_of(centre, [proposed]) == ["withdrawn"]
    [announced] = await withdrawals_announced(centre, case_id)
    assert announced["withdrawn_by"] == CONSENT_EXPIRY and announced["purpose"] == "matching"


async def test_a_case_withdrawn_at_intake_leaves_the_review_queue_at_once(centre: Centre) -> None:
    case_id = await centre.case()
    proposed = await centre.proposal("proposed", case_id=case_id)
    reviewed = await centre.proposal("reviewed", case_id=case_id)
    await centre.as_admin(centre.intake, "POST", f"/cases/{case_id}/withdrawal", {"reason": "resettled elsewhere"},
                          "caseworker")

    async def gone() -> bool:
        return await states_of(centre, [proposed, reviewed]) == ["withdrawn", "withdrawn"]

    await until(gone, "consent to withdraw the case's open proposals")
    refused = await centre.consent.post(f"/cases/{case_id}/consents", json=matching_consent(),
                                        headers=authorization("caseworker"))
    assert refused.status_code == 404, "no new consent for a withdrawn case"
