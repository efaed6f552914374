"""Recipient files (Magpie extension): uploads through signed requests (CSV, TXT, XLSX; encodings; counts), tenant
scoping, a send task from a file (the recipient batches it produces), every refused file leaving nothing behind,
column checks against the templates, and Idempotency-Key on uploads."""

from __future__ import annotations

import io
from typing import Any

import httpx
import openpyxl
import pytest

from magpie.v1 import task_pb2
from magpie_common.testing import collect
from magpie_common.topics import RECIPIENTS
from magpie_gateway import recipient_file_parser, recipient_files

from .conftest import Harness, TenantKeys

pytestmark = pytest.mark.integration

PATH = "/v1/magpie/recipient-files"


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str = "recipients.csv", headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(PATH, files={"file": (name, data, "application/octet-stream")}, headers=headers)


def xlsx(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def leftovers(harness: Harness, tenant: TenantKeys) -> tuple[int, int]:
    c = harness.gateway.context.collections
    files = await c.recipient_files.count_documents({"tenant_id": tenant.tenant_id})
    ids = [d["_id"] async for d in c.recipient_files.find({"tenant_id": tenant.tenant_id}, {"_id": 1})]
    rows = await c.recipient_file_rows.count_documents({"file_id": {"$in": ids}}) if ids else 0
    orphans = await c.recipient_file_rows.count_documents({"expires_at": {"$exists": True}})
    return files, rows + orphans


async def test_csv_upload_counts_and_tenant_scope(harness: Harness) -> None:
    tenant, other = await harness.tenant("acme"), await harness.tenant("rival")
    csv = "mobile,name,amount\n13900000001,甲,1\n+86 139-0000-0002,乙,2\n\n13900000001,again,3\n12345,bad,4\n"
    async with harness.client(tenant) as client, harness.client(other) as rival:
        response = await upload(client, csv.encode())
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["rows"], body["valid"], body["duplicates"], body["invalid"]) == (4, 2, 1, 1)
        assert body["columns"] == ["name", "amount"] and body["file_name"] == "recipients.csv"
        file_id = body["file_id"]
        shown = await client.get(f"{PATH}/{file_id}")
        assert shown.status_code == 200 and shown.json()["valid"] == 2
        listed = (await client.get(PATH)).json()
        assert [f["file_id"] for f in listed["recipient_files"]] == [file_id]
        assert (await rival.get(f"{PATH}/{file_id}")).json()["error_code"] == "KM.00000404"
        assert (await rival.get(PATH)).json()["recipient_files"] == []
        assert (await rival.delete(f"{PATH}/{file_id}")).status_code == 404
        assert (await client.delete(f"{PATH}/{file_id}")).status_code == 200
        assert (await client.get(f"{PATH}/{file_id}")).status_code == 404
    assert await leftovers(harness, tenant) == (0, 0)


async def test_encodings_and_kinds(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        gb = "手机号\t姓名\n13900000001\t张三\n13900000002\t李四\n".encode("gb18030")
        response = await upload(client, gb, "名单.txt")
        assert response.status_code == 200, response.text
        assert (response.json()["valid"], response.json()["columns"]) == (2, ["姓名"])
        bom = b"\xef\xbb\xbf" + b"13900000001\n13900000003\n13900000003\n"
        response = await upload(client, bom, "numbers.txt")
        assert response.status_code == 200, response.text
        assert (response.json()["rows"], response.json()["valid"], response.json()["duplicates"]) == (3, 2, 1)
        book = xlsx([["mobile", "${name}", "amount"], [13900000001, "a", 1], ["13900000002", "b", 2.5]])
        response = await upload(client, book, "anything.bin")  # the content decides, not the name
        assert response.status_code == 200, response.text
        assert (response.json()["valid"], response.json()["columns"]) == (2, ["name", "amount"])


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "KM.90016414", "empty"),
        (b"mobile\n\n\n", "KM.90016414", "no row"),
        ("手机号\n13900000001\n".encode("utf-16"), "KM.00000515", "UTF-16"),
        ("mobile,name\n13900000001,café\n".encode("latin-1"), "KM.00000515", "GB18030"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "KM.00000430", "png"),
        (b"\x7fELF\x02\x01\x01" + bytes(range(256)), "KM.00000430", "elf"),
        (b"mobile\n1390000\x00\x01\x02", "KM.00000430", "binary"),
        (b"name,amount\nx,1\n", "KM.00000516", "no mobile column"),
        (b"PK\x03\x04 this is not a workbook", "KM.00000516", "xlsx"),
        (b"mobile,name\n13900000001,a\n13900000002,b,extra\n", "KM.00000516", "row 3"),
        (b'mobile,name\n13900000001,"open quote\n', "KM.00000516", "row"),
        (b"mobile,name,name\n13900000001,a,b\n", "KM.00000516", "repeated"),
    ],
)
async def test_refused_files_leave_nothing(harness: Harness, data: bytes, code: str, words: str) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        response = await upload(client, data)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == code
    assert words in response.json()["error_msg"]
    assert await leftovers(harness, tenant) == (0, 0)


