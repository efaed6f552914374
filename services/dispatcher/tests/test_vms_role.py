"""The vms role against the carrier simulator's VMS channel: template registration, submits (exactly once across
redeliveries), reports and replies into events, timeouts, and the VMS customer callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from magpie.v1 import billing_pb2, dispatch_pb2, vms_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect
from magpie_common.topics import VMS_CALLBACKS, VMS_DELIVERY, VMS_MO, VMS_SEND, VMS_TEMPLATE_STATUS, VMS_TEMPLATES
from magpie_dispatcher.testing import SIM_PASSWORD, SIM_SYSTEM_ID, simulator
from magpie_dispatcher.vms.config import VmsConfig
from magpie_dispatcher.vms.role import VmsRole, build_vms
from magpie_dispatcher.vms.sender import vms_message_id
from magpie_dispatcher.vms.store import STATE_SUBMITTED, VmsRecord
from magpie_dispatcher.wiring import redis_pool_client

pytestmark = pytest.mark.integration

TENANT = "tenant-vms"
HOUR_MS = 3_600_000


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0\0"))
    # a medium of more than one 512 KiB piece
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"tEXt", b"c\0" + bytes(700_000)) + chunk(b"IEND", b"")


def release(tpl_id: str, media: bytes, carriers: tuple[str, ...] = ("CMCC", "CTCC"), revision: int = 1) -> list[Any]:
    """The records the gateway produces when a template is approved: pieces, then the template."""
    sha = hashlib.sha256(media).hexdigest()
    size = 512 * 1024
    count = -(-len(media) // size)
    records: list[tuple[str, vms_pb2.VmsTemplateRecord]] = []
    for seq in range(count):
        chunk = vms_pb2.VmsMediaChunk(sha256=sha, seq=seq, count=count, data=media[seq * size : (seq + 1) * size])
        chunk.size = len(media)
        chunk.meta.tenant_id = TENANT
        records.append((f"media:{sha}:{seq}", vms_pb2.VmsTemplateRecord(chunk=chunk)))
    released = vms_pb2.VmsTemplateReleased(
        tpl_id=tpl_id, revision=revision, title="新车上市", sign="喜鹊汽车", params=["#p_1#"], carriers=carriers
    )
    released.meta.tenant_id = TENANT
    released.elements.add(frame=1, position=1, type="png", media_sha256=sha, media_size=len(media), name="car.png")
    released.elements.add(frame=1, position=2, type="txt", text="【喜鹊汽车】#p_1#您好，欢迎试驾")
    records.append((f"tpl:{tpl_id}", vms_pb2.VmsTemplateRecord(template=released)))
    # pieces may arrive after the template: put the template first on purpose
    return [records[-1], *records[:-1]]


def send_batch(task_id: str, tpl_id: str, mobiles: list[str], *, hours: float = 1.0) -> vms_pb2.VmsSendBatch:
    message = vms_pb2.VmsSendBatch(
        task_id=task_id,
        task_name="试驾",
        tpl_id=tpl_id,
        tpl_revision=1,
        batch_no=0,
        batch_count=1,
        expires_at_ms=now_ms() + int(hours * HOUR_MS),
        params=["张先生"],
    )
    message.meta.tenant_id = TENANT
    for index, mobile in enumerate(mobiles):
        message.recipients.add(index=index, mobile=mobile)
    return message


class Callbacks:
    """A local HTTP server recording the POSTed callback bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Callbacks:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        body = await reader.readexactly(length)
        path = head.split(b" ", 2)[1].decode()
        self.bodies.append({"path": path, "body": orjson.loads(body)})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    def at(self, path: str) -> list[dict[str, Any]]:
        return [b["body"] for b in self.bodies if b["path"] == path]


@contextlib.asynccontextmanager
async def running_role(settings: Settings, sim: Any, **overrides: Any) -> AsyncIterator[VmsRole]:
    config = VmsConfig(
        **{
            "carrier_url": f"http://127.0.0.1:{sim.http_port}",
            "account": SIM_SYSTEM_ID,
            "password": SIM_PASSWORD,
            "poll_interval_s": 0.05,
            "template_wait_s": 10.0,
            "sweep_interval_s": 0.2,
            **overrides,
        }
    )
    redis = redis_pool_client(settings, 16)
    role = await build_vms(settings, redis, config)
    tasks = [asyncio.create_task(w) for w in role.workers()]
    try:
        async with asyncio.timeout(30):
            while not await role.ready():
                await asyncio.sleep(0.1)
        yield role
    finally:
        role.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await role.close()
        await redis.aclose()


