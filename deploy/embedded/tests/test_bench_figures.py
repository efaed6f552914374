"""Unit tests of the bench's pure pieces: stage counting, rate series, CPU accounting, carrier log, checks."""

from __future__ import annotations

import orjson
import pytest

from magpie_devstack.bench_carrier import SubmissionLogReader
from magpie_devstack.bench_cpu import cpu_delta, parse_stat, per_thousand, percent_of_core, tree_cpu
from magpie_devstack.bench_figures import (
    SUMMARY_KEYS,
    campaign_checks,
    cumulative_series,
    expected_receipts,
    expected_units,
    peak_rates,
    percentiles,
    summary,
    two_segment_share,
)
from magpie_devstack.bench_stages import DELIVERED, FAILED, INVALID, TaskStages
from magpie_devstack.receipts import ReceiptCollector


# --- stages ------------------------------------------------------------------------------------------------------
def test_a_stage_counts_each_recipient_once() -> None:
    stages = TaskStages(bucket_s=5)
    assert stages.mark("classified", 3, 1_000)
    assert not stages.mark("classified", 3, 2_000)  # the batch redelivered
    stages.mark("classified", 200_000, 7_000)  # grows past the first block
    assert stages.counts["classified"] == 2
    assert stages.last_at_ms["classified"] == 7_000
    assert dict(stages.buckets["classified"]) == {0: 1, 1: 1}


def test_finals_tell_redeliveries_from_second_finals_and_conflicts() -> None:
    stages = TaskStages()
    stages.final(0, DELIVERED, "e0", 1_000, segments=2)
    stages.final(0, DELIVERED, "e0", 1_500, segments=2)  # same event again
    stages.final(1, DELIVERED, "e1", 1_000, segments=1)
    stages.final(1, DELIVERED, "e1-bis", 1_000, segments=1)  # another final event, same status
    stages.final(2, FAILED, "e2", 1_000)
    stages.final(2, DELIVERED, "e2-late", 1_000)  # another status
    stages.final(3, INVALID, "classified:0", 900)
    assert stages.redeliveries == 1
    assert stages.duplicate_finals == 1
    assert stages.conflicts == 1
    assert stages.counts["final"] == 4
    assert stages.counts["receipts"] == 3  # INVALID is final without the carrier
    assert stages.delivered_segments == 3
    status = stages.status()
    assert status["finals"]["delivered"] == 2 and status["finals"]["invalid"] == 1
    assert status["segments"] == {"0": 1, "1": 1, "2": 1}


def test_billing_and_resolutions_are_deduplicated() -> None:
    stages = TaskStages()
    stages.billed("u1", "AIM_SMS", 2, 1_000)
    stages.billed("u1", "AIM_SMS", 2, 1_100)
    stages.billed("u2", "AIM_RESOLUTION", 1, 1_200)
    stages.resolved("abc", 1_000)
    stages.resolved("abc", 1_300)
    assert stages.counts["billed"] == 3
    assert stages.counts["resolved"] == 1
    assert dict(stages.billed_by_product) == {"AIM_SMS": 2, "AIM_RESOLUTION": 1}


# --- rate series -------------------------------------------------------------------------------------------------
def test_cumulative_series_from_buckets() -> None:
    buckets = {"final": {19: 3, 20: 10, 22: 5}, "billed": {21: 4}}
    series = cumulative_series(buckets, bucket_s=5, start_s=100.0, end_s=114.0)
    assert series["columns"] == ["t_s", "final", "billed"]
    # what happened before the start (bucket 19) is in the first row
    assert series["cumulative"] == [[5.0, 13, 0], [10.0, 13, 4], [15.0, 18, 4]]
    assert series["per_s"] == [[5.0, 2.0, 0.0], [10.0, 0.0, 0.8], [15.0, 1.0, 0.0]]
    assert peak_rates(series) == {"final": 2.0, "billed": 0.8}


def test_percentiles() -> None:
    assert percentiles([]) == {}
    figures = percentiles([i / 1000 for i in range(1, 101)])
    assert figures["p50_ms"] == 51.0 and figures["p99_ms"] == 100.0 and figures["mean_ms"] == 50.5


# --- CPU accounting ----------------------------------------------------------------------------------------------
def test_parse_stat_survives_spaces_and_parentheses_in_the_command() -> None:
    fields = ["S", "77"] + ["0"] * 9 + ["250", "150"] + ["0"] * 30
    ppid, seconds = parse_stat("123 (python -m (x)) " + " ".join(fields))
    assert ppid == 77
    assert seconds == pytest.approx(400 / parse_stat.__globals__["CLOCK_TICKS"])


def test_tree_cpu_counts_descendants_but_not_other_roots() -> None:
    table = {10: (1, 5.0), 11: (10, 2.0), 12: (11, 1.0), 20: (1, 3.0), 21: (10, 4.0)}
    roots = {"shortlink": 10, "bench": 20, "tap": 21}
    assert tree_cpu(table, roots) == {"shortlink": 8.0, "bench": 3.0, "tap": 4.0}
    assert tree_cpu(table, {"shortlink": 10}, alone=["shortlink"]) == {"shortlink": 5.0}
    assert tree_cpu(table, {"gone": 99}) == {}


