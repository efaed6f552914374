"""Load driver for the dispatcher's send role (run by hand, not collected by pytest):

    .venv/bin/python services/dispatcher/tests/load_dispatcher.py --recipients 100000

Against the running test infrastructure (Kafka 29092, MongoDB 37027, Redis 26379; a fresh namespace, dropped at
the end) it starts the carrier simulator and ``python -m magpie_dispatcher`` (role ``send``) as child processes,
measures the dispatcher's idle CPU (the embedded broker answers empty fetches at once, so an idle consumer spins),
produces ``--recipients`` recipients in DispatchBatch records of 500 into DISPATCH, and waits until the simulator
saw every receipt acknowledged (which the dispatcher does only once the final event is durable in Kafka).

Prints JSON: submits/s, receipts/s (acknowledged), end-to-end recipients/s, the dispatcher's CPU-seconds per 1,000
recipients (raw, and with the idle spin rate subtracted) and the simulator's. ``--profile FILE`` records a py-spy
profile (collapsed stacks) of the dispatcher during the run. Extra dispatcher settings: ``--env NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from magpie_common.config import Settings
from magpie_common.topics import ensure_topics
from magpie_devstack.namespace import drop_namespace
from magpie_dispatcher.testing import context, dispatch_batch, produce, recipient

INFRA = {
    "KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "MONGODB_URI": "mongodb://127.0.0.1:37027/?directConnection=true",
    "REDIS_URL": "redis://127.0.0.1:26379/0",
}
BATCH = 500


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """A child process (started from the event loop once per run: blocking is harmless here)."""
    return subprocess.Popen(command, **options)


def spin_share(profile: str) -> float:
    """Share of the profile's samples spent by the Kafka consumer's fetcher (the embedded broker answers empty
    fetches at once, so it spins) or idle in a thread pool: not the dispatcher's work."""
    total = spin = 0
    for line in Path(profile).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        if "Fetcher." in stack or stack.endswith("thread.py:81)"):
            spin += int(count)
    return spin / total if total else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_http(client: httpx.AsyncClient, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        await asyncio.sleep(0.2)


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    ns = "load" + uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap=INFRA["KAFKA_BOOTSTRAP"],
        mongodb_uri=INFRA["MONGODB_URI"],
        redis_url=INFRA["REDIS_URL"],
        mongodb_db=ns,
        topic_prefix=ns + ".",
    )
    await ensure_topics(settings)
    smpp_port, sim_http, disp_http = free_port(), free_port(), free_port()
    base_env = {**os.environ, **INFRA, "MAGPIE_LOG_LEVEL": "WARNING"}
    sim = spawn(
        [
            sys.executable,
            "-m",
            "magpie_carrier_simulator",
            f"--smpp-port={smpp_port}",
            f"--http-port={sim_http}",
            "--account=magpie:secret",
            f"--dlr-delay={args.dlr_delay}",
            f"--deliver-window={args.deliver_window}",
        ],
        env=base_env,
    )
    disp_env = {
        **base_env,
        "MAGPIE_TOPIC_PREFIX": settings.topic_prefix,
        "MONGODB_DB": ns,
        "MAGPIE_DISPATCHER_ROLES": "send",
        "MAGPIE_HTTP_PORT": str(disp_http),
        "MAGPIE_SMPP_PORT": str(smpp_port),
        "MAGPIE_SMPP_PASSWORD": "secret",
        "MAGPIE_INSTANCE_ID": ns,
        "MAGPIE_SWEEP_INTERVAL_S": "1",
    }
    for item in args.env:
        name, _, value = item.partition("=")
        disp_env[name] = value
    disp: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await wait_http(http, f"http://127.0.0.1:{sim_http}/healthz")
            disp = spawn([sys.executable, "-m", "magpie_dispatcher"], env=disp_env)
            await wait_http(http, f"http://127.0.0.1:{disp_http}/readyz", timeout=120)
            await asyncio.sleep(2.0)
            idle0, t0 = cpu_seconds(disp.pid), time.monotonic()
            await asyncio.sleep(args.idle_s)
            idle_rate = (cpu_seconds(disp.pid) - idle0) / (time.monotonic() - t0)

            ctx = context("load-task")
            batches = [
                dispatch_batch(
                    ctx, b, [recipient(b * BATCH + i) for i in range(BATCH)], batch_count=args.recipients // BATCH
                )
                for b in range(args.recipients // BATCH)
            ]
            total = len(batches) * BATCH
            if args.profile:
                spy = spawn(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "-o",
                        args.profile,
                        "-f",
                        "raw",
                        "-r",
                        "200",
                        "--pid",
                        str(disp.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1.0)
            cpu0, sim_cpu0 = cpu_seconds(disp.pid), cpu_seconds(sim.pid)
            started = time.monotonic()
            await produce(settings, batches)
            produced = time.monotonic()
            submitted_at: float | None = None
            stats: dict[str, Any] = {}
            deadline = started + args.timeout
            while True:
                stats = (await http.get(f"http://127.0.0.1:{sim_http}/stats")).json()
                now = time.monotonic()
                if submitted_at is None and stats["accepted"] >= total:
                    submitted_at = now
                if stats["receipts"]["delivered"] >= total:
                    break
                if now > deadline:
                    raise TimeoutError(json.dumps(stats))
                await asyncio.sleep(0.1)
            finished = time.monotonic()
            cpu = cpu_seconds(disp.pid) - cpu0
            sim_cpu = cpu_seconds(sim.pid) - sim_cpu0
            if spy is not None:
                spy.send_signal(2)
                spy.wait(60)
            elapsed = finished - started
            assert submitted_at is not None
            work_cpu = cpu * (1.0 - spin_share(args.profile)) if spy is not None else None
            return {
                "recipients": total,
                "settings": args.env,
                "deliver_window": args.deliver_window,
                "produce_s": round(produced - started, 2),
                "submits_per_s": round(total / (submitted_at - started)),
                "receipts_per_s": round(total / elapsed),
                "elapsed_s": round(elapsed, 2),
                "dispatcher_cpu_s": round(cpu, 2),
                "dispatcher_idle_cpu_per_s": round(idle_rate, 3),
                "dispatcher_cpu_s_per_1k": round(cpu / total * 1000, 4),
                "dispatcher_cpu_s_per_1k_minus_idle": round(max(0.0, cpu - idle_rate * elapsed) / total * 1000, 4),
                "dispatcher_work_cpu_s_per_1k": None if work_cpu is None else round(work_cpu / total * 1000, 4),
                "sim_cpu_s_per_1k": round(sim_cpu / total * 1000, 4),
                "sim_duplicates": stats["duplicates"],
                "sim_nacked": stats["receipts"]["nacked"],
                "sim_timed_out": stats["receipts"]["timed_out"],
            }
    finally:
        for proc in (disp, sim):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        await drop_namespace(settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--deliver-window", type=int, default=256, help="the simulator's deliver_sm window")
    parser.add_argument("--dlr-delay", type=float, default=0.1)
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", default="")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the dispatcher; repeatable")
    print(json.dumps(asyncio.run(drive(parser.parse_args()))))


if __name__ == "__main__":
    main()
