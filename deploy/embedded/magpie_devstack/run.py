"""``make run``: infrastructure, carrier simulator and every service, a demo campaign, then keep serving.

Prints progress and the final counts of the campaign (resolvable / degraded / invalid, delivered / failed,
resolutions, quota left), then the API docs and metrics URLs, and serves until Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable

from magpie_devstack import campaign
from magpie_devstack.receipts import ReceiptCollector
from magpie_devstack.stack import Stack, StackPorts


def say(message: str) -> None:
    print(f"[magpie] {message}", flush=True)


def settle_until(observe: Callable[[], object], quiet_s: float = 3.0, limit_s: float = 30.0) -> None:
    """Wait until what ``observe`` returns has not changed for ``quiet_s`` (at most ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    last, since = observe(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = observe()
        if now != last:
            last, since = now, time.monotonic()


def run_demo(stack: Stack, admin_token: str, recipients: int) -> dict[str, object]:
    with ReceiptCollector() as receipts:
        tenant = campaign.provision_tenant(stack.gateway_url, admin_token, f"demo-{int(time.time())}")
        say(f"tenant {tenant.tenant_id} (AK {tenant.access_key})")
        campaign.buy_package(stack.url("billing"), tenant.tenant_id, "AIM_SMS", 20_000)
        campaign.buy_package(stack.url("billing"), tenant.tenant_id, "AIM_RESOLUTION", 5_000)
        say("bought packages: 20,000 SMS segments, 5,000 resolutions")
        population = campaign.Population.synthetic(recipients)
        seeded = campaign.seed_devices(stack.url("number-resolver"), population)
        say(
            f"population: {population.count('capable')} capable, {population.count('incapable')} incapable, "
            f"{population.count('unknown')} unknown devices, {population.count('invalid')} malformed numbers "
            f"(device registry: {seeded.get('imported')} imported)"
        )
        client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
        pre = campaign.prerequisites(client, callback_url=receipts.url)
        say(
            f"prerequisites approved: enterprise filing {pre.filing_ids['AIM']} (AIM), app {pre.app_name}, "
            f"signature 【{pre.sign_name}】, SMS template {pre.sms_template_id}, card {pre.tpl_id}"
        )
        started = time.monotonic()
        task_id = campaign.send(client, pre, population)
        say(f"send task {task_id} accepted with {recipients} recipients")
        handsets = campaign.Handsets(stack.simulator_url, stack.url("shortlink"))
        capable = {s.mobile for s in population.subscribers if s.kind == "capable"}
        last = None
        while True:
            progress = campaign.task_progress(client, task_id)
            handsets.resolve(handsets.delivered_links(capable), fraction=0.7)
            line = (
                f"state={progress.state} resolvable={progress.resolvable} sent={progress.sent} "
                f"delivered={progress.delivered} resolved={progress.resolved}"
            )
            if line != last:
                say(f"{time.monotonic() - started:6.1f}s {line}")
                last = line
            if progress.state == "COMPLETED":
                break
            time.sleep(1)
        # Every recipient is final; the last handsets resolve their links, then receipts and billing settle.
        handsets.resolve(handsets.delivered_links(capable), fraction=0.7)
        settle_until(
            lambda: (
                campaign.task_progress(client, task_id).resolved,
                receipts.count("sms"),
                receipts.count("shortchain"),
            )
        )
        summary = campaign.task_summary(stack.gateway_url, client, task_id)
        quota = campaign.billing_summary(stack.url("billing"), tenant.tenant_id)
        final = {
            "task_id": task_id,
            "seconds": round(time.monotonic() - started, 1),
            "summary": summary,
            "resolutions_by_handsets": len(handsets.resolved),
            "receipts": {"sms": receipts.count("sms"), "shortchain": receipts.count("shortchain")},
            "billing": quota,
        }
        return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--no-demo", action="store_true", help="start everything but run no campaign")
    args = parser.parse_args(argv)
    admin_token = os.environ.get("MAGPIE_ADMIN_TOKEN") or secrets.token_urlsafe(16)
    stack = Stack(
        profile="run",
        namespace="magpie",
        ports=StackPorts.fixed(),
        extra_env={"MAGPIE_ADMIN_TOKEN": admin_token},
        # A carrier that fails 3% of messages, so the demo shows failures and their receipts too.
        simulator_options={"MAGPIE_SIM_FAILURE_RATE": "0.03", "MAGPIE_SIM_SEED": "1"},
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        say("starting embedded infrastructure (Kafka, MongoDB, Redis), carrier simulator and services ...")
        stack.up()
        say(f"all services ready; logs in {stack.log_dir}")
        if not args.no_demo:
            final = run_demo(stack, admin_token, args.recipients)
            say("campaign complete:")
            import json

            print(json.dumps(final, indent=2, ensure_ascii=False), flush=True)
        say(f"API docs:        {stack.gateway_url}/docs")
        say(f"admin token:     {admin_token} (header X-Admin-Token on {stack.gateway_url}/internal/tenants)")
        for name, proc in stack.procs.items():
            say(f"metrics {name:18s} http://127.0.0.1:{proc.port}/metrics")
        say("serving; press Ctrl-C to stop everything")
        while not stopping.is_set():
            stopping.wait(1)
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping services and infrastructure ...")
        codes = stack.down(infra=True)
        say(f"stopped: {codes}")
    sys.exit(0)


if __name__ == "__main__":
    main()
