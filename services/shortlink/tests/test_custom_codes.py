"""Custom short codes of send tasks (``ClassifiedRecipient.custom_code``): the minter gives the link exactly that code
on the task's domain, and a code another link holds fails that recipient alone with a final DELIVERY event; the
internal check API the gateway asks before accepting a task. On the real embedded Kafka, MongoDB and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from magpie.v1 import common_pb2, dispatch_pb2, resolve_pb2
from magpie_billing.units import units_from_delivery
from magpie_common.config import Settings
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded
from magpie_common.testing import collect
from magpie_common.topics import DELIVERY, DISPATCH
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.custom_codes import CHECK_PATH, TOKEN_HEADER
from magpie_shortlink.links import LinkRecord
from magpie_shortlink.minting import message_id
from magpie_shortlink.wiring import Components, build

from .conftest import TEST_SECRET

pytestmark = pytest.mark.integration

BatchFactory = Callable[..., resolve_pb2.ClassifiedBatch]
SMART = common_pb2.ROUTE_SMART
DEGRADED = common_pb2.ROUTE_DEGRADED
TOKEN = "custom-codes-token"
CUSTOM_DOMAIN = "https://s.shop.example/"


def custom_batch(
    make_batch: BatchFactory, task_id: str, codes: dict[int, str], *, tenant_id: str = "tenant-1", batch_no: int = 0
) -> resolve_pb2.ClassifiedBatch:
    """A batch of the given recipients (index -> custom code; "" = a derived code) on the tenant's domain."""
    batch = make_batch(
        task_id=task_id,
        tenant_id=tenant_id,
        batch_no=batch_no,
        recipients=[(i, SMART if i % 2 else DEGRADED, {"name": f"n{i}"}) for i in codes],
    )
    batch.ctx.link_domain = CUSTOM_DOMAIN
    batch.ctx.sms_sign = "喜鹊商城"
    for recipient in batch.recipients:
        recipient.custom_code = codes[recipient.index]
    return batch


def other_link(code: str, *, expires_at_ms: int | None = None) -> LinkRecord:
    """A link of another tenant's task holding ``code``."""
    now = now_ms()
    return LinkRecord(
        code=code,
        tenant_id="tenant-2",
        task_id="task-other",
        batch_no=0,
        index=0,
        mobile="13900000000",
        msisdn="8613900000000",
        tpl_id="100000002",
        tpl_name="other",
        params={},
        route=SMART,
        carrier="CMCC",
        custom_url="",
        link_domain="https://other.example/",
        aim_url="",
        created_at_ms=now - 1000,
        expires_at_ms=expires_at_ms if expires_at_ms is not None else now + 3_600_000,
    )


@pytest.fixture
async def both(settings: Settings) -> AsyncIterator[Components]:
    """Mint and edge roles with the internal API, the consumer loop not running."""
    components = await build(settings, ShortlinkConfig(secret=TEST_SECRET, internal_token=TOKEN))
    try:
        yield components
    finally:
        await components.close()


