"""The receipt sender on the real embedded Kafka and MongoDB, POSTing to a real HTTP server (uvicorn on a free port)
that plays the customer's callback endpoint."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from magpie.v1 import billing_pb2, common_pb2, dispatch_pb2, link_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.topics import CALLBACKS, DELIVERY, LINK
from magpie_dispatcher.receipts import ReceiptsComponents, ReceiptsConfig, build_receipts, tenant_signing_secret
from magpie_dispatcher.receipts.outbox import utcnow
from magpie_dispatcher.receipts.producers import batch_window_end

pytestmark = pytest.mark.integration

SENT_MS = 1714552200000  # 2024-05-01T08:30:00Z
PROMO = "https://aim.example/promo"

# -- the customer's endpoint --------------------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def receipts(self) -> Any:
        return json.loads(self.envelope["body"])


@dataclass
class Customer:
    """Records every POST; per path: fail the first N with 500, always answer a status, or hang."""

    base_url: str = ""
    hits: list[Hit] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    fail_msg_first: dict[str, int] = field(default_factory=dict)  # msg_id -> fail the first N POSTs carrying it
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        self.hits.append(Hit(path, dict(request.headers), await request.body(), time.monotonic()))
        if path in self.hang:
            try:
                await asyncio.wait_for(self.released.wait(), 60)
            except TimeoutError:
                pass
            return PlainTextResponse("late")
        if self.fail_first.get(path, 0) > 0:
            self.fail_first[path] -= 1
            return PlainTextResponse("try later", status_code=500)
        body = self.hits[-1].receipts if self.fail_msg_first else []
        for receipt in body if isinstance(body, list) else [body]:
            if self.fail_msg_first.get(receipt.get("msg_id", ""), 0) > 0:
                self.fail_msg_first[receipt["msg_id"]] -= 1
                return PlainTextResponse("try later", status_code=500)
        return PlainTextResponse("ignored by the platform", status_code=self.status.get(path, 200))

    async def wait(self, path: str, count: int, timeout_s: float = 30.0) -> list[Hit]:
        deadline = time.monotonic() + timeout_s
        while len(self.on(path)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: {len(self.on(path))} of {count} POSTs")
            await asyncio.sleep(0.05)
        return self.on(path)


@pytest.fixture
async def customer() -> AsyncIterator[Customer]:
    result = Customer()
    app = Starlette(routes=[Route("/{path:path}", result.handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    result.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield result
    finally:
        result.released.set()
        server.should_exit = True
        await task
        sock.close()


# -- the service under test -----------------------------------------------------------------------------------------

TEST_CONFIG = ReceiptsConfig(
    batch_window_ms=400,
    max_batch=500,
    max_attempts=12,
    retry_base_ms=200,
    retry_max_ms=600_000,
    http_timeout_s=5.0,
    url_concurrency=4,
    poll_ms=50,
    lease_s=120,
    callback_cache_ms=5000,
    signing_secret="",
    allow_loopback=True,
)


@dataclass
class Running:
    components: ReceiptsComponents
    tasks: list[asyncio.Task[None]]

    async def shutdown(self) -> None:
        self.components.stop()
        await asyncio.gather(*self.tasks)
        await self.components.close()


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(settings: Settings) -> AsyncIterator[Start]:
    running: list[Running] = []

    async def _start(config: ReceiptsConfig = TEST_CONFIG, *, sender: bool = True) -> Running:
        components = await build_receipts(settings, config)
        workers = components.workers()
        if not sender:
            workers[-1].close()  # the sender coroutine, never started
            workers = workers[:-1]
        instance = Running(components, [asyncio.create_task(w) for w in workers])
        running.append(instance)
        return instance

    yield _start
    for instance in running:
        if not instance.components.http.is_closed:
            await instance.shutdown()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[EventProducer]:
    result = EventProducer(settings, client_id="receipts-test")
    await result.start()
    try:
        yield result
    finally:
        await result.stop()


async def register(
    producer: EventProducer,
    receipts: Running,
    tenant: str,
    url: str,
    *,
    url_type: int = 0,
    aim_url: str = "",
    deleted: bool = False,
) -> None:
    """Produce a CallbackConfigured and wait until the registry stored it."""
    callback_id = f"CB-{tenant}-{url_type}-{aim_url}"
    event = billing_pb2.CallbackConfigured(
        meta=common_pb2.EventMeta(event_id=uuid.uuid4().hex, tenant_id=tenant, producer="gateway"),
        callback_id=callback_id,
        url_type=url_type,
        url=url,
        aim_url=aim_url,
        deleted=deleted,
    )
    await producer.send(CALLBACKS, f"{tenant}:{url_type}", event)
    deadline = time.monotonic() + 30
    while True:
        stored = await receipts.components.registry.stored(tenant)
        present = any(c.url_type == url_type and c.aim_url == aim_url and c.url == url for c in stored)
        if present != deleted:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"callback of {tenant} not stored")
        await asyncio.sleep(0.05)


def delivery_event(
    tenant: str,
    index: int,
    status: int,
    result_code: str = "",
    *,
    task_id: str = "task-1",
    aim_url: str = "",
) -> dispatch_pb2.DeliveryEvent:
    return dispatch_pb2.DeliveryEvent(
        event_id=f"dlv-{tenant}-{task_id}-{index}-{status}",
        tenant_id=tenant,
        task_id=task_id,
        batch_no=0,
        index=index,
        mobile=f"1380013{index:04d}",
        msg_id=f"MSG-{task_id}-{index}",
        carrier_msg_id=f"C{index}",
        status=status,  # type: ignore[arg-type]
        result_code=result_code,
        segments=1 + index % 2,
        submitted_at_ms=SENT_MS + index * 1000,
        done_at_ms=SENT_MS + index * 1000 + 4000 if status != dispatch_pb2.DELIVERY_STATUS_SUBMITTED else 0,
        carrier="CMCC",
        route=common_pb2.ROUTE_SMART,
        tpl_id="100000001",
        sms_sign="Magpie",
        aim_url=aim_url,
    )


def delivery_batch(events: list[dispatch_pb2.DeliveryEvent]) -> dispatch_pb2.DeliveryBatch:
    return dispatch_pb2.DeliveryBatch(
        meta=common_pb2.EventMeta(event_id=uuid.uuid4().hex, tenant_id=events[0].tenant_id, producer="dispatcher"),
        events=events,
    )


def delivered(tenant: str, count: int, *, task_id: str = "task-1", aim_url: str = "") -> dispatch_pb2.DeliveryBatch:
    return delivery_batch(
        [
            delivery_event(
                tenant, i, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD", task_id=task_id, aim_url=aim_url
            )
            for i in range(count)
        ]
    )


def link_event(
    tenant: str, code: str, kind: int, *, billable: bool, at_ms: int, aim_url: str = ""
) -> link_pb2.LinkEvent:
    return link_pb2.LinkEvent(
        meta=common_pb2.EventMeta(
            event_id=f"lnk-{code}-{kind}-{at_ms}", tenant_id=tenant, occurred_at_ms=at_ms, producer="shortlink"
        ),
        type=kind,  # type: ignore[arg-type]
        code=code,
        task_id="task-1",
        batch_no=0,
        index=3,
        mobile="13800130003",
        msisdn="8613800130003",
        tpl_id="100000001",
        at_ms=at_ms,
        user_agent="HuaweiMessaging/11",
        billable=billable,
        aim_url=aim_url,
    )


async def outbox_items(receipts: Running, tenant: str) -> list[dict[str, Any]]:
    """The tenant's receipts in the outbox, one row each (``Outbox.receipts_of``: the outbox stores documents of
    receipts)."""
    return await receipts.components.outbox.receipts_of(tenant)


async def wait_states(receipts: Running, tenant: str, state: str, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        items = await outbox_items(receipts, tenant)
        if sum(1 for i in items if i["state"] == state) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tenant}: {[(i['state'], i['attempts']) for i in items]}")
        await asyncio.sleep(0.1)


# -- tests ----------------------------------------------------------------------------------------------------------


async def test_single_mode_posts_one_receipt_per_final_status(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-a", customer.url("/single"))
    events = [
        delivery_event("tenant-a", 0, dispatch_pb2.DELIVERY_STATUS_SUBMITTED),
        delivery_event("tenant-a", 1, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD", aim_url=PROMO),
        delivery_event("tenant-a", 2, dispatch_pb2.DELIVERY_STATUS_FAILED, "UNDELIV"),
        delivery_event("tenant-a", 3, dispatch_pb2.DELIVERY_STATUS_TIMEOUT),
        delivery_event("tenant-a", 4, dispatch_pb2.DELIVERY_STATUS_FAILED, "0x00000045"),
    ]
    await producer.send(DELIVERY, "task-1:0", delivery_batch(events))

    hits = await customer.wait("/single", 4)
    await asyncio.sleep(0.7)
    assert len(customer.hits) == 4  # SUBMITTED is not final: no receipt
    by_msg = {h.receipts["msg_id"]: h for h in hits}
    assert set(by_msg) == {"MSG-task-1-1", "MSG-task-1-2", "MSG-task-1-3", "MSG-task-1-4"}
    first = by_msg["MSG-task-1-1"]
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert "webhook-signature" not in first.headers  # no secret configured
    envelope = first.envelope
    assert set(envelope) == {"request_id", "domain_id", "callback_type", "body", "retry"}
    assert uuid.UUID(envelope["request_id"])
    assert (envelope["domain_id"], envelope["callback_type"], envelope["retry"]) == ("tenant-a", "sms", 0)
    assert isinstance(envelope["body"], str)
    assert json.loads(envelope["body"]) == {
        "task_id": "task-1",
        "msg_id": "MSG-task-1-1",
        "cust_flag": "13800130001",
        "tpl_id": "100000001",
        "sms_sign": "Magpie",
        "status": "DELIVRD",
        "result_code": "DELIVRD",
        "send_time": "2024-05-01T08:30:01Z",
        "receive_time": "2024-05-01T08:30:05Z",
        "segments": 2,
        "aim_url": PROMO,
    }
    statuses = {m: (h.receipts["status"], h.receipts["result_code"]) for m, h in by_msg.items()}
    assert statuses == {
        "MSG-task-1-1": ("DELIVRD", "DELIVRD"),
        "MSG-task-1-2": ("UNDELIV", "UNDELIV"),
        "MSG-task-1-3": ("TIMEOUT", "TIMEOUT"),
        "MSG-task-1-4": ("0x00000045", "0x00000045"),
    }
    assert len({h.envelope["request_id"] for h in hits}) == 4
    await wait_states(receipts, "tenant-a", "done", 4)
    assert await receipts.components.sender.update_gauges() == 0
    assert all((await receipts.components.readiness()).values())


async def test_batch_mode_posts_arrays_within_window_and_size(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start(replace(TEST_CONFIG, max_batch=3, batch_window_ms=2000))
    await register(producer, receipts, "tenant-b", customer.url("/batch"), url_type=2)
    # Produce right after a window of this URL opened, so both records fall into the same window.
    window_end = batch_window_end(utcnow(), customer.url("/batch"), 2000)
    await asyncio.sleep((window_end - utcnow()).total_seconds() + 0.05)
    first = delivered("tenant-b", 4)
    first.events.append(delivery_event("tenant-b", 9, dispatch_pb2.DELIVERY_STATUS_SUBMITTED))
    await producer.send(DELIVERY, "task-1:0", first)
    await producer.send(DELIVERY, "task-2:0", delivered("tenant-b", 3, task_id="task-2"))

    hits = await customer.wait("/batch", 3)
    await asyncio.sleep(1.0)
    hits = customer.on("/batch")
    # 7 receipts from two Kafka records joined in one window: 3 POSTs of at most 3 (not 4 POSTs: [3, 1] + [3]).
    assert sorted(len(h.receipts) for h in hits) == [1, 3, 3]
    for hit in hits:
        assert isinstance(hit.envelope["body"], str)
        assert isinstance(hit.receipts, list)
        assert (hit.envelope["callback_type"], hit.envelope["domain_id"], hit.envelope["retry"]) == (
            "sms",
            "tenant-b",
            0,
        )
    msg_ids = sorted(r["msg_id"] for h in hits for r in h.receipts)
    expected = sorted([f"MSG-task-1-{i}" for i in range(4)] + [f"MSG-task-2-{i}" for i in range(3)])
    assert msg_ids == expected
    assert all(r["status"] == "DELIVRD" for h in hits for r in h.receipts)
    assert len({h.envelope["request_id"] for h in hits}) == 3
    await wait_states(receipts, "tenant-b", "done", 7)


async def test_shortchain_receipts_for_first_successful_resolutions(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-c", customer.url("/links"))
    for event in (
        link_event("tenant-c", "Ab3dE9", link_pb2.LINK_EVENT_TYPE_RESOLVED, billable=True, at_ms=SENT_MS + 60_000),
        link_event("tenant-c", "Ab3dE9", link_pb2.LINK_EVENT_TYPE_RESOLVED, billable=False, at_ms=SENT_MS + 61_000),
        link_event("tenant-c", "Ab3dE9", link_pb2.LINK_EVENT_TYPE_CLICKED, billable=False, at_ms=SENT_MS + 62_000),
        link_event(
            "tenant-c",
            "Zz9yX8",
            link_pb2.LINK_EVENT_TYPE_RESOLVED,
            billable=True,
            at_ms=SENT_MS + 63_000,
            aim_url=PROMO,
        ),
    ):
        await producer.send(LINK, event.code, event)

    hits = await customer.wait("/links", 2)
    await asyncio.sleep(0.7)
    assert len(customer.hits) == 2
    by_code = {h.receipts["aim_code"]: h for h in hits}
    assert all(h.envelope["callback_type"] == "shortchain" for h in hits)
    assert by_code["Ab3dE9"].receipts == {
        "task_id": "task-1",
        "aim_code": "Ab3dE9",
        "cust_flag": "13800130003",
        "tpl_id": "100000001",
        "resolve_time": "2024-05-01T08:31:00Z",
        "aim_url": "",
    }
    assert by_code["Zz9yX8"].receipts["resolve_time"] == "2024-05-01T08:31:03Z"
    assert by_code["Zz9yX8"].receipts["aim_url"] == PROMO


async def test_no_receipt_without_a_registered_callback(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-known", customer.url("/known"))
    # Same key: the unregistered tenant's record is processed before the registered tenant's.
    await producer.send(DELIVERY, "same-key", delivered("tenant-unknown", 3))
    await producer.send(DELIVERY, "same-key", delivered("tenant-known", 1))
    await customer.wait("/known", 1)
    await asyncio.sleep(0.5)
    assert [h.envelope["domain_id"] for h in customer.hits] == ["tenant-known"]
    assert await outbox_items(receipts, "tenant-unknown") == []

    # A template-status URL (url_type 1) is not a receipt URL; a deleted registration stops receipts.
    await register(producer, receipts, "tenant-unknown", customer.url("/templates"), url_type=1)
    await register(producer, receipts, "tenant-known", customer.url("/known"), deleted=True)
    await producer.send(DELIVERY, "same-key", delivered("tenant-unknown", 2, task_id="task-2"))
    await producer.send(DELIVERY, "same-key", delivered("tenant-known", 2, task_id="task-2"))
    await register(producer, receipts, "tenant-marker", customer.url("/marker"))
    await producer.send(DELIVERY, "same-key", delivered("tenant-marker", 1))
    await customer.wait("/marker", 1)
    await asyncio.sleep(0.5)
    assert len(customer.on("/known")) == 1
    assert customer.on("/templates") == []


async def test_routing_by_aim_url(start: Start, producer: EventProducer, customer: Customer) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-r", customer.url("/default"))
    await register(producer, receipts, "tenant-r", customer.url("/promo"), aim_url=PROMO)
    batch = delivery_batch(
        [
            delivery_event("tenant-r", 0, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD", aim_url=PROMO),
            delivery_event("tenant-r", 1, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD", aim_url="https://x/other"),
            delivery_event("tenant-r", 2, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD"),
        ]
    )
    await producer.send(DELIVERY, "task-1:0", batch)
    link = link_event(
        "tenant-r", "Pr0m0", link_pb2.LINK_EVENT_TYPE_RESOLVED, billable=True, at_ms=SENT_MS, aim_url=PROMO
    )
    await producer.send(LINK, "Pr0m0", link)

    promo = await customer.wait("/promo", 2)
    default = await customer.wait("/default", 2)
    await asyncio.sleep(0.5)
    assert len(customer.hits) == 4
    assert sorted(
        (h.envelope["callback_type"], h.receipts.get("msg_id", h.receipts.get("aim_code"))) for h in promo
    ) == [
        ("shortchain", "Pr0m0"),
        ("sms", "MSG-task-1-0"),
    ]
    assert sorted(h.receipts["msg_id"] for h in default) == ["MSG-task-1-1", "MSG-task-1-2"]


async def test_redelivered_records_and_duplicate_events_post_once(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-d", customer.url("/once"))
    batch = delivered("tenant-d", 3)
    await producer.send(DELIVERY, "task-1:0", batch)
    await producer.send(DELIVERY, "task-1:0", batch)  # the same record again, as after a crash before the commit
    duplicate = delivery_batch([delivery_event("tenant-d", 1, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD")])
    await producer.send(DELIVERY, "task-1:0", duplicate)  # another record repeating an event
    link = link_event("tenant-d", "Dup1", link_pb2.LINK_EVENT_TYPE_RESOLVED, billable=True, at_ms=SENT_MS)
    await producer.send(LINK, "Dup1", link)
    await producer.send(LINK, "Dup1", link)

    await customer.wait("/once", 4)
    await wait_states(receipts, "tenant-d", "done", 4)
    await producer.send(DELIVERY, "task-1:0", batch)  # redelivered after the receipts were delivered
    await producer.send(LINK, "Dup1", link)
    await asyncio.sleep(1.5)
    hits = customer.on("/once")
    assert len(hits) == 4
    assert sorted(h.receipts.get("msg_id", h.receipts.get("aim_code")) for h in hits) == [
        "Dup1",
        "MSG-task-1-0",
        "MSG-task-1-1",
        "MSG-task-1-2",
    ]
    assert len(await outbox_items(receipts, "tenant-d")) == 4


async def test_failing_twice_then_succeeding_retries_with_increasing_retry(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-f", customer.url("/flaky"))
    customer.fail_first["/flaky"] = 2
    await producer.send(DELIVERY, "task-1:0", delivered("tenant-f", 1))

    hits = await customer.wait("/flaky", 3)
    await wait_states(receipts, "tenant-f", "done", 1)
    await asyncio.sleep(0.5)
    hits = customer.on("/flaky")
    assert [h.envelope["retry"] for h in hits] == [0, 1, 2]
    assert len({h.envelope["request_id"] for h in hits}) == 1
    assert len({h.envelope["body"] for h in hits}) == 1
    first_gap, second_gap = hits[1].at - hits[0].at, hits[2].at - hits[1].at
    assert first_gap >= 0.19  # base 200 ms
    assert second_gap >= 0.39  # doubled
    assert second_gap > first_gap
    (item,) = await outbox_items(receipts, "tenant-f")
    assert (item["state"], item["attempts"], item["last_error"]) == ("done", 2, "HTTP 500")


async def test_dead_endpoints_end_dead_without_blocking_other_tenants(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    config = replace(TEST_CONFIG, max_attempts=3, http_timeout_s=0.5, url_concurrency=2)
    receipts = await start(config)
    await register(producer, receipts, "tenant-slow", customer.url("/hang"))
    await register(producer, receipts, "tenant-500", customer.url("/broken"))
    await register(producer, receipts, "tenant-ok", customer.url("/ok"))
    customer.hang.add("/hang")
    customer.status["/broken"] = 503
    await producer.send(DELIVERY, "k1", delivered("tenant-slow", 10))
    await producer.send(DELIVERY, "k2", delivered("tenant-500", 2))
    await asyncio.sleep(0.3)
    produced_at = time.monotonic()
    await producer.send(DELIVERY, "k3", delivered("tenant-ok", 5))

    ok_hits = await customer.wait("/ok", 5, timeout_s=5)
    assert max(h.at for h in ok_hits) - produced_at < 3.0
    slow_items = await outbox_items(receipts, "tenant-slow")
    assert all(i["state"] == "pending" for i in slow_items)  # still being retried meanwhile
    assert len(customer.on("/hang")) < 30

    await wait_states(receipts, "tenant-500", "dead", 2, timeout_s=30)
    await wait_states(receipts, "tenant-slow", "dead", 10, timeout_s=60)
    for item in await outbox_items(receipts, "tenant-slow"):
        assert (item["state"], item["attempts"]) == ("dead", 3)
        assert "timeout" in item["last_error"].lower()
    # 503s halve the URL's adaptive limit (2 -> 1), so its last attempts run one after the other and the 6th comes
    # after the 5th consecutive failure opened the circuit: failed without a POST.
    for item in await outbox_items(receipts, "tenant-500"):
        assert (item["state"], item["attempts"]) == ("dead", 3)
        assert item["last_error"] in ("HTTP 503", "not attempted: endpoint failing: HTTP 503")
    assert sorted(h.envelope["retry"] for h in customer.on("/broken"))[:5] == [0, 0, 1, 1, 2]
    assert len(customer.on("/broken")) <= 6
    # After 5 consecutive failures the endpoint's circuit opens: later attempts fail without a POST.
    hang_retries = [h.envelope["retry"] for h in customer.on("/hang")]
    assert 5 <= len(hang_retries) < 30  # 10 items x 3 attempts would be 30 POSTs without the circuit
    assert await receipts.components.sender.update_gauges() == 0
    assert await receipts.components.outbox.count("dead") == 12
    assert len(await receipts.components.outbox.find_items(tenant_id="tenant-500", state="dead")) == 2


async def test_restart_resumes_pending_items(start: Start, producer: EventProducer, customer: Customer) -> None:
    # 1. Failed once before the restart: resumed with retry 1 and the same request_id.
    first = await start(replace(TEST_CONFIG, retry_base_ms=2000))
    await register(producer, first, "tenant-s", customer.url("/down"))
    customer.status["/down"] = 503
    await producer.send(DELIVERY, "task-1:0", delivered("tenant-s", 3))
    before = await customer.wait("/down", 3)
    await asyncio.sleep(0.3)
    await first.shutdown()

    # 2. Never POSTed before the restart (this instance ran without its sender).
    second = await start(sender=False)
    await register(producer, second, "tenant-n", customer.url("/later"))
    deadline = time.monotonic() + 30
    for index in range(2):  # one record at a time: two outbox documents
        event = delivery_event("tenant-n", index, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD")
        await producer.send(DELIVERY, "task-1:0", delivery_batch([event]))
        while len(await outbox_items(second, "tenant-n")) < index + 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    pending_s = await outbox_items(second, "tenant-s")
    assert [(i["state"], i["attempts"]) for i in pending_s] == [("pending", 1)] * 3
    # 3. One of them claimed by an instance that then crashed: taken over once its 4 s lease expires.
    crashed = (await outbox_items(second, "tenant-n"))[0]
    claimed_at = time.monotonic()
    outbox = second.components.outbox
    document = await outbox.collection.find_one({"_id": crashed["doc_id"]})
    assert document is not None and len(document["receipts"]) == 1
    got = await outbox.claim([document], utcnow(), 4.0, "crashed-instance:0")
    assert [d["_id"] for d in got] == [crashed["doc_id"]]
    await second.shutdown()
    assert customer.on("/later") == []

    customer.status["/down"] = 200
    third = await start()
    after = await customer.wait("/down", 6)
    later = await customer.wait("/later", 2)
    resumed = after[3:]
    assert sorted(h.envelope["retry"] for h in resumed) == [1, 1, 1]
    assert {h.envelope["request_id"] for h in resumed} == {h.envelope["request_id"] for h in before}
    assert [h.envelope["retry"] for h in later] == [0, 0]
    taken_over = next(h for h in later if h.receipts["msg_id"] == crashed["receipt"]["msg_id"])
    free = next(h for h in later if h is not taken_over)
    assert taken_over.at - claimed_at >= 3.9
    assert free.at <= taken_over.at
    await wait_states(third, "tenant-s", "done", 3)
    await wait_states(third, "tenant-n", "done", 2)


async def test_loopback_destination_refused_unless_allowed(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start(replace(TEST_CONFIG, allow_loopback=False))
    await register(producer, receipts, "tenant-x", customer.url("/internal"))
    await register(producer, receipts, "tenant-y", customer.url("/internal").replace("127.0.0.1", "localhost"))
    await register(producer, receipts, "tenant-z", "ftp://files.example/receipts")
    for tenant in ("tenant-x", "tenant-y", "tenant-z"):
        await producer.send(DELIVERY, tenant, delivered(tenant, 1))
    for tenant in ("tenant-x", "tenant-y", "tenant-z"):
        await wait_states(receipts, tenant, "dead", 1)
    assert customer.hits == []
    for tenant in ("tenant-x", "tenant-y"):
        (item,) = await outbox_items(receipts, tenant)
        assert item["attempts"] == 1
        assert "destination refused" in item["last_error"]
        assert "127.0.0.1" in item["last_error"]
    (ftp,) = await outbox_items(receipts, "tenant-z")
    assert "http" in ftp["last_error"]


async def test_posts_are_signed_with_standard_webhooks(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    master = "whsec_" + "c2VjcmV0LW9mLXRoZS1kZXBsb3ltZW50LTMyYnl0ZXM="
    receipts = await start(replace(TEST_CONFIG, signing_secret=master))
    await register(producer, receipts, "tenant-w", customer.url("/signed"))
    await register(producer, receipts, "tenant-w", customer.url("/signed-batch"), url_type=2)
    await producer.send(DELIVERY, "task-1:0", delivered("tenant-w", 2))

    single = await customer.wait("/signed", 2)
    batch = await customer.wait("/signed-batch", 1)
    tenant_secret = tenant_signing_secret(master, "tenant-w")
    for hit in [*single, *batch]:
        verified = Webhook(tenant_secret).verify(hit.body, hit.headers)
        assert verified == hit.envelope
        assert hit.headers["webhook-id"] == hit.envelope["request_id"]
        assert abs(int(hit.headers["webhook-timestamp"]) - time.time()) < 30
        with pytest.raises(WebhookVerificationError):
            Webhook(tenant_signing_secret(master, "another-tenant")).verify(hit.body, hit.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(tenant_secret).verify(hit.body.replace(b'"retry":0', b'"retry":1'), hit.headers)
    assert len(batch[0].receipts) == 2


async def test_backlog_beyond_a_urls_quota_is_posted_once_each(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    # Concurrency 1: the URL holds at most 32 single POSTs; the rest waits in the outbox (the URL's backlog).
    receipts = await start(replace(TEST_CONFIG, url_concurrency=1))
    await register(producer, receipts, "tenant-big", customer.url("/big"))
    await register(producer, receipts, "tenant-small", customer.url("/small"))
    for task in range(3):
        await producer.send(DELIVERY, f"task-{task}:0", delivered("tenant-big", 60, task_id=f"task-{task}"))
    await producer.send(DELIVERY, "small", delivered("tenant-small", 3))

    small = await customer.wait("/small", 3)
    big = await customer.wait("/big", 180, timeout_s=60)
    await asyncio.sleep(0.5)
    msg_ids = [h.receipts["msg_id"] for h in customer.on("/big")]
    assert len(msg_ids) == 180 and len(set(msg_ids)) == 180
    assert all(h.envelope["retry"] == 0 for h in big)
    assert max(h.at for h in small) < max(h.at for h in big)  # not queued behind the big tenant's backlog
    await wait_states(receipts, "tenant-big", "done", 180)


async def test_two_instances_share_the_outbox_without_posting_twice(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    first = await start()
    second = await start()
    tenants = [f"tenant-{n}" for n in range(4)]
    for tenant in tenants:
        await register(producer, first, tenant, customer.url(f"/{tenant}"))
    for n, tenant in enumerate(tenants):
        for task in range(3):
            await producer.send(DELIVERY, f"{tenant}-{task}", delivered(tenant, 10, task_id=f"task-{n}-{task}"))
    for tenant in tenants:
        await customer.wait(f"/{tenant}", 30)
    await first.shutdown()  # the other instance carries on alone
    for tenant in tenants:
        await producer.send(DELIVERY, f"{tenant}-late", delivered(tenant, 5, task_id="late"))
    for tenant in tenants:
        await customer.wait(f"/{tenant}", 35)
    await asyncio.sleep(1.0)
    for tenant in tenants:
        msg_ids = [h.receipts["msg_id"] for h in customer.on(f"/{tenant}")]
        assert len(msg_ids) == 35 and len(set(msg_ids)) == 35
        await wait_states(second, tenant, "done", 35)
