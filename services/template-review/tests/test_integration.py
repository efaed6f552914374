"""The service in-process against the real embedded Kafka and MongoDB: submissions in, reviews out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from magpie.v1 import common_pb2, template_pb2
from magpie_common.config import Settings
from magpie_common.ids import stable_id
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect, wait_ready
from magpie_common.topics import TEMPLATE_REVIEWED, TEMPLATE_SUBMITTED
from magpie_template_review.app import Components, build
from magpie_template_review.config import ReviewConfig
from magpie_template_review.review_doc import review_id

pytestmark = pytest.mark.integration

AIM = template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE
SMS = template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE
Reviewed = template_pb2.TemplateReviewed


@asynccontextmanager
async def running(settings: Settings, config: ReviewConfig) -> AsyncIterator[Components]:
    components = await build(settings, config)
    tasks = [asyncio.create_task(components.loop.run()), asyncio.create_task(components.publisher.run())]
    try:
        yield components
    finally:
        components.loop.stop()
        components.publisher.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await components.close()
        for result in results:
            if isinstance(result, BaseException):
                raise result


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[EventProducer]:
    producer = EventProducer(settings, "test-gateway")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def aim(subject_id: str, revision: int = 1, **fields: object) -> template_pb2.TemplateSubmitted:
    message = template_pb2.TemplateSubmitted(
        meta=common_pb2.EventMeta(
            event_id=stable_id("submitted", subject_id, revision),
            tenant_id="tenant-a",
            producer="gateway",
            trace_id="trace-" + subject_id,
        ),
        subject=AIM,
        subject_id=subject_id,
        revision=revision,
        name="会员日",
        use_template_type="StandardImageAndText",
        texts=["会员日专享", "全场满300减50"],
        vendors=["HUAWEI", "XIAOMI"],
        param_count=1,
        buttons=[template_pb2.TemplateButton(text="查看", action="OPEN_BROWSER", target="https://a.example.com")],
    )
    for key, value in fields.items():
        if isinstance(value, list):
            field = getattr(message, key)
            del field[:]
            field.extend(value)
        else:
            setattr(message, key, value)
    return message


async def submit(producer: EventProducer, *messages: template_pb2.TemplateSubmitted) -> None:
    await producer.send_many([(TEMPLATE_SUBMITTED, m.subject_id, m) for m in messages])


def of(events: list[Reviewed], subject_id: str, revision: int | None = None) -> list[Reviewed]:
    return [e for e in events if e.subject_id == subject_id and (revision is None or e.revision == revision)]


def has(subject_id: str, revision: int, count: int = 1) -> Callable[[list[Reviewed]], bool]:
    return lambda events: len(of(events, subject_id, revision)) >= count


def vendors(event: Reviewed) -> dict[str, bool]:
    return {v.vendor: v.approved for v in event.vendors}


async def all_published(service: Components, timeout_s: float = 10) -> bool:
    """Events are visible to readers a moment before the review is marked published: wait for the mark."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await service.store.reviews.count_documents({"unpublished": True}):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_automatic_reviews(settings: Settings) -> None:
    async with running(settings, ReviewConfig(http_port=0)) as service, gateway(settings) as producer:
        oppo_button = template_pb2.TemplateButton(text="拨打热线", action="DIAL_PHONE", target="4000000000")
        await submit(
            producer,
            aim("100000001"),
            aim("100000002", vendors=["HUAWEI", "OPPO"], buttons=[oppo_button]),
            aim("100000003", texts=["会员日", "网上赌 博，ＣＡＳＩＮＯ 注册就送"]),
        )
        wanted = (has("100000001", 1), has("100000002", 1), has("100000003", 1))
        events = await collect(
            settings, TEMPLATE_REVIEWED, Reviewed, until=lambda es: all(w(es) for w in wanted), timeout_s=60
        )

        [approved] = of(events, "100000001")
        assert approved.approved and vendors(approved) == {"HUAWEI": True, "XIAOMI": True}
        assert list(approved.rule_ids) == [] and approved.reviewer == "auto"
        assert approved.meta.tenant_id == "tenant-a" and approved.meta.trace_id == "trace-100000001"
        assert approved.meta.event_id == stable_id("template-reviewed", review_id(AIM, "100000001", 1), 1)

        [oppo] = of(events, "100000002")
        assert oppo.approved and vendors(oppo) == {"HUAWEI": True, "OPPO": False}
        assert list(oppo.rule_ids) == ["AIM_OPPO_BUTTON_ACTION"]
        assert "OPEN_BROWSER" in next(v.reason for v in oppo.vendors if v.vendor == "OPPO")

        [sensitive] = of(events, "100000003")
        assert not sensitive.approved and vendors(sensitive) == {"HUAWEI": False, "XIAOMI": False}
        assert list(sensitive.rule_ids) == ["SENSITIVE_WORD"]
        assert "KM.90016801" in sensitive.reason and "赌博" in sensitive.reason and "casino" in sensitive.reason

        # Redelivery of revision 1, then revision 2 behind it on the same partition (same key): once revision 2
        # is reviewed, the duplicate has been handled.
        await submit(producer, aim("100000001"), aim("100000001", revision=2, texts=["会员日", "满500减100"]))
        events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("100000001", 2), timeout_s=60)
        first = of(events, "100000001", 1)
        assert len(first) == 1 and first[0].meta.event_id == approved.meta.event_id
        assert len({e.meta.event_id for e in of(events, "100000001")}) == 2
        reviews = service.store.reviews
        assert await reviews.count_documents({"subject_id": "100000001"}) == 2
        assert await reviews.count_documents({"subject_id": "100000001", "revision": 1}) == 1
        old = await reviews.find_one({"_id": review_id(AIM, "100000001", 1)})
        assert old is not None and old["state"] == "superseded"

        # A submission older than the latest reviewed revision is ignored.
        await submit(producer, aim("100000004", revision=5))
        await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("100000004", 5), timeout_s=60)
        await submit(producer, aim("100000004", revision=4), aim("100000004", revision=6))
        events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("100000004", 6), timeout_s=60)
        assert of(events, "100000004", 4) == []
        assert await reviews.count_documents({"subject_id": "100000004"}) == 2
        assert await all_published(service)

        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            metrics = (await client.get("/metrics")).text
            assert 'magpie_template_review_rule_hits_total{rule_id="SENSITIVE_WORD"}' in metrics
            assert 'magpie_template_reviews_total{outcome="rejected",subject="aim_template"}' in metrics
            assert all((await wait_ready(client)).values())


