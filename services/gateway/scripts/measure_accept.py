"""Measure ``create_aim_send_task`` with many recipients: the accept time (client-side, POST to 200) and the gateway
process's resident memory growth (peak ``VmHWM`` after resetting it, and a 100 ms ``VmRSS`` sampler).

The gateway runs in this process (uvicorn on a free port, consumer loops running) against the embedded ``test``
infrastructure (it must be running: ``magpie-infra up test``) in a fresh namespace; the body is generated and
posted, signed like the SDK, by a child process so that its memory is not counted.

    .venv/bin/python services/gateway/scripts/measure_accept.py [recipients=1000000] [--no-loops]

``--no-loops`` stops the gateway's consumer loops (projector, reviews, exports...) once the prerequisites are
approved, to measure the accept path alone.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLIENT = r"""
import json, sys, time, httpx
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
url, ak, sk, path, fallback = sys.argv[1:6]
body = open(path, "rb").read()
req = SdkRequest(method="POST", schema="http", host=url.split("//")[1], resource_path="/v1/aim/send-tasks",
                 query_params=[], header_params={"Content-Type": "application/json"}, body=body.decode())
Signer(BasicCredentials(ak, sk)).sign(req)
headers = {k: str(v) for k, v in req.header_params.items() if k.lower() != "host"}
headers["X-Magpie-Fallback"] = fallback
started = time.monotonic()
r = httpx.post(url + "/v1/aim/send-tasks", content=body, headers=headers, timeout=600)
elapsed = time.monotonic() - started
print(json.dumps({"status": r.status_code, "seconds": round(elapsed, 2), "body": r.json()}))
"""


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Reset VmHWM to the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def load_conftest() -> Any:
    """The gateway tests' fixtures module."""
    spec = importlib.util.spec_from_file_location("gateway_conftest", HERE.parent / "tests" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


WRITER = r"""
import json, sys
path, count, head = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
head["resolve_task"]["params"] = [
    {"cust_flag": f"139{i:08d}", "dync_params": {"name": f"会员{i}", "amount": str(10 + i % 90)}} for i in range(count)
]
open(path, "wb").write(json.dumps(head, ensure_ascii=False).encode())
"""


def write_body(path: str, setup: Any, count: int) -> None:
    """The body, written by a child process (its million dicts never touch this process's heap)."""
    head = json.dumps(setup.task([]))
    subprocess.run([sys.executable, "-c", WRITER, path, str(count), head], check=True)


async def main(count: int, loops: bool) -> None:
    from magpie_common.config import Settings
    from magpie_common.topics import ensure_topics
    from magpie_devstack.infra import Infra, env_for
    from magpie_devstack.namespace import drop_namespace

    env = env_for(Infra("test").profile)
    os.environ.update(env)
    conftest = load_conftest()
    ns = "m" + uuid.uuid4().hex[:10]
    settings = Settings(
        kafka_bootstrap=env["KAFKA_BOOTSTRAP"],
        mongodb_uri=env["MONGODB_URI"],
        redis_url=env["REDIS_URL"],
        mongodb_db=ns,
        topic_prefix=ns + ".",
    )
    await ensure_topics(settings)
    try:
        async with conftest.served_gateway(settings, conftest.gateway_config()) as (url, harness):
            tenant = await harness.tenant()
            async with harness.client(tenant) as client:
                setup = await harness.prerequisites(client)
            if not loops:  # the reviews were projected: stop the consumer loops before measuring
                harness.gateway.stop_loops()
                await asyncio.sleep(5)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "body.json")
                await asyncio.to_thread(write_body, path, setup, count)
                size = os.stat(path).st_size
                before = rss_kib()
                reset_peak()
                peak = [before]
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        peak[0] = max(peak[0], rss_kib())
                        time.sleep(0.1)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    CLIENT,
                    url,
                    tenant.access_key,
                    tenant.secret_key,
                    path,
                    "skip",
                    stdout=subprocess.PIPE,
                )
                out, _ = await child.communicate()
                done.set()
                sampler.join()
                answer = json.loads(out)
                hwm = rss_kib("VmHWM")
                body = answer["body"]
                print(
                    json.dumps(
                        {
                            "recipients": count,
                            "consumer_loops": loops,
                            "body_mb": round(size / 1e6, 1),
                            "status": answer["status"],
                            "accept_seconds": answer["seconds"],
                            "unique": body.get("unique_recipients"),
                            "batches": body.get("batch_count"),
                            "rss_before_mb": round(before / 1024),
                            "rss_growth_peak_mb (VmHWM)": round((hwm - before) / 1024),
                            "rss_growth_peak_mb (sampled)": round((peak[0] - before) / 1024),
                        }
                    )
                )
    finally:
        await drop_namespace(settings)


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(numbers[0]) if numbers else 1_000_000, "--no-loops" not in sys.argv))
