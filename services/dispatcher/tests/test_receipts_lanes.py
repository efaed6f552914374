"""Per-URL lanes on real sockets: a receiver that hangs on one URL and fails on another while other URLs' receipts
still flow (the fixtures of ``test_receipts_service``: embedded Kafka and MongoDB, a uvicorn customer endpoint).

Assertions are on what was delivered (each receipt exactly once, in any order), never on timings."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from magpie_common.kafka import EventProducer
from magpie_common.topics import DELIVERY
from magpie_dispatcher.receipts.endpoints import BREAKER_THRESHOLD

from . import test_receipts_service as service
from .test_receipts_service import TEST_CONFIG, Customer, Start, delivered, outbox_items, register, wait_states

customer = service.customer
start = service.start
producer = service.producer

pytestmark = pytest.mark.integration


def msg_ids(customer: Customer, path: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for hit in customer.on(path):
        body = hit.receipts
        for receipt in body if isinstance(body, list) else [body]:
            found[receipt["msg_id"]] += 1
    return found


async def test_a_hanging_and_a_failing_receiver_hold_only_their_own_receipts(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    # Few process-wide POST slots, so the hanging URL's POSTs occupy a good share of them; a long timeout, so
    # they stay hung until the receiver is released.
    config = replace(TEST_CONFIG, url_concurrency=4, max_in_flight=8, http_timeout_s=30.0, max_batch=500)
    receipts = await start(config)
    await register(producer, receipts, "tenant-hang", customer.url("/hang"))
    await register(producer, receipts, "tenant-flaky", customer.url("/flaky"))
    await register(producer, receipts, "tenant-single", customer.url("/single"))
    await register(producer, receipts, "tenant-batch", customer.url("/batch"), url_type=2)
    customer.hang.add("/hang")
    # 503s, fewer than open the circuit breaker: the URL's limit halves, the refused receipts are retried.
    customer.fail_first["/flaky"] = BREAKER_THRESHOLD - 1

    await producer.send(DELIVERY, "hang", delivered("tenant-hang", 100, task_id="hang"))
    await producer.send(DELIVERY, "flaky", delivered("tenant-flaky", 100, task_id="flaky"))
    await customer.wait("/hang", 1)  # the hanging URL holds POSTs from now on
    await producer.send(DELIVERY, "single", delivered("tenant-single", 300, task_id="single"))
    await producer.send(DELIVERY, "batch", delivered("tenant-batch", 1000, task_id="batch"))

    await wait_states(receipts, "tenant-single", "done", 300, timeout_s=60)
    await wait_states(receipts, "tenant-batch", "done", 1000, timeout_s=60)
    single = msg_ids(customer, "/single")
    batch = msg_ids(customer, "/batch")
    assert single == Counter({f"MSG-single-{i}": 1 for i in range(300)})
    assert batch == Counter({f"MSG-batch-{i}": 1 for i in range(1000)})
    assert max(len(h.receipts) for h in customer.on("/batch")) == 500  # batches are filled, not trickled
    # Meanwhile nothing of the hanging URL was acknowledged: its POSTs are still open.
    hung = await outbox_items(receipts, "tenant-hang")
    assert len(hung) == 100 and all(i["state"] == "pending" for i in hung)
    assert len(customer.on("/hang")) <= config.url_concurrency  # its limit never grew without a success

    # The receivers recover: every held receipt arrives, once.
    customer.released.set()
    customer.hang.discard("/hang")
    await wait_states(receipts, "tenant-flaky", "done", 100, timeout_s=90)
    await wait_states(receipts, "tenant-hang", "done", 100, timeout_s=90)
    await asyncio.sleep(0.5)
    assert set(msg_ids(customer, "/hang")) == {f"MSG-hang-{i}" for i in range(100)}
    assert max(msg_ids(customer, "/hang").values()) == 1
    flaky = msg_ids(customer, "/flaky")
    assert set(flaky) == {f"MSG-flaky-{i}" for i in range(100)}
    refused = BREAKER_THRESHOLD - 1
    assert sum(flaky.values()) == 100 + refused  # the refused POSTs, each retried once it was due
    retried = [h.envelope["retry"] for h in customer.on("/flaky")]
    assert retried.count(0) == 100 and sum(1 for r in retried if r > 0) == refused
