"""The log channel writes ids only, and the retry policy counts attempts and spaces them out."""

from __future__ import annotations

from structlog.testing import capture_logs

from schemas.events import ApprovalDecided
from services.notifications.channels import LogChannel, default_channels
from services.notifications.dispatch import RetryPolicy
from services.notifications.rules import notifications_for


async def test_the_log_channel_writes_the_id_rule_and_recipient_kind_only() -> None:
    event = ApprovalDecided(proposal_id="proposal-1", case_id="case-1", host_id="host-1", decision="approved",
                            decided_by="approver-1", reviewed_by="caseworker-1")
    notification = notifications_for(event, "cause-1")[0]
    with capture_logs() as logs:
        await LogChannel().deliver(notification)
    assert len(logs) == 1
    line = logs[0]
    assert {key: line[key] for key in ("notification_id", "rule", "recipient_kind")} == {
        "notification_id": notification.id,
        "rule": "match_offer",
        "recipient_kind": "beneficiary",
    }
    # No recipient reference, case id or anything a message body could hold.
    assert set(line) <= {"event", "log_level", "notification_id", "rule", "recipient_kind"}
    assert "case-1" not in repr(line)


def test_the_default_channels_are_named_by_what_notifications_ask_for() -> None:
    assert set(default_channels()) == {"log"}
    assert default_channels()["log"].name == "log"


def test_retries_double_up_to_a_cap_and_end_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=4, base_s=2.0, max_s=5.0)
    assert [policy.delay_s(attempt) for attempt in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
    assert [policy.is_final(attempt, retryable=True) for attempt in (1, 2, 3, 4)] == [False, False, False, True]
    assert policy.is_final(1, retryable=False)
