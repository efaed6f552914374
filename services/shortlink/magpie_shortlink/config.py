"""Service configuration from the environment.

- ``MAGPIE_SHORTLINK_ROLES``        ``mint,edge`` (default): which roles this process runs
- ``MAGPIE_HTTP_HOST`` / ``MAGPIE_HTTP_PORT``  the edge (or, mint-only, the ops endpoints): 127.0.0.1:18081
- ``MAGPIE_SHORTLINK_SECRET``       HMAC secret of the codes; unset = a random secret generated at first start and
                                    kept in the service's ``settings`` collection (every replica shares it)
- ``MAGPIE_SHORTLINK_DEFAULT_VALIDITY_S``  link validity when the task gives none (default 7 days)
- ``MAGPIE_SHORTLINK_EXPIRED_RETENTION_S`` how long an expired link stays in MongoDB, answering 410, before the
                                    TTL index removes it (after that it is a 404); default 30 days
- ``MAGPIE_SHORTLINK_MAX_RECORDS``  records per fetch of the minting loop (default 50)
- ``MAGPIE_SHORTLINK_REDIS_MAX_CONNECTIONS`` Redis connections per process; requests beyond wait (default 64)
- ``MAGPIE_SHORTLINK_INTERNAL_TOKEN`` token of the internal API ``/internal/resolution-links`` (edge role, header
                                    ``X-Internal-Token``); unset = the internal API is disabled (404)
"""

from __future__ import annotations

from dataclasses import dataclass

from magpie_common.config import env_int, env_str
from magpie_shortlink.codes import DEFAULT_CODE_LENGTH

SERVICE_NAME = "shortlink"
DEFAULT_PORT = 18081
ROLE_MINT = "mint"
ROLE_EDGE = "edge"
ALL_ROLES = frozenset({ROLE_MINT, ROLE_EDGE})


def parse_roles(text: str) -> frozenset[str]:
    roles = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = roles - ALL_ROLES
    if unknown or not roles:
        raise ValueError(f"MAGPIE_SHORTLINK_ROLES must list roles among {sorted(ALL_ROLES)}, got {text!r}")
    return roles


@dataclass(frozen=True)
class ShortlinkConfig:
    roles: frozenset[str] = ALL_ROLES
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORT
    secret: str = ""  # empty: generated once and persisted in MongoDB
    code_length: int = DEFAULT_CODE_LENGTH
    max_code_attempts: int = 64
    default_validity_s: int = 7 * 86400
    expired_retention_s: int = 30 * 86400
    consumer_max_records: int = 50
    redis_max_connections: int = 64
    internal_token: str = ""  # empty: no internal API

    @classmethod
    def from_env(cls) -> ShortlinkConfig:
        return cls(
            roles=parse_roles(env_str("MAGPIE_SHORTLINK_ROLES", "mint,edge")),
            http_host=env_str("MAGPIE_HTTP_HOST", "127.0.0.1"),
            http_port=env_int("MAGPIE_HTTP_PORT", DEFAULT_PORT),
            secret=env_str("MAGPIE_SHORTLINK_SECRET", ""),
            default_validity_s=env_int("MAGPIE_SHORTLINK_DEFAULT_VALIDITY_S", 7 * 86400),
            expired_retention_s=env_int("MAGPIE_SHORTLINK_EXPIRED_RETENTION_S", 30 * 86400),
            consumer_max_records=env_int("MAGPIE_SHORTLINK_MAX_RECORDS", 50),
            redis_max_connections=env_int("MAGPIE_SHORTLINK_REDIS_MAX_CONNECTIONS", 64),
            internal_token=env_str("MAGPIE_SHORTLINK_INTERNAL_TOKEN", ""),
        )