def test_cpu_delta_per_thousand_and_percent() -> None:
    delta = cpu_delta({"a": 1.0, "b": 2.0, "gone": 1.0}, {"a": 4.0, "b": 2.5})
    assert delta == {"a": 3.0, "b": 0.5}
    assert per_thousand(delta, 2000) == {"a": 1.5, "b": 0.25, "total": 1.75}
    assert next(iter(per_thousand(delta, 2000))) == "a"  # most expensive first
    assert per_thousand(delta, 0) == {}
    assert percent_of_core(delta, 10) == {"a": 30.0, "b": 5.0, "total": 35.0}


# --- carrier log -------------------------------------------------------------------------------------------------
def _line(dest: str, text: str, concat: dict[str, int] | None = None, system_id: str = "magpie") -> bytes:
    return orjson.dumps({"system_id": system_id, "destination_addr": dest, "text": text, "concat": concat}) + b"\n"


def test_the_log_reader_joins_parts_and_finds_duplicate_parts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "submissions.jsonl"
    log.write_bytes(
        _line("8613800000001", "one")
        + _line("8613800000002", "tw", {"ref": 7, "total": 2, "seq": 1})
        + _line("8617000000000", "baseline", system_id="bench")
        + b'{"system_id": "magpie", "destination_addr": "86138'  # a line being written
    )
    reader = SubmissionLogReader(log, system_id="magpie", text_samples=10)
    assert [m.text for m in reader.read_new()] == ["one"]
    assert reader.incomplete == 1
    with log.open("ab") as f:
        f.write(b'00000003", "text": "x", "concat": null}\n')
        f.write(_line("8613800000002", "o", {"ref": 7, "total": 2, "seq": 2}))
        f.write(_line("8613800000001", "one"))
    messages = reader.read_new()
    assert [(m.destination, m.text, m.parts) for m in messages] == [
        ("8613800000003", "x", 1),
        ("8613800000002", "two", 2),
        ("8613800000001", "one", 1),
    ]
    summary_ = reader.summary()
    assert summary_["duplicate_parts"] == 1
    assert summary_["submits"] == 5 and summary_["messages"] == 4
    assert summary_["parts"] == {"1": 3, "2": 1}
    assert sorted(reader.samples) == ["one", "one", "two", "x"]


# --- receipts ----------------------------------------------------------------------------------------------------
def test_the_receiver_counts_distinct_receipts_of_batch_and_single_posts() -> None:
    receiver = ReceiptCollector(keep=False)
    try:
        batch = orjson.dumps({"msg_id": "m1"}), orjson.dumps([{"msg_id": "m1"}, {"msg_id": "m2"}])
        receiver.record(orjson.dumps({"callback_type": "sms", "request_id": "r1", "body": batch[1].decode()}))
        receiver.record(orjson.dumps({"callback_type": "sms", "request_id": "r2", "body": batch[0].decode()}))
        receiver.record(orjson.dumps({"callback_type": "shortchain", "body": '{"aim_code": "c1"}'}))
        assert receiver.count("sms") == 2 and receiver.count("shortchain") == 1
        assert receiver.total() == 3 and receiver.reposted == 1 and receiver.posts == 3
        assert receiver.items() == []  # not kept
        assert sum(receiver.buckets().values()) == 3
    finally:
        receiver.server.server_close()


# --- checks and summary ------------------------------------------------------------------------------------------
def _stages(**overrides: object) -> dict[str, object]:
    stages: dict[str, object] = {
        "counts": {"final": 10, "receipts": 9, "resolved": 3},
        "finals": {"delivered": 9, "invalid": 1},
        "segments": {"1": 8, "2": 1},
        "delivered_segments": 10,
        "duplicate_finals": 0,
        "conflicts": 0,
    }
    stages.update(overrides)
    return stages


def test_checks_pass_when_everything_adds_up() -> None:
    stages = _stages()
    assert expected_units(stages) == 13
    assert expected_receipts(stages) == 12
    assert two_segment_share(stages["segments"]) == 0.1111  # type: ignore[arg-type]
    checks = campaign_checks(
        recipients=10,
        stages=stages,
        carrier={"duplicate_parts": 0, "duplicates": 0, "incomplete_messages": 0},
        ledger_units=13,
        receipts_distinct=12,
        handsets_resolved=3,
    )
    assert all(checks.values()), checks


def test_checks_name_what_went_wrong() -> None:
    checks = campaign_checks(
        recipients=11,
        stages=_stages(conflicts=1, segments={"1": 9}),
        carrier={"duplicate_parts": 2, "duplicates": 0, "incomplete_messages": 0},
        ledger_units=12,
        receipts_distinct=11,
        handsets_resolved=4,
    )
    assert {name for name, ok in checks.items() if not ok} == {
        "every_recipient_final",
        "no_recipient_with_two_finals",
        "no_duplicate_submit_at_carrier",
        "ledger_units_equal_delivered_segments_plus_resolutions",
        "every_receipt_delivered",
        "every_handset_resolution_seen",
        "about_a_tenth_two_segment",
    }


def test_summary_has_exactly_the_keys_and_the_ratio() -> None:
    result = summary({"end_to_end_recipients_per_s": 250.0, "smpp_baseline_submits_per_s": 10_000.0, "extra": 1})
    assert tuple(result) == SUMMARY_KEYS
    assert result["ratio_to_smpp_baseline"] == 0.025
    assert summary({})["ratio_to_smpp_baseline"] is None
