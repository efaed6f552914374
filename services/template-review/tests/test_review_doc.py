"""The stored review, its events and manual decisions (pure logic)."""

from __future__ import annotations

import pytest

from magpie.v1 import common_pb2, template_pb2
from magpie_common.ids import stable_id
from magpie_template_review.catalog import Rule
from magpie_template_review.review_doc import (
    APPROVED,
    PENDING,
    REJECTED,
    STATE_DECIDED,
    STATE_PENDING,
    STATE_SUPERSEDED,
    Decision,
    DecisionError,
    Doc,
    apply_decision,
    build_event,
    event_id,
    new_review_doc,
    review_id,
    summary,
)
from magpie_template_review.rules import Reviewer
from magpie_template_review.submission import Button, Submission
from magpie_template_review.words import SensitiveWords

META = common_pb2.EventMeta(event_id="sub-1", tenant_id="tenant-a", trace_id="trace-1")


@pytest.fixture(scope="module")
def reviewer() -> Reviewer:
    return Reviewer(SensitiveWords.load())


def submission(vendors: tuple[str, ...], buttons: tuple[Button, ...] = (), text: str = "会员日") -> Submission:
    return Submission(
        subject=template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE,
        subject_id="100000001",
        revision=2,
        name="n",
        texts=(text,),
        vendors=vendors,
        buttons=buttons,
    )


def make_doc(reviewer: Reviewer, sub: Submission, manual: frozenset[str] = frozenset()) -> Doc:
    return new_review_doc(sub, META, reviewer.review(sub), manual, now_ms=1_000)


def decoded(doc: Doc) -> template_pb2.TemplateReviewed:
    event = template_pb2.TemplateReviewed()
    event.ParseFromString(doc["outbox"]["payload"])
    return event


def test_review_id_is_stable_per_subject_revision() -> None:
    assert review_id(1, "a", 1) == review_id(1, "a", 1)
    assert len({review_id(1, "a", 1), review_id(1, "a", 2), review_id(2, "a", 1), review_id(1, "b", 1)}) == 4


def test_automatic_review_has_its_event_in_the_outbox(reviewer: Reviewer) -> None:
    doc = make_doc(reviewer, submission(("HUAWEI", "OPPO"), (Button("拨打", "DIAL_PHONE", "1"),)))
    assert doc["_id"] == review_id(template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE, "100000001", 2)
    assert doc["state"] == STATE_DECIDED and doc["approved"] and doc["version"] == 1 and doc["unpublished"]
    event = decoded(doc)
    assert event.meta.event_id == event_id(doc["_id"], 1) == stable_id("template-reviewed", doc["_id"], 1)
    assert (event.meta.tenant_id, event.meta.trace_id, event.meta.producer) == (
        "tenant-a",
        "trace-1",
        "template-review",
    )
    assert (event.subject_id, event.revision, event.reviewer) == ("100000001", 2, "auto")
    assert event.approved
    assert [(v.vendor, v.approved) for v in event.vendors] == [("HUAWEI", True), ("OPPO", False)]
    assert list(event.rule_ids) == [Rule.AIM_OPPO_BUTTON_ACTION]
    assert "AIM_OPPO_BUTTON_ACTION" in event.reason


def test_rebuilding_the_event_gives_the_same_id(reviewer: Reviewer) -> None:
    doc = make_doc(reviewer, submission(("HUAWEI",)))
    assert build_event(doc, 1, now_ms=5).meta.event_id == decoded(doc).meta.event_id


def test_manual_vendor_is_held_only_when_automatically_approved(reviewer: Reviewer) -> None:
    sub = submission(("HUAWEI", "OPPO", "XIAOMI"), (Button("拨打", "DIAL_PHONE", "1"),))
    doc = make_doc(reviewer, sub, manual=frozenset({"OPPO", "XIAOMI"}))
    states = {v["vendor"]: (v["state"], v["manual"]) for v in doc["vendors"]}
    # OPPO was rejected by a rule: automatic rejections are final, not held.
    assert states == {"HUAWEI": (APPROVED, False), "OPPO": (REJECTED, False), "XIAOMI": (PENDING, True)}
    assert doc["state"] == STATE_PENDING
    event = decoded(doc)
    assert [v.vendor for v in event.vendors] == ["HUAWEI", "OPPO"]  # pending vendors are not reported yet
    assert "waiting for manual review: XIAOMI" in event.reason


