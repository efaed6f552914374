"""A smart-message campaign driven the way a KooMessage customer drives it: through the official SDK.

Shared by ``make run`` (the demo), the end-to-end tests and the benchmark:

- ``provision_tenant``: a tenant with an AK/SK pair (internal admin endpoint of the gateway) and a quota package
- ``Population``: synthetic subscribers: capable handsets, incapable ones (app too old), unknown devices and
  malformed numbers; the device registry of the number-resolver is seeded with the known ones
- ``prerequisites``: the enterprise filing(s) (AIM by default; the gateway refuses to send without an approved
  filing of the product, ``MAGPIE_REQUIRE_FILINGS``), SMS app, signature, SMS template with the link variable, AIM
  card template, callback; waits until the reviews approve them
- ``approved_filings`` / ``Console``: the enterprise filings through Magpie's own (non-SDK) API, signed with the
  tenant's AK/SK exactly as the SDK signs: materials uploaded, the filing created and submitted, template-review's
  decision awaited
- ``send``: the send task (``sms_channel`` + ``resolve_task.params``), then ``wait_until_final``
- ``Handsets``: plays the handsets' messaging apps: reads what the carrier delivered and resolves the links
"""

from __future__ import annotations

import csv
import io
import random
import re
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkoomessage.v1 import (
    AddAimMsgSignatureRequest,
    AddCallBackRequest,
    AddCallbackRequestBody,
    AimPersonalTemplateContent,
    AimPersonalTemplateFactory,
    AimPersonalTemplatePage,
    AimPersonalTemplateParam,
    AIMResolveTask,
    CreateAimMsgTemplateRequest,
    CreateAimPersonalTemplateRequest,
    CreateAimPersonalTemplateRequestBody,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    CreateSmsAppRequest,
    KooMessageClient,
    ListAimMsgSignatureRequest,
    ListAimMsgTemplateRequest,
    ListAimSendTasksRequest,
    ListAimTemplatesRequest,
    MsgAppRequest,
    MsgTemplateRequest,
    SignatureRequest,
    SmsChannel,
)

VENDORS = ["HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO"]


def sdk_client(
    gateway_url: str, access_key: str, secret_key: str, *, read_timeout_s: float | None = None
) -> KooMessageClient:
    """The official SDK's client; ``read_timeout_s`` raises its read timeout (120 s by default) for big sends."""
    builder = KooMessageClient.new_builder().with_credentials(BasicCredentials(access_key, secret_key))
    if read_timeout_s is not None:
        config = HttpConfig.get_default_config()
        config.timeout = (60, read_timeout_s)
        builder = builder.with_http_config(config)
    return builder.with_endpoints([gateway_url]).build()


@dataclass
class Tenant:
    tenant_id: str
    access_key: str
    secret_key: str


