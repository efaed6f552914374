"""Simulator settings: command-line options with environment fallbacks (``MAGPIE_SIM_*``) and defaults."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

from magpie_common.config import env_float, env_int, env_str

DEFAULT_SMPP_PORT = 2775
DEFAULT_HTTP_PORT = 2776
DEFAULT_ACCOUNTS = "magpie:magpie"


@dataclass(frozen=True)
class SimulatorConfig:
    """Every knob of the simulator. Times are in seconds; ``max_tps <= 0`` is unlimited; ``http_port`` None
    disables the HTTP endpoint; port 0 picks a free port (read it back from ``CarrierSimulator.smpp_port``)."""

    host: str = "127.0.0.1"
    smpp_port: int = DEFAULT_SMPP_PORT
    http_port: int | None = DEFAULT_HTTP_PORT
    accounts: dict[str, str] = field(default_factory=lambda: {"magpie": "magpie"})
    smsc_system_id: str = "magpie-sim"
    submit_latency: float = 0.0
    dlr_delay: float = 0.5
    failure_rate: float = 0.0
    seed: int = 0
    max_tps: float = 0.0
    throttle_burst: float | None = None
    reject_prefixes: tuple[str, ...] = ()
    receipt_ack_timeout: float = 30.0
    receipt_retry_delay: float = 1.0
    deliver_window: int = 256
    submissions_log: str | None = None
    max_records: int = 1_000_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be within [0, 1], got {self.failure_rate}")
        if self.receipt_ack_timeout <= 0 or self.receipt_retry_delay < 0:
            raise ValueError("receipt_ack_timeout must be positive and receipt_retry_delay not negative")
        if self.deliver_window < 1:
            raise ValueError("deliver_window must be at least 1")
        if not self.accounts:
            raise ValueError("at least one account (system_id:password) is required")
        for system_id, password in self.accounts.items():
            if not system_id or len(system_id) > 15 or len(password) > 8:
                raise ValueError(f"account {system_id!r}: system_id 1-15 characters, password at most 8")


def parse_accounts(values: Sequence[str]) -> dict[str, str]:
    """``["sys:pw", "a:b,c:d"]`` -> ``{"sys": "pw", "a": "b", "c": "d"}``."""
    accounts: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            system_id, sep, password = item.partition(":")
            if not sep:
                raise ValueError(f"account {item!r} is not SYSTEM_ID:PASSWORD")
            accounts[system_id] = password
    return accounts


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m magpie_carrier_simulator",
        description="An SMSC speaking SMPP 3.4 (bind_transceiver) with latency, throttling, failure injection and "
        "delivery receipts, plus an HTTP endpoint (/stats, /submissions, /duplicates, /metrics, /healthz). "
        "Every option falls back to the environment variable named in its help.",
    )
    parser.add_argument(
        "--host", default=env_str("MAGPIE_SIM_HOST", "127.0.0.1"), help="listen address (MAGPIE_SIM_HOST)"
    )
    parser.add_argument(
        "--smpp-port",
        type=int,
        default=env_int("MAGPIE_SIM_SMPP_PORT", DEFAULT_SMPP_PORT),
        help="SMPP port (MAGPIE_SIM_SMPP_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=env_int("MAGPIE_SIM_HTTP_PORT", DEFAULT_HTTP_PORT),
        help="HTTP port; negative disables HTTP (MAGPIE_SIM_HTTP_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--account",
        action="append",
        default=None,
        metavar="SYSTEM_ID:PASSWORD",
        help="an account allowed to bind; repeatable "
        f"(MAGPIE_SIM_ACCOUNTS, comma-separated, default {DEFAULT_ACCOUNTS})",
    )
    parser.add_argument(
        "--system-id",
        default=env_str("MAGPIE_SIM_SYSTEM_ID", "") or None,
        help="one more account allowed to bind, with --password (MAGPIE_SIM_SYSTEM_ID)",
    )
    parser.add_argument(
        "--password",
        default=env_str("MAGPIE_SIM_PASSWORD", ""),
        help="password of --system-id, at most 8 characters (SMPP 3.4) (MAGPIE_SIM_PASSWORD)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=env_float("MAGPIE_SIM_LATENCY", 0.0),
        help="seconds before submit_sm_resp (MAGPIE_SIM_LATENCY, default %(default)s)",
    )
    parser.add_argument(
        "--dlr-delay",
        type=float,
        default=env_float("MAGPIE_SIM_DLR_DELAY", 0.5),
        help="seconds from submit_sm_resp to the delivery receipt (MAGPIE_SIM_DLR_DELAY, default %(default)s)",
    )
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=env_float("MAGPIE_SIM_FAILURE_RATE", 0.0),
        help="fraction of messages whose receipt is UNDELIV err:001 (MAGPIE_SIM_FAILURE_RATE, default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=env_int("MAGPIE_SIM_SEED", 0),
        help="seed of the failure draw; same seed, same failures (MAGPIE_SIM_SEED, default %(default)s)",
    )
    parser.add_argument(
        "--max-tps",
        type=float,
        default=env_float("MAGPIE_SIM_MAX_TPS", 0.0),
        help="submit_sm per second across the simulator, above it ESME_RTHROTTLED; 0 = unlimited "
        "(MAGPIE_SIM_MAX_TPS, default %(default)s)",
    )
    parser.add_argument(
        "--throttle-burst",
        type=float,
        default=env_float("MAGPIE_SIM_THROTTLE_BURST", 0.0) or None,
        help="token-bucket burst of the throughput cap (MAGPIE_SIM_THROTTLE_BURST, default: max-tps)",
    )
    parser.add_argument(
        "--reject-prefix",
        action="append",
        default=None,
        help="destinations starting with this get a REJECTD err:002 receipt; repeatable "
        "(MAGPIE_SIM_REJECT_PREFIXES, comma-separated)",
    )
    parser.add_argument(
        "--receipt-ack-timeout",
        type=float,
        default=env_float("MAGPIE_SIM_RECEIPT_ACK_TIMEOUT", 30.0),
        help="seconds to wait for deliver_sm_resp before redelivering (MAGPIE_SIM_RECEIPT_ACK_TIMEOUT, "
        "default %(default)s)",
    )
    parser.add_argument(
        "--receipt-retry-delay",
        type=float,
        default=env_float("MAGPIE_SIM_RECEIPT_RETRY_DELAY", 1.0),
        help="seconds before redelivering a receipt answered with an error status "
        "(MAGPIE_SIM_RECEIPT_RETRY_DELAY, default %(default)s)",
    )
    parser.add_argument(
        "--deliver-window",
        type=int,
        default=env_int("MAGPIE_SIM_DELIVER_WINDOW", 256),
        help="unacknowledged deliver_sm per session (MAGPIE_SIM_DELIVER_WINDOW, default %(default)s)",
    )
    parser.add_argument(
        "--submissions-log",
        default=env_str("MAGPIE_SIM_SUBMISSIONS_LOG", "") or None,
        help="append every accepted submit_sm as a JSON line to this file (MAGPIE_SIM_SUBMISSIONS_LOG)",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        default=env_int("MAGPIE_SIM_MAX_RECORDS", 1_000_000),
        help="submissions kept in memory for /submissions (MAGPIE_SIM_MAX_RECORDS, default %(default)s)",
    )
    parser.add_argument("--log-level", default=env_str("MAGPIE_LOG_LEVEL", "INFO"), help="log level (MAGPIE_LOG_LEVEL)")
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    if args.account:
        accounts = parse_accounts(args.account)
    elif env_str("MAGPIE_SIM_ACCOUNTS", "") or not args.system_id:
        accounts = parse_accounts([env_str("MAGPIE_SIM_ACCOUNTS", DEFAULT_ACCOUNTS)])
    else:
        accounts = {}
    if args.system_id:
        accounts[args.system_id] = args.password
    reject = args.reject_prefix
    prefixes = (
        [p for value in reject for p in _split_list(value)]
        if reject
        else _split_list(env_str("MAGPIE_SIM_REJECT_PREFIXES", ""))
    )
    return SimulatorConfig(
        host=args.host,
        smpp_port=args.smpp_port,
        http_port=None if args.http_port < 0 else args.http_port,
        accounts=accounts,
        submit_latency=args.latency,
        dlr_delay=args.dlr_delay,
        failure_rate=args.failure_rate,
        seed=args.seed,
        max_tps=args.max_tps,
        throttle_burst=args.throttle_burst,
        reject_prefixes=tuple(prefixes),
        receipt_ack_timeout=args.receipt_ack_timeout,
        receipt_retry_delay=args.receipt_retry_delay,
        deliver_window=args.deliver_window,
        submissions_log=args.submissions_log,
        max_records=args.max_records,
    )
