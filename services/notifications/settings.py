"""The notifications service's own settings, read from the environment like every other (``NOTIFICATIONS_*``).

Everything has an embedded default that works on a laptop: without ``NOTIFICATIONS_SMTP_HOST`` people's
notifications go to the log channel, and without signing keys no partner can subscribe.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.notifications.rules import ChannelName
from services.runtime.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    """Delivery, channels and partners. Every field is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # The dispatcher.
    notifications_batch_size: int = Field(default=50, ge=1)
    notifications_poll_interval_s: float = Field(default=0.5, gt=0)
    # Deliveries in flight at once, and at most this many to one receiver, so one slow receiver cannot
    # take every slot.
    notifications_concurrency: int = Field(default=64, ge=1)
    notifications_receiver_concurrency: int = Field(default=4, ge=1)
    # One attempt may take this long; a claimed delivery is tried again by anyone after twice that plus
    # a margin, so a dispatcher that died mid-attempt does not strand it.
    notifications_delivery_timeout_s: float = Field(default=10.0, gt=0)
    # About two and a half hours of retries before a delivery is dead: long enough to ride out a
    # partner's maintenance window, short enough for an operator to notice the same day.
    notifications_max_attempts: int = Field(default=12, ge=1)
    notifications_retry_base_s: float = Field(default=5.0, gt=0)
    notifications_retry_max_s: float = Field(default=3600.0, gt=0)

    # Email. No host: people's notifications use the log channel.
    notifications_smtp_host: str | None = None
    notifications_smtp_port: int = 25
    notifications_smtp_username: str | None = None
    notifications_smtp_password: SecretStr | None = None
    # None: STARTTLS when the server offers it; true: required; false: never.
    notifications_smtp_starttls: bool | None = None
    notifications_mail_from: str = "Matching centre <notifications@centre.invalid>"
    notifications_message_id_domain: str = "notifications.centre.invalid"
    # Addresses by "kind:ref" (e.g. "caseworker:desk:pool-north") or "kind:*" for every desk of a kind;
    # the contacts table, fed over HTTP, comes first.
    notifications_addresses: dict[str, str] = Field(default_factory=dict)

    # Partner webhooks: the secrets that sign deliveries, by key id. A partner receives its secret out of
    # band and names the key id when it subscribes; rotating means adding a key and re-subscribing.
    notifications_webhook_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Off only for a local stack and tests whose receivers listen on plain HTTP.
    notifications_webhook_require_https: bool = True


    @property
    def people_channel(self) -> ChannelName:
        """The channel people's notifications are requested on: email once SMTP is configured."""
        return "email" if self.notifications_smtp_host else "log"

    @property
    def lease_s(self) -> float:
        return 2 * self.notifications_delivery_timeout_s + 30.0


@lru_cache(maxsize=1)
def notifications_settings() -> NotificationsSettings:
    """This process's settings, read once; a FastAPI dependency that tests override."""
    return NotificationsSettings(service_name="notifications")
