"""The email channel: one message per notification over SMTP (aiosmtplib), the notification id as Message-ID.

A stable Message-ID lets a mail system, and a person's mail client, recognise a message sent twice (after
a crash between sending and recording it) as one. The address is looked up at sending time and the
message written then: neither is stored, and neither appears in a log line or a failure reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
import asyncpg

from services.notifications.addresses import Address, AddressBook
from services.notifications.channels import DeliveryFailed
from services.notifications.messages import TemplateError, best_language, write_message
from services.notifications.rules import ChannelName, Notification


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to hand messages over."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    # None: STARTTLS when the server offers it.
    start_tls: bool | None = None
    timeout_s: float = 10.0


def message_id(notification_id: str, domain: str) -> str:
    return f"<{notification_id}@{domain}>"


def compose(notification: Notification, address: Address, *, sender: str, domain: str) -> EmailMessage:
    """The email for a notification: a plain-text part and an HTML part in the recipient's language."""
    written = write_message(
        notification.rule,
        notification.recipient_kind,
        notification.language,
        notification.facts,
        notification_id=notification.id,
        for_household_in=best_language(address.language) if address.for_household else None,
    )
    email = EmailMessage()
    email["From"] = sender
    email["To"] = address.email
    if written.subject.isascii():
        email["Subject"] = written.subject
    else:
        # Encoded here, whole: when the standard library folds a long non-ASCII subject itself it can split
        # it at a space into two encoded words and drop that space, which RFC 2047 readers then never show
        # ("готовадо розгляду"). Lines of at most 76 characters are sent as they are.
        email.set_raw("Subject", Header(written.subject, "utf-8", header_name="Subject").encode())
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = message_id(notification.id, domain)
    # Tells mail systems not to answer it automatically (out-of-office replies and the like).
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(written.text)
    email.add_alternative(written.html, subtype="html")
    # After the content: setting content clears every Content-* header.
    email["Content-Language"] = written.language
    return email


class EmailChannel:
    """Sends people's notifications by email."""

    name: ChannelName = "email"

    def __init__(
        self, pool: asyncpg.Pool, server: SmtpServer, addresses: AddressBook, *, sender: str, domain: str
    ) -> None:
        self._pool = pool
        self._server = server
        self._addresses = addresses
        self._sender = sender
        self._domain = domain

    async def deliver(self, notification: Notification) -> None:
        async with self._pool.acquire() as connection:
            address = await self._addresses.address_of(connection, notification)
        if address is None:
            # Retried: an operator can add the contact in the meantime, or re-send once it is dead.
            raise DeliveryFailed(f"no email address for this {notification.recipient_kind}")
        try:
            email = compose(notification, address, sender=self._sender, domain=self._domain)
        except TemplateError as error:
            raise DeliveryFailed("no template for this message", retryable=False) from error
        try:
            await aiosmtplib.send(
                email,
                hostname=self._server.host,
                port=self._server.port,
                username=self._server.username,
                password=self._server.password,
                start_tls=self._server.start_tls,
                timeout=self._server.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [recipient.code for recipient in refused.recipients]
            raise DeliveryFailed(
                f"recipient refused ({','.join(map(str, codes))})", retryable=not all(500 <= c < 600 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            raise DeliveryFailed(f"SMTP server answered {error.code}", retryable=not 500 <= error.code < 600) from None
        except aiosmtplib.SMTPTimeoutError:
            raise DeliveryFailed("SMTP server timed out") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            # The type only: an error's text may quote an address.
            raise DeliveryFailed(f"SMTP {type(error).__name__}") from None
