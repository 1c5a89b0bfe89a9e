"""Every endpoint of intake, consent, notifications and matching, tried with every role and with no,
expired, tampered and other-organisation tokens: the exact allow/deny matrix of issue 4.

The services run in this process over a real broker and PostgreSQL (``tests/integration/in_process.py``
says why that rather than a bare app mounting the routers). Each request is made against a target of its
own in the state the endpoint needs (a fresh case, a proposal already reviewed, ...), so a denial can only
come from access control and an allowance shows as the endpoint's real success code.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from tests.integration.in_process import (
    AUTHORITY,
    CALLERS,
    MATRIX_KEY,
    OTHER_ORGANISATION,
    OWN_ORGANISATION,
    POOL,
    Centre,
    authorization,
    host_registration,
    in_process_centre,  # noqa: F401 - the ``centre`` fixture
    matching_consent,
)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint, how to prepare a target for it, and the request to make against that target."""

    service: str
    method: str
    path: str
    success: int
    allowed: frozenset[str]
    prepare: Callable[[Centre], Awaitable[tuple[str, Any]]]

    def __str__(self) -> str:
        return f"{self.method} {self.service}{self.path}"


def endpoint(service: str, method: str, path: str, success: int, allowed: set[str],
             prepare: Callable[[Centre], Awaitable[tuple[str, Any]]]) -> Endpoint:
    return Endpoint(service, method, path, success, frozenset(allowed), prepare)


async def nothing(_: Centre) -> tuple[str, Any]:
    return "", None


async def new_case(_: Centre) -> tuple[str, Any]:
    body = {"organisation_id": "org-matrix-desk", "pool_id": POOL,
            "profile": {"members": [{"age_band": "18-29", "sex": "male", "relationship": "applicant"}]}}
    return "/cases", body


async def existing_case(centre: Centre) -> tuple[str, Any]:
    return f"/cases/{await centre.case()}", None


async def identified_case(centre: Centre) -> str:
    body = {"organisation_id": "org-matrix-desk", "pool_id": POOL,
            "profile": {"members": [{"age_band": "30-49", "sex": "female", "relationship": "applicant"}]},
            "identity": {"full_name": "Matrix Person", "email": "matrix@example.org"}}
    return str((await centre.as_admin(centre.intake, "POST", "/cases", body))["id"])


async def case_identity(centre: Centre) -> tuple[str, Any]:
    return f"/cases/{await identified_case(centre)}/identity?purpose=access+matrix", None


async def case_to_erase(centre: Centre) -> tuple[str, Any]:
    return f"/cases/{await identified_case(centre)}/erasure", {"reason": "person_request"}


async def case_to_update(centre: Centre) -> tuple[str, Any]:
    profile = {"members": [{"age_band": "18-29", "sex": "male", "relationship": "applicant"},
                           {"age_band": "0-4", "sex": "female", "relationship": "child"}]}
    return f"/cases/{await centre.case()}/profile", {"version": 2, "profile": profile}


async def case_to_withdraw(centre: Centre) -> tuple[str, Any]:
    return f"/cases/{await centre.case()}/withdrawal", {"reason": "moved on"}


async def own_host(_: Centre) -> tuple[str, Any]:
    return "/hosts", host_registration(OWN_ORGANISATION)


async def existing_own_host(centre: Centre) -> tuple[str, Any]:
    return f"/hosts/{await centre.host()}", None


async def own_host_capacity(centre: Centre) -> tuple[str, Any]:
    return f"/hosts/{await centre.host()}/capacity", {"version": next(centre.versions),
                                                       "capacity": {"people": 3, "beds": 3}}


async def own_host_profile(centre: Centre) -> tuple[str, Any]:
    # A fresh host each time: its profile is at version 1, so version 2 is the next one.
    return f"/hosts/{await centre.host()}/profile", {"version": 2, "profile": {
        "host_type": "sponsor_group", "place": "matrix-town", "medical_services": ["dialysis"]}}


async def consent_for_case(centre: Centre) -> tuple[str, Any]:
    return f"/cases/{await centre.case()}/consents", matching_consent()


async def consent_to_withdraw(centre: Centre) -> tuple[str, Any]:
    return f"/consents/{await centre.consent_record()}/withdrawal", None


async def consents_of_case(centre: Centre) -> tuple[str, Any]:
    return f"/cases/{await centre.case()}/consents", None


async def proposal_queue(_: Centre) -> tuple[str, Any]:
    return "/proposals?state=proposed", None


async def proposal_to_review(centre: Centre) -> tuple[str, Any]:
    return f"/proposals/{await centre.proposal('proposed')}/review", {"recommendation": "approve"}


