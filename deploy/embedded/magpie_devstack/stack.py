"""The whole system as local processes: embedded infrastructure, carrier simulator and every service.

Used by ``make run`` (profile ``run``, fixed ports), by the end-to-end tests and the benchmark (profile ``test``
infrastructure, a fresh namespace and free ports per stack so runs never share data). Each service is started as
``python -m <module>`` with its configuration in the environment, exactly as a container would run it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from magpie_common.config import Settings
from magpie_common.topics import ensure_topics
from magpie_devstack.infra import REPO_ROOT, Infra, env_for, mongodb_uris, service_env
from magpie_devstack.namespace import drop_namespace

_RESERVED_PORTS = {19092, 27027, 16379, 29092, 37027, 26379, 39192, 47027, 36379}
_taken: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768-60999), so that no outgoing connection can take it
    between the moment it is chosen and the moment the service binds it."""
    while True:
        port = random.randrange(20000, 32000)
        if port in _RESERVED_PORTS or port in _taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port


@dataclass
class Proc:
    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/readyz"
    process: subprocess.Popen[bytes] | None = None


@dataclass
class StackPorts:
    gateway: int
    shortlink: int
    template_review: int
    number_resolver: int
    dispatcher: int
    billing: int
    smpp: int
    simulator_http: int

    @classmethod
    def fixed(cls) -> StackPorts:
        return cls(18080, 18081, 18091, 18092, 18094, 18095, 12775, 18775)

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*(free_port() for _ in range(8)))


SMPP_SYSTEM_ID = "magpie"
SMPP_PASSWORD = "magpiepw"


