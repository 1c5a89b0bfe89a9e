"""The webhook channel: signed POSTs of events to partner systems' callback URLs.

Just before each attempt it checks again that the delivery may still happen: the subscription is still
active and, for an event about a case, the case's consent still covers the partner. Consent withdrawn
while a delivery waited for a retry (or in the dead letters) therefore stops it: it is withheld, not sent.

Each attempt has its own timeout, and the dispatcher runs attempts to different receivers side by side,
so a slow or dead partner costs only its own deliveries' time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import asyncpg
import httpx

from services.notifications import store
from services.notifications.channels import DeliveryFailed, Withheld
from services.notifications.rules import ChannelName, Notification
from services.notifications.signing import delivery_body, signed_headers

# The receiver said this subscription's URL is gone for good: retrying would only knock on a closed door.
GONE = 410


class WebhookChannel:
    """Delivers partner notifications to the subscription's callback URL, signed with its key."""

    name: ChannelName = "webhook"

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: httpx.AsyncClient,
        keys: Mapping[str, bytes],
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._client = client
        self._keys = dict(keys)
        self._timeout_s = timeout_s
        self._clock = clock

    async def deliver(self, notification: Notification) -> None:
        async with self._pool.acquire() as connection:
            subscription = await store.active_subscription(connection, notification.recipient_ref)
            if subscription is None:
                raise Withheld("subscription removed")
            if notification.case_id is not None and not await store.partner_may_see(
                connection, notification.case_id, subscription["organisation_id"]
            ):
                raise Withheld("consent does not cover this partner")
        secret = self._keys.get(subscription["key_id"])
        if secret is None:
            raise DeliveryFailed(f"signing key {subscription['key_id']} is not configured")
        body = delivery_body(notification.id, notification.facts)
        headers = signed_headers(
            delivery_id=notification.id,
            key_id=subscription["key_id"],
            secret=secret,
            timestamp=int(self._clock()),
            body=body,
        )
        try:
            response = await self._client.post(
                subscription["callback_url"], content=body, headers=headers, timeout=self._timeout_s
            )
        except httpx.TimeoutException:
            raise DeliveryFailed("receiver timed out") from None
        except httpx.HTTPError as error:
            # The type only: an error's text may quote the URL.
            raise DeliveryFailed(f"receiver unreachable ({type(error).__name__})") from None
        if response.is_success:
            return
        raise DeliveryFailed(f"receiver answered {response.status_code}", retryable=response.status_code != GONE)
