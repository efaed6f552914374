"""Recipients routed VMS (a smart send task's VMS fallback): forwarded to the dispatcher without a link when the task
names its VMS template, refused with a final FAILED event when it does not."""

from __future__ import annotations

import pytest

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_common.config import Settings
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, DELIVERY, DISPATCH
from magpie_shortlink.minting import VMS_TEMPLATE_MISSING, message_id
from magpie_shortlink.wiring import Components

from .conftest import BatchFactory

pytestmark = pytest.mark.integration

SMART, VMS, SKIPPED = common_pb2.ROUTE_SMART, common_pb2.ROUTE_VMS, common_pb2.ROUTE_SKIPPED


async def test_vms_recipients_are_forwarded_without_links(
    running: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    mixed = make_batch(
        task_id="task-v", batch_no=1, recipients=[(0, SMART, {"name": "a"}), (1, VMS, {"name": "b"}), (2, SKIPPED, {})]
    )
    only_vms = make_batch(task_id="task-v", batch_no=2, recipients=[(3, VMS, {"name": "c"})])
    for batch in (mixed, only_vms):
        batch.ctx.fallback = common_pb2.FALLBACK_VMS
        batch.ctx.vms_tpl_id = "VMS1"
        batch.ctx.vms_tpl_revision = 1
        batch.ctx.vms_params[:] = ["dync:name"]
    await running.producer.send_many([(CLASSIFIED, "task-v:1", mixed), (CLASSIFIED, "task-v:2", only_vms)])
    out = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 2)
    by_batch = {m.batch_no: m for m in out}
    first = by_batch[1]
    assert [(r.index, r.route) for r in first.recipients] == [(0, SMART), (1, VMS)]
    assert first.recipients[0].short_code and first.recipients[0].short_url
    vms = first.recipients[1]
    assert (vms.short_code, vms.short_url, dict(vms.params)) == ("", "", {"name": "b"})
    assert vms.msisdn == "8613800130001" and list(vms.sms_params) == ["value-1", "second"]
    assert first.ctx.vms_tpl_id == "VMS1" and list(first.ctx.vms_params) == ["dync:name"]
    assert [(r.index, r.route, r.short_code) for r in by_batch[2].recipients] == [(3, VMS, "")]
    assert await running.store.links.count_documents({}) == 1  # a link for the smart recipient only


async def test_vms_recipients_without_template_fail(
    running: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    batch = make_batch(task_id="task-w", batch_no=0, recipients=[(0, VMS, {}), (1, SKIPPED, {})])
    await running.producer.send(CLASSIFIED, "task-w:0", batch)
    (refused,) = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: len(m) >= 1)
    (event,) = refused.events
    assert (event.index, event.status, event.result_code, event.route) == (
        0,
        dispatch_pb2.DELIVERY_STATUS_FAILED,
        VMS_TEMPLATE_MISSING,
        VMS,
    )
    assert event.msg_id == message_id("task-w", 0, 0) and event.segments == 0
