"""Load driver for the carrier simulator (run by hand, not collected by pytest):

    .venv/bin/python services/carrier-simulator/tests/load_simulator.py --messages 100000 --sessions 4 --window 256

Starts ``python -m magpie_carrier_simulator`` as a child process (so its CPU is its own), binds ``--sessions``
transceiver sessions with ``SmppClient``, submits ``--messages`` single-part SMS as fast as the windows allow and
acknowledges every receipt at once. Prints JSON: submits/s and receipts/s (wall clock, bounded by whichever side is
slower on a shared machine) and the simulator's CPU-seconds per 10,000 messages (submit + receipt), the figure that
says what one core of simulator sustains: ``10_000 / cpu_per_10k`` messages/s.
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
from pathlib import Path
from typing import Any

from magpie_common.smpp import ESME_ROK, DeliverSm, SmppClient, SubmitSm, build_submit_sms


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """A child process (started from the event loop once per run: blocking is harmless here)."""
    return subprocess.Popen(command, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


async def drive(args: argparse.Namespace) -> dict[str, float]:
    smpp_port, http_port = free_port(), free_port()
    env = {**os.environ, "MAGPIE_LOG_LEVEL": "WARNING"}
    sim = spawn(
        [
            sys.executable,
            "-m",
            "magpie_carrier_simulator",
            f"--smpp-port={smpp_port}",
            f"--http-port={http_port}",
            "--account=load:load",
            f"--dlr-delay={args.dlr_delay}",
            f"--deliver-window={args.deliver_window}",
        ],
        env=env,
    )
    try:
        await wait_port(smpp_port)
        await asyncio.sleep(0.5)
        receipts = 0
        all_receipts = asyncio.Event()

        async def on_deliver(pdu: DeliverSm) -> int:
            nonlocal receipts
            receipts += 1
            if receipts >= args.messages:
                all_receipts.set()
            return ESME_ROK

        clients = [
            SmppClient("127.0.0.1", smpp_port, "load", "load", window=args.window, on_deliver=on_deliver)
            for _ in range(args.sessions)
        ]
        for client in clients:
            await client.connect_and_bind()
        pdus: list[SubmitSm] = [
            build_submit_sms(
                "10690001", f"86138{i:08d}", f"【喜鹊】您的订单已发货，查看详情 https://m.example/c{i:09d} 回T退订"
            )[0]
            for i in range(args.messages)
        ]
        spy = None
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
                    str(sim.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)
        cpu0 = cpu_seconds(sim.pid)
        started = time.perf_counter()
        queue = iter(pdus)

        async def pump(client: SmppClient) -> None:
            async def one_lane() -> None:
                for pdu in queue:
                    resp = await client.submit(pdu)
                    assert resp.command_status == ESME_ROK, resp

            await asyncio.gather(*(one_lane() for _ in range(args.window)))

        await asyncio.gather(*(pump(c) for c in clients))
        submitted = time.perf_counter()
        await asyncio.wait_for(all_receipts.wait(), timeout=120)
        finished = time.perf_counter()
        cpu = cpu_seconds(sim.pid) - cpu0
        rss = rss_mb(sim.pid)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        for client in clients:
            await client.unbind_and_close()
        return {
            "messages": args.messages,
            "sessions": args.sessions,
            "window": args.window,
            "deliver_window": args.deliver_window,
            "submits_per_s": round(args.messages / (submitted - started)),
            "receipts_per_s_overall": round(args.messages / (finished - started)),
            "sim_cpu_s": round(cpu, 2),
            "sim_cpu_s_per_10k": round(cpu / args.messages * 10_000, 3),
            "sim_msgs_per_cpu_s": round(args.messages / cpu) if cpu else 0,
            "sim_rss_mb": round(rss),
        }
    finally:
        sim.terminate()
        sim.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--deliver-window", type=int, default=256)
    parser.add_argument("--dlr-delay", type=float, default=0.1)
    parser.add_argument("--profile", default="", help="py-spy raw (collapsed) profile of the simulator to this file")
    print(json.dumps(asyncio.run(drive(parser.parse_args()))))


if __name__ == "__main__":
    main()