def finals(events: list[dispatch_pb2.DeliveryBatch]) -> dict[str, dispatch_pb2.DeliveryEvent]:
    result: dict[str, dispatch_pb2.DeliveryEvent] = {}
    for batch in events:
        for event in batch.events:
            if event.status != dispatch_pb2.DELIVERY_STATUS_SUBMITTED:
                result.setdefault(event.msg_id, event)
                assert result[event.msg_id] == event  # one final state per message, whatever repeats
    return result


async def test_vms_reaches_the_channel_reports_replies_and_callbacks(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGPIE_ALLOW_LOOPBACK_CALLBACKS", "1")
    monkeypatch.setenv("MAGPIE_RECEIPT_BATCH_WINDOW_MS", "100")
    media = png()
    mobiles = ["13900000001", "18600000002", "12345", "+8615800000003"]  # CMCC, CUCC (not approved), bad, rejected
    producer = EventProducer(settings, "vms-test")
    await producer.start()
    try:
        async with (
            Callbacks() as hooks,
            simulator(http_port=0, reject_prefixes=("158",)) as sim,
            running_role(settings, sim) as role,
        ):
            for url_type, path in ((0, "/status"), (1, "/replies")):
                event = billing_pb2.CallbackConfigured(
                    callback_id=f"cb{url_type}", url_type=url_type, url=hooks.url(path)
                )
                event.meta.tenant_id = TENANT
                event.meta.event_id = f"cb-{url_type}"
                await producer.send(VMS_CALLBACKS, f"{TENANT}:{url_type}", event)
            await producer.send(VMS_SEND, "task-1:0", send_batch("task-1", "VMS1", mobiles))
            await producer.send_many((VMS_TEMPLATES, key, record) for key, record in release("VMS1", media))

            batches = await collect(
                settings, VMS_DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda got: len(finals(got)) == 4
            )
            done = finals(batches)
            by_mobile = {e.mobile: e for e in done.values()}
            assert by_mobile["13900000001"].status == dispatch_pb2.DELIVERY_STATUS_DELIVERED
            assert by_mobile["13900000001"].result_code == "DELIVRD" and by_mobile["13900000001"].carrier == "CMCC"
            assert (by_mobile["18600000002"].status, by_mobile["18600000002"].result_code) == (
                dispatch_pb2.DELIVERY_STATUS_FAILED,
                "TEMPLATE_NOT_APPROVED",
            )
            assert by_mobile["12345"].result_code == "INVALID_NUMBER"
            assert by_mobile["+8615800000003"].result_code == "REJECTD"
            assert all(e.route == 3 and e.tenant_id == TENANT and e.task_id == "task-1" for e in done.values())
            assert {e.msg_id for e in done.values()} == {vms_message_id("task-1", i) for i in range(4)}
            submitted = [e for b in batches for e in b.events if e.status == dispatch_pb2.DELIVERY_STATUS_SUBMITTED]
            assert {e.mobile for e in submitted} == {"13900000001", "+8615800000003"}

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.http_port}/vms/v1") as http:
                shown = (await http.get("/messages", params={"mobile": "13900000001"})).json()["messages"]
                assert shown[0]["texts"] == ["【喜鹊汽车】张先生您好，欢迎试驾"] and shown[0]["media"] == 1
                assert shown[0]["status"] == "DELIVRD"
                reply = await http.post("/mo", json={"mobile": "13900000001", "content": "TD"})
                assert reply.status_code == 200
                assert (await http.post("/mo", json={"mobile": "18600000002", "content": "x"})).status_code == 404

            replies = await collect(settings, VMS_MO, vms_pb2.VmsMoEvent, until=lambda got: len(got) >= 1)
            assert (replies[0].task_id, replies[0].mobile, replies[0].content) == ("task-1", "13900000001", "TD")
            assert replies[0].meta.tenant_id == TENANT and replies[0].msg_id == vms_message_id("task-1", 0)

            async def posted() -> bool:
                reports = [r for body in hooks.at("/status") for r in body["reports"]]
                return len(reports) == 4 and len(hooks.at("/replies")) == 1

            async with asyncio.timeout(20):
                while not await posted():
                    await asyncio.sleep(0.1)
            reports = {r["mobile"]: r for body in hooks.at("/status") for r in body["reports"]}
            assert all(body["seq_id"] for body in hooks.at("/status"))
            ok = reports["13900000001"]
            assert (ok["task_id"], ok["status"], ok["code"]) == ("task-1", "success", "DELIVRD")
            assert ok["stime"] and ok["rtime"] and ok["desc"] == "delivered"
            assert (reports["18600000002"]["status"], reports["18600000002"]["code"]) == (
                "failed",
                "TEMPLATE_NOT_APPROVED",
            )
            mo = hooks.at("/replies")[0]
            assert mo["seq_id"] and mo["result"][0]["content"] == "TD" and mo["result"][0]["task_id"] == "task-1"

            # A redelivered batch re-sends nothing: the channel sees no new submit of these recipients.
            stats = sim._http.vms.stats()
            await producer.send(VMS_SEND, "task-1:0", send_batch("task-1", "VMS1", mobiles))
            again = await collect(
                settings,
                VMS_DELIVERY,
                dispatch_pb2.DeliveryBatch,
                until=lambda got: len(got) > len(batches),
            )
            assert finals(again) == done
            assert sim._http.vms.stats()["accepted"] == stats["accepted"] == 2
            assert sim._http.vms.stats()["duplicate_submits"] == 0

            # Template status to the template's own callbackurl.
            status = vms_pb2.VmsTemplateStatus(
                tpl_id="VMS1", revision=1, callback_url=hooks.url("/template"), audit_state=0
            )
            status.meta.tenant_id = TENANT
            status.meta.event_id = "tpl-status-1"
            status.status_detail.add(carrier="cmcc", status=0)
            status.var_info.add(name="#p_1#", type="txt")
            await producer.send(VMS_TEMPLATE_STATUS, "VMS1", status)
            async with asyncio.timeout(20):
                while not hooks.at("/template"):
                    await asyncio.sleep(0.1)
            assert hooks.at("/template")[0] == {
                "tpl_id": "VMS1",
                "audit_state": 0,
                "audit_desc": None,
                "status_detail": [{"carrier": "cmcc", "status": 0, "desc": None}],
                "var_info": [{"name": "#p_1#", "type": "txt"}],
            }
            assert role.receipts.ready()
    finally:
        await producer.stop()


