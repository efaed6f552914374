"""Unit tests of the streaming read of send-task bodies: the incremental JSON document reader, pass 1 (checks,
de-duplication, first failures in order) and pass 2 (batches), and the body spool."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from typing import Any

import pytest

from magpie_gateway.auth.body_spool import BodySpool, BodyTooLarge, replaying_receive, spool_body
from magpie_gateway.auth.signature import BodyDigest, payload_hash
from magpie_gateway.errors import ApiError
from magpie_gateway.idempotency import fingerprint
from magpie_gateway.json_stream import RepeatedKey, stream_document
from magpie_gateway.send_task_builder import Prerequisites, check_recipients
from magpie_gateway.send_task_recipients import BuildSettings, dedup_key, recipient_batches, scan

PATH = ("resolve_task", "params")


def body(params: list[Any], **resolve: Any) -> bytes:
    document = {
        "task_name": "t",
        "resolve_task": {"tpl_id": "x", **resolve, "params": params},
        "sms_channel": {"sms_tpl_id": "s"},
    }
    return json.dumps(document, ensure_ascii=False).encode()


def person(i: int, **extra: Any) -> dict[str, Any]:
    return {"cust_flag": f"139{i:08d}", "dync_params": {"name": f"n{i}", "${amount}": i}, **extra}


def prerequisites(card: tuple[str, ...] = ("name", "amount"), sms: int = 0) -> Prerequisites:
    return Prerequisites(
        app={},
        signature={},
        sms_template={},
        aim_template={"params": [{"key": k} for k in card]},
        link_param=1,
        other_variables=list(range(2, 2 + sms)),
        approved_vendors=["HUAWEI"],
    )


@pytest.mark.parametrize("buf_size", [7, 64, 65536])
def test_stream_document_hands_over_complete_items_in_order(buf_size: int) -> None:
    params = [person(i, sms_params=["a", {"nested": [1, 2]}]) for i in range(300)]
    got: list[tuple[int, Any]] = []
    document = stream_document(
        io.BytesIO(body(params)), PATH, lambda items, first: got.extend(enumerate(items, first)), buf_size=buf_size
    )
    assert [item for _, item in got] == params
    assert [p for p, _ in got] == list(range(300))
    assert document.found and document.count == 300
    assert document.value == {"task_name": "t", "resolve_task": {"tpl_id": "x"}, "sms_channel": {"sms_tpl_id": "s"}}


def test_stream_document_head_after_the_array_and_missing_array() -> None:
    raw = b'{"resolve_task": {"params": [{"cust_flag": "1"}], "tpl_id": {"a": [1]}}, "task_name": {"k": "v"}}'
    document = stream_document(io.BytesIO(raw), PATH, lambda items, first: None, buf_size=5)
    assert document.value == {"resolve_task": {"tpl_id": {"a": [1]}}, "task_name": {"k": "v"}}
    missing = stream_document(io.BytesIO(b'{"resolve_task": {"params": null}}'), PATH, lambda i, f: None)
    assert not missing.found and missing.value == {"resolve_task": {"params": None}}


@pytest.mark.parametrize(
    "raw", [b'{"resolve_task": {"params": [], "params": []}}', b'{"resolve_task": {}, "resolve_task": {}}']
)
def test_stream_document_refuses_repeated_keys_on_the_path(raw: bytes) -> None:
    with pytest.raises(RepeatedKey):
        stream_document(io.BytesIO(raw), PATH, lambda items, first: None)


def test_dedup_key_is_exact() -> None:
    assert dedup_key("13900000001") == dedup_key("13900000001")
    keys = {dedup_key(v) for v in ("13900000001", "013900000001", "+13900000001", "8613900000001", "abc", "١٢")}
    assert len(keys) == 6


def test_scan_counts_duplicates_and_pass_two_drops_them() -> None:
    params = [person(i) for i in range(1200)]
    params[5:5] = [person(0), person(1)]
    result = scan(io.BytesIO(body(params)), max_recipients=1_000_000)
    assert (result.submitted, result.unique, result.duplicates) == (1202, 1200, 2)
    assert result.head["resolve_task"] == {"tpl_id": "x"}
    check_recipients(result, prerequisites(), custom=False)  # nothing to refuse
    chunks: list[Any] = []
    settings = BuildSettings(custom=False, batch_size=500, chunk_batches=2)
    built = recipient_batches(io.BytesIO(body(params)), result, settings, chunks.append)
    assert built == 1200 and [len(c) for c in chunks] == [2, 1]
    batches = [b for chunk in chunks for b, _ in chunk]
    assert [b.batch_no for b in batches] == [0, 1, 2]
    assert [r.index for b in batches for r in b.recipients] == list(range(1200))
    assert [r.mobile for b in batches for r in b.recipients] == [f"139{i:08d}" for i in range(1200)]
    assert dict(batches[0].recipients[7].params) == {"name": "n7", "amount": "7"}
    assert chunks[0][1][1] == [f"139{i:08d}" for i in range(500, 1000)]


def failure(params: list[Any], *, custom: bool = False, sms: int = 0) -> ApiError:
    result = scan(io.BytesIO(body(params)), max_recipients=1_000_000)
    with pytest.raises(ApiError) as caught:
        check_recipients(result, prerequisites(sms=sms), custom=custom)
    return caught.value


def test_first_failure_answers_like_a_loop_over_params() -> None:
    bad_url = person(3, custom_url="ftp://x")
    wrong_keys = {"cust_flag": "13900000002", "dync_params": {"name": "x"}}
    # the card params mismatch at 2 comes before the bad URL at 3
    error = failure([person(0), person(1), wrong_keys, bad_url])
    assert error.error_code == "KM.90016802" and "params[2]" in error.error_msg
    error = failure([person(0), bad_url, wrong_keys])
    assert error.error_code == "KM.00000400" and "params[1].custom_url" in error.error_msg
    # the first param itself mismatching
    error = failure([wrong_keys, person(1)])
    assert error.error_code == "KM.90016802" and "params[0]" in error.error_msg
    # sms_params count; a blank cust_flag beats a later mismatch
    error = failure([person(0, sms_params=["a"]), person(1)], sms=1)
    assert error.error_code == "KM.00001376" and "params[1] has 0" in error.error_msg
    error = failure([person(0), {"cust_flag": " ", "dync_params": {}}, wrong_keys])
    assert "params[1].cust_flag" in error.error_msg
    # custom short codes: format, then a repeat among the recipients kept
    coded = [person(i, custom_short_code=f"code{i}") for i in range(3)]
    error = failure([*coded, person(9, custom_short_code="code1")], custom=True)
    assert error.error_code == "KM.90016482" and "params[3]" in error.error_msg
    error = failure([*coded, person(9, custom_short_code="!")], custom=True)
    assert "params[3].custom_short_code" in error.error_msg
    # a duplicate number's repeated code does not count (the duplicate is dropped first)
    result = scan(io.BytesIO(body([*coded, person(0, custom_short_code="code0")])), max_recipients=10)
    check_recipients(result, prerequisites(), custom=True)
    assert result.codes == {"code0": 0, "code1": 1, "code2": 2}


def test_type_errors_are_worded_like_pydantic() -> None:
    result = scan(io.BytesIO(body([person(0), {"cust_flag": 13900000001}])), max_recipients=10)
    assert result.type_error == (("body", "resolve_task", "params", 1, "cust_flag"), "Input should be a valid string")
    result = scan(io.BytesIO(body([person(0), "x"])), max_recipients=10)
    assert result.type_error == (("body", "resolve_task", "params", 1), "Input should be a valid dictionary")


def test_malformed_json_is_km_00000400() -> None:
    with pytest.raises(ApiError) as caught:
        scan(io.BytesIO(body([person(0)])[:-3]), max_recipients=10)
    assert caught.value.error_code == "KM.00000400" and "JSON" in caught.value.error_msg


def test_spool_hashes_while_it_streams_and_replays_in_chunks() -> None:
    payload = bytes(range(256)) * 20_000  # 5 MB: on disk beyond the first MiB
    parts = [payload[i : i + 70_000] for i in range(0, len(payload), 70_000)]

    async def run() -> tuple[BodySpool, bytes]:
        messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        spool = await spool_body(receive, limit=len(payload))
        replay = replaying_receive(spool, receive)
        out = b""
        while True:
            message = await replay()
            out += message["body"]
            if not message["more_body"]:
                return spool, out

    spool, replayed = asyncio.run(run())
    assert replayed == payload and spool.size == len(payload)
    assert spool.sha256_hex() == hashlib.sha256(payload).hexdigest()
    assert spool.fingerprint("a", "b") == fingerprint(payload, "a", "b")
    assert payload_hash(BodyDigest(spool.size, spool.sha256_hex()), {}, ()) == hashlib.sha256(payload).hexdigest()
    spool.close()


def test_spool_refuses_a_body_over_the_limit() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * 10, "more_body": True}

    with pytest.raises(BodyTooLarge):
        asyncio.run(spool_body(receive, limit=25))


def test_a_path_limit_is_enforced_while_the_body_streams_in() -> None:
    from magpie_gateway.auth import Credential, SignatureAuthMiddleware

    async def lookup(access_key: str) -> Credential | None:
        return Credential(access_key, "secret", "tenant", "tenant")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    middleware = SignatureAuthMiddleware(app, lookup=lookup, body_limits={"/small": 10}, max_body_bytes=1000)
    authorization = f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date, Signature={'0' * 64}"

    async def status(path: str) -> int:
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"authorization", authorization.encode()), (b"x-sdk-date", b"20250101T120000Z")],
        }
        chunks = [b"x" * 8, b"x" * 8]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await middleware(scope, receive, send)
        return int(sent[0]["status"])

    assert asyncio.run(status("/small")) == 413
    assert asyncio.run(status("/other")) == 401  # read whole, then the (wrong) signature is refused
