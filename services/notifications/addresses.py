"""Where a person's notification is sent by email, looked up when it is sent and never stored with it.

Desks (caseworker and approver) and hosts: the contacts table first (fed over HTTP; a host's contact
comes from its partner's registration), then the settings (``NOTIFICATIONS_ADDRESSES``, by "kind:ref" or
"kind:*").

Beneficiaries: their contact details are identifying data, sealed with their case's own key, which this
service cannot open. Their messages go to the caseworkers' desk of their case's pool, written in the
beneficiary's language with a first line asking the desk to pass them on. ``beneficiary_contact`` is
the seam for reaching them directly: a later step can answer it from a service that may open the sealed
identity (with the case's consent to be contacted), without changing anything else here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from services.notifications import store
from services.notifications.rules import Notification, desk


@dataclass(frozen=True, slots=True)
class Address:
    """An email address, the language its owner reads (when known), and whether it is a stand-in desk."""

    email: str
    language: str | None = None
    # True when a beneficiary's message goes to their caseworkers' desk, to be passed on.
    for_household: bool = False


class AddressBook:
    """Looks up recipients' email addresses in the contacts table and the settings."""

    def __init__(self, configured: Mapping[str, str] | None = None) -> None:
        self._configured = dict(configured or {})

    async def address_of(self, connection: asyncpg.Connection, notification: Notification) -> Address | None:
        """The address a notification goes to, or None when none is known (the delivery fails and retries)."""
        if notification.recipient_kind == "beneficiary":
            direct = await self.beneficiary_contact(connection, notification)
            if direct is not None:
                return direct
            case = await store.case(connection, notification.recipient_ref)
            desk_ref = desk(case["pool_id"] if case is not None else notification.recipient_ref)
            found = await self.lookup(connection, "caseworker", desk_ref)
            if found is None:
                return None
            return Address(found.email, found.language, for_household=True)
        return await self.lookup(connection, notification.recipient_kind, notification.recipient_ref)

    async def lookup(self, connection: asyncpg.Connection, kind: str, ref: str) -> Address | None:
        row = await store.contact(connection, kind, ref)
        if row is not None:
            return Address(row["address"], row["language"])
        configured = self._configured.get(f"{kind}:{ref}") or self._configured.get(f"{kind}:*")
        return Address(configured) if configured else None

    async def beneficiary_contact(self, connection: asyncpg.Connection, notification: Notification) -> Address | None:
        """A beneficiary's own address: none here, since their identity is sealed (see the module's note)."""
        return None
