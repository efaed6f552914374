"""The gateway reads every topic it consumes through ONE Kafka consumer (group ``gateway``): review decisions and
the CLASSIFIED, DELIVERY, LINK and VMS_DELIVERY projections all arrive through it. (How the new group takes over the
offsets of the per-topic groups of earlier versions: libs/magpie-common/tests/test_offset_migration.py.)"""

from __future__ import annotations

import pytest

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_common.kafka import ConsumerLoop
from magpie_common.topics import CLASSIFIED, DELIVERY, LINK, TEMPLATE_REVIEWED, VMS_DELIVERY
from magpie_gateway.wiring import GROUP

from .conftest import Harness, eventually, recipients
from .test_projection import SUBMITTED, classified, delivery, mobile, resolved, summary

pytestmark = pytest.mark.integration


async def test_one_consumer_projects_every_topic(harness: Harness) -> None:
    gateway = harness.gateway
    consumers = [loop for loop in gateway.loops if isinstance(loop, ConsumerLoop)]
    assert len(consumers) == 1
    (loop,) = consumers
    assert loop.group_id == harness.settings.topic_prefix + GROUP
    # Review decisions first; each route keeps the batch size its own consumer had.
    assert [(r.topic, r.max_records) for r in loop.routes.values()] == [
        (TEMPLATE_REVIEWED, 50),
        (CLASSIFIED, 20),
        (DELIVERY, 50),
        (LINK, 500),
        (VMS_DELIVERY, 50),
    ]

    async def ready() -> bool:
        return (await gateway.readiness())["consumers"]

    await eventually(ready)

    tenant = await harness.tenant()
    produce = harness.producer.send
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)  # TEMPLATE_REVIEWED: waits for the three approvals
        task_id = (await client.post("/v1/aim/send-tasks", json=setup.task(recipients(3)))).json()["task_id"]
        smart = {i: (common_pb2.ROUTE_SMART, "") for i in range(3)}
        await produce(CLASSIFIED, f"{task_id}:0", classified(task_id, 0, smart))
        await produce(DELIVERY, "d", delivery(task_id, [(0, SUBMITTED, ""), (1, SUBMITTED, "")], tenant.tenant_id))
        await produce(LINK, "c0", resolved(task_id, 0))

        # A VMS task as vms_tasks stores it (only what the VMS projector reads).
        vms_id = "VMSCONSUMERTEST"
        await gateway.context.collections.vms_tasks.insert_one(
            {"_id": vms_id, "tenant_id": tenant.tenant_id, "st": [0, 0], "mobiles": [mobile(0), mobile(1)], "v": 0}
        )
        vms = dispatch_pb2.DeliveryBatch()
        vms.events.add(
            event_id="vms-0",
            tenant_id=tenant.tenant_id,
            task_id=vms_id,
            index=1,
            mobile=mobile(1),
            status=dispatch_pb2.DELIVERY_STATUS_DELIVERED,
        )
        await produce(VMS_DELIVERY, f"{vms_id}:0", vms)

        async def projected() -> bool:
            s = (await summary(client, task_id))["magpie_summary"]
            return (s["classified"], s["sent"], s["resolved"]) == (3, 2, 1)

        await eventually(projected)

        async def vms_projected() -> bool:
            doc = await gateway.context.collections.vms_tasks.find_one({"_id": vms_id})
            return doc is not None and doc["st"] == [0, int(dispatch_pb2.DELIVERY_STATUS_DELIVERED)]

        await eventually(vms_projected)
