"""Service configuration from the environment (infrastructure settings come from ``magpie_common.config``).

- ``MAGPIE_HTTP_HOST`` / ``MAGPIE_HTTP_PORT``   internal API and ops endpoints (default 127.0.0.1:18092)
- ``MAGPIE_NR_WORKER``              run the consumers (RECIPIENTS; LINK and DELIVERY for learning) in this process
                                    (default 1; 0 = API-only replica)
- ``MAGPIE_NR_MAX_UPLOAD_BYTES``    largest CSV import body (default 52428800 = 50 MB); larger -> 413
- ``MAGPIE_NR_IMPORT_CHUNK``        rows per MongoDB bulk write / Redis pipeline during imports (default 5000)
- ``MAGPIE_NR_MAX_RECORDS``         RecipientBatch records fetched per poll (default 50)
- ``MAGPIE_NR_VERDICT_CACHE``       cached (vendors, profile) verdicts before the cache is reset (default 200000)
- ``MAGPIE_NR_HANDSETS_PATH``       capability table file (default: the packaged data/handsets.v1.yaml)
- ``MAGPIE_NR_CARRIERS_PATH``       carrier segment file (default: the packaged data/carriers.v1.yaml)

Vendor capability provider, consulted on a registry miss (``providers``):

- ``MAGPIE_NR_PROVIDER``            ``none`` (default), ``simulated`` (in process) or ``http``
- ``MAGPIE_NR_PROVIDER_URL``        the lookup endpoint of ``http`` (e.g. ``http://127.0.0.1:18093/v1/devices/lookup``,
                                    served by ``python -m magpie_number_resolver.vendor_sim``)
- ``MAGPIE_NR_PROVIDER_TIMEOUT_MS`` per call (default 2000); a timeout leaves the numbers unknown, uncached
- ``MAGPIE_NR_PROVIDER_BATCH``      numbers per call (default 100); ``MAGPIE_NR_PROVIDER_CONCURRENCY`` calls at a time
                                    per process (default 4)
- ``MAGPIE_NR_PROVIDER_TTL_S``      how long a positive answer is cached in Redis (default 604800 = 7 days)
- ``MAGPIE_NR_PROVIDER_NEGATIVE_TTL_S``  same for "number unknown to the vendor" (default 86400 = 1 day)
- ``MAGPIE_NR_SIM_HIT_RATE`` (default 0.5), ``MAGPIE_NR_SIM_LATENCY_MS`` (default 20), ``MAGPIE_NR_SIM_SEED``
  (default ``magpie``): the simulated provider, in process or served by ``vendor_sim`` (which also reads
  ``MAGPIE_NR_SIM_HOST`` / ``MAGPIE_NR_SIM_PORT``, default 127.0.0.1:18093)

Learning (``learning``):

- ``MAGPIE_NR_LEARNING``            consume LINK and DELIVERY to learn (default 1; needs ``MAGPIE_NR_WORKER``)
- ``MAGPIE_NR_DOWNGRADE_AFTER``     N: a number that received N delivered smart messages since its last resolution
                                    without resolving any is downgraded (default 3; 0 = never downgrade)
- ``MAGPIE_NR_DOWNGRADE_WINDOW_S``  the unresolved sends of a number are forgotten after this long without a new
                                    one (default 2592000 = 30 days)
- ``MAGPIE_NR_DOWNGRADE_TTL_S``     how long a downgrade lasts before the number is tried again (default 7776000 =
                                    90 days; 0 = until the number resolves a link or an operator clears it)
"""

from __future__ import annotations

from dataclasses import dataclass

from magpie_common.config import env_bool, env_float, env_int, env_str

SERVICE_NAME = "number-resolver"
DEFAULT_PORT = 18092
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
CHECK_MAX_MOBILES = 100  # KooMessage limit of POST /v1/aim/mobile-capabilities/check (KM.90016301 above it)


@dataclass(frozen=True)
class ResolverConfig:
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORT
    worker: bool = True
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    import_chunk: int = 5000
    consumer_max_records: int = 50
    verdict_cache_size: int = 200_000
    handsets_path: str = ""
    carriers_path: str = ""
    provider: str = "none"
    provider_url: str = ""
    provider_timeout_ms: int = 2000
    provider_batch: int = 100
    provider_concurrency: int = 4
    provider_ttl_s: int = 7 * 86400
    provider_negative_ttl_s: int = 86400
    sim_hit_rate: float = 0.5
    sim_latency_ms: float = 20.0
    sim_seed: str = "magpie"
    learning: bool = True
    downgrade_after: int = 3
    downgrade_window_s: int = 30 * 86400
    downgrade_ttl_s: int = 90 * 86400

    @classmethod
    def from_env(cls) -> ResolverConfig:
        return cls(
            http_host=env_str("MAGPIE_HTTP_HOST", "127.0.0.1"),
            http_port=env_int("MAGPIE_HTTP_PORT", DEFAULT_PORT),
            worker=env_bool("MAGPIE_NR_WORKER", True),
            max_upload_bytes=env_int("MAGPIE_NR_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES),
            import_chunk=env_int("MAGPIE_NR_IMPORT_CHUNK", 5000),
            consumer_max_records=env_int("MAGPIE_NR_MAX_RECORDS", 50),
            verdict_cache_size=env_int("MAGPIE_NR_VERDICT_CACHE", 200_000),
            handsets_path=env_str("MAGPIE_NR_HANDSETS_PATH", ""),
            carriers_path=env_str("MAGPIE_NR_CARRIERS_PATH", ""),
            provider=env_str("MAGPIE_NR_PROVIDER", "none"),
            provider_url=env_str("MAGPIE_NR_PROVIDER_URL", ""),
            provider_timeout_ms=env_int("MAGPIE_NR_PROVIDER_TIMEOUT_MS", 2000),
            provider_batch=env_int("MAGPIE_NR_PROVIDER_BATCH", 100),
            provider_concurrency=env_int("MAGPIE_NR_PROVIDER_CONCURRENCY", 4),
            provider_ttl_s=env_int("MAGPIE_NR_PROVIDER_TTL_S", 7 * 86400),
            provider_negative_ttl_s=env_int("MAGPIE_NR_PROVIDER_NEGATIVE_TTL_S", 86400),
            sim_hit_rate=env_float("MAGPIE_NR_SIM_HIT_RATE", 0.5),
            sim_latency_ms=env_float("MAGPIE_NR_SIM_LATENCY_MS", 20.0),
            sim_seed=env_str("MAGPIE_NR_SIM_SEED", "magpie"),
            learning=env_bool("MAGPIE_NR_LEARNING", True),
            downgrade_after=env_int("MAGPIE_NR_DOWNGRADE_AFTER", 3),
            downgrade_window_s=env_int("MAGPIE_NR_DOWNGRADE_WINDOW_S", 30 * 86400),
            downgrade_ttl_s=env_int("MAGPIE_NR_DOWNGRADE_TTL_S", 90 * 86400),
        )