async def proposal_to_decide(centre: Centre) -> tuple[str, Any]:
    return f"/proposals/{await centre.proposal('reviewed')}/decision", {"decision": "approved"}


async def beneficiary_answer(centre: Centre) -> tuple[str, Any]:
    proposal_id = await centre.proposal("approved")
    return f"/proposals/{proposal_id}/responses", {"party": "beneficiary", "accepted": True}


async def host_answer(centre: Centre) -> tuple[str, Any]:
    proposal_id = await centre.proposal("approved")
    return f"/proposals/{proposal_id}/responses", {"party": "host", "accepted": True}


# --- Notifications and matching: their consumers do not run here, so targets are put in their tables. ---


async def notifications_of_case(_: Centre) -> tuple[str, Any]:
    return "/notifications?case_id=case-matrix", None


async def dead_letters(_: Centre) -> tuple[str, Any]:
    return "/deliveries?status=dead", None


async def dead_delivery(centre: Centre) -> tuple[str, Any]:
    notification_id = str(uuid.uuid4())
    async with centre.notifications_context.pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO notifications (id, rule, recipient_kind, recipient_ref, channel, language, cause_event_id,"
            " status) VALUES ($1, 'proposal_to_review', 'caseworker', 'desk:pool-matrix', 'log', 'en', $1, 'dead')",
            notification_id)
    return f"/deliveries/{notification_id}/resend", None


async def own_subscription_request(_: Centre) -> tuple[str, Any]:
    return "/subscriptions", {"organisation_id": OWN_ORGANISATION, "event_types": ["centre.match.proposed.v1"],
                              "callback_url": "http://partner.invalid/hook", "key_id": MATRIX_KEY}


async def subscription_list(_: Centre) -> tuple[str, Any]:
    return "/subscriptions", None


async def own_subscription(centre: Centre) -> tuple[str, Any]:
    subscription_id = f"subscription-{uuid.uuid4()}"
    async with centre.notifications_context.pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO subscriptions (subscription_id, organisation_id, event_types, callback_url, key_id)"
            " VALUES ($1, $2, $3, 'http://partner.invalid/hook', $4)",
            subscription_id, OWN_ORGANISATION, ["centre.match.proposed.v1"], MATRIX_KEY)
    return f"/subscriptions/{subscription_id}", None


async def known_own_host(centre: Centre, *, with_contact: bool = False) -> str:
    host_id = f"host-matrix-{uuid.uuid4().hex[:12]}"
    async with centre.notifications_context.pool.acquire() as connection:
        await connection.execute("INSERT INTO hosts (host_id, pool_id, organisation_id) VALUES ($1, $2, $3)",
                                 host_id, POOL, OWN_ORGANISATION)
        if with_contact:
            await connection.execute("INSERT INTO contacts (recipient_kind, recipient_ref, address)"
                                     " VALUES ('host', $1, 'host@partner.example')", host_id)
    return host_id


async def own_host_contact(centre: Centre) -> tuple[str, Any]:
    return f"/contacts/host/{await known_own_host(centre)}", {"address": "host@partner.example", "language": "nl"}


async def own_host_contact_to_delete(centre: Centre) -> tuple[str, Any]:
    return f"/contacts/host/{await known_own_host(centre, with_contact=True)}", None


async def solver_runs(_: Centre) -> tuple[str, Any]:
    return f"/pools/runs?pool_id={POOL}", None


EVERYONE = set(CALLERS)
CASE_READERS = {"caseworker", "approver", "auditor", "admin"}
# Identifying fields in clear: the people who act on the case, never the auditor (who reads the record of
# each read instead) nor a partner.
IDENTITY_READERS = {"caseworker", "approver", "admin"}

