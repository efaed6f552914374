"""Receipt sender load measurement, run by hand (not collected as a test: the name does not start with ``test_``).

It drives the real sender (outbox on MongoDB, HTTP to a real socket) against a minimal HTTP/1.1 receiver that runs
in a child process on loopback and answers 200 (after ``--latency-ms``), and prints receipts/s as JSON::

    .venv/bin/python services/dispatcher/tests/receipts_load.py --mode single --count 3000
    .venv/bin/python services/dispatcher/tests/receipts_load.py --mode batch --count 100000 --source backlog

``--source live`` feeds the receipts as the Kafka handlers do (``ReceiptProducer.store`` of 500 items at a time,
``--feeders`` of them concurrently, like partitions); ``--source backlog`` inserts them into the outbox first and
then starts the sender (a backlog left by an outage). The clock runs from the first store (live) or the sender's
start (backlog) until the receiver counted every receipt; ``done_s`` is when the outbox recorded them all ``done``.
``--urls`` spreads the receipts over several callback URLs (one tenant each). The embedded infrastructure of the
test profile is used (``MONGODB_URI`` overrides it); the run's database is dropped at the end. Profile with
``py-spy record -o out.svg -- .venv/bin/python .../receipts_load.py ...``.

A ``make bench`` step could run the two commands above and report ``receipts_per_s`` of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sys
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

import orjson

STATS_PATH = b"/__stats"
WRITE_COMMANDS = {"insert": "documents", "update": "updates", "delete": "deletes", "findAndModify": ""}


class WriteCounter:
    """A pymongo command listener counting write commands and the documents / statements they carry."""

    def __init__(self) -> None:
        self.commands = 0
        self.statements = 0
        self.affected = 0  # documents inserted, matched by an update or deleted (the replies' "n")

    def started(self, event: Any) -> None:
        field = WRITE_COMMANDS.get(event.command_name)
        if field is None:
            return
        self.commands += 1
        self.statements += len(event.command.get(field, ())) if field else 1

    def succeeded(self, event: Any) -> None:
        if event.command_name in WRITE_COMMANDS:
            self.affected += int(event.reply.get("n", 0))

    def failed(self, event: Any) -> None:
        pass


class Receiver(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, Content-Length bodies only; counts POSTs and the receipts in their envelopes."""

    counts: ClassVar[dict[str, int]] = {"posts": 0, "receipts": 0, "connections": 0}
    latency_s = 0.0
    fail_paths: tuple[bytes, ...] = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.counted = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].split(b"\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head[0].split(b" ", 2)
            self.handle(method, path, body)

    def handle(self, method: bytes, path: bytes, body: bytes) -> None:
        if path == STATS_PATH:
            self.respond(200, orjson.dumps(self.counts))
            return
        if not self.counted:
            self.counted = True
            self.counts["connections"] += 1
        status = 503 if path in self.fail_paths else 200
        if status == 200:
            self.counts["posts"] += 1
            inner = orjson.loads(orjson.loads(body)["body"])
            self.counts["receipts"] += len(inner) if isinstance(inner, list) else 1
        if self.latency_s > 0:
            asyncio.get_running_loop().call_later(self.latency_s, self.respond, status, b"")
        else:
            self.respond(status, b"")

    def respond(self, status: int, body: bytes) -> None:
        if self.transport.is_closing():
            return
        reason = b"OK" if status == 200 else b"Service Unavailable"
        head = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n" % (
            status,
            reason,
            len(body),
        )
        self.transport.write(head + body)