def provision_tenant(gateway_url: str, admin_token: str, name: str) -> Tenant:
    response = httpx.post(
        f"{gateway_url}/internal/tenants", json={"name": name}, headers={"X-Admin-Token": admin_token}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    return Tenant(body["tenant_id"], body["access_key"], body["secret_key"])


def buy_package(billing_url: str, tenant_id: str, product: str, quantity: int) -> dict[str, Any]:
    response = httpx.post(
        f"{billing_url}/internal/tenants/{tenant_id}/packages",
        json={"product": product, "quantity": quantity},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


def billing_summary(billing_url: str, tenant_id: str) -> dict[str, Any]:
    response = httpx.get(f"{billing_url}/internal/tenants/{tenant_id}/summary", timeout=30)
    response.raise_for_status()
    return dict(response.json())


# --- subscribers -----------------------------------------------------------------------------------------------
# China Mobile, China Unicom and China Telecom segments, so the carrier assignment has something to do.
SEGMENTS = ["139", "138", "135", "186", "185", "156", "189", "133", "177"]

CAPABLE_DEVICES = [
    # brand, model, os_name, os_version, app_version, plugin_version (Honor's smart-SMS plugin on Magic OS)
    ("HUAWEI", "Mate 40 Pro", "HarmonyOS", "3.0.0", "11.1.1.400", ""),
    ("HUAWEI", "P50", "HarmonyOS", "2.0.0", "11.1.0.551", ""),
    ("HUAWEI", "nova 9", "EMUI", "11.0", "11.0.1.631", ""),
    ("HONOR", "Magic 5 Pro", "MagicOS", "7.1", "11.1.1.400", "11.0.8.303"),
]
INCAPABLE_DEVICES = [
    ("HUAWEI", "P30", "EMUI", "10.0", "10.1.1.100", ""),  # messaging app too old
    ("HUAWEI", "Mate 20", "EMUI", "8.0", "11.1.1.400", ""),  # OS too old
]
DEVICE_FIELDS = ["mobile", "brand", "model", "os_name", "os_version", "app_version", "plugin_version"]


@dataclass
class Subscriber:
    mobile: str
    kind: str  # capable | incapable | unknown | invalid
    device: tuple[str, str, str, str, str, str] | None = None


@dataclass
class Population:
    subscribers: list[Subscriber]

    @classmethod
    def synthetic(
        cls, n: int, *, seed: int = 7, capable: float = 0.6, incapable: float = 0.2, invalid: float = 0.05
    ) -> Population:
        rng = random.Random(seed)
        used: set[str] = set()
        people: list[Subscriber] = []
        for i in range(n):
            roll = rng.random()
            if roll < invalid:
                people.append(Subscriber(f"1{rng.randint(0, 9)}{i:05d}", "invalid"))  # too short
                continue
            while True:
                mobile = rng.choice(SEGMENTS) + f"{rng.randint(0, 99_999_999):08d}"
                if mobile not in used:
                    used.add(mobile)
                    break
            roll = rng.random()
            if roll < capable:
                people.append(Subscriber(mobile, "capable", rng.choice(CAPABLE_DEVICES)))
            elif roll < capable + incapable:
                people.append(Subscriber(mobile, "incapable", rng.choice(INCAPABLE_DEVICES)))
            else:
                people.append(Subscriber(mobile, "unknown"))
        return cls(people)

    def count(self, kind: str) -> int:
        return sum(1 for s in self.subscribers if s.kind == kind)

    def devices_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(DEVICE_FIELDS)
        for s in self.subscribers:
            if s.device is not None:
                writer.writerow([s.mobile, *s.device])
        return out.getvalue()


def seed_devices(resolver_url: str, population: Population, *, timeout_s: float = 300) -> dict[str, Any]:
    response = httpx.post(
        f"{resolver_url}/internal/devices/import",
        content=population.devices_csv().encode(),
        headers={"Content-Type": "text/csv"},
        timeout=timeout_s,
    )
    response.raise_for_status()
    return dict(response.json())


# --- enterprise filings (Magpie's own API, not in the SDK) ------------------------------------------------------
class SdkSigner(httpx.Auth):
    """Signs an httpx request as ``KooMessageClient`` does (SDK-HMAC-SHA256; multipart bodies UNSIGNED-PAYLOAD)."""

    requires_request_body = True

    def __init__(self, credentials: BasicCredentials) -> None:
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raw_query = request.url.query.decode()
        query = [
            (unquote(key), unquote(value))
            for key, _, value in (part.partition("=") for part in raw_query.split("&") if part)
        ]
        signed = SdkRequest(
            method=request.method,
            schema=request.url.scheme,
            host=request.url.netloc.decode(),
            resource_path=request.url.raw_path.decode().split("?")[0],
            query_params=query,
            header_params={"Content-Type": request.headers.get("content-type", "application/json")},
            body=request.content or "",
        )
        Signer(self.credentials).sign(signed)
        for name, value in signed.header_params.items():  # Content-Type, X-Sdk-Date, Authorization, ...
            if name.lower() != "host":
                request.headers[name] = str(value)
        yield request


class ConsoleError(RuntimeError):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
        self.status_code = response.status_code
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        self.error_code = str(body.get("error_code", ""))


class Console:
    """The tenant's calls to Magpie's own operations (``/v1/magpie/...``), with the AK/SK of an SDK client."""

    def __init__(self, gateway_url: str, credentials: BasicCredentials) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.auth = SdkSigner(credentials)

    @classmethod
    def of(cls, client: KooMessageClient) -> Console:
        """The console of the tenant and gateway of ``client`` (built by ``sdk_client``)."""
        return cls(client._endpoints[0], client.get_credentials())  # the SDK core has no public endpoint getter

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = httpx.request(method, self.gateway_url + path, auth=self.auth, timeout=60, **kwargs)
        if response.status_code != 200:
            raise ConsoleError(response)
        return dict(response.json())


FILINGS = "/v1/magpie/filings"
# The demo shop's enterprise data (shared across its filings; an SA filing needs every field and a certificate type
# of its own, AIM and VMS filings take BUSINESS_LICENSE by default).
DEMO_ENTERPRISE = {
    "enterprise_name": "喜鹊商城有限公司",
    "credit_code": "91310000MA1K35XY2Q",
    "contact_name": "张三",
    "contact_phone": "13900000001",
    "contact_email": "filing@example.com",
    "enterprise_type": "ENTERPRISE",
    "industry": "SHOPPING",
}


def material_pdf(title: str) -> bytes:
    """A small, valid one-page PDF standing in for a scanned material (the gateway decides types by content)."""
    text = title.encode("latin-1", "replace").replace(b"(", b"[").replace(b")", b"]")
    stream = b"BT /F1 18 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _complete(console: Console, filing: dict[str, Any]) -> dict[str, Any]:
    """Upload a material for everything the filing still misses; PUT them (a REJECTED filing is resubmitted)."""
    names = [name for name in filing["missing"] if not name.startswith("enterprise.")]
    if len(names) != len(filing["missing"]):
        raise ValueError(f"filing {filing['filing_id']} misses enterprise data: {filing['missing']}")
    materials = {}
    for name in names:
        uploaded = console.call(
            "POST",
            "/v1/magpie/filing-files",
            data={"material": name},
            files={"file": (f"{name}.pdf", material_pdf(f"Magpie demo shop: {name}"), "application/pdf")},
        )
        materials[name] = uploaded["file_id"]
    if not materials and filing["status"] != "REJECTED":
        return filing
    return console.call("PUT", f"{FILINGS}/{filing['filing_id']}", json={"materials": materials})


def submit_filing(console: Console, product: str) -> str:
    """The tenant's filing of ``product`` created (or taken as it is), completed and submitted for review unless
    it is approved or under review already; its id."""
    found = console.call("GET", FILINGS, params={"product": product})["filings"]
    if found:
        filing = found[0]
    else:
        enterprise = {**DEMO_ENTERPRISE, **({"certificate_type": "THREE_IN_ONE"} if product == "SA" else {})}
        filing = console.call("POST", FILINGS, json={"product": product, "enterprise": enterprise})
    if filing["status"] in {"DRAFT", "REJECTED"}:
        filing = _complete(console, filing)
        if filing["status"] == "DRAFT":
            filing = console.call("POST", f"{FILINGS}/{filing['filing_id']}/submit")
    return str(filing["filing_id"])


def wait_filing_approved(console: Console, filing_id: str, timeout_s: float = 60) -> None:
    def approved() -> bool:
        filing = console.call("GET", f"{FILINGS}/{filing_id}")
        if filing["status"] == "REJECTED":
            raise RuntimeError(f"filing {filing_id} was rejected: {filing['review_desc']}")
        return bool(filing["status"] == "APPROVED")

    _wait(f"filing {filing_id}", approved, timeout_s)


def approved_filings(client: KooMessageClient, products: Iterable[str] = ("AIM",)) -> dict[str, str]:
    """The tenant's approved enterprise filings of ``products`` (product -> filing id), created as needed."""
    console = Console.of(client)
    ids = {product: submit_filing(console, product) for product in products}
    for filing_id in ids.values():
        wait_filing_approved(console, filing_id)
    return ids


# --- prerequisites ---------------------------------------------------------------------------------------------
@dataclass
class Prerequisites:
    app_name: str
    app_id: str
    sign_name: str
    signature_id: str
    sms_template_id: str
    tpl_id: str
    callback_id: str | None = None
    filing_ids: dict[str, str] = field(default_factory=dict)  # product -> approved filing


SMS_TEMPLATE = "尊敬的会员，您的双十一专属优惠已到账，点击 ${1} 查看。拒收请回复R"


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not approved within {timeout_s}s")
        time.sleep(0.3)


def prerequisites(
    client: KooMessageClient,
    *,
    callback_url: str | None = None,
    suffix: str = "",
    filings: Iterable[str] = ("AIM",),
    sms_template_content: str | None = None,
    callback_url_type: int = 0,
) -> Prerequisites:
    """Everything a smart-message send needs, approved. ``filings``: the products whose enterprise filing the
    sends need (AIM; add VMS for the VMS fallback). ``sms_template_content``: the SMS template (default
    ``SMS_TEMPLATE``: only the link, ``${1}``); ``callback_url_type``: 0 single receipts, 2 batch receipts."""
    console = Console.of(client)
    filing_ids = {product: submit_filing(console, product) for product in filings}  # reviewed meanwhile
    app = client.create_sms_app(CreateSmsAppRequest(body=MsgAppRequest(app_name=f"demo_app{suffix}")))
    sign = "喜鹊商城"
    signature = client.add_aim_msg_signature(
        AddAimMsgSignatureRequest(
            body=SignatureRequest(
                signature_name=sign,
                signature_type="PROMOTION_TYPE",
                app_id=app.app_id,
                signature_source=0,
                apply_desc="demo shop",
                is_involved_third="no",
            )
        )
    )
    sms_template = client.create_aim_msg_template(
        CreateAimMsgTemplateRequest(
            body=MsgTemplateRequest(
                app_id=app.app_id,
                signature_id=signature.signature_id,
                template_name="双十一会员日",
                template_type="PROMOTION_TYPE",
                template_content=sms_template_content or SMS_TEMPLATE,
                template_desc="smart message with the link in ${1}",
            )
        )
    )
    page = AimPersonalTemplatePage(
        page_order=1,
        contents=[
            AimPersonalTemplateContent(type="image", src_type=2, src="https://img.example.com/banner.png"),
            AimPersonalTemplateContent(type="text", content="双十一会员日", is_text_title="true"),
            AimPersonalTemplateContent(type="text", content="${name}，您有一张 ${amount} 元优惠券待领取"),
            AimPersonalTemplateContent(
                type="button",
                content="立即领取",
                action_type="OPEN_BROWSER",
                action={"target": "https://shop.example.com/coupon"},  # type: ignore[arg-type]
            ),
        ],
    )
    card = client.create_aim_personal_template(
        CreateAimPersonalTemplateRequest(
            body=CreateAimPersonalTemplateRequestBody(
                card_id="StandardImageAndText",
                tpl_name="双十一优惠券",
                scene="marketing",
                use_id=1,
                sms_signs=[sign],
                pages=[page],
                params=[
                    AimPersonalTemplateParam(type=1, name="name", example="张三"),
                    AimPersonalTemplateParam(type=1, name="amount", example="50"),
                ],
                factorys=[AimPersonalTemplateFactory(factory_type=v) for v in VENDORS],
            )
        )
    )
    tpl_id = card.data.tpl_id
    callback_id = None
    if callback_url:
        added = client.add_call_back(
            AddCallBackRequest(body=AddCallbackRequestBody(callback_url=callback_url, url_type=callback_url_type))
        )
        callback_id = added.data.id if added.data else None

    def signature_ok() -> bool:
        found = client.list_aim_msg_signature(ListAimMsgSignatureRequest(signature_id=signature.signature_id))
        return any(str(s.status) in {"1", "APPROVED", "处理完毕"} or s.status == 1 for s in found.result or [])

    def template_ok() -> bool:
        found = client.list_aim_msg_template(ListAimMsgTemplateRequest(template_id=sms_template.template_id))
        return any(str(t.status) in {"1", "APPROVED"} or t.status == 1 for t in found.result or [])

    def card_ok() -> bool:
        found = client.list_aim_templates(ListAimTemplatesRequest(tpl_id=tpl_id))
        return any(str(t.tpl_state) == "1" for t in found.templates or [])

    for filing_id in filing_ids.values():
        wait_filing_approved(console, filing_id)
    _wait("signature", signature_ok)
    _wait("SMS template", template_ok)
    _wait("card template", card_ok)
    return Prerequisites(
        app_name=f"demo_app{suffix}",
        app_id=app.app_id,
        sign_name=sign,
        signature_id=signature.signature_id,
        sms_template_id=sms_template.template_id,
        tpl_id=tpl_id,
        callback_id=callback_id,
        filing_ids=filing_ids,
    )


# --- the campaign ----------------------------------------------------------------------------------------------
def send(
    client: KooMessageClient,
    pre: Prerequisites,
    population: Population,
    *,
    name: str = "双十一",
    sms_params: Callable[[int, Subscriber], list[str]] | None = None,
) -> str:
    """The send task of ``population``; ``sms_params(i, subscriber)``: the values of the SMS template's variables
    other than the link, per recipient (none by default)."""
    params = [
        CreateResolveTaskParam(
            cust_flag=s.mobile,
            dync_params={"name": f"会员{i}", "amount": str(10 + i % 90)},
            sms_params=sms_params(i, s) if sms_params else None,
        )
        for i, s in enumerate(population.subscribers)
    ]
    response = client.create_aim_send_task(
        CreateAimSendTaskRequest(
            body=CreateAimSendTaskRequestBody(
                task_name=name,
                sms_channel=SmsChannel(
                    sms_tpl_id=pre.sms_template_id, sms_sign=pre.sign_name, sms_app_name=pre.app_name
                ),
                resolve_task=AIMResolveTask(
                    tpl_id=pre.tpl_id, aim_code_type="individual", generation_type="1", expiration_time=7, params=params
                ),
            )
        )
    )
    return str(response.task_id)


@dataclass
class Progress:
    task_id: str
    state: str
    submitted: int
    resolvable: int
    sent: int
    delivered: int
    resolved: int
    raw: dict[str, Any] = field(default_factory=dict)


def task_progress(client: KooMessageClient, task_id: str) -> Progress:
    found = client.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task_id))
    task = (found.aim_send_tasks or [None])[0]
    if task is None:
        raise LookupError(f"task {task_id} not found")
    return Progress(
        task_id=task_id,
        state=str(task.task_state),
        submitted=int(task.submission_count or 0),
        resolvable=int(task.support_resolve_count or 0),
        sent=int(task.send_count or 0),
        delivered=int(task.success_number or 0),
        resolved=int(task.resolve_count or 0),
        raw=task.to_dict(),
    )


