"""Settings of the vms role, from the environment.

| variable | default | meaning |
|---|---|---|
| ``MAGPIE_VMS_CARRIER_URL`` | ``http://127.0.0.1:18775`` | base URL of the VMS channel (``/vms/v1/...``) |
| ``MAGPIE_VMS_ACCOUNT`` / ``MAGPIE_VMS_PASSWORD`` | ``MAGPIE_SMPP_SYSTEM_ID`` / ``_PASSWORD`` | HTTP Basic account |
| ``MAGPIE_VMS_HTTP_TIMEOUT_S`` | 10 | timeout of one call to the channel |
| ``MAGPIE_VMS_SUBMIT_CHUNK`` | 200 | recipients per submit call (the channel takes at most 1000) |
| ``MAGPIE_VMS_MAX_RECORDS`` | 4 | VmsSendBatch records per fetch |
| ``MAGPIE_VMS_TEMPLATE_WAIT_S`` | 60 | how long a send waits for its template's release before failing its recipients |
| ``MAGPIE_VMS_POLL_MS`` | 200 | pause between notification polls when the last one was empty |
| ``MAGPIE_VMS_POLL_IDLE_MAX_MS`` | 2000 | the pause doubles while polls stay empty, up to this |
| ``MAGPIE_VMS_POLL_MAX`` | 500 | notifications per poll |
| ``MAGPIE_VMS_LEASE_S`` | 30 | how long polled notifications stay reserved for this instance |
| ``MAGPIE_VMS_REPORT_GRACE_S`` | 3600 | after a message's expiry, how long to wait for its report before TIMEOUT |
| ``MAGPIE_VMS_ORPHAN_AFTER_S`` | 3600 | a notification naming no known message is dropped once this old |
| ``MAGPIE_VMS_SWEEP_INTERVAL_S`` | 2 | period of the timeout sweeper |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magpie_common.config import env_float, env_int, env_str


@dataclass(frozen=True)
class VmsConfig:
    carrier_url: str = field(default_factory=lambda: env_str("MAGPIE_VMS_CARRIER_URL", "http://127.0.0.1:18775"))
    account: str = field(
        default_factory=lambda: env_str("MAGPIE_VMS_ACCOUNT", env_str("MAGPIE_SMPP_SYSTEM_ID", "magpie"))
    )
    password: str = field(
        default_factory=lambda: env_str("MAGPIE_VMS_PASSWORD", env_str("MAGPIE_SMPP_PASSWORD", "magpie"))
    )
    http_timeout_s: float = field(default_factory=lambda: env_float("MAGPIE_VMS_HTTP_TIMEOUT_S", 10.0))
    submit_chunk: int = field(default_factory=lambda: env_int("MAGPIE_VMS_SUBMIT_CHUNK", 200))
    max_records: int = field(default_factory=lambda: env_int("MAGPIE_VMS_MAX_RECORDS", 4))
    template_wait_s: float = field(default_factory=lambda: env_float("MAGPIE_VMS_TEMPLATE_WAIT_S", 60.0))
    poll_interval_s: float = field(default_factory=lambda: env_int("MAGPIE_VMS_POLL_MS", 200) / 1000.0)
    poll_idle_max_s: float = field(default_factory=lambda: env_int("MAGPIE_VMS_POLL_IDLE_MAX_MS", 2000) / 1000.0)
    poll_max: int = field(default_factory=lambda: env_int("MAGPIE_VMS_POLL_MAX", 500))
    lease_s: float = field(default_factory=lambda: env_float("MAGPIE_VMS_LEASE_S", 30.0))
    report_grace_s: float = field(default_factory=lambda: env_float("MAGPIE_VMS_REPORT_GRACE_S", 3600.0))
    orphan_after_s: float = field(default_factory=lambda: env_float("MAGPIE_VMS_ORPHAN_AFTER_S", 3600.0))
    sweep_interval_s: float = field(default_factory=lambda: env_float("MAGPIE_VMS_SWEEP_INTERVAL_S", 2.0))

    def __post_init__(self) -> None:
        if not self.carrier_url.startswith(("http://", "https://")):
            raise ValueError(f"MAGPIE_VMS_CARRIER_URL must be an http(s) URL, got {self.carrier_url!r}")
        if not 1 <= self.submit_chunk <= 1000:
            raise ValueError("MAGPIE_VMS_SUBMIT_CHUNK must be between 1 and 1000")
        if self.max_records < 1 or self.poll_max < 1 or self.lease_s <= 0 or self.http_timeout_s <= 0:
            raise ValueError("MAGPIE_VMS_MAX_RECORDS, _POLL_MAX, _LEASE_S and _HTTP_TIMEOUT_S must be positive")
        if self.report_grace_s < 0 or self.template_wait_s < 0:
            raise ValueError("MAGPIE_VMS_REPORT_GRACE_S and MAGPIE_VMS_TEMPLATE_WAIT_S must not be negative")
