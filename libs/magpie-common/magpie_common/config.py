"""Configuration from the environment, with embedded defaults for local use.

The same variables switch every service to external clusters:

- ``KAFKA_BOOTSTRAP``   comma-separated bootstrap servers (default: the embedded broker)
- ``MONGODB_URI``       MongoDB connection string (default: the embedded server)
- ``MONGODB_DB``        database name prefix; each service uses ``<prefix>_<service>``
- ``REDIS_URL``         Redis URL (default: the embedded redis-server)
- ``MAGPIE_TOPIC_PREFIX`` prefix of every Kafka topic (default ``magpie.``)
- ``KAFKA_ENABLE_IDEMPOTENCE`` idempotent producer (default on; off only for a broker without it)
- ``KAFKA_SESSION_TIMEOUT_MS`` consumer-group session timeout (default 10000)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

EMBEDDED_KAFKA_PORT = 19092
EMBEDDED_MONGODB_PORT = 27027
EMBEDDED_REDIS_PORT = 16379


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {value!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Infrastructure settings shared by every service."""

    kafka_bootstrap: str = field(default_factory=lambda: env_str("KAFKA_BOOTSTRAP", f"127.0.0.1:{EMBEDDED_KAFKA_PORT}"))
    mongodb_uri: str = field(
        default_factory=lambda: env_str(
            "MONGODB_URI", f"mongodb://127.0.0.1:{EMBEDDED_MONGODB_PORT}/?directConnection=true"
        )
    )
    mongodb_db: str = field(default_factory=lambda: env_str("MONGODB_DB", "magpie"))
    redis_url: str = field(default_factory=lambda: env_str("REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"))
    topic_prefix: str = field(default_factory=lambda: env_str("MAGPIE_TOPIC_PREFIX", "magpie."))
    kafka_security_protocol: str = field(default_factory=lambda: env_str("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"))
    kafka_sasl_mechanism: str = field(default_factory=lambda: env_str("KAFKA_SASL_MECHANISM", ""))
    kafka_sasl_username: str = field(default_factory=lambda: env_str("KAFKA_SASL_USERNAME", ""))
    kafka_sasl_password: str = field(default_factory=lambda: env_str("KAFKA_SASL_PASSWORD", ""))
    kafka_enable_idempotence: bool = field(default_factory=lambda: env_bool("KAFKA_ENABLE_IDEMPOTENCE", True))
    kafka_session_timeout_ms: int = field(default_factory=lambda: env_int("KAFKA_SESSION_TIMEOUT_MS", 10000))
    log_level: str = field(default_factory=lambda: env_str("MAGPIE_LOG_LEVEL", "INFO"))

    def db_name(self, service: str) -> str:
        """Each service owns its own database: no service reads another's collections."""
        return f"{self.mongodb_db}_{service.replace('-', '_')}"

    def rkey(self, *parts: object) -> str:
        """A Redis key in this deployment's namespace (the topic prefix), so deployments can share a Redis."""
        return self.topic_prefix + ":".join(str(p) for p in parts)

    def kafka_client_options(self) -> dict[str, object]:
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        return options