async def test_manual_decisions(settings: Settings) -> None:
    config = ReviewConfig(manual_vendors=frozenset({"XIAOMI", "CARRIER"}), api_token="s3cret", http_port=0)
    async with running(settings, config) as service, gateway(settings) as producer:
        await submit(producer, aim("200000001"))
        events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("200000001", 1), timeout_s=60)
        [initial] = of(events, "200000001")
        assert initial.approved and vendors(initial) == {"HUAWEI": True}  # XIAOMI waits for a human
        assert "waiting for manual review: XIAOMI" in initial.reason

        rid = review_id(AIM, "200000001", 1)
        transport = httpx.ASGITransport(app=service.app)
        auth = {"Authorization": "Bearer s3cret"}
        async with httpx.AsyncClient(transport=transport, base_url="http://review", headers=auth) as client:
            assert (await client.get("/internal/reviews", headers={"Authorization": "Bearer nope"})).status_code == 401

            listing = await client.get("/internal/reviews", params={"state": "pending"})
            assert listing.status_code == 200
            [pending] = listing.json()["reviews"]
            assert pending["review_id"] == rid and pending["subject_id"] == "200000001"
            assert {v["vendor"]: v["state"] for v in pending["vendors"]} == {"HUAWEI": "approved", "XIAOMI": "pending"}
            assert pending["submission"]["texts"] == ["会员日专享", "全场满300减50"]

            url = f"/internal/reviews/{rid}/decision"
            no_reason = await client.post(url, json={"vendor": "XIAOMI", "approved": False, "reviewer": "alice"})
            assert no_reason.status_code == 422
            automatic = await client.post(
                url, json={"vendor": "HUAWEI", "approved": False, "reason": "x", "reviewer": "a"}
            )
            assert automatic.status_code == 409
            missing = await client.post(
                "/internal/reviews/nope/decision", json={"vendor": "XIAOMI", "approved": True, "reviewer": "alice"}
            )
            assert missing.status_code == 404

            body = {"vendor": "xiaomi", "approved": False, "reason": "图片含二维码", "reviewer": "alice"}
            decided = await client.post(url, json=body)
            assert decided.status_code == 200, decided.text
            result = decided.json()
            assert result["changed"] and result["published"] and result["state"] == "decided"
            assert result["event_id"] == stable_id("template-reviewed", rid, 2)

            again = (await client.post(url, json=body)).json()
            assert not again["changed"] and again["event_id"] == result["event_id"]

            events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("200000001", 1, 2), timeout_s=60)
            first, second = of(events, "200000001")
            assert first.meta.event_id == initial.meta.event_id
            assert second.meta.event_id == result["event_id"]
            assert second.approved and vendors(second) == {"HUAWEI": True, "XIAOMI": False}
            assert second.reviewer == "alice" and "MANUAL_REVIEW" in second.rule_ids
            assert "XIAOMI rejected by alice: 图片含二维码" in second.reason

            assert (await client.get("/internal/reviews", params={"state": "pending"})).json()["reviews"] == []
            [done] = (await client.get("/internal/reviews", params={"state": "decided"})).json()["reviews"]
            assert done["review_id"] == rid and [d["reviewer"] for d in done["decisions"]] == ["alice"]

            # Everything held (SMS reviews go to CARRIER): no event until the human decides.
            sms = template_pb2.TemplateSubmitted(
                meta=common_pb2.EventMeta(event_id="sms-sub-1", tenant_id="tenant-a"),
                subject=SMS,
                subject_id="sms-300",
                revision=1,
                use_template_type="PROMOTION_TYPE",
                texts=["新品上市 ${1}，回T退订"],
            )
            await submit(producer, sms, aim("200000002", revision=1), aim("200000002", revision=2))
            await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("200000002", 2), timeout_s=60)
            pending_list = (await client.get("/internal/reviews", params={"state": "pending"})).json()["reviews"]
            assert {(r["subject_id"], r["revision"]) for r in pending_list} == {("sms-300", 1), ("200000002", 2)}
            sms_rid = review_id(SMS, "sms-300", 1)
            carrier = {"vendor": "CARRIER", "approved": True, "reviewer": "bob"}
            approved = (await client.post(f"/internal/reviews/{sms_rid}/decision", json=carrier)).json()
            assert approved["changed"] and approved["event_id"] == stable_id("template-reviewed", sms_rid, 1)

            # Revision 1 of 200000002 was superseded by revision 2: it no longer takes decisions.
            stale = await client.post(
                f"/internal/reviews/{review_id(AIM, '200000002', 1)}/decision",
                json={"vendor": "XIAOMI", "approved": True, "reviewer": "bob"},
            )
            assert stale.status_code == 409

        events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("sms-300", 1), timeout_s=60)
        [sms_event] = of(events, "sms-300")
        assert sms_event.approved and vendors(sms_event) == {"CARRIER": True} and sms_event.reviewer == "bob"
        assert await all_published(service)


