"""Settings every service reads from its environment (pydantic-settings), with embedded defaults."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """One service's settings. Every field can be set by an environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    service_name: str = Field(default="service", pattern=r"^[a-z][a-z0-9_]*$")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/matching_centre"
    http_host: str = "127.0.0.1"
    http_port: int = 8000

    # The local broker answers InitProducerId with an error: idempotence stays a setting, on for Apache Kafka.
    kafka_enable_idempotence: bool = False
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    consumer_batch_size: int = 500

    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 1.0
    database_pool_size: int = 8

    log_level: str = "INFO"
    # Print finished spans as JSON on stderr; production wires an exporter of its own choice instead.
    otel_console_export: bool = False

    # Wraps every case's own key (AES-GCM). The default is for the local stack only.
    master_key: SecretStr = SecretStr("local-development-master-key-change-me")

    # Bearer tokens (HS256) of the HTTP APIs. The default secret is for the local stack only.
    auth_secret: SecretStr = SecretStr("local-development-token-secret-change-me")
    auth_issuer: str = "matching-centre"
    auth_audience: str = "matching-centre-api"
