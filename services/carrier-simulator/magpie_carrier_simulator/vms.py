"""The simulated VMS channel (video SMS, "三网通道"): an MM7-like JSON-over-HTTP interface next to the SMSC.

Served by ``HttpApi`` under ``/vms/v1`` (HTTP Basic authentication with an account of the simulator, the same
accounts as SMPP binds):

- ``PUT /vms/v1/templates/{template_id}`` registers a template: ``{"revision", "subject", "sign", "carriers":
  ["CMCC", ...], "params": ["#p_1#", ...], "elements": [{"frame", "position", "type", "text" | "data" (base64),
  "name"}]}`` -> ``{"template_id", "revision", "size"}``. At most 1.9 MB of content; a newer revision replaces it.
- ``POST /vms/v1/submit`` ``{"template_id", "revision", "expire_s", "recipients": [{"client_msg_id", "mobile",
  "params": [...]}]}`` (at most 1000 recipients) -> ``{"results": [{"client_msg_id", "status": "accepted",
  "msg_id", "carrier"} | {"client_msg_id", "status": "refused", "code", "desc"}]}``. Idempotent per account and
  ``client_msg_id``: a repeated submit answers the first answer again and sends nothing twice. 404
  ``UNKNOWN_TEMPLATE`` when the template (or that revision) is not registered: register it and submit again.
  A recipient is refused when its number is not a mainland mobile of a known segment (``INVALID_NUMBER``), its
  carrier did not approve the template (``TEMPLATE_NOT_APPROVED``) or the param count is wrong
  (``PARAM_MISMATCH``).
- ``GET /vms/v1/notifications?max=&lease_s=`` -> ``{"notifications": [...]}``: delivery reports ``{"id", "kind":
  "report", "msg_id", "client_msg_id", "mobile", "carrier", "status", "code", "desc", "submit_time",
  "done_time"}`` and replies ``{"id", "kind": "mo", "mo_id", "mobile", "carrier", "content", "time",
  "linked_msg_id", "linked_client_msg_id"}``, leased to the caller for ``lease_s`` seconds (default 30): not
  handed out again meanwhile, handed out again after the lease unless acknowledged.
- ``POST /vms/v1/notifications/ack`` ``{"ids": [...]}`` -> ``{"acked": n}``.
- Test control: ``POST /vms/v1/mo`` ``{"mobile", "content"}`` makes the handset reply to the last VMS message it
  received (404 if it received none); ``GET /vms/v1/messages?mobile=&limit=`` lists the delivered messages as the
  handsets show them (texts with their params filled in); ``GET /vms/v1/stats``.

Fates reuse the simulator's knobs: the report comes ``dlr_delay`` seconds after acceptance; ``reject_prefixes``
give ``REJECTD``, ``failure_rate`` (seeded draw on number and client_msg_id) ``UNDELIV``; a message whose
validity (``expire_s``) is shorter than the delay gets ``EXPIRED``. Statuses: ``DELIVRD``, ``UNDELIV``,
``EXPIRED``, ``REJECTD``.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from magpie_carrier_simulator.config import SimulatorConfig
from magpie_carrier_simulator.outcomes import OutcomePolicy
from magpie_carrier_simulator.timers import DelayQueue
from magpie_common.smpp.receipt import STAT_DELIVERED, STAT_REJECTED

MAX_TEMPLATE_BYTES = int(1.9 * 1024 * 1024)
MAX_RECIPIENTS = 1000
DEFAULT_LEASE_S = 30.0
MAX_LEASE_S = 600.0
PARAM = re.compile(r"#p_\d+#")

# Mainland mobile segments (first three digits) of the three carriers.
_SEGMENTS = {
    "CMCC": "134 135 136 137 138 139 147 148 150 151 152 157 158 159 172 178 182 183 184 187 188 195 197 198",
    "CUCC": "130 131 132 145 146 155 156 166 167 171 175 176 185 186 196",
    "CTCC": "133 149 153 162 173 174 177 180 181 189 190 191 193 199",
}
SEGMENTS = {prefix: carrier for carrier, text in _SEGMENTS.items() for prefix in text.split()}
DESCRIPTIONS = {
    "DELIVRD": "delivered to the handset",
    "UNDELIV": "the handset could not be reached",
    "EXPIRED": "not delivered within the message validity",
    "REJECTD": "rejected by the carrier",
}


class VmsError(Exception):
    """A request the channel refuses as a whole: HTTP ``status`` with ``{"code", "desc"}``."""

    def __init__(self, status: int, code: str, desc: str) -> None:
        super().__init__(desc)
        self.status = status
        self.code = code
        self.desc = desc


def national(mobile: str) -> str | None:
    """The 11-digit mainland number of ``mobile`` (+86 / 86 prefixes removed), None if it is not one."""
    digits = mobile.strip().removeprefix("+")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) == 11 and digits.isdigit() and digits.startswith("1"):
        return digits
    return None


def carrier_of(mobile: str) -> str | None:
    number = national(mobile)
    return SEGMENTS.get(number[:3]) if number else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class VmsTemplate:
    account: str
    template_id: str
    revision: int
    subject: str
    sign: str
    carriers: frozenset[str]
    params: list[str]
    texts: list[str]
    media: int
    size: int


@dataclass
class VmsMessage:
    account: str
    msg_id: str
    client_msg_id: str
    template: VmsTemplate
    mobile: str
    carrier: str
    params: list[str]
    submitted_at: float
    expire_s: float
    status: str = ""
    done_at: float = 0.0

    def rendered(self) -> list[str]:
        values = dict(zip(self.template.params, self.params, strict=False))
        return [PARAM.sub(lambda m: values.get(m.group(0), m.group(0)), text) for text in self.template.texts]


@dataclass
class VmsCounters:
    templates: int = 0
    submits: int = 0
    accepted: int = 0
    refused: int = 0
    duplicate_submits: int = 0
    reports: int = 0
    replies: int = 0
    acked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class VmsChannel:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.policy = OutcomePolicy(
            failure_rate=config.failure_rate, seed=config.seed, reject_prefixes=config.reject_prefixes
        )
        self.counters = VmsCounters()
        self.templates: dict[tuple[str, str], VmsTemplate] = {}
        self.by_client_id: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self.messages: OrderedDict[str, VmsMessage] = OrderedDict()
        self.last_by_mobile: dict[str, str] = {}
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._reports: DelayQueue[VmsMessage] = DelayQueue(config.dlr_delay, self._report)
        # notifications per account: ready queue, leased (expiry heap), the items by id
        self._items: dict[str, dict[str, Any]] = {}
        self._ready: dict[str, deque[str]] = {}
        self._leases: list[tuple[float, str]] = []
        self._leased_until: dict[str, float] = {}

    def close(self) -> None:
        self._reports.close()

    def _new_id(self, kind: str) -> str:
        return f"{kind}{self._prefix}{next(self._ids):010d}"

    # --- templates ---------------------------------------------------------------------------------------------
    def register(self, account: str, template_id: str, body: dict[str, Any]) -> dict[str, Any]:
        revision = _int(body.get("revision", 1), "revision")
        elements = body.get("elements")
        if not isinstance(elements, list) or not elements:
            raise VmsError(400, "INVALID_TEMPLATE", "elements must be a non-empty list")
        texts: list[str] = []
        size = 0
        media = 0
        for element in elements:
            if not isinstance(element, dict):
                raise VmsError(400, "INVALID_TEMPLATE", "every element must be an object")
            if element.get("type") == "txt":
                text = str(element.get("text", ""))
                texts.append(text)
                size += len(text.encode())
                continue
            try:
                data = base64.b64decode(str(element.get("data", "")), validate=True)
            except (binascii.Error, ValueError):
                raise VmsError(400, "INVALID_TEMPLATE", "media data must be base64") from None
            if not data:
                raise VmsError(400, "INVALID_TEMPLATE", "a medium is empty")
            size += len(data)
            media += 1
        if size > MAX_TEMPLATE_BYTES:
            raise VmsError(400, "TEMPLATE_TOO_LARGE", f"{size} bytes, at most {MAX_TEMPLATE_BYTES}")
        if not texts or not media:
            raise VmsError(400, "INVALID_TEMPLATE", "a VMS mixes text with media")
        carriers = frozenset(str(c).upper() for c in body.get("carriers") or ())
        key = (account, template_id)
        current = self.templates.get(key)
        if current is None or current.revision <= revision:
            self.templates[key] = VmsTemplate(
                account,
                template_id,
                revision,
                str(body.get("subject", "")),
                str(body.get("sign", "")),
                carriers,
                [str(p) for p in body.get("params") or ()],
                texts,
                media,
                size,
            )
            self.counters.templates += 1
        stored = self.templates[key]
        return {"template_id": template_id, "revision": stored.revision, "size": stored.size}

    # --- submits -----------------------------------------------------------------------------------------------
    def submit(self, account: str, body: dict[str, Any]) -> dict[str, Any]:
        template_id = str(body.get("template_id", ""))
        revision = _int(body.get("revision", 1), "revision")
        template = self.templates.get((account, template_id))
        if template is None or template.revision < revision:
            raise VmsError(404, "UNKNOWN_TEMPLATE", f"template {template_id} revision {revision} is not registered")
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients or len(recipients) > MAX_RECIPIENTS:
            raise VmsError(400, "INVALID_REQUEST", f"recipients must list 1 to {MAX_RECIPIENTS} recipients")
        expire_s = float(body.get("expire_s") or 86400)
        now = time.time()
        results = []
        self.counters.submits += 1
        for recipient in recipients:
            if not isinstance(recipient, dict) or not recipient.get("client_msg_id"):
                raise VmsError(400, "INVALID_REQUEST", "every recipient needs a client_msg_id")
            client_id = str(recipient["client_msg_id"])
            earlier = self.by_client_id.get((account, client_id))
            if earlier is not None:
                self.counters.duplicate_submits += 1
                results.append(earlier)
                continue
            result = self._accept(account, template, client_id, recipient, expire_s, now)
            self.by_client_id[(account, client_id)] = result
            self._trim(self.by_client_id)
            results.append(result)
        return {"results": results}

    def _accept(
        self,
        account: str,
        template: VmsTemplate,
        client_id: str,
        recipient: dict[str, Any],
        expire_s: float,
        now: float,
    ) -> dict[str, Any]:
        mobile = str(recipient.get("mobile", ""))
        values = [str(v) for v in recipient.get("params") or ()]
        carrier = carrier_of(mobile)
        refusal: tuple[str, str] | None = None
        if carrier is None:
            refusal = ("INVALID_NUMBER", f"{mobile!r} is not a mobile number of a known segment")
        elif carrier not in template.carriers:
            refusal = ("TEMPLATE_NOT_APPROVED", f"{carrier} did not approve template {template.template_id}")
        elif len(values) != len(template.params):
            refusal = ("PARAM_MISMATCH", f"{len(template.params)} params expected, {len(values)} given")
        if refusal is not None:
            self.counters.refused += 1
            return {"client_msg_id": client_id, "status": "refused", "code": refusal[0], "desc": refusal[1]}
        message = VmsMessage(
            account, self._new_id("V"), client_id, template, mobile, carrier or "", values, now, expire_s
        )
        self.messages[message.msg_id] = message
        self._trim(self.messages)
        self.counters.accepted += 1
        self._reports.push(message)
        return {"client_msg_id": client_id, "status": "accepted", "msg_id": message.msg_id, "carrier": carrier}

    def _trim(self, table: OrderedDict[Any, Any]) -> None:
        while len(table) > self.config.max_records:
            table.popitem(last=False)

    def _report(self, message: VmsMessage) -> None:
        stat, _ = self.policy.decide(national(message.mobile) or message.mobile, message.client_msg_id.encode())
        if stat == STAT_DELIVERED and self.config.dlr_delay > message.expire_s:
            status = "EXPIRED"
        elif stat == STAT_DELIVERED:
            status = "DELIVRD"
        elif stat == STAT_REJECTED:
            status = "REJECTD"
        else:
            status = "UNDELIV"
        message.status = status
        message.done_at = time.time()
        self.counters.outcomes[status] = self.counters.outcomes.get(status, 0) + 1
        self.counters.reports += 1
        if status == "DELIVRD":
            self.last_by_mobile[national(message.mobile) or message.mobile] = message.msg_id
        self._notify(
            message.account,
            {
                "kind": "report",
                "msg_id": message.msg_id,
                "client_msg_id": message.client_msg_id,
                "mobile": message.mobile,
                "carrier": message.carrier,
                "status": status,
                "code": status,
                "desc": DESCRIPTIONS[status],
                "submit_time": _iso(message.submitted_at),
                "done_time": _iso(message.done_at),
            },
        )

    # --- replies -----------------------------------------------------------------------------------------------
    def reply(self, mobile: str, content: str) -> dict[str, Any]:
        msg_id = self.last_by_mobile.get(national(mobile) or mobile)
        message = self.messages.get(msg_id or "")
        if message is None:
            raise VmsError(404, "NO_MESSAGE", f"{mobile} received no VMS message to reply to")
        mo_id = self._new_id("M")
        self.counters.replies += 1
        self._notify(
            message.account,
            {
                "kind": "mo",
                "mo_id": mo_id,
                "mobile": message.mobile,
                "carrier": message.carrier,
                "content": content,
                "time": _iso(time.time()),
                "linked_msg_id": message.msg_id,
                "linked_client_msg_id": message.client_msg_id,
            },
        )
        return {"mo_id": mo_id, "linked_msg_id": message.msg_id}

    # --- notifications -----------------------------------------------------------------------------------------
    def _notify(self, account: str, item: dict[str, Any]) -> None:
        item["id"] = self._new_id("N")
        self._items[item["id"]] = {**item, "_account": account}
        self._ready.setdefault(account, deque()).append(item["id"])

    def poll(self, account: str, max_items: int, lease_s: float) -> list[dict[str, Any]]:
        now = time.monotonic()
        while self._leases and self._leases[0][0] <= now:
            _, item_id = heapq.heappop(self._leases)
            until = self._leased_until.get(item_id)
            if until is not None and until <= now and item_id in self._items:
                del self._leased_until[item_id]
                self._ready.setdefault(self._items[item_id]["_account"], deque()).appendleft(item_id)
        ready = self._ready.get(account, deque())
        taken: list[dict[str, Any]] = []
        while ready and len(taken) < max_items:
            item_id = ready.popleft()
            item = self._items.get(item_id)
            if item is None:
                continue
            until = now + lease_s
            self._leased_until[item_id] = until
            heapq.heappush(self._leases, (until, item_id))
            taken.append({k: v for k, v in item.items() if k != "_account"})
        return taken

    def ack(self, account: str, ids: list[str]) -> int:
        acked = 0
        for item_id in ids:
            item = self._items.get(item_id)
            if item is not None and item["_account"] == account:
                del self._items[item_id]
                self._leased_until.pop(item_id, None)
                acked += 1
        self.counters.acked += acked
        return acked

    # --- inspection --------------------------------------------------------------------------------------------
    def delivered(self, mobile: str | None, limit: int | None) -> list[dict[str, Any]]:
        rows = []
        for message in reversed(self.messages.values()):
            if mobile and national(message.mobile) != (national(mobile) or mobile):
                continue
            rows.append(
                {
                    "msg_id": message.msg_id,
                    "client_msg_id": message.client_msg_id,
                    "template_id": message.template.template_id,
                    "subject": message.template.subject,
                    "mobile": message.mobile,
                    "carrier": message.carrier,
                    "texts": message.rendered(),
                    "media": message.template.media,
                    "status": message.status or "PENDING",
                    "submit_time": _iso(message.submitted_at),
                }
            )
            if limit is not None and len(rows) >= limit:
                break
        return rows

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "templates": c.templates,
            "submits": c.submits,
            "accepted": c.accepted,
            "refused": c.refused,
            "duplicate_submits": c.duplicate_submits,
            "reports": c.reports,
            "replies": c.replies,
            "acked": c.acked,
            "outcomes": dict(sorted(c.outcomes.items())),
            "reports_scheduled": len(self._reports),
            "notifications_pending": len(self._items),
        }


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise VmsError(400, "INVALID_REQUEST", f"{name} must be an integer") from None