def task_summary(gateway_url: str, client: KooMessageClient, task_id: str) -> dict[str, Any]:
    """Magpie's per-task number-check and delivery summary (an extension endpoint, signed like every call)."""
    raw = client.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task_id)).raw_content
    import json

    body = json.loads(raw)
    tasks = body.get("aim_send_tasks") or []
    return dict(tasks[0].get("magpie_summary", {})) if tasks else {}


def carrier_parts(simulator_url: str) -> dict[str, int]:
    """SMS parts (billable segments) the carrier received, per mobile (last 11 digits of the destination)."""
    response = httpx.get(f"{simulator_url.rstrip('/')}/messages", timeout=60)
    response.raise_for_status()
    parts: dict[str, int] = {}
    for item in response.json().get("messages", []):
        mobile = str(item.get("destination", ""))[-11:]
        parts[mobile] = parts.get(mobile, 0) + int(item.get("parts") or 1) * int(item.get("count") or 1)
    return parts


# --- handsets ------------------------------------------------------------------------------------------------
LINK = re.compile(r"https?://[^\s/]+/([A-Za-z0-9]{6,16})\b")


class Handsets:
    """The messaging apps of capable handsets: resolve the short link of each smart message they received."""

    def __init__(self, simulator_url: str, shortlink_url: str) -> None:
        self.simulator_url = simulator_url.rstrip("/")
        self.shortlink_url = shortlink_url.rstrip("/")
        self.resolved: set[str] = set()

    def delivered_links(self, capable: set[str]) -> list[str]:
        response = httpx.get(f"{self.simulator_url}/messages", timeout=60)
        response.raise_for_status()
        codes = []
        for item in response.json().get("messages", []):
            destination = str(item.get("destination", ""))
            if destination[-11:] not in capable:
                continue
            match = LINK.search(str(item.get("text", "")))
            if match:
                codes.append(match.group(1))
        return codes

    def resolve(self, codes: list[str], *, fraction: float = 1.0, seed: int = 11) -> int:
        rng = random.Random(seed)
        done = 0
        with httpx.Client(timeout=30) as http:
            for code in codes:
                if code in self.resolved or rng.random() > fraction:
                    continue
                response = http.post(f"{self.shortlink_url}/v1/resolve", json={"code": code})
                if response.status_code == 200:
                    self.resolved.add(code)
                    done += 1
        return done
