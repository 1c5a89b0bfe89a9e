"""The consent service's own settings, read from the environment like every other (``CONSENT_*``).

The deadlines of the approval workflow are consent's to set: every review and approval publishes the
time it computed, and the deadline sweep escalates and expires against the same values.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.consent.model import DeadlinePolicy
from services.runtime.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    """Deadlines and the sweep that watches them. Every field is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Hours from a review to the decision's deadline, by the case's urgency (JSON in the environment, e.g.
    # CONSENT_DECISION_HOURS='{"emergency": 12, "urgent": 48, "normal": 240}'); "normal" covers the rest.
    consent_decision_hours: dict[str, float] = Field(
        default_factory=lambda: {"emergency": 24.0, "urgent": 72.0, "normal": 240.0}
    )
    # Days from an approval to the deadline by which the beneficiary and the host must both answer.
    consent_response_days: float = Field(default=7.0, gt=0)
    # The desk an overdue decision is escalated to; "{pool_id}" is replaced by the proposal's pool.
    consent_escalate_to: str = "desk:{pool_id}"
    # How often the sweep looks for passed deadlines.
    consent_deadline_sweep_s: float = Field(default=60.0, gt=0)

    @field_validator("consent_decision_hours")
    @classmethod
    def _positive_hours(cls, value: dict[str, float]) -> dict[str, float]:
        if "normal" not in value:
            raise ValueError("name the hours for 'normal' urgency: they are the default for every other")
        if any(hours <= 0 for hours in value.values()):
            raise ValueError("decision hours must be positive")
        return value

    @property
    def deadline_policy(self) -> DeadlinePolicy:
        return DeadlinePolicy(decision_hours=dict(self.consent_decision_hours),
                              response_days=self.consent_response_days, escalate_to=self.consent_escalate_to)


@lru_cache(maxsize=1)
def consent_settings() -> ConsentSettings:
    """This process's settings, read once."""
    return ConsentSettings(service_name="consent")