async def test_channel_restart_template_missing_and_timeouts(settings: Settings) -> None:
    media = png()
    producer = EventProducer(settings, "vms-test")
    await producer.start()
    try:
        async with (
            simulator(http_port=0, dlr_delay=0.05) as sim,
            running_role(settings, sim, template_wait_s=1.0) as role,
        ):
            await producer.send_many((VMS_TEMPLATES, key, record) for key, record in release("VMS2", media))
            await producer.send(VMS_SEND, "task-2:0", send_batch("task-2", "VMS2", ["13900000011"]))
            await collect(settings, VMS_DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda got: len(finals(got)) == 1)
            # The channel lost its templates (restarted): the next submit registers the template again.
            sim._http.vms.templates.clear()
            await producer.send(VMS_SEND, "task-3:0", send_batch("task-3", "VMS2", ["13900000012"]))
            # A template never released: its recipients fail after the wait.
            await producer.send(VMS_SEND, "task-4:0", send_batch("task-4", "VMS-never", ["13900000013"]))
            got = await collect(
                settings,
                VMS_DELIVERY,
                dispatch_pb2.DeliveryBatch,
                until=lambda got: {e.task_id for e in finals(got).values()} >= {"task-2", "task-3", "task-4"},
            )
            by_task = {e.task_id: e for e in finals(got).values()}
            assert by_task["task-3"].result_code == "DELIVRD" and sim._http.vms.stats()["templates"] == 2
            assert (by_task["task-4"].status, by_task["task-4"].result_code) == (3, "TEMPLATE_UNAVAILABLE")

            # No report by the deadline: TIMEOUT for an accepted message, NOT_SUBMITTED for one never accepted.
            now = now_ms()
            late = VmsRecord(vms_message_id("task-5", 0), TENANT, "task-5", 0, 0, "13900000014", "VMS2", now - 1)
            accepted = VmsRecord(vms_message_id("task-5", 1), TENANT, "task-5", 0, 1, "13900000015", "VMS2", now - 1)
            accepted = accepted.submitted("V1", "CMCC", now - 5000)
            await role.store.put_records([late, accepted], now, schedule=True)
            assert accepted.state == STATE_SUBMITTED
            swept = await collect(
                settings,
                VMS_DELIVERY,
                dispatch_pb2.DeliveryBatch,
                until=lambda got: len([e for e in finals(got).values() if e.task_id == "task-5"]) == 2,
            )
            by_index = {e.index: e for e in finals(swept).values() if e.task_id == "task-5"}
            assert (by_index[0].status, by_index[0].result_code) == (3, "NOT_SUBMITTED")
            assert (by_index[1].status, by_index[1].result_code) == (4, "TIMEOUT")
            assert await role.store.redis.zcard(role.store.due_key) == 0
    finally:
        await producer.stop()


