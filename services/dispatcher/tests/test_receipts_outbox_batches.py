"""The outbox written per batch (one document per handler batch x URL) on the embedded MongoDB, drained by real
``ReceiptSender`` instances POSTing to the local customer endpoint of ``test_receipts_service``: deduplication of
replayed records, partial failures, two instances sharing the outbox, and a crash between a POST and its ``done``.

Assertions are on what was written and delivered, never on timings."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from magpie_common.config import Settings
from magpie_common.storage import mongo_client
from magpie_dispatcher.receipts.destination import guarded_client
from magpie_dispatcher.receipts.outbox import DONE, PENDING, Outbox, new_item, utcnow
from magpie_dispatcher.receipts.payloads import URL_TYPE_BATCH, URL_TYPE_SINGLE
from magpie_dispatcher.receipts.producers import receipt_item_id, store
from magpie_dispatcher.receipts.sender import ReceiptSender

from . import test_receipts_service as service
from .test_receipts_service import TEST_CONFIG, Customer

customer = service.customer

pytestmark = pytest.mark.integration

TENANT = "tenant-o"


def items(url: str, indexes: range | list[int], *, url_type: int = URL_TYPE_SINGLE) -> list[dict[str, Any]]:
    """Receipts as a handler makes them (``new_item``), one per source event ``ev-<n>``."""
    now = utcnow()
    return [
        new_item(
            item_id=receipt_item_id("sms", f"ev-{n}", url_type),
            tenant_id=TENANT,
            callback_type="sms",
            url=url,
            url_type=url_type,
            aim_url="",
            source_event_id=f"ev-{n}",
            receipt={"msg_id": f"MSG-{n}", "status": "DELIVRD"},
            now=now,
            due_at=now,
        )
        for n in indexes
    ]


class Harness:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.senders: list[tuple[ReceiptSender, asyncio.Task[None]]] = []
        self.clients: list[httpx.AsyncClient] = []

    def sender(self, **overrides: Any) -> ReceiptSender:
        config = replace(TEST_CONFIG, **overrides)
        client = guarded_client(allow_loopback=True, timeout_s=config.http_timeout_s, max_connections=16)
        self.clients.append(client)
        return ReceiptSender(self.outbox, config, client, None)

    async def run(self, sender: ReceiptSender) -> ReceiptSender:
        task = asyncio.create_task(sender.run())
        self.senders.append((sender, task))
        while not sender.running:
            await asyncio.sleep(0.01)
        return sender

    async def stop(self, sender: ReceiptSender) -> None:
        for running, task in self.senders:
            if running is sender:
                sender.stop()
                await task

    async def documents(self) -> list[dict[str, Any]]:
        return await self.outbox.collection.find({"tenant_id": TENANT}).sort("created_at", 1).to_list(None)

    async def wait_documents(self, check: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not check(docs := await self.documents()):
            if time.monotonic() > deadline:
                raise TimeoutError([(d["state"], d["attempts"], d.get("delivered")) for d in docs])
            await asyncio.sleep(0.05)


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    mongo: AsyncMongoClient = mongo_client(settings)
    db = mongo[settings.db_name("dispatcher")]
    outbox = Outbox(db["outbox"], done_retention_s=3600, dead_retention_s=3600)
    await outbox.ensure_indexes()
    result = Harness(outbox)
    try:
        yield result
    finally:
        for sender, task in result.senders:
            sender.stop()
            await task
        for client in result.clients:
            await client.aclose()
        await mongo.close()


def all_done(docs: list[dict[str, Any]]) -> bool:
    return bool(docs) and all(d["state"] == DONE for d in docs)


def posted(customer: Customer, path: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for hit in customer.on(path):
        body = hit.receipts
        for receipt in body if isinstance(body, list) else [body]:
            found[receipt["msg_id"]] += 1
    return found


async def test_one_document_per_batch_and_url_and_replays_create_no_second_entry(
    harness: Harness, customer: Customer
) -> None:
    idle = harness.sender()  # not running: nothing is admitted, the documents stay in the outbox
    url, other = customer.url("/a"), customer.url("/b")
    written = await store(harness.outbox, idle, items(url, range(6)) + items(other, [100]))
    assert sorted(len(d["receipts"]) for d in written) == [1, 6]  # one document per URL, not per receipt
    assert len(await harness.documents()) == 2

    # The same records again, then regrouped (a fetch of other boundaries), with two new events among them.
    assert await store(harness.outbox, idle, items(url, range(6)) + items(other, [100])) == []
    regrouped = await store(harness.outbox, idle, items(url, [4, 5, 6, 7]))
    assert [[r["receipt"]["msg_id"] for r in d["receipts"]] for d in regrouped] == [["MSG-6", "MSG-7"]]
    docs = await harness.documents()
    ids = [r["id"] for d in docs for r in d["receipts"]]
    assert len(ids) == len(set(ids)) == 9
    assert await harness.outbox.count(PENDING) == 9

    # Two instances writing overlapping batches at the same time: every receipt is held by exactly one document.
    first, second = await asyncio.gather(
        store(harness.outbox, idle, items(url, [20, 21, 22])), store(harness.outbox, idle, items(url, [21, 22, 23]))
    )
    both = [r["receipt"]["msg_id"] for d in [*first, *second] for r in d["receipts"]]
    assert sorted(both) == ["MSG-20", "MSG-21", "MSG-22", "MSG-23"]
    assert await store(harness.outbox, idle, items(url, [20, 21, 22, 23])) == []
    docs = await harness.documents()
    ids = [r["id"] for d in docs for r in d["receipts"]]
    assert len(ids) == len(set(ids)) == 13

    sender = await harness.run(harness.sender())
    await harness.wait_documents(all_done)
    await harness.stop(sender)
    assert posted(customer, "/a") == Counter({f"MSG-{n}": 1 for n in [0, 1, 2, 3, 4, 5, 6, 7, 20, 21, 22, 23]})
    assert posted(customer, "/b") == Counter({"MSG-100": 1})
    assert await harness.outbox.count(DONE) == 13


async def test_a_partially_failed_document_retries_only_its_failed_receipts(
    harness: Harness, customer: Customer
) -> None:
    sender = await harness.run(harness.sender())
    customer.fail_msg_first = {"MSG-1": 2, "MSG-3": 1}
    (written,) = await store(harness.outbox, sender, items(customer.url("/part"), range(5)))
    await harness.wait_documents(all_done)

    (doc,) = await harness.documents()
    assert doc["_id"] == written["_id"] and doc["attempts"] == 2 and doc["last_error"] == "HTTP 500"
    hits = customer.on("/part")
    by_msg: dict[str, list[dict[str, Any]]] = {}
    for hit in hits:
        by_msg.setdefault(hit.receipts["msg_id"], []).append(hit.envelope)
    assert {m: [e["retry"] for e in envs] for m, envs in by_msg.items()} == {
        "MSG-0": [0],
        "MSG-1": [0, 1, 2],
        "MSG-2": [0],
        "MSG-3": [0, 1],
        "MSG-4": [0],
    }
    assert all(len({e["request_id"] for e in envs}) == 1 for envs in by_msg.values())  # stable per receipt


async def test_batch_mode_partial_failure_and_arrays_of_at_most_max_batch(harness: Harness, customer: Customer) -> None:
    sender = await harness.run(harness.sender(max_batch=4, batch_window_ms=0))
    customer.fail_msg_first = {"MSG-5": 1}
    await store(harness.outbox, sender, items(customer.url("/batch"), range(10), url_type=URL_TYPE_BATCH))
    await harness.wait_documents(all_done)
    hits = customer.on("/batch")
    first = [h for h in hits if h.envelope["retry"] == 0]
    assert sorted(len(h.receipts) for h in first) == [2, 4, 4]
    (failed,) = [h for h in first if "MSG-5" in {r["msg_id"] for r in h.receipts}]
    members = {r["msg_id"] for r in failed.receipts}
    (retried,) = [h for h in hits if h.envelope["retry"] == 1]  # only the failed POST's receipts, once
    assert {r["msg_id"] for r in retried.receipts} == members
    assert retried.envelope["request_id"] == failed.envelope["request_id"]
    assert posted(customer, "/batch") == Counter({f"MSG-{n}": 2 if f"MSG-{n}" in members else 1 for n in range(10)})


async def test_two_instances_share_the_documents_without_posting_twice(harness: Harness, customer: Customer) -> None:
    idle = harness.sender()
    for batch in range(20):  # a backlog of 20 documents of 10 receipts
        await store(harness.outbox, idle, items(customer.url("/shared"), range(batch * 10, batch * 10 + 10)))
    first, second = harness.sender(), harness.sender()
    await asyncio.gather(harness.run(first), harness.run(second))
    await harness.wait_documents(all_done)
    assert posted(customer, "/shared") == Counter({f"MSG-{n}": 1 for n in range(200)})
    tokens = {d["lease_token"] for d in await harness.documents()}
    assert tokens == {""}


async def test_a_crash_between_post_and_done_reposts_with_the_same_request_ids(
    harness: Harness, customer: Customer
) -> None:
    idle = harness.sender()
    await store(harness.outbox, idle, items(customer.url("/crash"), range(3)))
    await store(harness.outbox, idle, items(customer.url("/crash-batch"), range(10, 13), url_type=URL_TYPE_BATCH))
    # The first instance POSTs, then "dies" before writing any outcome (its flushes are lost).
    crashing = harness.sender(lease_s=3.0, http_timeout_s=0.5, batch_window_ms=0)

    async def lost() -> bool:
        crashing._outcomes = type(crashing._outcomes)()
        return True

    crashing.flush = lost  # type: ignore[method-assign]
    await harness.run(crashing)
    before = await customer.wait("/crash", 3)
    before_batch = await customer.wait("/crash-batch", 1)
    await harness.stop(crashing)
    assert all(d["state"] == PENDING and d["lease_token"] for d in await harness.documents())

    # Another instance takes the documents over when their lease ends and POSTs them again, same request ids.
    await harness.run(harness.sender())
    await harness.wait_documents(all_done)
    after = customer.on("/crash")[3:]
    assert sorted(h.receipts["msg_id"] for h in after) == ["MSG-0", "MSG-1", "MSG-2"]
    assert {h.envelope["request_id"] for h in after} == {h.envelope["request_id"] for h in before}
    after_batch = customer.on("/crash-batch")[1:]
    assert [h.envelope["request_id"] for h in after_batch] == [before_batch[0].envelope["request_id"]]
    assert sorted(r["msg_id"] for r in after_batch[0].receipts) == ["MSG-10", "MSG-11", "MSG-12"]