async def test_minting_uses_the_custom_code_and_the_tenant_domain(
    both: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    assert both.minter is not None and both.app is not None
    batch = custom_batch(make_batch, "task-c", {0: "Spring01", 1: "spring01", 2: "Sale2024"})
    out = await both.minter.mint_batch(batch)
    assert out is not None
    assert [(r.index, r.short_code) for r in out.recipients] == [(0, "Spring01"), (1, "spring01"), (2, "Sale2024")]
    assert [r.short_url for r in out.recipients] == [
        "https://s.shop.example/Spring01",
        "https://s.shop.example/spring01",  # codes are case-sensitive: two links
        "https://s.shop.example/Sale2024",
    ]
    doc = await both.store.links.find_one({"_id": "Spring01"})
    assert doc is not None and (doc["tenant_id"], doc["task_id"], doc["index"]) == ("tenant-1", "task-c", 0)
    assert doc["link_domain"] == CUSTOM_DOMAIN and doc["target_url"] == "https://s.shop.example/h5/Spring01"
    assert await both.redis.get(settings.rkey("link", "Sale2024")) is not None

    # The edge finds the link by its path whatever the host: the tenant's domain pointed at the edge serves it.
    transport = httpx.ASGITransport(app=both.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://s.shop.example") as handset:
        clicked = await handset.get("/Spring01", headers={"User-Agent": "test-handset"})
        assert clicked.status_code == 302 and clicked.headers["location"] == "https://s.shop.example/h5/Spring01"
        resolved = await handset.post("/v1/resolve", json={"code": "Sale2024"})
        assert resolved.status_code == 200 and resolved.json()["params"] == {"name": "n2"}

    # A redelivered batch finds its own links again: same codes, nothing refused.
    again = await both.minter.mint(batch)
    assert again.refused is None and again.dispatch is not None
    assert [r.short_code for r in again.dispatch.recipients] == ["Spring01", "spring01", "Sale2024"]
    assert await both.store.links.count_documents({}) == 3


async def test_taken_codes_fail_their_recipients_with_a_final_event(
    both: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    assert both.minter is not None
    expired = now_ms() - 1000  # expired, still answering 410 during the retention: it keeps its code
    assert await both.store.insert_new([other_link("Taken01"), other_link("Expired1", expires_at_ms=expired)]) == set()
    batch = custom_batch(
        make_batch,
        "task-t",
        {0: "Taken01", 1: "Fresh01", 2: "Expired1", 3: "healthz", 4: "Twice01", 5: "Twice01", 6: ""},
        batch_no=2,
    )
    await both.minter.handle([Decoded(record=None, message=batch)])  # type: ignore[arg-type]
    await both.minter.handle([Decoded(record=None, message=batch)])  # type: ignore[arg-type]  # a redelivery

    dispatched = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 2)
    first, second = dispatched
    assert first.meta.event_id == second.meta.event_id
    sent = {r.index: r.short_code for r in first.recipients}
    assert sent.keys() == {1, 4, 6}  # the first of two recipients with one code gets it
    assert sent[1] == "Fresh01" and sent[4] == "Twice01" and len(sent[6]) == both.config.code_length
    assert [r.index for r in second.recipients] == [1, 4, 6]

    refused = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: len(m) >= 2)
    assert refused[0].meta.event_id == refused[1].meta.event_id  # the redelivery repeats it: deduplicated
    events = {e.index: e for e in refused[0].events}
    assert events.keys() == {0, 2, 3, 5}
    for index, event in events.items():
        assert event.status == dispatch_pb2.DELIVERY_STATUS_FAILED and event.result_code == "KM.90016482"
        assert (event.tenant_id, event.task_id, event.batch_no) == ("tenant-1", "task-t", 2)
        assert event.mobile == f"1380013{index:04d}" and event.segments == 0 and event.done_at_ms > 0
        assert event.msg_id == message_id("task-t", 2, index) == stable_id("msg", "task-t", 2, index)
        assert event.sms_sign == "喜鹊商城" and event.tpl_id == "100000001"
        assert event.aim_url == "https://customer.example/aim"
    assert [e.event_id for e in refused[0].events] == [e.event_id for e in refused[1].events]
    assert units_from_delivery(refused[0]).units == []  # nothing to bill

    # The holders keep their links; nothing was overwritten.
    taken = await both.store.links.find_one({"_id": "Taken01"})
    assert taken is not None and taken["tenant_id"] == "tenant-2"
    assert await both.store.links.count_documents({"task_id": "task-t"}) == 3


async def test_check_api(both: Components, settings: Settings, make_batch: BatchFactory) -> None:
    assert both.minter is not None and both.app is not None
    await both.store.insert_new([other_link("Taken01")])
    await both.minter.mint_batch(custom_batch(make_batch, "task-mine", {0: "Mine01"}))
    transport = httpx.ASGITransport(app=both.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:

        async def check(body: object, token: str = TOKEN) -> httpx.Response:
            return await http.post(CHECK_PATH, json=body, headers={TOKEN_HEADER: token})

        codes = ["Free01", "Taken01", "Mine01", "metrics", "Taken01"]
        answer = await check({"tenant_id": "tenant-1", "codes": codes})
        assert answer.status_code == 200 and answer.json() == {"taken": ["Taken01", "Mine01", "metrics"]}
        # The asking task's own links (a resumed task) do not take a code.
        resumed = await check({"tenant_id": "tenant-1", "task_id": "task-mine", "codes": codes})
        assert resumed.json() == {"taken": ["Taken01", "metrics"]}
        other_tenant = await check({"tenant_id": "tenant-9", "task_id": "task-mine", "codes": ["Mine01"]})
        assert other_tenant.json() == {"taken": ["Mine01"]}

        assert (await check({"tenant_id": "tenant-1", "codes": ["A1"]}, token="wrong")).status_code == 404
        for bad in (
            [],
            {"codes": ["A1"]},
            {"tenant_id": "tenant-1", "codes": []},
            {"tenant_id": "tenant-1", "codes": ["a-b"]},
            {"tenant_id": "tenant-1", "codes": [1]},
            {"tenant_id": "tenant-1", "task_id": 5, "codes": ["A1"]},
            {"tenant_id": "tenant-1", "codes": [f"c{i}" for i in range(10_001)]},
        ):
            refused = await check(bad)
            assert refused.status_code == 400 and refused.json()["error_code"] == "KM.00000400", bad
        malformed = await http.post(CHECK_PATH, content=b"{", headers={TOKEN_HEADER: TOKEN})
        assert malformed.status_code == 400


async def test_check_api_is_disabled_without_a_token(settings: Settings) -> None:
    components = await build(settings, ShortlinkConfig(secret=TEST_SECRET, roles=frozenset({"edge"})))
    try:
        assert components.app is not None
        transport = httpx.ASGITransport(app=components.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:
            response = await http.post(CHECK_PATH, json={"tenant_id": "t", "codes": ["A1"]})
            assert response.status_code == 404
    finally:
        await components.close()
