"""The audit service's settings, read from the environment like every service's (``AUDIT_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    """Checkpoints, the signing key, the writer role and the audit topic."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    service_name: str = "audit"

    # A checkpoint is sealed when this many records are unsealed, or this many seconds after the last
    # one when any record is unsealed, whichever comes first.
    audit_checkpoint_records: int = Field(default=10_000, ge=1)
    audit_checkpoint_interval_s: float = Field(default=10.0, gt=0)

    # The Ed25519 checkpoint key as PKCS#8 PEM, from a secret store. Without it the key is read from
    # audit_signing_key_file, which is generated on first use: that is for local development only.
    audit_signing_key: SecretStr | None = None
    audit_signing_key_password: SecretStr | None = None
    audit_signing_key_file: Path = Path(".centre/audit/checkpoint-signing-key.pem")

    # The role every appending and sealing transaction switches to (SET LOCAL ROLE), so that what the
    # service writes is bound by that role's privileges: SELECT and INSERT on the evidence, nothing more.
    # Empty to keep the login role (e.g. when the login role already is the writer and may not SET ROLE).
    audit_writer_role: str = Field(default="audit_writer", pattern=r"^([a-z_][a-z0-9_]*)?$")

    audit_topic_batch_size: int = Field(default=500, ge=1)
    audit_topic_poll_interval_s: float = Field(default=0.2, gt=0)

    @property
    def writer_role(self) -> str | None:
        return self.audit_writer_role or None
