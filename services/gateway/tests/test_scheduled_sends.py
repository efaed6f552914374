"""Scheduled sends (``X-Magpie-Send-At`` on create_aim_send_task), the marketing send window at the gateway, and
``cancel_aim_send_task``: the events produced (read back from the real broker), ``magpie_schedule`` in the views,
CANCELLED recipients in the send details, the error codes and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    ListAimSendDetailsRequest,
    ListAimSendTasksRequest,
    SmsChannel,
)

from magpie.v1 import dispatch_pb2, task_pb2
from magpie_common.ids import now_ms
from magpie_common.send_window import SendWindow
from magpie_common.testing import collect
from magpie_common.topics import DELIVERY, RECIPIENTS, TASK_CONTROL
from magpie_gateway import send_task_control_api

from .conftest import Harness, Setup, call, eventually, recipients, sdk_client, until

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000
CANCEL = "/v1/magpie/send-tasks/{}/cancel"


def with_cancel_route(harness: Harness) -> Harness:
    """The cancel router, until the application registers it itself (then this does nothing)."""
    app = harness.gateway.app
    if not any(getattr(route, "path", "") == "/v1/magpie/send-tasks/{task_id}/cancel" for route in app.routes):
        app.include_router(send_task_control_api.router)
    return harness


def shanghai_tomorrow(hour: int, minute: int = 0) -> datetime:
    day = datetime.now(SHANGHAI).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def zulu(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def batches_of(harness: Harness, task_id: str, count: int = 1) -> list[task_pb2.RecipientBatch]:
    found = await collect(
        harness.settings,
        RECIPIENTS,
        task_pb2.RecipientBatch,
        until=lambda m: len([b for b in m if b.ctx.task_id == task_id]) >= count,
    )
    return [b for b in found if b.ctx.task_id == task_id]


async def as_notification(harness: Harness, setup: Setup) -> None:
    """Turn the setup's SMS template into a notification template (the window does not apply to it)."""
    templates = harness.gateway.context.collections.sms_templates
    await templates.update_one({"_id": setup.sms_template_id}, {"$set": {"template_type": "NOTIFICATION_TYPE"}})


