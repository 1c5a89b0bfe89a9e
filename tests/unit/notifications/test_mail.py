"""An email per notification: the stable id as Message-ID, a plain-text and an HTML part, the right language."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from services.notifications.addresses import Address
from services.notifications.mail import compose, message_id
from services.notifications.rules import Notification

SENDER = "Matching centre <notifications@centre.invalid>"
DOMAIN = "notifications.centre.invalid"


def offer(language: str) -> Notification:
    return Notification(
        id="5b7c2a1e-0d6f-5f4e-8a3b-1c2d3e4f5a6b", rule="match_offer", recipient_kind="beneficiary",
        recipient_ref="case-1", channel="email", language=language, case_id="case-1", cause_event_id="event-1",
        facts={"proposal_id": "proposal-1", "case_id": "case-1", "respond_by": "2026-03-09"},
    )


def parsed(email: EmailMessage) -> EmailMessage:
    """The message as a receiver reads it off the wire."""
    return message_from_bytes(email.as_bytes(), policy=policy.default)  # type: ignore[return-value]


def test_the_notification_id_is_the_message_id_and_both_parts_are_there() -> None:
    email = parsed(compose(offer("uk"), Address("desk@centre.example"), sender=SENDER, domain=DOMAIN))
    # A long Message-ID is folded onto its own line; the folding space is not part of the id.
    assert email["Message-ID"].strip() == message_id(offer("uk").id, DOMAIN) == f"<{offer('uk').id}@{DOMAIN}>"
    assert email["To"] == "desk@centre.example"
    assert email["Content-Language"] == "uk"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email.get_content_type() == "multipart/alternative"
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None and html is not None
    assert "2026-03-09" in text.get_content()
    assert "Для вашої родини знайдено місце" == email["Subject"]
    assert '<html lang="uk" dir="ltr">' in html.get_content()


def test_a_right_to_left_message_is_marked_so_in_its_html_part() -> None:
    email = parsed(compose(offer("prs"), Address("desk@centre.example"), sender=SENDER, domain=DOMAIN))
    html = email.get_body(("html",))
    assert html is not None
    assert '<html lang="prs" dir="rtl">' in html.get_content()


def test_a_households_message_to_its_desk_asks_the_desk_to_pass_it_on() -> None:
    email = parsed(compose(offer("ar"), Address("desk@centre.example", "en", for_household=True), sender=SENDER,
                           domain=DOMAIN))
    assert email["Subject"].startswith("[case-1] ")
    text = email.get_body(("plain",))
    assert text is not None
    assert text.get_content().startswith("Please pass this message on to the household of case case-1.")