async def test_too_many_rows_and_too_large(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = await harness.tenant()
    monkeypatch.setattr(recipient_file_parser, "ROWS_PER_DOC", 2)  # rows were already stored when it fails
    monkeypatch.setattr(recipient_file_parser, "MAX_ROWS", 5)
    numbers = "".join(f"1390000{i:04d}\n" for i in range(6)).encode()
    async with harness.client(tenant) as client:
        response = await upload(client, numbers)
        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "KM.90016301"
        assert await leftovers(harness, tenant) == (0, 0)
        monkeypatch.setattr(recipient_files, "MAX_FILE_BYTES", 40)
        response = await upload(client, numbers[:60])
        assert response.status_code == 413 and response.json()["error_code"] == "KM.00000413"
    assert await leftovers(harness, tenant) == (0, 0)


async def test_send_task_from_a_file(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, sms_content="${1}您好，点击${2}领取")
        lines = ["mobile,name,amount,sms_params_1"] + [f"139{i:08d},n{i},{i},会员{i}" for i in range(1203)]
        lines.insert(5, "13900000000,dup,0,x")
        response = await upload(client, ("\n".join(lines) + "\n").encode())
        assert response.status_code == 200, response.text
        file_id = response.json()["file_id"]
        body = setup.task([])
        body["resolve_task"]["params"] = None
        body["resolve_task"]["recipient_file_id"] = file_id
        response = await client.post("/v1/aim/send-tasks", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["submission_count"], answer["unique_recipients"], answer["duplicates"]) == (1204, 1203, 1)
        assert answer["batch_count"] == 3 and answer["resolve_task"]["recipient_file_id"] == file_id
        task_id = answer["task_id"]
        batches = await collect(
            harness.settings,
            RECIPIENTS,
            task_pb2.RecipientBatch,
            until=lambda m: len([b for b in m if b.ctx.task_id == task_id]) >= 3,
        )
        mine = sorted((b for b in batches if b.ctx.task_id == task_id), key=lambda b: b.batch_no)
        assert [(b.batch_no, b.batch_count, len(b.recipients)) for b in mine] == [(0, 3, 500), (1, 3, 500), (2, 3, 203)]
        assert [r.index for b in mine for r in b.recipients] == list(range(1203))
        last = mine[2].recipients[-1]
        assert last.mobile == "13900001202" and dict(last.params) == {"name": "n1202", "amount": "1202"}
        assert list(last.sms_params) == ["会员1202"]

        # the file's columns must match the templates; params and a file together are refused
        other = await upload(client, b"mobile,name\n13900000001,a\n")
        body["resolve_task"]["recipient_file_id"] = other.json()["file_id"]
        mismatch = await client.post("/v1/aim/send-tasks", json=body)
        assert mismatch.status_code == 400 and mismatch.json()["error_code"] == "KM.90016802"
        body["resolve_task"]["params"] = [{"cust_flag": "13900000001", "dync_params": {"name": "a", "amount": "1"}}]
        both = await client.post("/v1/aim/send-tasks", json=body)
        assert both.status_code == 400 and both.json()["error_code"] == "KM.00000516"
        body["resolve_task"]["params"] = None
        body["resolve_task"]["recipient_file_id"] = "RF-unknown"
        assert (await client.post("/v1/aim/send-tasks", json=body)).json()["error_code"] == "KM.00000404"


async def test_upload_idempotency_key(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        data = b"mobile\n13900000001\n13900000002\n"
        first = await upload(client, data, headers={"Idempotency-Key": "file-1"})
        again = await upload(client, data, headers={"Idempotency-Key": "file-1"})
        assert first.status_code == again.status_code == 200, first.text
        assert first.json()["file_id"] == again.json()["file_id"]
        assert (await client.get(PATH)).json()["page_info"]["total"] == 1
        conflict = await upload(client, b"mobile\n13900000009\n", headers={"Idempotency-Key": "file-1"})
        assert conflict.status_code == 409 and conflict.json()["error_code"] == "KM.00000409"
