"""Configuration of the dispatcher from the environment.

Process
- ``MAGPIE_DISPATCHER_ROLES``        ``send,receipts`` (default): the roles this process runs; ``vms`` (video SMS to
  the VMS channel and the VMS callbacks, ``magpie_dispatcher.vms``, settings ``MAGPIE_VMS_*`` in ``vms.config``)
  runs only when listed, e.g. ``send,receipts,vms``
- ``MAGPIE_HTTP_HOST`` / ``MAGPIE_HTTP_PORT``  ops endpoints (/metrics, /healthz, /readyz): 127.0.0.1:18094

SMSC (SMPP 3.4 transceiver). The default SMSC serves every carrier; ``MAGPIE_SMPP_<CARRIER>_<FIELD>`` (CARRIER one of
CMCC, CUCC, CTCC, CBN) overrides one field for one carrier, the other fields falling back to the default's.
- ``MAGPIE_SMPP_HOST`` (127.0.0.1), ``MAGPIE_SMPP_PORT`` (12775), ``MAGPIE_SMPP_SYSTEM_ID`` (magpie),
  ``MAGPIE_SMPP_PASSWORD`` (magpie, at most 8 characters), ``MAGPIE_SMPP_SYSTEM_TYPE`` ("")
- ``MAGPIE_SMPP_WINDOW``            outstanding submit_sm per session (128)
- ``MAGPIE_SMPP_SESSIONS``          transceiver sessions per SMSC (4). Throughput per SMSC is about
  sessions x window / round trip for submits, and receipts come back on every session (the SMSC's deliver window is
  per session), so several sessions with a large window are what sustains thousands of messages per second. Lower
  them per carrier (``MAGPIE_SMPP_CMCC_SESSIONS=1``, ``MAGPIE_SMPP_CMCC_WINDOW=16``) where the account allows fewer
  binds or a smaller window.
- ``MAGPIE_SMPP_SOURCE_ADDR``       source address when the task has no channel number (1069000000)
- ``MAGPIE_SMPP_ENQUIRE_LINK_S``    keepalive interval (30)
- ``MAGPIE_SMPP_RESPONSE_TIMEOUT_S`` a submit_sm without an answer after this is in doubt (10)
- ``MAGPIE_SMPP_BIND_WAIT_S``       how long a submit waits for a bound session before the batch is retried (30)

Pacing
- ``MAGPIE_CARRIER_TPS``            submit_sm per second per carrier, shared by every dispatcher (0 = unlimited)
- ``MAGPIE_CARRIER_TPS_<CARRIER>``  the same for one carrier; ``MAGPIE_CARRIER_BURST`` token-bucket burst
  (default: one second's worth)

Receipts and state
- ``MAGPIE_RECEIPT_WINDOW_S``       no final receipt within this = TIMEOUT (259200 = 72 h)
- ``MAGPIE_IN_DOUBT_GRACE_S``       how long an in-doubt message waits for a receipt before FAILED/IN_DOUBT
  (default: the receipt window)
- ``MAGPIE_SWEEP_INTERVAL_S``       period of the timeout sweeper (2)
- ``MAGPIE_DLR_FLUSH_MS`` / ``MAGPIE_DLR_FLUSH_MAX`` / ``MAGPIE_DLR_FLUSHES_IN_FLIGHT``  receipts are group-committed
  (:mod:`magpie_dispatcher.dlr`): a flush starts at once when none runs; while flushes run, receipts accumulate for
  at most this long (10 ms) or this many (1000) before the next one starts, with at most this many flushes (4)
  running at once

Throughput
- ``MAGPIE_DISPATCHER_MAX_RECORDS`` DispatchBatch records per fetch, over all partitions (12); the records of one
  partition are sent concurrently, sharing the chunks-in-flight bound
- ``MAGPIE_DISPATCHER_CHUNK``       recipients claimed / recorded per Redis round trip (64)
- ``MAGPIE_DISPATCHER_CHUNKS_IN_FLIGHT``  chunks submitting concurrently per partition (4)
- ``MAGPIE_DISPATCHER_REDIS_MAX_CONNECTIONS``  Redis connections per process (64)

Deferred sends (scheduled tasks and the marketing window, :mod:`magpie_dispatcher.deferral`)
- ``MAGPIE_MARKETING_WINDOW`` / ``MAGPIE_MARKETING_TZ``  when marketing batches may go out (08:00-21:00,
  Asia/Shanghai; :mod:`magpie_common.send_window`)
- ``MAGPIE_DEFERRAL_INTERVAL_S``    how often due deferred batches are looked for (1)
- ``MAGPIE_DEFERRAL_LEASE_S``       a release (or cancellation) not finished within this is taken over by another
  dispatcher (60)
- ``MAGPIE_DEFERRAL_RETENTION_S``   released and cancelled batches are kept this long, then deleted (604800 = 7 d)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from magpie_common.config import env_float, env_int, env_str
from magpie_common.ids import stable_id
from magpie_common.send_window import SendWindow

SERVICE_NAME = "dispatcher"
DEFAULT_PORT = 18094
ROLE_SEND = "send"
ROLE_RECEIPTS = "receipts"
ROLE_VMS = "vms"
ALL_ROLES = frozenset({ROLE_SEND, ROLE_RECEIPTS})  # the default
KNOWN_ROLES = ALL_ROLES | {ROLE_VMS}
CARRIERS = ("CMCC", "CUCC", "CTCC", "CBN")
DEFAULT_CARRIER = "DEFAULT"  # bucket and label of recipients without a known carrier
DEFAULT_RECEIPT_WINDOW_S = 259_200


def parse_roles(text: str) -> frozenset[str]:
    roles = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = roles - KNOWN_ROLES
    if unknown or not roles:
        raise ValueError(f"MAGPIE_DISPATCHER_ROLES must list roles among {sorted(KNOWN_ROLES)}, got {text!r}")
    return roles


def carrier_key(carrier: str) -> str:
    """The carrier as configured: upper case, empty or unknown carriers map to ``DEFAULT``."""
    value = (carrier or "").strip().upper()
    return value if value in CARRIERS else DEFAULT_CARRIER


@dataclass(frozen=True)
class SmscConfig:
    """One SMSC account. Two carriers configured with the same endpoint and account share one SMSC link."""

    host: str = "127.0.0.1"
    port: int = 12775
    system_id: str = "magpie"
    password: str = "magpie"
    system_type: str = ""
    window: int = 128
    sessions: int = 4
    source_addr: str = "1069000000"
    enquire_link_s: float = 30.0
    response_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if len(self.password) > 8:
            raise ValueError(f"SMPP password of {self.system_id!r} is longer than 8 characters (SMPP 3.4 limit)")
        if not self.system_id or len(self.system_id) > 15:
            raise ValueError(f"SMPP system_id must be 1-15 characters, got {self.system_id!r}")
        if self.window < 1 or self.sessions < 1:
            raise ValueError("MAGPIE_SMPP_WINDOW and MAGPIE_SMPP_SESSIONS must be at least 1")

    @property
    def identity(self) -> tuple[str, int, str]:
        """What identifies the SMSC account: its message ids are unique within it, receipts come back on it."""
        return (self.host, self.port, self.system_id)

    @property
    def namespace(self) -> str:
        """Stable short name of the account, part of the Redis keys of its message ids."""
        return stable_id("smsc", *self.identity)[:12]

    @property
    def label(self) -> str:
        return f"{self.system_id}@{self.host}:{self.port}"


def _smsc_from_env(prefix: str, base: SmscConfig) -> SmscConfig:
    return replace(
        base,
        host=env_str(f"{prefix}HOST", base.host),
        port=env_int(f"{prefix}PORT", base.port),
        system_id=env_str(f"{prefix}SYSTEM_ID", base.system_id),
        password=env_str(f"{prefix}PASSWORD", base.password),
        system_type=env_str(f"{prefix}SYSTEM_TYPE", base.system_type),
        window=env_int(f"{prefix}WINDOW", base.window),
        sessions=env_int(f"{prefix}SESSIONS", base.sessions),
        source_addr=env_str(f"{prefix}SOURCE_ADDR", base.source_addr),
        enquire_link_s=env_float(f"{prefix}ENQUIRE_LINK_S", base.enquire_link_s),
        response_timeout_s=env_float(f"{prefix}RESPONSE_TIMEOUT_S", base.response_timeout_s),
    )


@dataclass(frozen=True)
class DispatcherConfig:
    roles: frozenset[str] = ALL_ROLES
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORT
    smsc: SmscConfig = field(default_factory=SmscConfig)
    carrier_smsc: dict[str, SmscConfig] = field(default_factory=dict)  # overrides by carrier
    bind_wait_s: float = 30.0
    carrier_tps: float = 0.0
    carrier_tps_by_carrier: dict[str, float] = field(default_factory=dict)
    carrier_burst: float = 0.0  # 0: one second's worth
    receipt_window_s: float = DEFAULT_RECEIPT_WINDOW_S
    in_doubt_grace_s: float | None = None  # None: the receipt window
    sweep_interval_s: float = 2.0
    sweep_batch: int = 500
    sweep_lease_s: float = 60.0
    dlr_flush_s: float = 0.01
    dlr_flush_max: int = 1000
    dlr_flushes_in_flight: int = 4
    max_records: int = 12
    chunk_size: int = 64
    chunks_in_flight: int = 4
    redis_max_connections: int = 64
    throttle_backoff_s: float = 0.02
    throttle_backoff_max_s: float = 1.0
    reconnect_backoff_s: float = 0.5
    reconnect_backoff_max_s: float = 30.0
    marketing_window: SendWindow = field(default_factory=SendWindow.parse)
    deferral_interval_s: float = 1.0
    deferral_lease_s: float = 60.0
    deferral_retention_s: float = 604_800.0

    def __post_init__(self) -> None:
        if self.receipt_window_s <= 0:
            raise ValueError("MAGPIE_RECEIPT_WINDOW_S must be positive")
        if self.chunk_size < 1 or self.chunks_in_flight < 1 or self.max_records < 1:
            raise ValueError("chunk size, chunks in flight and max records must be at least 1")

    @property
    def grace_s(self) -> float:
        return self.receipt_window_s if self.in_doubt_grace_s is None else self.in_doubt_grace_s

    def smsc_for(self, carrier: str) -> SmscConfig:
        return self.carrier_smsc.get(carrier_key(carrier), self.smsc)

    def tps_for(self, carrier: str) -> float:
        return self.carrier_tps_by_carrier.get(carrier_key(carrier), self.carrier_tps)

    @classmethod
    def from_env(cls) -> DispatcherConfig:
        default = _smsc_from_env("MAGPIE_SMPP_", SmscConfig())
        overrides: dict[str, SmscConfig] = {}
        for carrier in CARRIERS:
            specific = _smsc_from_env(f"MAGPIE_SMPP_{carrier}_", default)
            if specific != default:
                overrides[carrier] = specific
        tps = env_float("MAGPIE_CARRIER_TPS", 0.0)
        tps_by_carrier = {
            carrier: env_float(f"MAGPIE_CARRIER_TPS_{carrier}", tps)
            for carrier in (*CARRIERS, DEFAULT_CARRIER)
            if env_str(f"MAGPIE_CARRIER_TPS_{carrier}", "")
        }
        grace = env_str("MAGPIE_IN_DOUBT_GRACE_S", "")
        return cls(
            roles=parse_roles(env_str("MAGPIE_DISPATCHER_ROLES", "send,receipts")),
            http_host=env_str("MAGPIE_HTTP_HOST", "127.0.0.1"),
            http_port=env_int("MAGPIE_HTTP_PORT", DEFAULT_PORT),
            smsc=default,
            carrier_smsc=overrides,
            bind_wait_s=env_float("MAGPIE_SMPP_BIND_WAIT_S", 30.0),
            carrier_tps=tps,
            carrier_tps_by_carrier=tps_by_carrier,
            carrier_burst=env_float("MAGPIE_CARRIER_BURST", 0.0),
            receipt_window_s=env_float("MAGPIE_RECEIPT_WINDOW_S", DEFAULT_RECEIPT_WINDOW_S),
            in_doubt_grace_s=float(grace) if grace else None,
            sweep_interval_s=env_float("MAGPIE_SWEEP_INTERVAL_S", 2.0),
            dlr_flush_s=env_float("MAGPIE_DLR_FLUSH_MS", 10.0) / 1000.0,
            dlr_flush_max=env_int("MAGPIE_DLR_FLUSH_MAX", 1000),
            dlr_flushes_in_flight=env_int("MAGPIE_DLR_FLUSHES_IN_FLIGHT", 4),
            max_records=env_int("MAGPIE_DISPATCHER_MAX_RECORDS", 12),
            chunk_size=env_int("MAGPIE_DISPATCHER_CHUNK", 64),
            chunks_in_flight=env_int("MAGPIE_DISPATCHER_CHUNKS_IN_FLIGHT", 4),
            redis_max_connections=env_int("MAGPIE_DISPATCHER_REDIS_MAX_CONNECTIONS", 64),
            marketing_window=SendWindow.from_env(),
            deferral_interval_s=env_float("MAGPIE_DEFERRAL_INTERVAL_S", 1.0),
            deferral_lease_s=env_float("MAGPIE_DEFERRAL_LEASE_S", 60.0),
            deferral_retention_s=env_float("MAGPIE_DEFERRAL_RETENTION_S", 604_800.0),
        )