async def test_unsent_events_are_sent_after_a_crash(settings: Settings) -> None:
    """A review stored but never sent (crash between the write and the send) goes out with its original id:
    on redelivery of the submission, or by the outbox sweep when no redelivery comes."""
    from magpie_common.ids import now_ms
    from magpie_template_review.review_doc import new_review_doc
    from magpie_template_review.rules import Reviewer
    from magpie_template_review.submission import Submission
    from magpie_template_review.words import SensitiveWords

    config = ReviewConfig(http_port=0, republish_interval_s=60)
    async with running(settings, config) as service, gateway(settings) as producer:
        reviewer = Reviewer(SensitiveWords.load())

        def stored(message: template_pb2.TemplateSubmitted, at_ms: int) -> dict[str, object]:
            sub = Submission.from_message(message)
            return new_review_doc(sub, message.meta, reviewer.review(sub), frozenset(), at_ms)

        # 300000001 crashed just now and its submission is redelivered; 300000002 crashed long ago and is never
        # redelivered (a previous owner committed its offset): only the sweep can send it.
        redelivered, swept = stored(aim("300000001"), now_ms()), stored(aim("300000002"), 1)
        assert await service.store.insert_new([redelivered, swept]) == set()

        await submit(producer, aim("300000001"))
        events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("300000001", 1), timeout_s=60)
        assert of(events, "300000002") == []
        assert await service.publisher.sweep() == 1
        events = await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("300000002", 1), timeout_s=60)
        for doc in (redelivered, swept):
            [event] = of(events, str(doc["subject_id"]))
            outbox = doc["outbox"]
            assert isinstance(outbox, dict)
            assert event.SerializeToString() == outbox["payload"]  # the very same event, same id
        assert await all_published(service)
        assert await service.store.reviews.count_documents({}) == 2  # nothing was reviewed twice
        assert await service.publisher.sweep() == 0


async def test_unreviewable_submission_is_dead_lettered(settings: Settings) -> None:
    from magpie.v1 import billing_pb2
    from magpie_common.topics import DLQ

    async with running(settings, ReviewConfig(http_port=0)), gateway(settings) as producer:
        await submit(producer, aim("400000001", subject=template_pb2.REVIEW_SUBJECT_UNSPECIFIED), aim("400000002"))
        letters = await collect(settings, DLQ, billing_pb2.DeadLetter, until=lambda ls: len(ls) >= 1, timeout_s=60)
        poisoned = template_pb2.TemplateSubmitted()
        poisoned.ParseFromString(letters[0].value)
        assert poisoned.subject_id == "400000001" and "poison" in letters[0].error
        await collect(settings, TEMPLATE_REVIEWED, Reviewed, until=has("400000002", 1), timeout_s=60)
