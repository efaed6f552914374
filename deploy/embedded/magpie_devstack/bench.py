"""``make bench``: where the time of a big smart campaign goes, printed as one JSON document on stdout
(progress on stderr).

On the embedded stack (profile ``bench``), through the official SDK: a campaign of ``--recipients`` (default
1,000,000: capable, incapable and unknown handsets, malformed numbers; fallback plain SMS; a tenth of the
recipients get a longer greeting that makes their SMS two segments), handsets resolving a share of the links they
received, a customer callback receiver in batch mode. Then a smaller single-mode receipts run, and the baselines
of the bare broker and the bare SMSC. Measured:

- ``summary``: accept time and the gateway's RSS growth while accepting; accepted -> every recipient final
  (end-to-end recipients/s), -> ledger complete, -> every receipt at the receiver; single-mode receipts/s; CPU of
  the idle stack; the broker and SMPP baselines and the ratio of the campaign's rate to the SMPP one
- ``stages``: cumulative counts (and rates) per ``--sample-seconds`` of classified, minted, submitted, receipts
  (carrier finals), final, resolved, billed (units) and receipts posted, from the tap (``bench_tap``)
- ``cpu_seconds_per_1000_recipients``: of every process (services, simulator, broker, MongoDB, Redis, the bench and
  its tap) over the campaign
- ``checks``: every recipient final exactly once, no duplicate submit_sm at the carrier, ledger units == delivered
  segments + resolutions, every receipt delivered (true / false each)
- the resolve-call latency seen by the handsets, RSS per service, the classification micro-benchmark
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from magpie_devstack import campaign
from magpie_devstack.bench_baselines import broker_baseline, replay_sizes, smpp_baseline
from magpie_devstack.bench_carrier import HandsetPlayer, SubmissionLogReader, wait_file_quiet
from magpie_devstack.bench_cpu import cpu_delta, cpu_snapshot, measure_idle, per_thousand, rss_kb, rss_mb
from magpie_devstack.bench_figures import (
    campaign_checks,
    cumulative_series,
    expected_receipts,
    expected_units,
    peak_rates,
    percentiles,
    rate,
    seconds_between,
    summary,
    two_segment_share,
)
from magpie_devstack.bench_tap import TapClient
from magpie_devstack.receipts import ReceiptCollector
from magpie_devstack.stack import SMPP_SYSTEM_ID, Stack

# The SMS template of the bench: ${2} a greeting, ${1} the link. The short greeting keeps the SMS in one UCS-2
# segment (<= 70 characters with the signature and a link of up to 37 characters), the long one (every tenth
# recipient) makes it two (71..134 for links of up to 60 characters); the tap checks the share it measured.
BENCH_TEMPLATE = "${2}，双十一优惠已到账，点击 ${1} 查看。拒收请回复R"
SHORT_GREETING = "会员您好"
LONG_GREETING = "尊敬的金卡会员您好，感谢您一直以来对喜鹊商城的支持与厚爱，我们为您准备了一份专属的双十一惊喜礼包"[:45]
BASELINE_SYSTEM_ID = "bench"
BASELINE_PASSWORD = "benchpw"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def greeting(index: int, _: campaign.Subscriber) -> list[str]:
    return [LONG_GREETING if index % 10 == 9 else SHORT_GREETING]


@dataclass(frozen=True)
class Budget:
    """How long a wait may take: ``base_s`` plus the recipients at ``min_rate`` per second, and never
    ``stall_s`` without progress."""

    base_s: float
    min_rate: float
    stall_s: float

    def limit(self, recipients: int) -> float:
        return self.base_s + recipients / self.min_rate


def wait_for(
    what: str,
    done: Callable[[], bool],
    progress: Callable[[], object],
    *,
    limit_s: float,
    stall_s: float,
    report: Callable[[], str] | None = None,
    every_s: float = 10.0,
) -> None:
    """Poll ``done`` each second; TimeoutError after ``limit_s`` or when ``progress`` is unchanged ``stall_s``."""
    started = time.monotonic()
    last, since, said = progress(), started, started
    while not done():
        now = time.monotonic()
        if now - started > limit_s:
            raise TimeoutError(f"{what}: not done after {limit_s:.0f}s")
        current = progress()
        if current != last:
            last, since = current, now
        elif now - since > stall_s:
            raise TimeoutError(f"{what}: no progress for {stall_s:.0f}s")
        if report is not None and now - said >= every_s:
            say(report())
            said = now
        time.sleep(1.0)


@dataclass
class Context:
    stack: Stack
    admin_token: str
    tap: TapClient
    reader: SubmissionLogReader
    roots: dict[str, int]
    budget: Budget
    args: argparse.Namespace


def simulator_stats(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{stack.simulator_url}/stats", timeout=30)
    response.raise_for_status()
    return dict(response.json())


def ledger_units(stack: Stack, tenant_id: str) -> int:
    products = campaign.billing_summary(stack.url("billing"), tenant_id)["products"]
    return sum(int(p["charged"]) for p in products if p["product"] in ("AIM_SMS", "AIM_RESOLUTION"))


def send_watching_rss(
    client: Any, pre: campaign.Prerequisites, population: campaign.Population, gateway_pid: int
) -> tuple[str, float, float, int, int]:
    """The send call in a thread while the gateway's RSS is sampled: (task id, started, accepted, RSS before and
    its maximum during the call, in kB)."""
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["task_id"] = campaign.send(client, pre, population, name="bench", sms_params=greeting)
        except BaseException as exc:  # re-raised below
            result["error"] = exc

    before = peak = rss_kb(gateway_pid)
    started = time.time()
    sender = threading.Thread(target=call, name="bench-send")
    sender.start()
    while sender.is_alive():
        peak = max(peak, rss_kb(gateway_pid))
        sender.join(0.05)
    accepted = time.time()
    if "error" in result:
        raise result["error"]
    return str(result["task_id"]), started, accepted, before, peak


def run_campaign(
    ctx: Context, population: campaign.Population, *, label: str, url_type: int, receiver: ReceiptCollector
) -> dict[str, Any]:
    stack, args, budget = ctx.stack, ctx.args, ctx.budget
    n = len(population.subscribers)
    tenant = campaign.provision_tenant(stack.gateway_url, ctx.admin_token, f"bench-{label}")
    campaign.buy_package(stack.url("billing"), tenant.tenant_id, "AIM_SMS", 2 * n)
    campaign.buy_package(stack.url("billing"), tenant.tenant_id, "AIM_RESOLUTION", n)
    seeded = campaign.seed_devices(stack.url("number-resolver"), population, timeout_s=budget.limit(n))
    client = campaign.sdk_client(
        stack.gateway_url, tenant.access_key, tenant.secret_key, read_timeout_s=budget.limit(n)
    )
    pre = campaign.prerequisites(
        client, callback_url=receiver.url, sms_template_content=BENCH_TEMPLATE, callback_url_type=url_type
    )
    say(f"{label}: {n} recipients, {seeded.get('imported')} devices seeded, prerequisites approved")
    capable = {s.mobile for s in population.subscribers if s.kind == "capable"}
    handsets = HandsetPlayer(
        ctx.reader,
        stack.url("shortlink"),
        capable.__contains__,
        share=args.resolve_share,
        concurrency=args.handset_concurrency,
    )
    handsets.start()
    sim_before = simulator_stats(stack)
    submits_before = ctx.reader.submits
    cpu_before = cpu_snapshot(ctx.roots, alone=("bench",))
    gateway_pid = ctx.roots["gateway"]
    task_id, started, accepted, rss_before, rss_peak = send_watching_rss(client, pre, population, gateway_pid)
    say(f"{label}: task {task_id} accepted in {accepted - started:.1f}s")

    def stages() -> dict[str, Any]:
        return ctx.tap.task(task_id)

    def counts() -> dict[str, int]:
        return dict(stages().get("counts", {}))

    def line() -> str:
        c = counts()
        lag_s = time.time() - ctx.tap.status().get("last_record_ms", 0) / 1000
        return (
            f"{label} {time.time() - accepted:7.0f}s "
            + " ".join(f"{k}={v}" for k, v in c.items())
            + f" posted={receiver.total()} since_last_record_s={lag_s:.1f}"
        )

    def progress() -> object:
        return (tuple(counts().values()), receiver.total(), handsets.resolved)

    limit, stall = budget.limit(n), budget.stall_s
    errors: list[str] = []
    try:
        wait_for(
            f"{label}: every recipient final",
            lambda: counts().get("final", 0) >= n,
            progress,
            limit_s=limit,
            stall_s=stall,
            report=line,
        )
        wait_file_quiet(ctx.reader.path, quiet_s=1.5, limit_s=60)
        if not handsets.finish(timeout_s=limit):
            raise TimeoutError(f"{label}: the handsets did not finish")
        wait_for(
            f"{label}: every resolution seen",
            lambda: counts().get("resolved", 0) >= handsets.resolved,
            progress,
            limit_s=limit,
            stall_s=stall,
            report=line,
        )
        wait_for(
            f"{label}: ledger complete",
            lambda: counts().get("billed", 0) >= expected_units(stages()),
            progress,
            limit_s=limit,
            stall_s=stall,
            report=line,
        )
        wait_for(
            f"{label}: every receipt posted",
            lambda: receiver.total() >= expected_receipts(stages()),
            progress,
            limit_s=limit,
            stall_s=stall,
            report=line,
        )
    except TimeoutError as exc:
        errors.append(str(exc))
        say(str(exc))
    cpu_after = cpu_snapshot(ctx.roots, alone=("bench",))
    done_at = time.time()
    say(line())
    handsets.finish(timeout_s=5)
    report = ctx.tap.report()["tasks"].get(task_id, {})
    sim_after = simulator_stats(stack)
    last = report.get("last_at_ms", {})
    final_at = last.get("final", 0) / 1000 if report.get("counts", {}).get("final") == n else None
    billed_at = last.get("billed", 0) / 1000 if not errors else None
    receipts_at = receiver.last_at if not errors else None
    units = ledger_units(stack, tenant.tenant_id)
    carrier = {
        **ctx.reader.summary(),
        "campaign_submits": ctx.reader.submits - submits_before,
        "duplicates": sim_after["duplicates"] - sim_before["duplicates"],
    }
    buckets = {stage: {int(k): v for k, v in b.items()} for stage, b in report.get("buckets", {}).items()}
    buckets["receipts_posted"] = receiver.buckets()
    series = cumulative_series(buckets, bucket_s=args.sample_seconds, start_s=started, end_s=done_at)
    cpu = cpu_delta(cpu_before, cpu_after)
    end_to_end = seconds_between(accepted, final_at)
    return {
        "label": label,
        "task_id": task_id,
        "recipients": n,
        "population": {kind: population.count(kind) for kind in ("capable", "incapable", "unknown", "invalid")},
        "receipt_url_type": url_type,
        "errors": errors,
        "accept_seconds": round(accepted - started, 2),
        "gateway_rss_mb": {"before": round(rss_before / 1024, 1), "peak_during_accept": round(rss_peak / 1024, 1)},
        "gateway_accept_rss_growth_mb": round((rss_peak - rss_before) / 1024, 1),
        "end_to_end_seconds": end_to_end,
        "end_to_end_recipients_per_s": rate(n, end_to_end),
        "from_send_start_to_final_seconds": seconds_between(started, final_at),
        "billed_seconds": seconds_between(accepted, billed_at),
        "receipts_seconds": seconds_between(accepted, receipts_at),
        "receipts_per_s_at_receiver": rate(receiver.total(), seconds_between(receiver.first_at, receiver.last_at)),
        "stages": {k: v for k, v in report.items() if k not in ("buckets", "bucket_s")},
        "two_segment_share": two_segment_share(report.get("segments", {})),
        "ledger_units": units,
        "expected_units": expected_units(report),
        "receipts": {
            "posted_distinct": receiver.total(),
            "expected": expected_receipts(report),
            "sms": receiver.count("sms"),
            "shortchain": receiver.count("shortchain"),
            "posts": receiver.posts,
            "reposted": receiver.reposted,
        },
        "handsets": {"resolved": handsets.resolved, "refused": handsets.refused, "share": args.resolve_share},
        "resolve_call": {"samples": len(handsets.latencies), **percentiles(handsets.latencies)},
        "carrier": carrier,
        "checks": campaign_checks(
            recipients=n,
            stages=report,
            carrier=carrier,
            ledger_units=units,
            receipts_distinct=receiver.total(),
            handsets_resolved=handsets.resolved,
        ),
        "series": series,
        "peak_per_s": peak_rates(series),
        "cpu_seconds": cpu,
        "cpu_seconds_per_1000_recipients": per_thousand(cpu, n),
    }


def disjoint(population: campaign.Population, taken: set[str]) -> campaign.Population:
    return campaign.Population([s for s in population.subscribers if s.mobile not in taken])


def baselines(ctx: Context, main: dict[str, Any]) -> dict[str, Any]:
    stack, args = ctx.stack, ctx.args
    result: dict[str, Any] = {}
    topics = ctx.tap.report()["topics"]
    sizes = [size for name in ("classified", "dispatch", "delivery") for size in topics[name]["size_samples"]]
    moved = sum(topics[name]["records"] for name in ("classified", "dispatch", "delivery"))
    count = max(1000, min(moved, args.baseline_records))
    say(f"broker baseline: {count} records of the campaign's sizes ({moved} batch records moved)")
    try:
        result["broker"] = asyncio.run(
            broker_baseline(stack.settings(), replay_sizes(sizes, count), timeout_s=ctx.budget.limit(count))
        )
        result["broker"]["campaign_batch_records"] = moved
    except (ValueError, TimeoutError, OSError) as exc:
        result["broker"] = {"error": repr(exc)}
    messages = min(main["recipients"], args.baseline_messages)
    say(f"SMPP baseline: {messages} messages of the campaign's texts, window {args.smpp_window}")
    try:
        result["smpp"] = asyncio.run(
            smpp_baseline(
                "127.0.0.1",
                stack.ports.smpp,
                BASELINE_SYSTEM_ID,
                BASELINE_PASSWORD,
                ctx.reader.samples,
                messages,
                window=args.smpp_window,
                source="10690000",
                timeout_s=ctx.budget.limit(messages),
            )
        )
    except (ValueError, TimeoutError, OSError) as exc:
        result["smpp"] = {"error": repr(exc)}
    return result


def classification_bench() -> dict[str, Any]:
    try:
        from magpie_number_resolver.bench import bench_classify  # type: ignore[import-not-found]
    except ImportError:
        return {"skipped": "number-resolver exposes no micro-benchmark"}
    return dict(bench_classify(n_devices=1_000_000, batch=500))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=1_000_000, help="recipients of the campaign")
    parser.add_argument("--single-recipients", type=int, default=20_000, help="recipients of the single-mode run")
    parser.add_argument("--resolve-share", type=float, default=0.3, help="share of capable handsets resolving")
    parser.add_argument("--handset-concurrency", type=int, default=4, help="resolve calls in flight")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU measurement")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="interval of the stage series")
    parser.add_argument("--baseline-records", type=int, default=20_000, help="at most this many broker records")
    parser.add_argument("--baseline-messages", type=int, default=20_000, help="at most this many SMPP messages")
    parser.add_argument("--smpp-window", type=int, default=64, help="SMPP baseline window (the dispatcher's)")
    parser.add_argument("--min-rate", type=float, default=20.0, help="recipients/s below which a wait times out")
    parser.add_argument("--stall-seconds", type=float, default=300.0, help="a wait times out without progress")
    parser.add_argument("--skip-classification", action="store_true")
    parser.add_argument("--keep-state", action="store_true", help="keep the namespace and the submissions log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    admin_token = os.urandom(8).hex()
    stack = Stack(
        profile="bench",
        extra_env={"MAGPIE_ADMIN_TOKEN": admin_token},
        simulator_options={
            "MAGPIE_SIM_DLR_DELAY": "0.1",
            "MAGPIE_SIM_ACCOUNTS": f"{BASELINE_SYSTEM_ID}:{BASELINE_PASSWORD}",
            "MAGPIE_SIM_MAX_RECORDS": "1000",  # the bench reads the submissions log, not /submissions
        },
    )
    log_path = stack.log_dir / "carrier-submissions.jsonl"
    stack.procs["carrier-simulator"].env["MAGPIE_SIM_SUBMISSIONS_LOG"] = str(log_path)
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "namespace": stack.namespace}
    tap: TapClient | None = None
    try:
        say(f"starting the bench stack (namespace {stack.namespace})")
        stack.up()
        services = {name: proc.process.pid for name, proc in stack.procs.items() if proc.process is not None}
        infra = {name: pid for name, pid in stack.infra.running().items() if pid is not None}
        stack_roots = {**services, **infra}
        say(f"measuring the idle stack for {args.idle_seconds:.0f}s")
        time.sleep(5)
        idle = measure_idle(stack_roots, args.idle_seconds)
        figures["idle_cpu_percent"] = idle
        tap = TapClient(stack.env(), bucket_s=args.sample_seconds)
        roots = {**stack_roots, "bench": os.getpid(), "bench-tap": tap.pid}
        ctx = Context(
            stack=stack,
            admin_token=admin_token,
            tap=tap,
            reader=SubmissionLogReader(Path(log_path), system_id=SMPP_SYSTEM_ID),
            roots=roots,
            budget=Budget(base_s=120, min_rate=args.min_rate, stall_s=args.stall_seconds),
            args=args,
        )
        population = campaign.Population.synthetic(args.recipients, seed=1)
        with ReceiptCollector(keep=False, bucket_s=args.sample_seconds) as receiver:
            main_run = run_campaign(ctx, population, label="campaign", url_type=2, receiver=receiver)
        single_population = disjoint(
            campaign.Population.synthetic(args.single_recipients, seed=2), {s.mobile for s in population.subscribers}
        )
        del population
        with ReceiptCollector(keep=False, bucket_s=args.sample_seconds) as receiver:
            single = run_campaign(ctx, single_population, label="single-receipts", url_type=0, receiver=receiver)
        figures["campaign"] = main_run
        figures["single_receipts"] = {
            k: single[k]
            for k in ("recipients", "errors", "end_to_end_recipients_per_s", "receipts", "checks", "task_id")
        } | {"receipts_per_s": single["receipts_per_s_at_receiver"]}
        figures["baselines"] = baselines(ctx, main_run)
        figures["memory_rss_mb"] = {name: rss_mb(pid) for name, pid in roots.items()}
        figures["summary"] = summary(
            {
                "recipients": main_run["recipients"],
                "accept_seconds": main_run["accept_seconds"],
                "gateway_accept_rss_growth_mb": main_run["gateway_accept_rss_growth_mb"],
                "end_to_end_seconds": main_run["end_to_end_seconds"],
                "end_to_end_recipients_per_s": main_run["end_to_end_recipients_per_s"],
                "billed_seconds": main_run["billed_seconds"],
                "receipts_seconds": main_run["receipts_seconds"],
                "receipts_single_per_s": single["receipts_per_s_at_receiver"],
                "idle_stack_cpu_percent": idle.get("total"),
                "broker_baseline_records_per_s": figures["baselines"]["broker"].get("records_per_s"),
                "smpp_baseline_submits_per_s": figures["baselines"]["smpp"].get("submits_per_s"),
            }
        )
        figures["checks"] = {
            **main_run["checks"],
            **{f"single_receipts.{k}": v for k, v in single["checks"].items()},
        }
        figures["cpu_seconds_per_1000_recipients"] = main_run["cpu_seconds_per_1000_recipients"]
        figures["stages"] = main_run.pop("series")
    finally:
        if tap is not None:
            tap.close()
        stack.down()
        if not args.keep_state:
            stack.purge()
            log_path.unlink(missing_ok=True)
    if not args.skip_classification:
        os.environ.update(stack.env())
        figures["classification"] = classification_bench()
    ordered = {"summary": figures.pop("summary", None), "checks": figures.pop("checks", None), **figures}
    print(json.dumps(ordered, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