def serve(sock: socket.socket, latency_ms: float, fail_paths: list[str]) -> None:
    Receiver.latency_s = latency_ms / 1000
    Receiver.fail_paths = tuple(p.encode() for p in fail_paths)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Receiver, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def receiver_stats(port: int) -> dict[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + STATS_PATH + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
    body = await reader.readexactly(length)
    writer.close()
    return orjson.loads(body)


def items_for(count: int, urls: list[str], url_type: int) -> list[dict[str, Any]]:
    from magpie_dispatcher.receipts.outbox import new_item, utcnow
    from magpie_dispatcher.receipts.producers import receipt_item_id

    start = utcnow() - timedelta(milliseconds=count // 50)
    items = []
    for n in range(count):
        now = start + timedelta(milliseconds=n // 50)  # arrivals spread as from successive handler batches
        url = urls[n % len(urls)]
        source = f"load-{n}"
        receipt = {
            "task_id": "task-load",
            "msg_id": f"MSG-{n}",
            "cust_flag": f"138{n:08d}",
            "tpl_id": "100000001",
            "sms_sign": "Magpie",
            "status": "DELIVRD",
            "result_code": "DELIVRD",
            "send_time": "2024-05-01T08:30:00Z",
            "receive_time": "2024-05-01T08:30:04Z",
            "segments": 1,
            "aim_url": "",
        }
        items.append(
            new_item(
                item_id=receipt_item_id("sms", source, url_type),
                tenant_id=f"tenant-{urls.index(url)}",
                callback_type="sms",
                url=url,
                url_type=url_type,
                aim_url="",
                source_event_id=source,
                receipt=receipt,
                now=now,
                due_at=now,
            )
        )
    return items


async def run(args: argparse.Namespace, port: int) -> dict[str, Any]:
    from pymongo import AsyncMongoClient

    from magpie_dispatcher.receipts.config import ReceiptsConfig
    from magpie_dispatcher.receipts.destination import guarded_client
    from magpie_dispatcher.receipts.outbox import DONE, Outbox, documents
    from magpie_dispatcher.receipts.payloads import URL_TYPE_BATCH, URL_TYPE_SINGLE
    from magpie_dispatcher.receipts.producers import ReceiptProducer
    from magpie_dispatcher.receipts.registry import CallbackRegistry
    from magpie_dispatcher.receipts.sender import ReceiptSender

    config = replace(ReceiptsConfig(), allow_loopback=True)
    if args.concurrency:
        config = replace(config, url_concurrency=args.concurrency)
    from pymongo import monitoring

    class Listener(WriteCounter, monitoring.CommandListener):
        pass

    writes = Listener()
    mongo: AsyncMongoClient = AsyncMongoClient(args.mongodb_uri, tz_aware=True, event_listeners=[writes])
    db = mongo[f"receipts_load_{uuid.uuid4().hex[:8]}"]
    outbox = Outbox(db["outbox"], done_retention_s=config.done_retention_s, dead_retention_s=config.dead_retention_s)
    await outbox.ensure_indexes()
    http = guarded_client(allow_loopback=True, timeout_s=config.http_timeout_s, max_connections=config.max_in_flight)
    sender = ReceiptSender(outbox, config, http, None)
    producer = ReceiptProducer(CallbackRegistry(db["callbacks"], 5.0), outbox, config, sender)
    urls = [f"http://127.0.0.1:{port}/cb/{n}" for n in range(args.urls)]
    url_type = URL_TYPE_BATCH if args.mode == "batch" else URL_TYPE_SINGLE
    items = items_for(args.count, urls, url_type)
    chunks = [items[i : i + 500] for i in range(0, len(items), 500)]
    result: dict[str, Any] = {"mode": args.mode, "source": args.source, "count": args.count, "urls": args.urls}
    try:
        if args.source == "backlog":
            started = time.perf_counter()
            for chunk in chunks:
                await outbox.insert(documents(chunk))  # one outbox document per handler batch
            result["insert_s"] = round(time.perf_counter() - started, 2)
        sender_task = asyncio.create_task(sender.run())
        while not sender.running:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        if args.source == "live":

            async def feed(part: list[list[dict[str, Any]]]) -> None:
                for chunk in part:
                    await producer.store(chunk)

            await asyncio.gather(*(feed(chunks[f :: args.feeders]) for f in range(args.feeders)))
            result["fed_s"] = round(time.perf_counter() - started, 2)
        deadline = started + args.timeout_s
        while True:
            stats = await receiver_stats(port)
            if stats["receipts"] >= args.count or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        result.update(
            delivered=stats["receipts"],
            posts=stats["posts"],
            connections=stats["connections"],
            seconds=round(elapsed, 2),
            receipts_per_s=round(stats["receipts"] / elapsed, 1),
        )
        while await outbox.count(DONE) < args.count and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        result["done_s"] = round(time.perf_counter() - started, 2)
        result["write_commands_per_receipt"] = round(writes.commands / args.count, 4)
        result["write_statements_per_receipt"] = round(writes.statements / args.count, 4)
        result["written_docs_per_receipt"] = round(writes.affected / args.count, 4)
        sender.stop()
        await sender_task
    finally:
        await http.aclose()
        await mongo.drop_database(db.name)
        await mongo.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--source", choices=["live", "backlog"], default="live")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--urls", type=int, default=1)
    parser.add_argument("--feeders", type=int, default=1, help="concurrent store() callers (live)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="receiver's answer delay")
    parser.add_argument("--concurrency", type=int, default=0, help="MAGPIE_RECEIPT_URL_CONCURRENCY override")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--mongodb-uri",
        default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:37027/?directConnection=true"),
    )
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(sock, args.latency_ms, []), daemon=True)
    child.start()
    try:
        print(json.dumps(asyncio.run(run(args, port))))
    finally:
        child.terminate()
        child.join()
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