def test_payloads() -> None:
    from magpie_dispatcher.receipts.payloads import envelope
    from magpie_dispatcher.vms.payloads import VMS_MO, VMS_STATUS, status_report

    event = dispatch_pb2.DeliveryEvent(
        task_id="t", mobile="139", status=dispatch_pb2.DELIVERY_STATUS_TIMEOUT, submitted_at_ms=1_700_000_000_000
    )
    report = status_report(event)
    assert (report["status"], report["code"], report["stime"], report["rtime"]) == (
        "timeout",
        "TIMEOUT",
        "2023-11-14T22:13:20Z",
        None,
    )
    body = orjson.loads(
        envelope(request_id="r", tenant_id="x", callback_type=VMS_STATUS, receipts=[report], batch=True, retry=2)
    )
    assert body == {"seq_id": "r", "reports": [report]}
    body = orjson.loads(
        envelope(request_id="r", tenant_id="x", callback_type=VMS_MO, receipts=[{"a": 1}], batch=True, retry=0)
    )
    assert body == {"seq_id": "r", "result": [{"a": 1}]}
    aim = orjson.loads(
        envelope(request_id="r", tenant_id="x", callback_type="sms", receipts=[{"a": 1}], batch=False, retry=0)
    )
    assert aim["callback_type"] == "sms" and aim["body"] == '{"a":1}'  # the AIM format is unchanged


def test_role_and_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from magpie_dispatcher.config import DispatcherConfig, parse_roles

    assert parse_roles("send,receipts,vms") == {"send", "receipts", "vms"}
    monkeypatch.delenv("MAGPIE_DISPATCHER_ROLES", raising=False)
    assert DispatcherConfig.from_env().roles == {"send", "receipts"}  # vms runs only when listed
    monkeypatch.setenv("MAGPIE_SMPP_SYSTEM_ID", "acct")
    monkeypatch.setenv("MAGPIE_SMPP_PASSWORD", "pw")
    monkeypatch.setenv("MAGPIE_VMS_CARRIER_URL", "http://vms.example:8080")
    monkeypatch.setenv("MAGPIE_VMS_REPORT_GRACE_S", "60")
    config = VmsConfig()
    assert (config.carrier_url, config.account, config.password, config.report_grace_s) == (
        "http://vms.example:8080",
        "acct",
        "pw",
        60.0,
    )
    monkeypatch.setenv("MAGPIE_VMS_CARRIER_URL", "vms.example")
    with pytest.raises(ValueError, match="http"):
        VmsConfig()
    monkeypatch.setenv("MAGPIE_VMS_CARRIER_URL", "http://x")
    monkeypatch.setenv("MAGPIE_VMS_SUBMIT_CHUNK", "5000")
    with pytest.raises(ValueError, match="SUBMIT_CHUNK"):
        VmsConfig()


async def test_process_runs_the_vms_role(settings: Settings) -> None:
    import os
    import signal
    import socket
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with simulator(http_port=0) as sim:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "REDIS_URL": settings.redis_url,
            "MONGODB_URI": settings.mongodb_uri,
            "MONGODB_DB": settings.mongodb_db,
            "MAGPIE_TOPIC_PREFIX": settings.topic_prefix,
            "MAGPIE_HTTP_PORT": str(port),
            "MAGPIE_DISPATCHER_ROLES": "vms",
            "MAGPIE_VMS_CARRIER_URL": f"http://127.0.0.1:{sim.http_port}",
            "MAGPIE_VMS_ACCOUNT": SIM_SYSTEM_ID,
            "MAGPIE_VMS_PASSWORD": SIM_PASSWORD,
        }
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "magpie_dispatcher", env=env)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http, asyncio.timeout(60):
                while True:
                    try:
                        ready = await http.get("/readyz")
                        if ready.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
                assert ready.json()["checks"] == {"redis": True, "vms": True}
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
