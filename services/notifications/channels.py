"""The ways a notification reaches its recipient, and how a channel says an attempt did not.

A channel receives the notification (rule, recipient, language, facts: never a body) and writes the
message itself, so what a person reads is produced at the last moment and is stored nowhere. Channels:
``log`` (here; the embedded default), ``email`` (``mail.py``, SMTP through aiosmtplib) and ``webhook``
(``webhooks.py``, signed POSTs to partner systems). Each carries the notification id (Message-ID, or a
delivery id header) so that a receiver can recognise a repeat after a crash.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from services.notifications.rules import ChannelName, Notification

log = structlog.get_logger(__name__)


class DeliveryFailed(Exception):
    """A channel could not deliver. ``reason`` is stored and published: it must hold no personal data.

    ``retryable`` False ends the delivery at once as a dead letter (the receiver said it never will).
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Withheld(Exception):
    """A delivery that must not happen any more: the consent that allowed it, or the subscription, is gone.

    Unlike a failure it is not retried and cannot be re-sent. ``reason`` is stored and published.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