async def test_scheduled_task_through_the_sdk_then_cancelled(
    served: tuple[str, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, harness = served
    with_cancel_route(harness)
    monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", "08:00-21:00")
    monkeypatch.setenv("MAGPIE_MARKETING_TZ", "Asia/Shanghai")
    tenant = await harness.tenant()
    send_at = shanghai_tomorrow(10, 30)  # a promotion template: inside the window
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, card_params=("name",))
        sdk = sdk_client(url, tenant)
        sdk.preset_headers = {"X-Magpie-Send-At": send_at.isoformat()}
        task = await call(
            lambda: sdk.create_aim_send_task(
                CreateAimSendTaskRequest(
                    body=CreateAimSendTaskRequestBody(
                        task_name="明早十点半",
                        sms_channel=SmsChannel(
                            sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name
                        ),
                        resolve_task=AIMResolveTask(
                            tpl_id=setup.tpl_id,
                            aim_code_type="individual",
                            generation_type="1",
                            expiration_time=2,
                            params=[
                                CreateResolveTaskParam(cust_flag="13900000001", dync_params={"name": "张三"}),
                                CreateResolveTaskParam(cust_flag="13900000002", dync_params={"name": "李四"}),
                            ],
                        ),
                    )
                )
            )
        )
        sdk.preset_headers = {}
        assert task.task_state == "Success" and task.task_id and task.submission_count == 2
        assert task.task_name == "明早十点半" and task.resolve_task.params[0].cust_flag == "13900000001"
        task_id = task.task_id

        # The batches carry the send time; the links stay valid 2 days from it.
        (batch,) = await batches_of(harness, task_id)
        assert batch.ctx.send_at_ms == ms(send_at) and batch.ctx.marketing
        assert batch.ctx.link_expires_at_ms == ms(send_at) + 2 * DAY_MS

        listed = await call(lambda: sdk.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task_id)))
        assert listed.page_info.total == 1
        assert listed.aim_send_tasks[0].task_id == task_id and listed.aim_send_tasks[0].task_state == "Success"
        raw = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"][0]
        assert raw["magpie_schedule"] == {
            "send_time": zulu(send_at),
            "reason": "SCHEDULED",
            "state": "SCHEDULED",
            "cancelable": True,
            "cancel_time": None,
            "cancelled_by": None,
            "marketing_window": "08:00-21:00 Asia/Shanghai",
        }

        cancelled = await client.post(CANCEL.format(task_id))
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["task_id"] == task_id and body["task_name"] == "明早十点半"
        schedule = body["magpie_schedule"]
        assert schedule["state"] == "CANCELLED" and schedule["cancelable"] is False
        assert schedule["send_time"] == zulu(send_at) and schedule["cancel_time"]
        # Idempotent (the query only makes the signature differ: the served gateway refuses replayed signatures).
        again = await client.post(CANCEL.format(task_id), params={"again": "1"})
        assert again.status_code == 200 and again.json()["magpie_schedule"] == schedule

        commands = await collect(
            harness.settings,
            TASK_CONTROL,
            task_pb2.TaskControl,
            until=lambda m: any(c.task_id == task_id for c in m),
        )
        command = next(c for c in commands if c.task_id == task_id)
        assert command.command == task_pb2.TASK_COMMAND_CANCEL and command.tenant_id == tenant.tenant_id
        assert command.operator and abs(command.requested_at_ms - now_ms()) < 60_000

        # What the dispatcher answers for the recipients it held: FAILED / CANCELLED finals.
        delivery = dispatch_pb2.DeliveryBatch()
        delivery.meta.event_id = f"cancel-{task_id}"
        for index, mobile in enumerate(("13900000001", "13900000002")):
            delivery.events.add(
                event_id=f"final-{task_id}-{index}",
                tenant_id=tenant.tenant_id,
                task_id=task_id,
                batch_no=0,
                index=index,
                mobile=mobile,
                msg_id=f"m{index}",
                status=dispatch_pb2.DELIVERY_STATUS_FAILED,
                result_code="CANCELLED",
                done_at_ms=now_ms(),
            )
        await harness.producer.send(DELIVERY, f"{task_id}:0", delivery)
        details = await until(
            lambda: [
                d
                for d in sdk.list_aim_send_details(ListAimSendDetailsRequest(task_id=task_id)).send_details
                if d.send_status == "CANCELLED"
            ]
        )
        assert sorted((d.cust_flag, d.send_status, d.result_code) for d in details) == [
            ("13900000001", "CANCELLED", "CANCELLED"),
            ("13900000002", "CANCELLED", "CANCELLED"),
        ]
        assert all(d.task_id == task_id and d.send_time is None and d.receive_time for d in details)
        completed = await until(
            lambda: (
                sdk.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task_id)).aim_send_tasks[0].task_state
                == "COMPLETED"
            )
        )
        assert completed
        raw = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"][0]
        assert raw["magpie_schedule"]["state"] == "CANCELLED"


