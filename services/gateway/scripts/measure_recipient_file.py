"""Measure a recipient file of many rows: the upload (parse and store) and the send task made from it, with the
gateway process's resident memory growth (peak ``VmHWM`` after resetting it). Same set-up as ``measure_accept.py``
(embedded ``test`` infrastructure; the file is written and posted, signed like the SDK, by child processes).

    .venv/bin/python services/gateway/scripts/measure_recipient_file.py [rows=1000000] [--xlsx]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from measure_accept import load_conftest, reset_peak, rss_kib

WRITER = r"""
import sys
path, rows, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "xlsx":
    import openpyxl
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["mobile", "name", "amount"])
    for i in range(rows):
        sheet.append([f"139{i:08d}", f"会员{i}", str(10 + i % 90)])
    book.save(path)
else:
    with open(path, "w", encoding="gb18030") as out:
        out.write("手机号,name,amount\n")
        out.writelines(f"139{i:08d},会员{i},{10 + i % 90}\n" for i in range(rows))
"""
CLIENT = r"""
import json, sys, time, httpx
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
url, ak, sk, method, path, content_type, body_path = sys.argv[1:8]
body = open(body_path, "rb").read()
req = SdkRequest(method=method, schema="http", host=url.split("//")[1], resource_path=path, query_params=[],
                 header_params={"Content-Type": content_type}, body=body)
Signer(BasicCredentials(ak, sk)).sign(req)
headers = {k: str(v) for k, v in req.header_params.items() if k.lower() != "host"}
started = time.monotonic()
r = httpx.post(url + path, content=body, headers=headers, timeout=600)
print(json.dumps({"status": r.status_code, "seconds": round(time.monotonic() - started, 2), "body": r.json()}))
"""


async def post(url: str, tenant: object, path: str, content_type: str, body_path: str) -> dict[str, object]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        url,
        tenant.access_key,  # type: ignore[attr-defined]
        tenant.secret_key,  # type: ignore[attr-defined]
        "POST",
        path,
        content_type,
        body_path,
        stdout=subprocess.PIPE,
    )
    out, _ = await child.communicate()
    answer: dict[str, object] = json.loads(out)
    return answer


def multipart(file_path: str, out_path: str, name: str) -> str:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
    head += "Content-Type: application/octet-stream\r\n\r\n"
    with open(out_path, "wb") as out:
        out.write(head.encode())
        out.write(Path(file_path).read_bytes())
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}"


async def main(rows: int, kind: str) -> None:
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
            with tempfile.TemporaryDirectory() as tmp:
                file_path, form_path, task_path = (os.path.join(tmp, n) for n in ("f", "form", "task.json"))
                command = [sys.executable, "-c", WRITER, file_path, str(rows), kind]
                await asyncio.to_thread(subprocess.run, command, check=True)
                content_type = await asyncio.to_thread(multipart, file_path, form_path, f"numbers.{kind}")
                before = rss_kib()
                reset_peak()
                uploaded = await post(url, tenant, "/v1/magpie/recipient-files", content_type, form_path)
                upload_peak = rss_kib("VmHWM")
                file_id = uploaded["body"]["file_id"]  # type: ignore[index]
                task = setup.task([])
                task["resolve_task"]["params"] = None
                task["resolve_task"]["recipient_file_id"] = file_id
                await asyncio.to_thread(Path(task_path).write_text, json.dumps(task))
                reset_peak()
                sent = await post(url, tenant, "/v1/aim/send-tasks", "application/json", task_path)
                task_peak = rss_kib("VmHWM")
                body = sent["body"]
                print(
                    json.dumps(
                        {
                            "rows": rows,
                            "kind": kind,
                            "file_mb": round(os.stat(file_path).st_size / 1e6, 1),
                            "upload": {k: uploaded[k] for k in ("status", "seconds")} | {"body": uploaded["body"]},
                            "upload_rss_growth_peak_mb": round((upload_peak - before) / 1024),
                            "task": {"status": sent["status"], "seconds": sent["seconds"]},
                            "task_unique": body.get("unique_recipients"),  # type: ignore[union-attr]
                            "task_rss_growth_peak_mb": round((task_peak - before) / 1024),
                        }
                    )
                )
    finally:
        await drop_namespace(settings)


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(numbers[0]) if numbers else 1_000_000, "xlsx" if "--xlsx" in sys.argv else "csv"))
