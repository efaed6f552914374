"""Service configuration from the environment (infrastructure settings come from ``magpie_common.config``).

- ``MAGPIE_HTTP_HOST`` / ``MAGPIE_HTTP_PORT``   internal API and ops endpoints (default 127.0.0.1:18092)
- ``MAGPIE_NR_WORKER``              run the RECIPIENTS consumer in this process (default 1; 0 = API-only replica)
- ``MAGPIE_NR_MAX_UPLOAD_BYTES``    largest CSV import body (default 52428800 = 50 MB); larger -> 413
- ``MAGPIE_NR_IMPORT_CHUNK``        rows per MongoDB bulk write / Redis pipeline during imports (default 5000)
- ``MAGPIE_NR_MAX_RECORDS``         RecipientBatch records fetched per poll (default 50)
- ``MAGPIE_NR_VERDICT_CACHE``       cached (vendors, profile) verdicts before the cache is reset (default 200000)
- ``MAGPIE_NR_HANDSETS_PATH``       capability table file (default: the packaged data/handsets.v1.yaml)
- ``MAGPIE_NR_CARRIERS_PATH``       carrier segment file (default: the packaged data/carriers.v1.yaml)
"""

from __future__ import annotations

from dataclasses import dataclass

from magpie_common.config import env_bool, env_int, env_str

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
        )
