"""Every subject in every language reads, at the receiving end, exactly as it was written.

With real ids (uuids) a subject is longer than a header line, so it is folded. The standard library's own
folding of a long non-ASCII subject can split it at a space into two RFC 2047 encoded words and drop that
space, and a reader then shows two words glued together ("готовадо розгляду"); the end-to-end test over
a real SMTP server found it. This test sends each subject through aiosmtplib's own serialisation.
"""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from aiosmtplib.email import flatten_message

from services.notifications.addresses import Address
from services.notifications.mail import compose
from services.notifications.messages import LANGUAGES, write_message
from services.notifications.rules import MESSAGES, Notification

FACTS = {
    "proposal_id": "proposal-34b7cc6d-5040-4125-ba78-aa7c3128f642",
    "case_id": "case-34542b6f-03ab-4b91-9dd0-fdfeed249550",
    "host_id": "host-64550db7-293d-4bed-a538-e0c5f6568232",
    "placement_id": "placement-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "pool_id": "pool-north-east",
    "decide_by": "2026-03-09 12:00 UTC",
    "respond_by": "2026-03-16 12:00 UTC",
}
NOTIFICATION_ID = "2204e637-c165-5c7c-ada5-0a4b104f2e78"


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("for_household", [False, True])
def test_each_subject_arrives_as_written(language: str, for_household: bool) -> None:
    for (rule, kind), facts in MESSAGES.items():
        notification = Notification(
            id=NOTIFICATION_ID, rule=rule, recipient_kind=kind, recipient_ref=FACTS["case_id"], channel="email",
            language=language, case_id=FACTS["case_id"], cause_event_id="event-1",
            facts={name: FACTS[name] for name in facts},
        )
        address = Address("desk@centre.example", "ar", for_household=for_household and kind == "beneficiary")
        email = compose(notification, address, sender="Centre <n@centre.example>", domain="centre.example")
        wire = flatten_message(email)
        assert all(len(line) <= 78 for line in wire.split(b"\r\n\r\n")[0].split(b"\r\n")), "header lines fold"
        received = message_from_bytes(wire, policy=policy.default)
        written = write_message(rule, kind, language, notification.facts, notification_id=NOTIFICATION_ID,
                                for_household_in="ar" if address.for_household else None)
        assert str(received["Subject"]).strip() == written.subject, (rule, kind)
        assert str(email["Subject"]) == written.subject
