"""``make bench``: figures, not pass/fail, printed as one JSON document.

- end-to-end recipients/s of a 100,000-recipient smart-message campaign on the embedded stack (from the accepted
  send task to every recipient in a final state), with the time to accept the task
- latency percentiles of the handset resolve call at the shortlink edge
- number classification throughput on one core (registry of 1,000,000 devices in Redis), when the number-resolver
  exposes its micro-benchmark
- resident memory of every service process at the end
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import httpx
from huaweicloudsdkkoomessage.v1 import ListAimSendTasksRequest

from magpie_devstack import campaign
from magpie_devstack.stack import Stack


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "mean_ms": round(statistics.mean(ordered) * 1000, 2),
    }


def campaign_bench(stack: Stack, admin_token: str, recipients: int) -> dict[str, Any]:
    tenant = campaign.provision_tenant(stack.gateway_url, admin_token, "bench")
    population = campaign.Population.synthetic(recipients, seed=1)
    campaign.seed_devices(stack.url("number-resolver"), population)
    client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
    pre = campaign.prerequisites(client)
    started = time.monotonic()
    task_id = campaign.send(client, pre, population, name="bench")
    accepted_s = time.monotonic() - started
    expected_final = recipients
    while True:
        task = client.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task_id)).aim_send_tasks[0]
        if str(task.task_state).lower() in {"completed", "complete", "finished"}:
            break
        if time.monotonic() - started > 3600:
            raise TimeoutError("campaign did not finish within an hour")
        time.sleep(0.5)
    total_s = time.monotonic() - started
    # Resolve-call latency, measured on links the carrier delivered to capable handsets.
    handsets = campaign.Handsets(stack.simulator_url, stack.url("shortlink"))
    capable = {s.mobile for s in population.subscribers if s.kind == "capable"}
    codes = handsets.delivered_links(capable)[:2000]
    samples: list[float] = []
    with httpx.Client(timeout=30) as http:
        for code in codes:
            t0 = time.perf_counter()
            response = http.post(f"{stack.url('shortlink')}/v1/resolve", json={"code": code})
            if response.status_code == 200:
                samples.append(time.perf_counter() - t0)
    return {
        "recipients": expected_final,
        "accept_seconds": round(accepted_s, 2),
        "end_to_end_seconds": round(total_s, 2),
        "end_to_end_recipients_per_s": round(expected_final / total_s, 1),
        "resolve_call": {"samples": len(samples), **percentiles(samples)},
    }


def classification_bench() -> dict[str, Any]:
    try:
        from magpie_number_resolver.bench import bench_classify  # type: ignore[import-not-found]
    except ImportError:
        return {"skipped": "number-resolver exposes no micro-benchmark"}
    return dict(bench_classify(n_devices=1_000_000, batch=500))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--skip-classification", action="store_true")
    args = parser.parse_args(argv)
    admin_token = os.urandom(8).hex()
    stack = Stack(profile="test", extra_env={"MAGPIE_ADMIN_TOKEN": admin_token, "MAGPIE_SIM_DLR_DELAY": "0.1"})
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    try:
        stack.up()
        figures["campaign"] = campaign_bench(stack, admin_token, args.recipients)
        figures["memory_rss_mb"] = {
            name: rss_mb(proc.process.pid) for name, proc in stack.procs.items() if proc.process is not None
        }
    finally:
        stack.down()
        stack.purge()
    if not args.skip_classification:
        os.environ.update(stack.env())
        figures["classification"] = classification_bench()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