MATRIX = [
    endpoint("intake", "GET", "/health", 200, EVERYONE, nothing),
    endpoint("intake", "POST", "/cases", 201, {"caseworker", "admin"}, new_case),
    endpoint("intake", "GET", "/cases/{id}", 200, CASE_READERS, existing_case),
    endpoint("intake", "GET", "/cases/{id}/identity", 200, IDENTITY_READERS, case_identity),
    endpoint("intake", "POST", "/cases/{id}/erasure", 202, {"caseworker", "admin"}, case_to_erase),
    endpoint("intake", "PUT", "/cases/{id}/profile", 200, {"caseworker", "admin"}, case_to_update),
    endpoint("intake", "POST", "/cases/{id}/withdrawal", 202, {"caseworker", "admin"}, case_to_withdraw),
    endpoint("intake", "POST", "/hosts", 201, {"partner", "admin"}, own_host),
    endpoint("intake", "GET", "/hosts/{id}", 200, CASE_READERS | {"partner"}, existing_own_host),
    endpoint("intake", "PUT", "/hosts/{id}/capacity", 200, {"partner", "admin"}, own_host_capacity),
    endpoint("intake", "PUT", "/hosts/{id}/profile", 200, {"partner", "admin"}, own_host_profile),
    endpoint("consent", "GET", "/health", 200, EVERYONE, nothing),
    endpoint("consent", "POST", "/cases/{id}/consents", 201, {"caseworker", "admin"}, consent_for_case),
    endpoint("consent", "POST", "/consents/{id}/withdrawal", 200, {"caseworker", "admin"}, consent_to_withdraw),
    endpoint("consent", "GET", "/cases/{id}/consents", 200, CASE_READERS, consents_of_case),
    endpoint("consent", "GET", "/proposals", 200, CASE_READERS | {"partner", "other partner"}, proposal_queue),
    endpoint("consent", "POST", "/proposals/{id}/review", 200, {"caseworker", "admin"}, proposal_to_review),
    endpoint("consent", "POST", "/proposals/{id}/decision", 200, {"approver", "admin"}, proposal_to_decide),
    endpoint("consent", "POST", "/proposals/{id}/responses (beneficiary)", 200, {"caseworker", "admin"},
             beneficiary_answer),
    endpoint("consent", "POST", "/proposals/{id}/responses (host)", 200, {"partner", "admin"}, host_answer),
    endpoint("notifications", "GET", "/health", 200, EVERYONE, nothing),
    endpoint("notifications", "GET", "/notifications", 200, {"caseworker", "approver", "auditor", "admin"},
             notifications_of_case),
    endpoint("notifications", "GET", "/deliveries", 200, {"caseworker", "auditor", "admin"}, dead_letters),
    endpoint("notifications", "POST", "/deliveries/{notification_id}/resend", 202, {"caseworker", "admin"},
             dead_delivery),
    endpoint("notifications", "POST", "/subscriptions", 201, {"partner", "admin"}, own_subscription_request),
    endpoint("notifications", "GET", "/subscriptions", 200, {"partner", "other partner", "admin"},
             subscription_list),
    endpoint("notifications", "DELETE", "/subscriptions/{subscription_id}", 204, {"partner", "admin"},
             own_subscription),
    endpoint("notifications", "PUT", "/contacts/{recipient_kind}/{recipient_ref}", 204, {"partner", "admin"},
             own_host_contact),
    endpoint("notifications", "DELETE", "/contacts/{recipient_kind}/{recipient_ref}", 204, {"partner", "admin"},
             own_host_contact_to_delete),
    endpoint("matching", "GET", "/health", 200, EVERYONE, nothing),
    endpoint("matching", "GET", "/pools/runs", 200, CASE_READERS, solver_runs),
]
UNAUTHENTICATED = {"no token", "expired", "tampered"}


