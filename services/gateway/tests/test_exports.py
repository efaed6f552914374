"""The download center: export jobs run by the gateway's worker (PENDING -> RUNNING -> SUCCEEDED | FAILED) over the
real read model fed by synthetic pipeline events, CSV and XLSX files checked by parsing them, download / retry /
delete, exclusive claiming across workers (replicas), and tenant isolation."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, resolve_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.topics import CLASSIFIED, DELIVERY, LINK
from magpie_gateway.exports_worker import ExportWorker

from .conftest import Harness, eventually, gateway_config, harness_of, recipients, running_gateway

pytestmark = pytest.mark.integration

EXPORTS = "/v1/magpie/exports"
T0 = 1_750_000_000_000


def mobile(index: int) -> str:
    return str(recipients(1, start=index)[0]["cust_flag"])


def window(**delta: float) -> dict[str, str]:
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "begin_time": (now - timedelta(**delta)).strftime(fmt),
        "end_time": (now + timedelta(minutes=5)).strftime(fmt),
    }


async def send_task(harness: Harness, client: httpx.AsyncClient, tenant_id: str, count: int = 600) -> str:
    """An accepted send task of ``count`` recipients, with classification, deliveries and one resolution projected:
    index 0 delivered and resolved, 1 failed, 2 invalid, 3 degraded, the rest of batch 0 smart; batch 1 untouched."""
    setup = await harness.prerequisites(client)
    task = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(count)))
    assert task.status_code == 200, task.text
    task_id = str(task.json()["task_id"])
    routes = {i: (common_pb2.ROUTE_SMART, "") for i in range(500)}
    routes[2] = (common_pb2.ROUTE_INVALID, "INVALID_NUMBER")
    routes[3] = (common_pb2.ROUTE_DEGRADED, "APP_TOO_OLD")
    classified = resolve_pb2.ClassifiedBatch(batch_no=0, batch_count=2)
    classified.ctx.task_id = task_id
    classified.meta.event_id = f"classified-{task_id}-0"
    for index, (route, reason) in routes.items():
        classified.recipients.add(
            index=index, mobile=mobile(index), msisdn="86" + mobile(index), route=route, reason=reason
        )
    await harness.producer.send(CLASSIFIED, f"{task_id}:0", classified)
    deliveries = dispatch_pb2.DeliveryBatch()
    for index, status, code in (
        (0, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD"),
        (1, dispatch_pb2.DELIVERY_STATUS_FAILED, "UNDELIV"),
    ):
        deliveries.events.add(
            event_id=f"{task_id}-{index}",
            tenant_id=tenant_id,
            task_id=task_id,
            batch_no=0,
            index=index,
            mobile=mobile(index),
            msg_id=f"MSG{index:05d}",
            status=status,
            result_code=code,
            segments=1,
            submitted_at_ms=T0,
            done_at_ms=T0 + 60_000,
        )
    await harness.producer.send(DELIVERY, task_id, deliveries)
    await harness.producer.send(
        LINK,
        "c0",
        link_pb2.LinkEvent(
            type=link_pb2.LINK_EVENT_TYPE_RESOLVED,
            code="c0",
            task_id=task_id,
            batch_no=0,
            index=0,
            mobile=mobile(0),
            at_ms=T0 + 120_000,
        ),
    )

    async def projected() -> bool:
        rows = (await client.get("/v1/aim/send-details", params={"task_id": task_id, "limit": 4})).json()
        statuses = [r["send_status"] for r in rows["send_details"]]
        return statuses == ["DELIVERED", "FAILED", "INVALID", "SENDING"] and rows["send_details"][0]["resolved"]

    await eventually(projected)
    return task_id


async def finished(client: httpx.AsyncClient, export_id: str, state: str = "SUCCEEDED") -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"{EXPORTS}/{export_id}")).json()
        return body if body["state"] == state else None

    result: dict[str, Any] = await eventually(check)
    return result


def csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def xlsx_rows(data: bytes) -> list[dict[str, Any]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


async def test_exports_of_tasks_details_and_resolutions(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        task_id = await send_task(harness, client, tenant.tenant_id)

        details = await client.post(EXPORTS, json={"export_type": "SEND_DETAILS", "task_id": task_id})
        assert details.status_code == 200, details.text
        job = details.json()
        assert job["state"] == "PENDING" and job["file_format"] == "csv" and job["task_id"] == task_id
        assert job["file_name"].startswith(f"send_details_{task_id}_") and job["file_name"].endswith(".csv")
        done = await finished(client, job["export_id"])
        assert done["row_count"] == 600 and done["attempts"] == 1 and done["error_msg"] is None
        assert done["finish_time"] is not None and done["expire_time"] > done["finish_time"]
        assert (await client.get(EXPORTS, params={"downloaded": "false"})).json()["page_info"]["total"] == 1

        downloaded = await client.get(f"{EXPORTS}/{job['export_id']}/file")
        assert downloaded.status_code == 200
        assert downloaded.headers["content-type"].startswith("text/csv")
        assert job["file_name"] in downloaded.headers["content-disposition"]
        assert int(downloaded.headers["content-length"]) == done["file_size"] == len(downloaded.content)
        rows = csv_rows(downloaded.content)
        assert len(rows) == 600
        assert [r["cust_flag"] for r in rows[:3]] == [mobile(0), mobile(1), mobile(2)]
        assert (rows[0]["send_status"], rows[0]["result_code"], rows[0]["resolved"]) == ("DELIVERED", "DELIVRD", "true")
        assert rows[0]["msg_id"] == "MSG00000" and rows[0]["resolve_time"].endswith("Z")
        assert (rows[1]["send_status"], rows[2]["send_status"], rows[3]["route"]) == ("FAILED", "INVALID", "DEGRADED")
        assert rows[599]["stage"] == "ACCEPTED" and rows[599]["index"] == "599"
        shown = (await client.get(f"{EXPORTS}/{job['export_id']}")).json()
        assert shown["downloaded"] is True and shown["download_count"] == 1
        assert (await client.get(EXPORTS, params={"downloaded": "false"})).json()["page_info"]["total"] == 0

        resolutions = await client.post(
            EXPORTS,
            json={
                "export_type": "RESOLUTION_DETAILS",
                "file_format": "xlsx",
                "file_name": "解析明细",
                **window(hours=1),
            },
        )
        assert resolutions.status_code == 200, resolutions.text
        assert resolutions.json()["file_name"] == "解析明细.xlsx"
        resolved_job = await finished(client, resolutions.json()["export_id"])
        assert resolved_job["row_count"] == 498  # batch 0 without the invalid and the degraded recipient
        file = await client.get(f"{EXPORTS}/{resolved_job['export_id']}/file")
        assert file.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = xlsx_rows(file.content)
        assert len(sheet) == 498
        assert sheet[0]["cust_flag"] == mobile(0) and sheet[0]["resolved"] == "true"
        assert sheet[1]["resolved"] == "false" and sheet[1]["resolve_time"] in ("", None)

        tasks = await client.post(EXPORTS, json={"export_type": "SEND_TASKS", "file_format": "xlsx"})
        tasks_job = await finished(client, tasks.json()["export_id"])
        assert tasks_job["row_count"] == 1 and tasks_job["begin_time"] < tasks_job["end_time"]
        (task_row,) = xlsx_rows((await client.get(f"{EXPORTS}/{tasks_job['export_id']}/file")).content)
        assert task_row["task_id"] == task_id and task_row["unique_recipients"] == 600
        assert (task_row["delivered"], task_row["failed"], task_row["resolved"], task_row["invalid"]) == (1, 1, 1, 1)

        listed = (await client.get(EXPORTS, params={"export_type": "SEND_TASKS"})).json()
        assert [e["export_id"] for e in listed["exports"]] == [tasks_job["export_id"]]
        assert (await client.get(EXPORTS, params={"file_name": "解析"})).json()["page_info"]["total"] == 1
        assert (await client.get(EXPORTS, params={"state": "SUCCEEDED"})).json()["page_info"]["total"] == 3
        assert (await client.get(EXPORTS, params={"state": "DONE"})).status_code == 400


async def test_export_requests_are_checked(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        for body in (
            {"export_type": "SEND_DETAILS"},
            {"export_type": "SEND_DETAILS", "task_id": "T1", **window(hours=1)},
            {"export_type": "SEND_DETAILS", **window(days=40)},
            {"export_type": "SEND_DETAILS", "begin_time": "2026-01-01T00:00:00Z"},
            {"export_type": "SEND_DETAILS", "begin_time": "yesterday", "end_time": "today"},
            {"export_type": "SEND_TASKS", "task_id": "T1"},
            {"export_type": "SEND_TASKS", "file_name": "../../etc/passwd"},
            {"export_type": "SEND_TASKS", "file_name": "x" * 101},
            {"export_type": "SEND_TASKS", "file_format": "pdf"},
            {"export_type": "EVERYTHING"},
            {"export_type": "SEND_TASKS", "filter": "x"},
        ):
            response = await client.post(EXPORTS, json=body)
            assert response.status_code == 400, body
            assert response.json()["error_code"] == "KM.00000400", body
        unknown = await client.post(EXPORTS, json={"export_type": "SEND_DETAILS", "task_id": "TASKNOPE"})
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "KM.00000404"
        assert (await client.get(EXPORTS)).json()["page_info"]["total"] == 0


@pytest.fixture
async def small_harness(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """A gateway whose export worker refuses exports above 100 rows."""
    monkeypatch.setenv("MAGPIE_EXPORT_MAX_ROWS", "100")
    async with harness_of(settings, gateway_config()) as value:
        yield value


def worker_of(harness: Harness) -> ExportWorker:
    (worker,) = [loop for loop in harness.gateway.loops if isinstance(loop, ExportWorker)]
    return worker


async def test_failed_export_retry_download_and_delete(small_harness: Harness) -> None:
    harness = small_harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        task_id = await send_task(harness, client, tenant.tenant_id, count=150)
        created = await client.post(EXPORTS, json={"export_type": "SEND_DETAILS", "task_id": task_id})
        export_id = created.json()["export_id"]
        failed = await finished(client, export_id, "FAILED")
        assert "150 recipients exceed the limit of 100 rows" in failed["error_msg"]
        not_ready = await client.get(f"{EXPORTS}/{export_id}/file")
        assert not_ready.status_code == 400 and not_ready.json()["error_code"] == "KM.00000510"

        worker_of(harness).max_rows = 1_000
        retried = await client.post(f"{EXPORTS}/{export_id}/retry")
        assert retried.status_code == 200 and retried.json()["state"] == "PENDING"
        assert retried.json()["error_msg"] is None
        done = await finished(client, export_id)
        assert done["row_count"] == 150 and done["attempts"] == 1
        again = await client.post(f"{EXPORTS}/{export_id}/retry")
        assert again.status_code == 400 and again.json()["error_code"] == "KM.00000511"

        deleted = await client.delete(f"{EXPORTS}/{export_id}")
        assert deleted.status_code == 200 and deleted.json()["export_id"] == export_id
        assert (await client.get(f"{EXPORTS}/{export_id}")).status_code == 404
        assert (await client.delete(f"{EXPORTS}/{export_id}")).status_code == 404
        files = harness.gateway.context.collections.files
        assert await files.count_documents({"tenant_id": tenant.tenant_id, "kind": "export"}) == 0


async def test_claims_are_exclusive_and_leases_expire(settings: Settings) -> None:
    """Two workers (two replicas) racing for the same jobs never get one job twice; a job whose worker stopped
    renewing its lease is taken over, and the old worker's result is dropped."""
    producer = EventProducer(settings, "exports-tests")
    await producer.start()
    try:
        async with running_gateway(settings, gateway_config(), loops=False) as gateway:
            harness = Harness(settings, gateway, producer)
            tenant = await harness.tenant()
            async with harness.client(tenant) as client:
                ids = []
                for _ in range(6):
                    response = await client.post(EXPORTS, json={"export_type": "SEND_TASKS"})
                    ids.append(response.json()["export_id"])
                first = ExportWorker(gateway.context, lease_s=30)
                second = ExportWorker(gateway.context, lease_s=30)
                claims = await asyncio.gather(*(w.claim() for w in (first, second) * 5))
                claimed = [job["_id"] for job in claims if job is not None]
                assert sorted(claimed) == sorted(ids)  # each job exactly once, none left over
                assert await first.claim() is None

                # A stalled worker: its lease runs out and another takes the job over.
                stalled = next(job for job in claims if job is not None)
                exports = gateway.context.collections.exports
                await exports.update_one({"_id": stalled["_id"]}, {"$set": {"lease_until": datetime.now(UTC)}})
                taken = await second.claim()
                assert taken is not None and taken["_id"] == stalled["_id"] and taken["attempts"] == 2
                await first.process(stalled)  # finishes late: its result is dropped, its file removed
                assert (await exports.find_one({"_id": stalled["_id"]}))["state"] == "RUNNING"
                await second.process(taken)
                job = (await client.get(f"{EXPORTS}/{stalled['_id']}")).json()
                assert job["state"] == "SUCCEEDED" and job["row_count"] == 0
                files = gateway.context.collections.files
                assert await files.count_documents({"tenant_id": tenant.tenant_id, "kind": "export"}) == 1
                header = (await client.get(f"{EXPORTS}/{stalled['_id']}/file")).content.decode("utf-8-sig")
                assert header.startswith("task_id,task_name,state")

                # Past its retention the file is refused, then removed with its job.
                await exports.update_one({"_id": stalled["_id"]}, {"$set": {"expires_at": datetime.now(UTC)}})
                expired = await client.get(f"{EXPORTS}/{stalled['_id']}/file")
                assert expired.status_code == 400 and expired.json()["error_code"] == "KM.00000510"
                await first.cleanup()
                assert (await client.get(f"{EXPORTS}/{stalled['_id']}")).status_code == 404
                assert await files.count_documents({"tenant_id": tenant.tenant_id, "kind": "export"}) == 0

                # A job interrupted too often fails instead of running forever.
                worn = next(job for job in claims if job is not None and job["_id"] != stalled["_id"])
                await exports.update_one(
                    {"_id": worn["_id"]}, {"$set": {"lease_until": datetime.now(UTC), "attempts": 3}}
                )
                retaken = await first.claim()
                assert retaken is not None and retaken["_id"] == worn["_id"]
                await first.process(retaken)
                failed = (await client.get(f"{EXPORTS}/{worn['_id']}")).json()
                assert failed["state"] == "FAILED" and "interrupted 3 times" in failed["error_msg"]
    finally:
        await producer.stop()


async def test_exports_are_tenant_scoped(harness: Harness) -> None:
    owner, other = await harness.tenant("owner"), await harness.tenant("other")
    async with harness.client(owner) as client, harness.client(other) as intruder:
        export_id = (await client.post(EXPORTS, json={"export_type": "SEND_TASKS"})).json()["export_id"]
        await finished(client, export_id)
        for response in (
            await intruder.get(f"{EXPORTS}/{export_id}"),
            await intruder.get(f"{EXPORTS}/{export_id}/file"),
            await intruder.post(f"{EXPORTS}/{export_id}/retry"),
            await intruder.delete(f"{EXPORTS}/{export_id}"),
        ):
            assert response.status_code == 404 and response.json()["error_code"] == "KM.00000404"
        assert (await intruder.get(EXPORTS)).json()["page_info"]["total"] == 0
        assert (await client.get(f"{EXPORTS}/{export_id}")).json()["state"] == "SUCCEEDED"
        # Another tenant's send task cannot be exported either.
        task = await intruder.post(EXPORTS, json={"export_type": "SEND_DETAILS", "task_id": export_id})
        assert task.status_code == 404
