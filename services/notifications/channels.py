"""The ways a notification reaches its recipient. Each channel is one small class with one method.

A channel receives the notification (rule, recipient, language: never a body) and writes the message
itself, so what a person reads is produced at the last moment and is stored nowhere. A channel that
cannot deliver raises ``DeliveryFailed`` with a reason safe to store and publish (no address, no
message); the dispatcher counts the attempt and tries again later, or gives up.

Email (aiosmtplib) and signed webhooks for partners are channels to add here: each resolves the
recipient's address from its reference, sends, and carries the notification id (Message-ID, or an
idempotency header) so that a repeat after a crash can be recognised by the receiver.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from services.notifications.rules import ChannelName, Notification

log = structlog.get_logger(__name__)


class DeliveryFailed(Exception):
    """A channel could not deliver. ``reason`` is stored and published: it must hold no personal data."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Channel(Protocol):
    """What the dispatcher needs of a channel."""

    @property
    def name(self) -> ChannelName: ...

    async def deliver(self, notification: Notification) -> None:
        """Deliver one notification, or raise ``DeliveryFailed`` (any other exception counts as retryable)."""
        ...


class LogChannel:
    """Delivers by writing one structured log line: the notification's id, rule and recipient kind only."""

    name: ChannelName = "log"

    async def deliver(self, notification: Notification) -> None:
        log.info(
            "notification delivered",
            notification_id=notification.id,
            rule=notification.rule,
            recipient_kind=notification.recipient_kind,
        )


def default_channels() -> dict[str, Channel]:
    """The channels of this service by name; notifications for a channel not listed here fail and retry."""
    channels: list[Channel] = [LogChannel()]
    return {channel.name: channel for channel in channels}
