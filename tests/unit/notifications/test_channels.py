"""The log channel writes ids only, the channels the settings turn on, and the retry policy's spacing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from schemas.events import ApprovalDecided
from services.notifications.channels import LogChannel
from services.notifications.dispatch import RetryPolicy, channels_for
from services.notifications.rules import Cause, notifications_for
from services.notifications.settings import NotificationsSettings


async def test_the_log_channel_writes_the_id_rule_and_recipient_kind_only() -> None:
    event = ApprovalDecided(proposal_id="proposal-1", case_id="case-1", host_id="host-1", decision="approved",
                            decided_by="approver-1", reviewed_by="caseworker-1")
    notification = notifications_for(event, Cause("cause-1", datetime.now(UTC)))[0]
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


async def test_email_is_a_channel_only_once_an_smtp_host_is_configured() -> None:
    async with httpx.AsyncClient() as client:
        off = NotificationsSettings(service_name="notifications")
        on = NotificationsSettings(service_name="notifications", notifications_smtp_host="127.0.0.1",
                                   notifications_webhook_keys={"k": SecretStr("s")})
        assert set(channels_for(off, None, client)) == {"log", "webhook"}  # type: ignore[arg-type]
        assert set(channels_for(on, None, client)) == {"log", "webhook", "email"}  # type: ignore[arg-type]
    assert off.people_channel == "log"
    assert on.people_channel == "email"


def test_retries_double_up_to_a_cap_with_jitter_in_the_upper_half() -> None:
    policy = RetryPolicy(max_attempts=6, base_s=2.0, max_s=20.0, rng=random.Random(7))
    ceilings = [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    for attempt, ceiling in enumerate(ceilings, start=1):
        delays = [policy.delay_s(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert max(delays) - min(delays) > ceiling / 4, "jitter spreads retries out"


def test_retries_end_after_the_last_attempt_or_at_once_when_not_retryable() -> None:
    policy = RetryPolicy(max_attempts=4)
    assert [policy.is_final(attempt, retryable=True) for attempt in (1, 2, 3, 4)] == [False, False, False, True]
    assert policy.is_final(1, retryable=False)


@pytest.mark.parametrize("attempt", [60, 1000])
def test_a_late_attempt_waits_the_cap_without_overflowing(attempt: int) -> None:
    assert RetryPolicy(base_s=5.0, max_s=3600.0).delay_s(attempt) <= 3600.0
