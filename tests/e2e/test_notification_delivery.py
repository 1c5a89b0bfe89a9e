"""Issue 6's guarantees over the real thing: the broker, PostgreSQL and the five services as processes, with
the notifications service sending to a real SMTP server (aiosmtpd) and to a partner's real HTTP receiver,
both on loopback and started by this module.

- Each rule sends the right message in the right language: people's emails, read back from the SMTP
  server, by rule, recipient, language (the case's for the beneficiary side, the contact's for desks and
  hosts), direction, plain-text and HTML parts, with the notification id as Message-ID, each once.
- A partner hears only about its own hosts and only about cases whose consent names it.
- A partner whose receiver fails the first attempts of every delivery and then recovers accepts each
  delivery once, and every delivery passes the verification docs/partners.md and the README give
  partners, which a tampered body, signature, key or timestamp fails.
- SIGKILL of the notifications service in the middle of a batch of a hundred cases' deliveries, and a
  restart: every email and webhook arrives, none is lost, none is recorded as delivered twice; a repeat
  at a receiver can only be an attempt cut off by the kill, with the same id and the same content.
- No log line holds an address, a callback URL, a subject or a reason typed by staff.

docs/notifications.md ("Testing") describes the set-up; run it alone, it starts its own centre.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.stack import LOCAL_TUNING, LocalStack, throwaway_database_name
from tests.e2e.centre import Centre, eventually
from tests.e2e.loopback import Mailbox, Receiver, http_receiver, parts, smtp_server
from tests.partner_docs import PARTNER_DOCS_VERIFY, README_VERIFY

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).parents[2] / "services" / "notifications" / "templates"
LANGUAGES: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8")) for path in TEMPLATES.glob("*.json")
}
FSI, PDI = "\u2068", "\u2069"

DOMAIN = "notifications.e2e.invalid"
EAST, WEST = "org-east-sponsors", "org-west-municipality"
SECRETS = {"east-2026": b"the east sponsors' secret", "west-2026": b"the west municipality's secret"}
KEY_OF = {EAST: "east-2026", WEST: "west-2026"}
EVENT_TYPES = [
    "centre.host.registered.v1", "centre.match.proposed.v1", "centre.match.proposal-withdrawn.v1",
    "centre.approval.decided.v2", "centre.response.beneficiary.v1", "centre.response.host.v1",
    "centre.response.expired.v1", "centre.placement.confirmed.v1",
]
# The east partner's system fails the first two attempts of every delivery, then recovers.
FAILS_FIRST = 2
BATCH = 100


@dataclass
class World:
    centre: Centre
    mailbox: Mailbox
    receiver: Receiver
    admin: str
    partners: dict[str, str] = field(default_factory=dict)  # organisation -> partner token

    @staticmethod
    def path(organisation: str) -> str:
        return f"/{organisation}/centre-events"


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    with smtp_server() as (mailbox, smtp_port), http_receiver() as receiver:
        receiver.fail_first[World.path(EAST)] = FAILS_FIRST
        settings = {
            **LOCAL_TUNING,
            "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "NOTIFICATIONS_SMTP_PORT": str(smtp_port),
            "NOTIFICATIONS_SMTP_STARTTLS": "false",
            "NOTIFICATIONS_MESSAGE_ID_DOMAIN": DOMAIN,
            "NOTIFICATIONS_WEBHOOK_KEYS": json.dumps({key: secret.decode() for key, secret in SECRETS.items()}),
            "NOTIFICATIONS_WEBHOOK_REQUIRE_HTTPS": "false",
            "NOTIFICATIONS_RETRY_BASE_S": "0.2",
            "NOTIFICATIONS_RETRY_MAX_S": "1",
            # The lease after a crash is 2 x this + 30 s: the shortest wait the service allows.
            "NOTIFICATIONS_DELIVERY_TIMEOUT_S": "2",
            "NOTIFICATIONS_POLL_INTERVAL_S": "0.2",
            # Consent's own sweep escalates and expires what the tests make overdue.
            "CONSENT_DEADLINE_SWEEP_S": "0.5",
        }
        async with LocalStack(database_name=throwaway_database_name(), drop_database_on_exit=True,
                              state_dir=tmp_path_factory.mktemp("notification-delivery"),
                              extra_env=settings) as stack:
            centre = Centre(stack.service_urls(), stack.bootstrap_servers, stack.database_url, stack)
            world = World(centre, mailbox, receiver, admin=centre.token("admin", "admin-e2e"))
            try:
                for organisation in (EAST, WEST):
                    token = world.partners[organisation] = centre.token(
                        "partner", f"{organisation}-desk", organisation_id=organisation)
                    await centre.post("notifications", "/subscriptions", {
                        "organisation_id": organisation, "event_types": EVENT_TYPES, "key_id": KEY_OF[organisation],
                        "callback_url": receiver.url(World.path(organisation))}, token=token, expect=201)
                yield world
            finally:
                await centre.close()


# --- Driving the centre over its HTTP doors -------------------------------------------------------


async def put_contact(world: World, kind: str, ref: str, address: str, language: str | None, token: str) -> None:
    body: dict[str, Any] = {"address": address}
    if language is not None:
        body["language"] = language

    async def attempt() -> bool:
        response = await world.centre.put("notifications", f"/contacts/{kind}/{ref}", body, token=token)
        if response.status_code == 403 and kind == "host" and "another organisation" in response.text:
            return False  # a host just registered: its registration has not reached notifications yet
        assert response.status_code == 204, response.text
        return True

    await eventually(attempt, within=60, what=f"the contact of {kind} {ref} set")


async def register_host(world: World, organisation: str, pool_id: str, *, people: int) -> str:
    body = {"organisation_id": organisation, "external_ref": f"{pool_id}-{uuid.uuid4().hex[:6]}", "pool_id": pool_id,
            "profile": {"host_type": "sponsor_group", "place": f"{pool_id}-town",
                        "capacity": {"people": people, "beds": people, "school_places": 0, "accessible_units": 0}}}
    return str((await world.centre.post("intake", "/hosts", body, token=world.partners[organisation]))["id"])


async def register_case(world: World, pool_id: str, language: str) -> str:
    body = {"organisation_id": "org-intake-desk", "external_ref": f"{pool_id}-{uuid.uuid4().hex}", "pool_id": pool_id,
            "language": language,
            "profile": {"members": [{"age_band": "30-49", "sex": "female", "relationship": "applicant"}],
                        "urgency": "normal"}}
    return str((await world.centre.post("intake", "/cases", body, token=world.centre.caseworker))["id"])


async def consent(world: World, case_id: str, purpose: str, partner_id: str | None = None) -> None:
    body: dict[str, Any] = {"purpose": purpose,
                            "obtained": {"information_language": "en", "obtained_on": date.today().isoformat()}}
    if partner_id is not None:
        body["partner_id"] = partner_id
    centre = world.centre

    async def attempt() -> bool:
        response = await centre.http.post(f"{centre.urls['consent']}/cases/{case_id}/consents", json=body,
                                          headers=centre.bearer(centre.caseworker))
        if response.status_code == 404:
            return False  # the registration has not reached consent yet
        assert response.status_code == 201, response.text
        return True

    await eventually(attempt, within=60, what=f"consent to know {case_id}")


async def share_with(world: World, case_ids: list[str], partner_id: str) -> None:
    """Consent to share each case with a partner, and wait until notifications knows it.

    The consent travels on its own topic; waiting makes sure the proposal that follows is judged with it.
    """
    for case_id in case_ids:
        await consent(world, case_id, "share_with_partner", partner_id)
    connection = await world.centre.database()
    try:
        async def known() -> bool:
            count = await connection.fetchval(
                "SELECT count(*) FROM notifications.partner_consents WHERE case_id = ANY($1::text[])"
                " AND partner_id = $2", case_ids, partner_id)
            return bool(count == len(case_ids))

        await eventually(known, within=60, what="notifications to know the consents to share")
    finally:
        await connection.close()


async def proposal_of(world: World, case_id: str, state: str = "proposed") -> dict[str, Any]:
    return await world.centre.proposal_for(case_id, state, within=90)


async def review(world: World, proposal_id: str, *, approve: bool) -> None:
    verdict = "approve" if approve else "reject"
    await world.centre.post("consent", f"/proposals/{proposal_id}/review", {"recommendation": verdict},
                            token=world.centre.caseworker)


async def decide(world: World, proposal_id: str, *, approve: bool) -> None:
    decision: dict[str, Any] = {"decision": "approved" if approve else "rejected"}
    if not approve:
        decision["reason"] = STAFF_REASON
    await world.centre.post("consent", f"/proposals/{proposal_id}/decision", decision, token=world.centre.approver)


async def accept(world: World, proposal_id: str, host_organisation: str) -> None:
    await world.centre.post("consent", f"/proposals/{proposal_id}/responses",
                            {"party": "beneficiary", "accepted": True}, token=world.centre.caseworker)
    placed = await world.centre.post("consent", f"/proposals/{proposal_id}/responses",
                                     {"party": "host", "accepted": True}, token=world.partners[host_organisation])
    assert placed["state"] == "placed"


STAFF_REASON = "the staff's own words about this household"


# --- The languages journey -------------------------------------------------------------------------


# An email as expected: address, language, and the desk's language when the desk passes it on.
Mail = tuple[str, str, str | None]


@dataclass
class Journey:
    """One pool, one host, one case, one ending; which languages its desk, host and household read."""

    name: str
    desk_language: str
    case_language: str       # as registered
    reads: str               # the templates' language the household is written to in
    host_organisation: str
    host_language: str | None
    shared_with: str | None  # the partner the case's consent covers
    ending: str              # placed | rejected | withdrawn | expired
    pool_id: str = ""
    host_id: str = ""
    case_id: str = ""
    proposal_id: str = ""

    def partner_events(self) -> tuple[str, ...]:
        """What a partner that hosts this case and may hear of it is told about it."""
        return PARTNER_EVENTS[self.ending]

    def address(self, kind: str) -> str:
        who = {"caseworker": "caseworkers", "approver": "approvers", "host": "host"}[kind]
        return f"{who}.{self.pool_id}@centre-desks.example"

    def expected(self) -> dict[tuple[str, str], Mail]:
        """(rule, recipient kind) -> (address, language, the desk's language when it passes the message on)."""
        desk: Mail = (self.address("caseworker"), self.desk_language, None)
        approvers: Mail = (self.address("approver"), self.desk_language, None)
        household: Mail = (self.address("caseworker"), self.reads, self.desk_language)
        host: Mail = (self.address("host"), self.host_language or "en", None)
        mails: dict[tuple[str, str], Mail] = {("proposal_to_review", "caseworker"): desk}
        if self.ending == "withdrawn":
            return mails | {("proposal_withdrawn", "caseworker"): desk}
        mails[("decision_due", "approver")] = approvers
        if self.ending == "rejected":
            return mails | {("proposal_rejected", "caseworker"): desk}
        if self.ending == "expired":
            return mails | {("decision_overdue", "approver"): approvers, ("match_offer", "beneficiary"): household,
                            ("host_offer", "host"): host, ("offer_expired", "beneficiary"): household,
                            ("offer_expired", "host"): host}
        return mails | {("match_offer", "beneficiary"): household, ("host_offer", "host"): host,
                        ("placement_confirmed", "beneficiary"): household, ("placement_confirmed", "host"): host}


JOURNEYS = [
    # A Ukrainian household placed with the east sponsors, who read Dutch; the desk reads English.
    Journey("uk", desk_language="en", case_language="uk-UA", reads="uk", host_organisation=EAST,
            host_language="nl", shared_with=EAST, ending="placed"),
    # An Arabic-reading household whose proposal is rejected; nobody shares its data with the east sponsors.
    Journey("ar", desk_language="nl", case_language="ar", reads="ar", host_organisation=EAST,
            host_language=None, shared_with=None, ending="rejected"),
    # A Dari-reading household (fa-AF) placed with the west municipality, through an Arabic-reading desk;
    # its consent covers the east sponsors only, who do not host it.
    Journey("prs", desk_language="ar", case_language="fa-AF", reads="prs", host_organisation=WEST,
            host_language="en", shared_with=EAST, ending="placed"),
    # A Dutch-reading household withdrawn while its proposal waits; the desk reads Ukrainian.
    Journey("nl", desk_language="uk", case_language="nl", reads="nl", host_organisation=EAST,
            host_language="uk", shared_with=None, ending="withdrawn"),
    # An Arabic-reading household, shared with the east sponsors: its decision comes late (escalated to the
    # approvers' desk, who read Dari), and it never answers the offer, which expires.
    Journey("late", desk_language="prs", case_language="ar", reads="ar", host_organisation=EAST,
            host_language="ar", shared_with=EAST, ending="expired"),
]


async def travel(world: World, journey: Journey) -> None:
    journey.pool_id = f"notify-{journey.name}-{uuid.uuid4().hex[:6]}"
    for kind in ("caseworker", "approver"):
        await put_contact(world, kind, f"desk:{journey.pool_id}", journey.address(kind), journey.desk_language,
                          world.admin)
    journey.host_id = await register_host(world, journey.host_organisation, journey.pool_id, people=4)
    await put_contact(world, "host", journey.host_id, journey.address("host"), journey.host_language,
                      world.partners[journey.host_organisation])
    journey.case_id = await register_case(world, journey.pool_id, journey.case_language)
    if journey.shared_with is not None:
        await share_with(world, [journey.case_id], journey.shared_with)
    await consent(world, journey.case_id, "matching")

    proposal = await proposal_of(world, journey.case_id)
    assert proposal["host_id"] == journey.host_id
    journey.proposal_id = proposal["proposal_id"]
    if journey.ending == "withdrawn":
        await world.centre.post("intake", f"/cases/{journey.case_id}/withdrawal", {"reason": STAFF_REASON},
                                token=world.centre.caseworker, expect=202)
        return
    await review(world, journey.proposal_id, approve=journey.ending != "rejected")
    if journey.ending == "expired":
        await time_passes(world, "decide_by", journey.proposal_id)

        async def escalated() -> bool:
            return any(note["rule"] == "decision_overdue" for note in await notes_of(world, journey.case_id))

        await eventually(escalated, within=60, what="consent's sweep to escalate the late decision")
    await decide(world, journey.proposal_id, approve=journey.ending != "rejected")
    if journey.ending == "placed":
        await accept(world, journey.proposal_id, journey.host_organisation)
    if journey.ending == "expired":
        await world.centre.post("consent", f"/proposals/{journey.proposal_id}/responses",
                                {"party": "host", "accepted": True}, token=world.partners[journey.host_organisation])
        await time_passes(world, "respond_by", journey.proposal_id)


async def time_passes(world: World, deadline: str, proposal_id: str) -> None:
    """The proposal's deadline (consent's ``decide_by`` or ``respond_by``) passes, as if its hours had gone by."""
    connection = await world.centre.database()
    try:
        updated = await connection.execute(
            f"UPDATE consent.proposals SET {deadline} = now() - interval '1 second' WHERE proposal_id = $1",
            proposal_id)
        assert updated == "UPDATE 1"
    finally:
        await connection.close()


PARTNER_EVENTS = {
    "placed": ("centre.match.proposed.v1", "centre.approval.decided.v2", "centre.response.beneficiary.v1",
               "centre.response.host.v1", "centre.placement.confirmed.v1"),
    "expired": ("centre.match.proposed.v1", "centre.approval.decided.v2", "centre.response.host.v1",
                "centre.response.expired.v1"),
}


def subject_pattern(template: str) -> str:
    pieces = re.split(r"\{[a-z_]+\}", template)
    return ".+".join(re.escape(piece) for piece in pieces)


def isolated(value: str, language: str) -> str:
    """How a text part quotes an id: isolated (FSI ... PDI) inside right-to-left text."""
    return f"{FSI}{value}{PDI}" if LANGUAGES[language]["direction"] == "rtl" else value


def check_email(message: Any, note: dict[str, Any], journey: Journey, address: str, language: str,
                desk_language: str | None) -> None:
    """One email against the templates of its language, as docs/notifications.md describes it."""
    template = LANGUAGES[language]
    direction = template["direction"]
    assert message["To"] == address
    assert message["Content-Language"] == language
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    subject = template["messages"][f"{note['rule']}/{note['recipient_kind']}"]["subject"]
    pattern = subject_pattern(subject)
    if desk_language is not None:
        pattern = re.escape(f"[{journey.case_id}] ") + pattern
    # strip(): Python's email folding moves a long subject to a continuation line, which keeps its space.
    assert re.fullmatch(pattern, str(message["Subject"]).strip()), (message["Subject"], subject)
    text, markup = parts(message)
    assert isolated(journey.case_id, language) in text
    assert isolated(note["notification_id"], language) in text, "the reference ends every message"
    assert f'<html lang="{language}" dir="{direction}">' in markup
    assert f"<bdi>{journey.case_id}</bdi>" in markup
    if desk_language is not None:
        desk = LANGUAGES[desk_language]
        first = desk["for_household"].format(case_id=isolated(journey.case_id, desk_language),
                                             language_name=isolated(template["name"], desk_language))
        assert text.startswith(first + "\n"), "a first line in the desk's language asks it to pass the message on"
        assert f'<p lang="{desk_language}" dir="{desk["direction"]}">' in markup
    for secret in (STAFF_REASON, html.escape(STAFF_REASON)):
        assert secret not in text and secret not in markup, "no reason typed by staff"


async def notes_of(world: World, case_id: str) -> list[dict[str, Any]]:
    return await world.centre.get("notifications", "/notifications", case_id=case_id)  # type: ignore[no-any-return]


async def test_each_rule_sends_its_message_in_the_readers_language_and_partners_hear_only_what_concerns_them(
    world: World,
) -> None:
    began = time.monotonic()
    await asyncio.gather(*(travel(world, journey) for journey in JOURNEYS))

    # People: every notification delivered, each email once, by rule, recipient and language.
    for journey in JOURNEYS:
        expected = journey.expected()

        async def all_delivered(journey: Journey = journey, count: int = len(expected)) -> list[dict[str, Any]]:
            notes = [note for note in await notes_of(world, journey.case_id) if note["channel"] == "email"]
            done = len(notes) == count and all(note["status"] == "delivered" for note in notes)
            return notes if done else []

        notes = await eventually(all_delivered, within=60, what=f"the {journey.name} household's emails delivered")
        assert Counter((note["rule"], note["recipient_kind"]) for note in notes) == Counter(list(expected))
        arrived = world.mailbox.by_message_id()
        for note in notes:
            address, language, desk_language = expected[(note["rule"], note["recipient_kind"])]
            assert note["language"] == language
            copies = arrived.get(f"<{note['notification_id']}@{DOMAIN}>", [])
            assert len(copies) == 1, f"{note['rule']} to the {note['recipient_kind']}: {len(copies)} emails"
            check_email(copies[0], note, journey, address, language, desk_language)

    # Partners: each hears about its own hosts, and about the cases that are both proposed to its hosts and
    # consented to be shared with it (two of the east sponsors'; none of the west municipality's).
    east, west = World.path(EAST), World.path(WEST)
    told = [journey for journey in JOURNEYS if journey.shared_with == journey.host_organisation]
    assert {journey.host_organisation for journey in told} == {EAST}
    expected_east = {("centre.host.registered.v1", journey.host_id) for journey in JOURNEYS
                     if journey.host_organisation == EAST} | {
        (event_type, journey.case_id) for journey in told for event_type in journey.partner_events()}
    expected_west = {("centre.host.registered.v1", journey.host_id) for journey in JOURNEYS
                     if journey.host_organisation == WEST}
    mine = {journey.host_id for journey in JOURNEYS} | {journey.case_id for journey in JOURNEYS}

    def heard(path: str) -> set[tuple[str, str]]:
        return {(request.document()["event"]["type"], request.document()["event"]["subject"])
                for request in world.receiver.accepted(path)
                if request.document()["event"]["subject"] in mine}

    async def partners_heard() -> bool:
        return heard(east) >= expected_east and heard(west) >= expected_west

    await eventually(partners_heard, within=60, what="the partners' deliveries")
    connection = await world.centre.database()
    try:
        async def partners_settled() -> bool:
            pending = await connection.fetchval(
                "SELECT count(*) FROM notifications.notifications WHERE channel = 'webhook' AND status <> 'delivered'")
            return bool(pending == 0)

        await eventually(partners_settled, within=60, what="every partner delivery settled")
        withheld_or_dead = await connection.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE status IN ('dead', 'withheld')")
        assert withheld_or_dead == 0
        about_unshared = await connection.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE recipient_kind = 'partner'"
            " AND case_id = ANY($1::text[])", [j.case_id for j in JOURNEYS if j not in told])
        assert about_unshared == 0, "no partner delivery is even requested about a case it may not hear of"
    finally:
        await connection.close()
    assert heard(east) == expected_east
    assert heard(west) == expected_west
    for path in (east, west):
        accepted = [request for request in world.receiver.accepted(path) if request.document()["event"]["subject"]
                    in mine]
        per_id = Counter(request.delivery_id for request in accepted)
        assert set(per_id.values()) == {1}, "each delivery accepted once"
    # The east partner failed the first attempts of each of its deliveries: each came again, the same.
    for request in (r for r in world.receiver.accepted(east) if r.document()["event"]["subject"] in mine):
        attempts = [r for r in world.receiver.to(east) if r.delivery_id == request.delivery_id]
        assert [r.answered for r in attempts] == [503] * FAILS_FIRST + [200]
        assert {r.body for r in attempts} == {request.body}, "every attempt carries the same body"

    # Every delivery verifies with the lines the docs give partners, with the secret its key id names.
    for path, organisation in ((east, EAST), (west, WEST)):
        for request in world.receiver.to(path):
            assert request.headers["Centre-Key-Id"] == KEY_OF[organisation]
            assert request.document()["delivery_id"] == request.delivery_id
            secret = SECRETS[request.headers["Centre-Key-Id"]]
            for verify in (PARTNER_DOCS_VERIFY, README_VERIFY):
                assert verify(secret, request.headers, request.body)
    print(f"journeys and partners: {time.monotonic() - began:.1f} s")