async def test_marketing_window_and_send_time_rules(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", "08:00-21:00")
    monkeypatch.setenv("MAGPIE_MARKETING_TZ", "Asia/Shanghai")
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        body = setup.task(recipients(2))

        async def error(send_at: str) -> dict[str, Any]:
            response = await client.post("/v1/aim/send-tasks", json=body, headers={"X-Magpie-Send-At": send_at})
            assert response.status_code == 400, response.text
            assert set(response.json()) == {"error_code", "error_msg"}
            return dict(response.json())

        late = await error(shanghai_tomorrow(21, 0).isoformat())  # the end of the window is outside it
        assert late["error_code"] == "KM.00000466" and "08:00-21:00 Asia/Shanghai" in late["error_msg"]
        assert (await error(shanghai_tomorrow(7, 59).isoformat()))["error_code"] == "KM.00000466"
        assert (await error("tomorrow at ten"))["error_code"] == "KM.00000465"
        no_offset = await error(shanghai_tomorrow(10).replace(tzinfo=None).isoformat())
        assert no_offset["error_code"] == "KM.00000465" and "offset" in no_offset["error_msg"]
        past = await error((datetime.now(UTC) - timedelta(minutes=1)).isoformat())
        assert past["error_code"] == "KM.00000465" and "future" in past["error_msg"]
        far = await error((datetime.now(UTC) + timedelta(days=30, minutes=5)).isoformat())
        assert far["error_code"] == "KM.00000465" and "30 days" in far["error_msg"]
        # Nothing was created by the refused requests.
        assert (await client.get("/v1/aim/send-tasks")).json()["aim_send_tasks"] == []
        assert await harness.gateway.context.collections.send_schedules.count_documents({}) == 0

        # The window is in Shanghai time whatever the offset the caller writes: 02:30Z is 10:30 in Shanghai.
        in_utc = shanghai_tomorrow(10, 30).astimezone(UTC)
        accepted = await client.post("/v1/aim/send-tasks", json=body, headers={"X-Magpie-Send-At": zulu(in_utc)})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["magpie_schedule"]["send_time"] == zulu(in_utc)
        (batch,) = await batches_of(harness, accepted.json()["task_id"])
        assert batch.ctx.send_at_ms == ms(in_utc)

        # A notification template may be scheduled at night.
        await as_notification(harness, setup)
        night = shanghai_tomorrow(23, 15)
        notice = await client.post("/v1/aim/send-tasks", json=body, headers={"X-Magpie-Send-At": night.isoformat()})
        assert notice.status_code == 200, notice.text
        schedule = notice.json()["magpie_schedule"]
        assert schedule["reason"] == "SCHEDULED" and schedule["marketing_window"] is None
        (batch,) = await batches_of(harness, notice.json()["task_id"])
        assert batch.ctx.send_at_ms == ms(night) and not batch.ctx.marketing
        # ... and without the header it is sent at once, window or not.
        now = await client.post("/v1/aim/send-tasks", json=body)
        assert now.json()["magpie_schedule"] is None


async def test_promotion_sent_now_outside_the_window_waits_for_the_opening(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_cancel_route(harness)
    # A window that opens two hours from now (Shanghai time) and lasts one hour: now is outside it.
    opening = datetime.now(SHANGHAI) + timedelta(hours=2)
    closing = opening + timedelta(hours=1)
    spec = f"{opening:%H:%M}-{closing:%H:%M}"
    monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", spec)
    monkeypatch.setenv("MAGPIE_MARKETING_TZ", "Asia/Shanghai")
    window = SendWindow.parse(spec, "Asia/Shanghai")
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        created = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(3)))
        assert created.status_code == 200, created.text
        task_id = created.json()["task_id"]
        schedule = created.json()["magpie_schedule"]
        expected = datetime.fromtimestamp(window.next_open_ms(now_ms()) / 1000, UTC)
        assert schedule["reason"] == "MARKETING_WINDOW" and schedule["state"] == "SCHEDULED"
        assert schedule["send_time"] == zulu(expected) and schedule["marketing_window"] == f"{spec} Asia/Shanghai"
        # The dispatcher applies the window itself: the batches carry no send time, their links count from now.
        (batch,) = await batches_of(harness, task_id)
        assert batch.ctx.marketing and batch.ctx.send_at_ms == 0
        assert batch.ctx.link_expires_at_ms == batch.ctx.created_at_ms + 3 * DAY_MS
        listed = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"][0]
        assert listed["magpie_schedule"] == schedule
        # It can be cancelled like a scheduled task.
        cancelled = await client.post(CANCEL.format(task_id))
        assert cancelled.status_code == 200 and cancelled.json()["magpie_schedule"]["state"] == "CANCELLED"

        # Inside the window (here: no restriction) a promotion goes at once.
        monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", "00:00-00:00")
        at_once = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(3)))
        assert at_once.json()["magpie_schedule"] is None
        (batch,) = await batches_of(harness, at_once.json()["task_id"])
        assert batch.ctx.send_at_ms == 0


