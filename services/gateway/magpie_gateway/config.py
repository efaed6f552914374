"""Gateway settings from the environment (the infrastructure settings come from ``magpie_common.config``).

=================================  ==========================  =============================================
variable                           default                     meaning
=================================  ==========================  =============================================
``MAGPIE_HTTP_HOST``               ``127.0.0.1``               interface the REST API listens on
``MAGPIE_HTTP_PORT``               ``18080``                   port of the REST API (and /metrics, /healthz, /readyz)
``MAGPIE_ADMIN_TOKEN``             unset                       token of ``POST /internal/tenants``
                                                               (header ``X-Admin-Token``); unset = endpoint 404
``MAGPIE_SHORTLINK_PUBLIC_URL``    ``http://127.0.0.1:18081/`` base URL of the short links (TaskContext.link_domain)
``MAGPIE_ALLOW_LOOPBACK_CALLBACKS`` ``0``                      ``1`` accepts loopback callback / uplink URLs
``MAGPIE_DEFAULT_FALLBACK``        ``sms``                     fallback of unresolvable numbers when a send task
                                                               has no ``X-Magpie-Fallback`` header (skip, sms,
                                                               vms: such tasks must then name their VMS template,
                                                               ``X-Magpie-Fallback-Vms-Template``)
``MAGPIE_CREDENTIAL_CACHE_TTL_S``  ``30``                      how long an access key lookup is cached
``MAGPIE_AUTH_REPLAY_CHECK``       ``1``                       reject a signed write request seen before (Redis)
``MAGPIE_AUTH_REPLAY_CHECK_READS`` ``0``                       check GET/HEAD requests too (breaks fast polling:
                                                               the SDK signs with one-second dates)
``MAGPIE_AUTH_MAX_SKEW_S``         ``900``                     accepted distance of ``X-Sdk-Date`` from now
``MAGPIE_MAX_BODY_BYTES``          ``134217728``               largest accepted request body
``MAGPIE_REGION``                  ``cn-north-4``              region reported for SMS apps
``MAGPIE_IDEMPOTENCY_TTL_S``       ``86400``                   how long an ``Idempotency-Key`` is remembered
``MAGPIE_RESOLVER_URL``            ``http://127.0.0.1:18092``  number-resolver internal API (capability check)
``MAGPIE_SHORTLINK_URL``           ``http://127.0.0.1:18081``  shortlink internal API (resolution-task links)
``MAGPIE_SHORTLINK_INTERNAL_TOKEN`` unset                      token of the shortlink internal API (header
                                                               ``X-Internal-Token``); unset = links not minted
``MAGPIE_UPSTREAM_TIMEOUT_S``      ``10``                      timeout of a call to those internal APIs
``MAGPIE_REQUIRE_FILINGS``         ``1``                       sending needs an approved enterprise filing of
                                                               the product (AIM / VMS / SA), see ``filing_gate``
=================================  ==========================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magpie.v1 import common_pb2
from magpie_common.config import env_bool, env_float, env_int, env_str

DEFAULT_HTTP_PORT = 18080
DEFAULT_SHORTLINK_PUBLIC_URL = "http://127.0.0.1:18081/"

FALLBACKS: dict[str, int] = {
    "skip": common_pb2.FALLBACK_SKIP,
    "sms": common_pb2.FALLBACK_SMS,
    "vms": common_pb2.FALLBACK_VMS,
}


def _admin_token() -> str | None:
    value = env_str("MAGPIE_ADMIN_TOKEN", "")
    return value or None


def _default_fallback() -> str:
    value = env_str("MAGPIE_DEFAULT_FALLBACK", "sms").strip().lower()
    if value not in FALLBACKS:
        raise ValueError("MAGPIE_DEFAULT_FALLBACK must be 'skip', 'sms' or 'vms'")
    return value


def _link_domain() -> str:
    value = env_str("MAGPIE_SHORTLINK_PUBLIC_URL", DEFAULT_SHORTLINK_PUBLIC_URL)
    return value if value.endswith("/") else value + "/"


@dataclass(frozen=True)
class GatewayConfig:
    http_host: str = field(default_factory=lambda: env_str("MAGPIE_HTTP_HOST", "127.0.0.1"))
    http_port: int = field(default_factory=lambda: env_int("MAGPIE_HTTP_PORT", DEFAULT_HTTP_PORT))
    admin_token: str | None = field(default_factory=_admin_token)
    link_domain: str = field(default_factory=_link_domain)
    allow_loopback_callbacks: bool = field(default_factory=lambda: env_bool("MAGPIE_ALLOW_LOOPBACK_CALLBACKS", False))
    default_fallback: str = field(default_factory=_default_fallback)
    credential_cache_ttl_s: float = field(default_factory=lambda: env_float("MAGPIE_CREDENTIAL_CACHE_TTL_S", 30.0))
    replay_check: bool = field(default_factory=lambda: env_bool("MAGPIE_AUTH_REPLAY_CHECK", True))
    replay_check_reads: bool = field(default_factory=lambda: env_bool("MAGPIE_AUTH_REPLAY_CHECK_READS", False))
    max_skew_s: int = field(default_factory=lambda: env_int("MAGPIE_AUTH_MAX_SKEW_S", 900))
    max_body_bytes: int = field(default_factory=lambda: env_int("MAGPIE_MAX_BODY_BYTES", 128 * 1024 * 1024))
    region: str = field(default_factory=lambda: env_str("MAGPIE_REGION", "cn-north-4"))
    idempotency_ttl_s: int = field(default_factory=lambda: env_int("MAGPIE_IDEMPOTENCY_TTL_S", 86400))
    resolver_url: str = field(default_factory=lambda: env_str("MAGPIE_RESOLVER_URL", "http://127.0.0.1:18092"))
    shortlink_url: str = field(default_factory=lambda: env_str("MAGPIE_SHORTLINK_URL", "http://127.0.0.1:18081"))
    shortlink_internal_token: str = field(default_factory=lambda: env_str("MAGPIE_SHORTLINK_INTERNAL_TOKEN", ""))
    upstream_timeout_s: float = field(default_factory=lambda: env_float("MAGPIE_UPSTREAM_TIMEOUT_S", 10.0))
    require_filings: bool = field(default_factory=lambda: env_bool("MAGPIE_REQUIRE_FILINGS", True))