def expected_status(row: Endpoint, caller: str) -> int:
    if caller in row.allowed:
        return row.success
    return 401 if caller in UNAUTHENTICATED else 403


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", MATRIX, ids=str)
async def test_access_matrix(centre: Centre, row: Endpoint, caller: str) -> None:
    path, body = await row.prepare(centre)
    client = getattr(centre, row.service)
    path = path or row.path
    response = await client.request(row.method, path, json=body, headers=authorization(caller))
    assert response.status_code == expected_status(row, caller), f"{row} as {caller}: {response.text}"
    if response.status_code in (401, 403):
        assert response.json()["detail"], "a refusal says why"
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_every_route_of_every_service_with_an_api_is_in_the_matrix(centre: Centre) -> None:
    tried = {(row.service, row.method, row.path.split(" ")[0]) for row in MATRIX}
    for service in ("intake", "consent", "notifications", "matching"):
        client = getattr(centre, service)
        document = (await client.get("/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method in operations:
                shape = path.replace("{case_id}", "{id}").replace("{host_id}", "{id}").replace(
                    "{consent_id}", "{id}").replace("{proposal_id}", "{id}")
                assert (service, method.upper(), shape) in tried, f"{method.upper()} {service}{path} is not tried"


async def test_a_partner_reads_only_the_proposals_for_its_own_hosts(centre: Centre) -> None:
    own = await centre.proposal("proposed", OWN_ORGANISATION)
    theirs = await centre.proposal("proposed", OTHER_ORGANISATION)

    async def queue_of(caller: str) -> set[str]:
        response = await centre.consent.get("/proposals", params={"state": "proposed", "limit": 1000},
                                            headers=authorization(caller))
        return {row["proposal_id"] for row in response.json()}

    assert own in await queue_of("partner") and theirs not in await queue_of("partner")
    assert theirs in await queue_of("other partner") and own not in await queue_of("other partner")
    assert {own, theirs} <= await queue_of("auditor")


async def test_other_organisations_are_refused_what_is_not_theirs(centre: Centre) -> None:
    other_host = await centre.host(OTHER_ORGANISATION)
    capacity = await centre.intake.put(f"/hosts/{other_host}/capacity", headers=authorization("partner"),
                                       json={"version": 50, "capacity": {"people": 1, "beds": 1}})
    assert capacity.status_code == 403 and "another organisation" in capacity.json()["detail"]
    profile = await centre.intake.put(f"/hosts/{other_host}/profile", headers=authorization("partner"),
                                      json={"version": 2, "profile": {"host_type": "employer", "place": "elsewhere"}})
    assert profile.status_code == 403 and "another organisation" in profile.json()["detail"]
    registration = await centre.intake.post("/hosts", json=host_registration(OTHER_ORGANISATION),
                                            headers=authorization("partner"))
    assert registration.status_code == 403
    proposal_id = await centre.proposal("approved", OTHER_ORGANISATION)
    answer = await centre.consent.post(f"/proposals/{proposal_id}/responses", headers=authorization("partner"),
                                       json={"party": "host", "accepted": True})
    assert answer.status_code == 403


async def test_the_acting_person_comes_from_the_token_not_the_body(centre: Centre) -> None:
    proposal_id = await centre.proposal("proposed")
    smuggled = await centre.consent.post(f"/proposals/{proposal_id}/review", headers=authorization("caseworker"),
                                         json={"recommendation": "approve", "reviewed_by": "someone-else"})
    assert smuggled.status_code == 422, "a body may not name who acts"
    await centre.as_admin(centre.consent, "POST", f"/proposals/{proposal_id}/review", {"recommendation": "approve"},
                          "caseworker")
    queue = await centre.as_admin(centre.consent, "GET", "/proposals?state=reviewed&limit=1000")
    reviewed = next(row for row in queue if row["proposal_id"] == proposal_id)
    assert reviewed["reviewed_by"] == "caseworker-mx"
    # The reviewer, holding an approver's token too, is still refused by the four-eyes rule.
    same_person = AUTHORITY.issue("caseworker-mx", "approver")
    refusal = await centre.consent.post(f"/proposals/{proposal_id}/decision", json={"decision": "approved"},
                                        headers={"Authorization": f"Bearer {same_person}"})
    assert refusal.status_code == 409 and "four-eyes" in refusal.json()["detail"]


@pytest.mark.parametrize("claims_change", ["other issuer", "other audience", "no expiry", "unknown role",
                                           "partner without organisation", "other secret", "not a jwt"])
async def test_tokens_that_do_not_meet_the_rules_are_refused(centre: Centre, claims_change: str) -> None:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": "someone", "role": "admin", "iss": AUTHORITY.issuer, "aud": AUTHORITY.audience,
                              "iat": now, "exp": now + timedelta(minutes=5)}
    secret = AUTHORITY.secret
    if claims_change == "other issuer":
        claims["iss"] = "somebody-else"
    elif claims_change == "other audience":
        claims["aud"] = "another-api"
    elif claims_change == "no expiry":
        del claims["exp"]
    elif claims_change == "unknown role":
        claims["role"] = "superuser"
    elif claims_change == "partner without organisation":
        claims["role"] = "partner"
    elif claims_change == "other secret":
        secret = "a-secret-the-centre-does-not-use-32b"
    token = "not-a-jwt" if claims_change == "not a jwt" else jwt.encode(claims, secret, algorithm="HS256")
    response = await centre.consent.get("/proposals", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text


async def test_a_partner_manages_only_its_own_subscriptions_and_its_own_hosts_contacts(centre: Centre) -> None:
    path, body = await own_subscription_request(centre)
    theirs = await centre.notifications.post(path, json=body | {"organisation_id": OTHER_ORGANISATION},
                                             headers=authorization("partner"))
    assert theirs.status_code == 403 and "another organisation" in theirs.json()["detail"]
    own_path, _ = await own_subscription(centre)
    listed = await centre.notifications.get("/subscriptions", headers=authorization("other partner"))
    assert listed.status_code == 200
    assert own_path.rsplit("/", 1)[-1] not in {row["subscription_id"] for row in listed.json()}
    peeking = await centre.notifications.get("/subscriptions", params={"organisation_id": OWN_ORGANISATION},
                                             headers=authorization("other partner"))
    assert peeking.status_code == 403
    desk = await centre.notifications.put("/contacts/approver/desk:pool-matrix", headers=authorization("partner"),
                                          json={"address": "desk@partner.example"})
    assert desk.status_code == 403, "desks' contacts are the centre's"