def test_everything_held_means_no_event_yet(reviewer: Reviewer) -> None:
    doc = make_doc(reviewer, submission(("HUAWEI",)), manual=frozenset({"HUAWEI"}))
    assert doc["version"] == 0 and doc["outbox"] is None and not doc["unpublished"]
    assert not doc["approved"] and doc["state"] == STATE_PENDING


def test_rejection_without_vendors_still_produces_an_event(reviewer: Reviewer) -> None:
    doc = make_doc(reviewer, submission(()))
    assert doc["version"] == 1
    event = decoded(doc)
    assert not event.approved and list(event.rule_ids) == [Rule.AIM_NO_VENDORS]


def test_decisions(reviewer: Reviewer) -> None:
    doc = make_doc(reviewer, submission(("HUAWEI", "XIAOMI")), manual=frozenset({"HUAWEI", "XIAOMI"}))
    assert doc["version"] == 0

    fields = apply_decision(doc, Decision("xiaomi", False, "图片模糊", "alice"), now_ms=2_000)
    assert fields is not None
    doc = {**doc, **fields}
    assert doc["version"] == 1 and doc["state"] == STATE_PENDING and not doc["approved"] and doc["unpublished"]
    event = decoded(doc)
    assert event.meta.event_id == event_id(doc["_id"], 1)
    assert [(v.vendor, v.approved, v.reason) for v in event.vendors] == [("XIAOMI", False, "图片模糊")]
    assert event.reviewer == "alice" and Rule.MANUAL_REVIEW in event.rule_ids
    assert "XIAOMI rejected by alice: 图片模糊" in event.reason

    # The same decision again changes nothing.
    assert apply_decision(doc, Decision("XIAOMI", False, "another reason", "bob"), now_ms=3_000) is None

    fields = apply_decision(doc, Decision("HUAWEI", True, "", "bob"), now_ms=4_000)
    assert fields is not None
    doc = {**doc, **fields}
    assert doc["version"] == 2 and doc["state"] == STATE_DECIDED and doc["approved"]
    event = decoded(doc)
    assert event.meta.event_id == event_id(doc["_id"], 2)
    assert event.approved and event.reviewer == "bob"
    assert [(v.vendor, v.approved) for v in event.vendors] == [("HUAWEI", True), ("XIAOMI", False)]
    assert [d["version"] for d in doc["decisions"]] == [1, 2]

    # A reviewer may change a held vendor's result: that is a new outcome, a new event.
    fields = apply_decision(doc, Decision("XIAOMI", True, "复核通过", "carol"), now_ms=5_000)
    assert fields is not None and fields["version"] == 3 and fields["approved"]


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        (Decision("OPPO", True, "", "alice"), 409),  # decided automatically
        (Decision("VIVO", True, "", "alice"), 404),  # not part of the review
    ],
)
def test_decisions_refused(reviewer: Reviewer, decision: Decision, status: int) -> None:
    sub = submission(("HUAWEI", "OPPO"), (Button("拨打", "DIAL_PHONE", "1"),))
    doc = make_doc(reviewer, sub, manual=frozenset({"HUAWEI"}))
    with pytest.raises(DecisionError) as info:
        apply_decision(doc, decision, now_ms=2_000)
    assert info.value.status == status


def test_superseded_review_refuses_decisions(reviewer: Reviewer) -> None:
    doc = make_doc(reviewer, submission(("HUAWEI",)), manual=frozenset({"HUAWEI"}))
    doc["state"] = STATE_SUPERSEDED
    with pytest.raises(DecisionError) as info:
        apply_decision(doc, Decision("HUAWEI", True, "", "alice"), now_ms=2_000)
    assert info.value.status == 409


def test_summary_is_json_ready(reviewer: Reviewer) -> None:
    import json

    doc = make_doc(reviewer, submission(("HUAWEI",)), manual=frozenset({"HUAWEI"}))
    view = summary(doc)
    json.dumps(view)
    assert view["review_id"] == doc["_id"] and view["subject"] == "aim_template" and view["state"] == "pending"
    assert view["vendors"][0]["state"] == PENDING and view["submission"]["texts"] == ["会员日"]