class Stack:
    """Start, watch, kill and restart the processes of one Magpie deployment."""

    def __init__(
        self,
        *,
        profile: str = "test",
        namespace: str | None = None,
        ports: StackPorts | None = None,
        simulator_options: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        external_infra: bool | None = None,
    ) -> None:
        self.infra = Infra(profile)
        self.external = bool(os.environ.get("MAGPIE_EXTERNAL_INFRA")) if external_infra is None else external_infra
        self.namespace = namespace or ("s" + uuid.uuid4().hex[:8])
        self.ports = ports or StackPorts.free()
        self.log_dir = log_dir or (self.infra.state / "logs" / self.namespace)
        infra_env = (
            {k: os.environ[k] for k in ("KAFKA_BOOTSTRAP", "MONGODB_URI", "REDIS_URL")}
            if self.external
            else env_for(self.infra.profile)
        )
        p = self.ports
        self.base_env: dict[str, str] = {
            **infra_env,
            "MAGPIE_TOPIC_PREFIX": self.namespace + ".",
            "MONGODB_DB": self.namespace,
            "MAGPIE_BILLING_URL": f"http://127.0.0.1:{p.billing}",
            "MAGPIE_RESOLVER_URL": f"http://127.0.0.1:{p.number_resolver}",
            "MAGPIE_REVIEW_URL": f"http://127.0.0.1:{p.template_review}",
            "MAGPIE_SHORTLINK_PUBLIC_URL": f"http://127.0.0.1:{p.shortlink}/",
            # gateway -> shortlink internal API (resolution-task links); the token is this deployment's own
            "MAGPIE_SHORTLINK_URL": f"http://127.0.0.1:{p.shortlink}",
            "MAGPIE_SHORTLINK_INTERNAL_TOKEN": uuid.uuid4().hex,
            "MAGPIE_SMPP_HOST": "127.0.0.1",
            "MAGPIE_SMPP_PORT": str(p.smpp),
            "MAGPIE_SMPP_SYSTEM_ID": SMPP_SYSTEM_ID,
            "MAGPIE_SMPP_PASSWORD": SMPP_PASSWORD,
            "MAGPIE_ALLOW_LOOPBACK_CALLBACKS": "1",
            # The dev stack sends promotion campaigns at any hour (demos and e2e tests must not wait for 08:00 in
            # Shanghai); set MAGPIE_MARKETING_WINDOW (e.g. 08:00-21:00, the production default) to try the window.
            "MAGPIE_MARKETING_WINDOW": os.environ.get("MAGPIE_MARKETING_WINDOW", "00:00-00:00"),
            **(extra_env or {}),
        }
        sim = {
            "MAGPIE_SIM_SMPP_PORT": str(p.smpp),
            "MAGPIE_SIM_HTTP_PORT": str(p.simulator_http),
            "MAGPIE_SIM_SYSTEM_ID": SMPP_SYSTEM_ID,
            "MAGPIE_SIM_PASSWORD": SMPP_PASSWORD,
            **(simulator_options or {}),
        }
        self.procs: dict[str, Proc] = {
            proc.name: proc
            for proc in [
                Proc("carrier-simulator", "magpie_carrier_simulator", p.simulator_http, sim, ready_path="/healthz"),
                Proc("template-review", "magpie_template_review", p.template_review),
                Proc("number-resolver", "magpie_number_resolver", p.number_resolver),
                Proc("shortlink", "magpie_shortlink", p.shortlink),
                Proc(
                    "dispatcher",
                    "magpie_dispatcher",
                    p.dispatcher,
                    # video SMS too: the vms role submits to the simulator's VMS channel (HTTP)
                    {
                        "MAGPIE_DISPATCHER_ROLES": "send,receipts,vms",
                        "MAGPIE_VMS_CARRIER_URL": f"http://127.0.0.1:{p.simulator_http}",
                    },
                ),
                Proc("billing", "magpie_billing", p.billing),
                Proc("gateway", "magpie_gateway", p.gateway),
            ]
        }

    # --- URLs --------------------------------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.procs[name].port}"

    @property
    def gateway_url(self) -> str:
        return self.url("gateway")

    @property
    def simulator_url(self) -> str:
        return self.url("carrier-simulator")

    def env(self) -> dict[str, str]:
        return dict(self.base_env)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def up(self, timeout_s: float = 90) -> None:
        if not self.external:
            self.infra.up()
        self._ensure_topics()
        for name in self.procs:
            self.start(name)
        self.wait_ready(timeout_s=timeout_s)

    def settings(self) -> Settings:
        env = self.env()
        return Settings(
            kafka_bootstrap=env["KAFKA_BOOTSTRAP"],
            mongodb_uri=env["MONGODB_URI"],
            redis_url=env["REDIS_URL"],
            mongodb_db=env["MONGODB_DB"],
            topic_prefix=env["MAGPIE_TOPIC_PREFIX"],
        )

    def _ensure_topics(self) -> None:
        asyncio.run(ensure_topics(self.settings()))

    def purge(self) -> None:
        """Delete this deployment's topics, databases and Redis keys (tests and benchmarks clean up after them)."""
        uris = [] if self.external else mongodb_uris(self.infra.profile)
        asyncio.run(drop_namespace(self.settings(), uris))

    def start(self, name: str) -> None:
        proc = self.procs[name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.base_env,
            **({} if self.external else service_env(self.infra.profile, name)),
            **proc.env,
            "MAGPIE_HTTP_PORT": str(proc.port),
            # One instance of each service: a restart rejoins its consumer groups as the same static member.
            "MAGPIE_INSTANCE_ID": f"{name}-0",
        }
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc.process = subprocess.Popen(
            [sys.executable, "-m", proc.module],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            # Its own session: a Ctrl-C in the terminal reaches only the supervisor, which stops each service in
            # order with SIGTERM (each drains its in-flight work).
            start_new_session=True,
        )

    def wait_ready(self, names: list[str] | None = None, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        for name in names or list(self.procs):
            proc = self.procs[name]
            while True:
                if proc.process is not None and proc.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.process.returncode}; see {self.log_dir / name}.log")
                try:
                    if httpx.get(self.url(name) + proc.ready_path, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout_s}s; see {self.log_dir / name}.log")
                time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.process is not None and proc.process.poll() is None:
            proc.process.send_signal(sig)
            proc.process.wait(timeout=60)

    def stop(self, name: str, timeout_s: float = 30) -> int | None:
        """Graceful stop (SIGTERM, the service drains); SIGKILL only if it does not exit in time."""
        proc = self.procs[name]
        if proc.process is None or proc.process.poll() is not None:
            return proc.process.returncode if proc.process else None
        proc.process.send_signal(signal.SIGTERM)
        try:
            return proc.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.process.kill()
            return proc.process.wait()

    def down(self, *, infra: bool = False) -> dict[str, int | None]:
        codes = {name: self.stop(name) for name in reversed(list(self.procs))}
        if infra and not self.external:
            self.infra.down()
        return codes

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