async def test_cancel_errors_and_tenant_isolation(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    with_cancel_route(harness)
    monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", "00:00-00:00")
    owner, other = await harness.tenant("owner"), await harness.tenant("other")
    async with harness.client(owner) as client, harness.client(other) as intruder:
        setup = await harness.prerequisites(client)
        body = setup.task(recipients(1))
        soon = datetime.now(UTC) + timedelta(hours=1)
        scheduled = await client.post("/v1/aim/send-tasks", json=body, headers={"X-Magpie-Send-At": soon.isoformat()})
        task_id = scheduled.json()["task_id"]
        at_once = (await client.post("/v1/aim/send-tasks", json=body)).json()["task_id"]

        async def error(who: Any, task: str, status: int = 400) -> str:
            response = await who.post(CANCEL.format(task))
            assert response.status_code == status, response.text
            assert set(response.json()) == {"error_code", "error_msg"}
            return str(response.json()["error_code"])

        # Another tenant's task, an unknown task: 404, and the task stays scheduled.
        assert await error(intruder, task_id, 404) == "KM.00000404"
        assert await error(client, "T-does-not-exist", 404) == "KM.00000404"
        listed = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"][0]
        assert listed["magpie_schedule"]["state"] == "SCHEDULED"
        assert (await intruder.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"] == []
        # A task sent at once cannot be cancelled.
        assert await error(client, at_once) == "KM.00000467"
        assert (await client.get("/v1/aim/send-tasks", params={"task_id": at_once})).json()["aim_send_tasks"][0][
            "magpie_schedule"
        ] is None
        # Too close to its send time (the margin is larger than the hour left).
        monkeypatch.setenv("MAGPIE_SCHEDULE_CANCEL_MARGIN_S", "7200")
        assert await error(client, task_id) == "KM.00000467"
        listed = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"][0]
        assert listed["magpie_schedule"]["cancelable"] is False
        monkeypatch.delenv("MAGPIE_SCHEDULE_CANCEL_MARGIN_S")
        # No command was produced for any refused cancel.
        assert await harness.gateway.context.collections.send_schedules.count_documents({"state": "CANCELLED"}) == 0
        ok = await client.post(CANCEL.format(task_id))
        assert ok.status_code == 200 and ok.json()["magpie_schedule"]["cancelled_by"]
        commands = await collect(
            harness.settings, TASK_CONTROL, task_pb2.TaskControl, until=lambda m: any(c.task_id == task_id for c in m)
        )
        assert [c.task_id for c in commands] == [task_id]


async def test_idempotency_key_covers_the_send_time(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", "00:00-00:00")
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        body = setup.task(recipients(1))
        first_time = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        headers = {"Idempotency-Key": "campaign-1", "X-Magpie-Send-At": first_time}
        first = await client.post("/v1/aim/send-tasks", json=body, headers=headers)
        assert first.status_code == 200, first.text
        replay = await client.post("/v1/aim/send-tasks", json=body, headers=headers)
        assert replay.json() == first.json()
        other_time = {**headers, "X-Magpie-Send-At": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}
        conflict = await client.post("/v1/aim/send-tasks", json=body, headers=other_time)
        assert conflict.status_code == 409 and conflict.json()["error_code"] == "KM.00000409"

        async def one_schedule() -> bool:
            return await harness.gateway.context.collections.send_schedules.count_documents({}) == 1

        await eventually(one_schedule)