def replaced(headers: httpx.Headers, name: str, value: str) -> httpx.Headers:
    changed = headers.copy()
    changed[name] = value
    return changed


async def test_a_tampered_delivery_fails_the_documented_verification(world: World) -> None:
    host_id = await register_host(world, WEST, f"notify-tamper-{uuid.uuid4().hex[:6]}", people=2)

    async def one() -> list[Any]:
        return [request for request in world.receiver.accepted(World.path(WEST))
                if request.document()["event"]["subject"] == host_id]

    [request] = await eventually(one, within=60, what="the west municipality told of its new host")
    secret, headers, body = SECRETS[KEY_OF[WEST]], request.headers, request.body
    signature = headers["Centre-Signature"]
    forged_signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    stale = str(int(headers["Centre-Timestamp"]) - 600)
    for verify in (PARTNER_DOCS_VERIFY, README_VERIFY):
        assert verify(secret, headers, body)
        assert not verify(secret, headers, body.replace(b'"host_id":"', b'"host_id":"x')), "a changed body"
        assert not verify(secret, headers, body + b" "), "an added byte"
        assert not verify(secret, replaced(headers, "Centre-Signature", forged_signature), body), "a changed signature"
        assert not verify(secret, replaced(headers, "Centre-Signature", ""), body), "no signature"
        assert not verify(SECRETS[KEY_OF[EAST]], headers, body), "another partner's secret"
        assert not verify(secret, replaced(headers, "Centre-Timestamp", stale), body), "a changed timestamp"
        # A captured delivery replayed after the tolerance, even with a signature that matches its timestamp.
        assert not verify(secret, headers, body, tolerance_s=-1)


