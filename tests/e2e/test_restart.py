"""SIGKILL the dispatcher mid-campaign and start it again: nothing lost, nothing sent or billed twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from magpie_devstack import campaign
from magpie_devstack.stack import Stack

from .conftest import ADMIN_TOKEN, start_stack
from .test_campaign import FINAL_STATES, all_details

pytestmark = pytest.mark.e2e

RECIPIENTS = 2000


@pytest.fixture(scope="module")
def slow_carrier_stack(infra_env: dict[str, str]) -> Iterator[Stack]:
    # A carrier capped at 250 submits/s makes the campaign last long enough to kill the dispatcher in the middle.
    stack = start_stack({"MAGPIE_SIM_MAX_TPS": "250", "MAGPIE_SIM_DLR_DELAY": "0.2", "MAGPIE_SIM_FAILURE_RATE": "0.02"})
    yield stack
    stack.down()
    stack.purge()


def simulator_stats(stack: Stack) -> dict[str, object]:
    return dict(httpx.get(f"{stack.simulator_url}/stats", timeout=10).json())


def test_sigkill_dispatcher_mid_campaign(slow_carrier_stack: Stack) -> None:
    stack = slow_carrier_stack
    tenant = campaign.provision_tenant(stack.gateway_url, ADMIN_TOKEN, "restart")
    population = campaign.Population.synthetic(RECIPIENTS, seed=9, invalid=0.0)
    campaign.seed_devices(stack.url("number-resolver"), population)
    client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
    pre = campaign.prerequisites(client)
    task_id = campaign.send(client, pre, population)

    deadline = time.monotonic() + 60
    while int(simulator_stats(stack).get("accepted", 0)) < RECIPIENTS // 4:
        assert time.monotonic() < deadline, simulator_stats(stack)
        time.sleep(0.1)
    stack.kill("dispatcher", signal.SIGKILL)
    accepted_at_kill = int(simulator_stats(stack)["accepted"])
    assert accepted_at_kill < RECIPIENTS  # really mid-campaign
    time.sleep(1)
    stack.start("dispatcher")
    stack.wait_ready(["dispatcher"])

    deadline = time.monotonic() + 180
    while True:
        details = all_details(client, task_id)
        if len(details) == RECIPIENTS and all(d["send_status"] in FINAL_STATES for d in details):
            break
        assert time.monotonic() < deadline, {d["send_status"] for d in details}
        time.sleep(1)

    # Every recipient exactly once, in exactly one final state.
    mobiles = [str(d["cust_flag"]) for d in details]
    assert len(set(mobiles)) == RECIPIENTS
    # No recipient's message reached the carrier twice.
    assert httpx.get(f"{stack.simulator_url}/duplicates", timeout=10).json()["duplicates"] == []
    # Each billable unit charged once: the SMS units billed equal the segments delivered.
    delivered = [d for d in details if d["send_status"] == "DELIVERED"]
    parts = campaign.carrier_parts(stack.simulator_url)
    expected = sum(parts[str(d["cust_flag"])] for d in delivered)
    deadline = time.monotonic() + 30
    while True:
        products = {
            p["product"]: p for p in campaign.billing_summary(stack.url("billing"), tenant.tenant_id)["products"]
        }
        if products["AIM_SMS"]["charged"] == expected:
            break
        assert time.monotonic() < deadline, (products["AIM_SMS"], expected)
        time.sleep(0.5)
