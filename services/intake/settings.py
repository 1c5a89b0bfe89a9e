"""Intake's own settings, read from the environment like every other (``INTAKE_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Retention. Every field is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Days a case's identifying data is kept after the case closed (withdrawn, or placed). Past them the
    # retention sweep erases it (crypto-shredding). Unset: no automatic erasure; the programme sets it.
    intake_retention_days: int | None = Field(default=None, ge=1, le=36_500)
    intake_retention_sweep_s: float = Field(default=3600.0, gt=0)

    @property
    def retention(self) -> timedelta | None:
        return timedelta(days=self.intake_retention_days) if self.intake_retention_days is not None else None


def intake_settings() -> IntakeSettings:
    return IntakeSettings(service_name="intake")