async def test_sigkill_of_notifications_mid_batch_loses_and_doubles_nothing(world: World) -> None:
    centre = world.centre
    pool_id = f"notify-batch-{uuid.uuid4().hex[:6]}"
    desk_address = f"caseworkers.{pool_id}@centre-desks.example"
    await put_contact(world, "caseworker", f"desk:{pool_id}", desk_address, "en", world.admin)
    # A hundred households, consented to matching and to sharing with the east sponsors, wait in a pool with
    # no host yet; the host's registration then brings all their proposals at once.
    case_ids = list(await asyncio.gather(*(register_case(world, pool_id, "en") for _ in range(BATCH))))
    for chunk in range(0, BATCH, 20):
        await asyncio.gather(*(consent(world, case_id, "share_with_partner", EAST)
                               for case_id in case_ids[chunk:chunk + 20]))
        await asyncio.gather(*(consent(world, case_id, "matching") for case_id in case_ids[chunk:chunk + 20]))
    connection = await centre.database()
    try:
        async def consents_known() -> bool:
            count = await connection.fetchval(
                "SELECT count(*) FROM notifications.partner_consents WHERE case_id = ANY($1::text[])", case_ids)
            return bool(count == BATCH)

        await eventually(consents_known, within=60, what="notifications to know the consents to share")
        # Slow receivers keep the batch in flight long enough to kill the service in the middle of it.
        world.mailbox.delay_s = 0.1
        world.receiver.delay_s = 0.05
        host_id = await register_host(world, EAST, pool_id, people=BATCH + 10)

        def emails() -> list[Any]:
            return [message for rcpt, message in world.mailbox.snapshot() if rcpt == [desk_address]]

        async def under_way() -> bool:
            return len(emails()) >= 20

        await eventually(under_way, within=90, what="the batch's emails under way")
        centre.stack.services.signal("notifications", signal.SIGKILL)  # type: ignore[union-attr]
        await centre.stack.services.wait_for_exit("notifications")  # type: ignore[union-attr]
        at_kill = len(emails())
        outstanding = await connection.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE case_id = ANY($1::text[])"
            " AND status = 'requested'", case_ids)
        in_flight = await connection.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE case_id = ANY($1::text[])"
            " AND status = 'requested' AND claim IS NOT NULL", case_ids)
        assert outstanding > 0 and in_flight > 0, "killed in the middle of the batch, with attempts under way"
        await centre.stack.services.start("notifications")  # type: ignore[union-attr]
        world.mailbox.delay_s = 0.0
        world.receiver.delay_s = 0.0

        async def settled() -> int:
            rows = await connection.fetch(
                "SELECT status, count(*) AS n FROM notifications.notifications WHERE case_id = ANY($1::text[])"
                " GROUP BY status", case_ids)
            by_status = {row["status"]: row["n"] for row in rows}
            return by_status.get("delivered", 0) if set(by_status) == {"delivered"} else 0

        # Attempts cut off by the kill are tried again once their lease (2 x 2 s + 30 s) has passed.
        delivered = await eventually(settled, within=120, interval=0.5, what="every delivery of the batch")
        notes = await connection.fetch(
            "SELECT id, rule, recipient_kind, channel, case_id FROM notifications.notifications"
            " WHERE case_id = ANY($1::text[])", case_ids)
        by_kind = Counter((note["rule"], note["recipient_kind"]) for note in notes)
        assert by_kind == {("proposal_to_review", "caseworker"): BATCH, ("partner_event", "partner"): BATCH}
        assert delivered == 2 * BATCH
        proposed = await connection.fetchval(
            "SELECT count(*) FROM matching.proposals WHERE case_id = ANY($1::text[])", case_ids)
        assert proposed == BATCH and {note["case_id"] for note in notes} == set(case_ids)
        # One NotificationDelivered per notification, whatever the kill interrupted.
        announced = await connection.fetch(
            "SELECT convert_from(value, 'UTF8')::jsonb->>'notification_id' AS id, count(*) AS n"
            " FROM notifications.outbox WHERE headers->>'ce_type' = 'centre.notification.delivered.v1'"
            " GROUP BY 1")
        announced_once = {row["id"]: row["n"] for row in announced}
        assert all(announced_once.get(note["id"]) == 1 for note in notes), "each delivery announced once"
        email_ids = {note["id"] for note in notes if note["channel"] == "email"}
        webhook_ids = {note["id"] for note in notes if note["channel"] == "webhook"}
    finally:
        await connection.close()

    # Every email arrived: one Message-ID per notification. A repeat can only be an attempt the kill cut
    # off after the server took it, and it is the same message.
    arrived = {message_id: copies for message_id, copies in world.mailbox.by_message_id().items()
               if copies[0]["To"] == desk_address}
    assert set(arrived) == {f"<{note_id}@{DOMAIN}>" for note_id in email_ids}
    email_repeats = {message_id: copies for message_id, copies in arrived.items() if len(copies) > 1}
    for copies in email_repeats.values():
        assert len({(str(copy["Subject"]), *parts(copy)) for copy in copies}) == 1
    # Every webhook arrived, accepted: one delivery id per notification, the same body on every attempt.
    east = World.path(EAST)
    mine = set(case_ids)
    received = [request for request in world.receiver.to(east)
                if request.document()["event"]["data"].get("case_id") in mine]
    accepted = Counter(request.delivery_id for request in received if request.answered == 200)
    assert set(accepted) == webhook_ids
    for delivery_id in webhook_ids:
        assert len({request.body for request in received if request.delivery_id == delivery_id}) == 1
    webhook_repeats = {delivery_id: n for delivery_id, n in accepted.items() if n > 1}
    # At most the attempts in flight when the process died: a few per receiver, never the batch.
    assert len(email_repeats) + len(webhook_repeats) <= 8, (email_repeats.keys(), webhook_repeats)
    assert all(PARTNER_DOCS_VERIFY(SECRETS[KEY_OF[EAST]], request.headers, request.body) for request in received)
    print(f"batch: {at_kill} of {BATCH} emails in when killed, {outstanding} deliveries outstanding"
          f" ({in_flight} attempts cut off);"
          f" repeats after the restart: {len(email_repeats)} emails, {len(webhook_repeats)} webhooks"
          f" (host {host_id})")


async def test_no_address_callback_url_or_message_reaches_any_log(world: World) -> None:
    """Log lines carry ids, rules and reasons: never an address, a callback URL, a subject or staff's words."""
    subject_words = LANGUAGES["en"]["messages"]["proposal_to_review/caseworker"]["subject"].split("{proposal_id}")[1]
    forbidden = {"centre-desks.example", f"127.0.0.1:{world.receiver.port}", "/centre-events", subject_words,
                 STAFF_REASON}
    # The module's flows did send to those addresses and callback URLs, so the scan has something to miss.
    recipients = {address for addresses, _ in world.mailbox.snapshot() for address in addresses}
    assert any(address.endswith("@centre-desks.example") for address in recipients)
    assert any("/centre-events" in request.path for request in world.receiver.requests)
    assert world.centre.logs_holding(forbidden) == {}
