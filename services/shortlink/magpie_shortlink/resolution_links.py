"""Links of resolution tasks: minted on request (no send), for customers who send the SMS through their own channel.

The gateway's ``create_resolve_task`` needs the links in its answer, so it asks this service synchronously
(``POST /internal/resolution-links``, :mod:`magpie_shortlink.resolution_api`) instead of going through Kafka like
send tasks. The links are ordinary :class:`LinkRecord` documents, so the edge redirects, renders and resolves them
like any other, and their resolutions flow as LinkEvents (task_id = the resolution task) to billing, receipts and
the gateway's projector.

Two kinds (KooMessage ``aim_code_type``):

- **individual**: one link per ``cust_flag``; the first resolution is the billable one (the send-task rule).
- **group**: one link shared by many handsets, with a budget of ``max_resolutions`` counted resolutions. The n-th
  counted resolution is billable and its LinkEvent has the stable id :func:`counted_resolution_event_id` (``n`` is
  in it, so consumers can count resolutions idempotently); once the budget is used up the edge refuses further
  resolutions (410).

Codes: standard codes are derived like send-task codes (HMAC of tenant, task, index; re-derived past collisions),
so a retried request (same task id) reaches the same links. A custom short code (KooMessage ``generation_type`` 2)
is used as given: when another link already owns it (or it names an edge route) that link fails with
``KM.90016482`` and the others are still minted; a retry of the same task finds its own codes and succeeds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from magpie.v1 import common_pb2
from magpie_shortlink.codes import derive_code, looks_like_code
from magpie_shortlink.links import LinkRecord, normalise_domain
from magpie_shortlink.metrics import CODE_COLLISIONS
from magpie_shortlink.store import LinkStore

log = logging.getLogger(__name__)

OK = "0"
DUPLICATE_CUSTOM_CODE = "KM.90016482"
# Paths the edge serves itself: a custom code equal to one of them could never be reached.
RESERVED_CODES = frozenset({"metrics", "healthz", "readyz", "h5", "internal", "v1"})
MAX_LINKS = 1000
_EVENT_ID = re.compile(r"resolved\.([0-9A-Za-z]+)\.(\d+)")

RESOLUTION_LINKS = Counter(
    "magpie_shortlink_resolution_links_total",
    "Links of resolution tasks answered by the internal API (minted or found again), by kind and result",
    ["kind", "result"],
)
COUNTED_RESOLUTIONS = Counter(
    "magpie_shortlink_group_resolutions_total", "Resolutions of group links: counted (billable) or refused", ["kind"]
)


def counted_resolution_event_id(code: str, ordinal: int) -> str:
    """The id of the ``ordinal``-th counted resolution of a group link (stable, readable: ``resolved.<code>.<n>``)."""
    return f"resolved.{code}.{ordinal}"


def ordinal_of(event_id: str, code: str) -> int | None:
    """The ordinal in a counted-resolution event id of ``code``, None for any other id."""
    match = _EVENT_ID.fullmatch(event_id)
    if match is None or match.group(1) != code:
        return None
    return int(match.group(2))


class RequestError(ValueError):
    """A malformed minting request (the gateway validates first; this guards the internal API)."""


@dataclass(frozen=True)
class LinkSpec:
    index: int
    cust_flag: str
    params: dict[str, str]
    custom_url: str
    custom_code: str


@dataclass(frozen=True)
class ResolutionTask:
    tenant_id: str
    task_id: str
    tpl_id: str
    tpl_name: str
    group: bool
    max_resolutions: int
    link_domain: str
    aim_url: str
    created_at_ms: int
    expires_at_ms: int
    links: tuple[LinkSpec, ...]


@dataclass(frozen=True)
class Minted:
    index: int
    record: LinkRecord | None
    result_code: str
    error_message: str

    def as_json(self) -> dict[str, object]:
        record = self.record
        return {
            "index": self.index,
            "code": record.code if record else "",
            "short_url": record.short_url if record else "",
            "result_code": self.result_code,
            "error_message": self.error_message,
            "created_at_ms": record.created_at_ms if record else 0,
            "expires_at_ms": record.expires_at_ms if record else 0,
        }


def _text(data: dict[str, object], name: str, *, required: bool = False) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string")
    if required and not value:
        raise RequestError(f"{name} is required")
    return value


def _int(data: dict[str, object], name: str, *, minimum: int = 0) -> int:
    value = data.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestError(f"{name} must be an integer >= {minimum}")
    return value


def parse_task(data: object) -> ResolutionTask:
    """The minting request of the internal API, or :class:`RequestError`."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    links = data.get("links")
    if not isinstance(links, list) or not links:
        raise RequestError("links must be a non-empty list")
    if len(links) > MAX_LINKS:
        raise RequestError(f"at most {MAX_LINKS} links per request")
    group = data.get("group", False)
    if not isinstance(group, bool):
        raise RequestError("group must be a boolean")
    if group and len(links) != 1:
        raise RequestError("a group task has exactly one link")
    specs: list[LinkSpec] = []
    indexes: set[int] = set()
    for position, item in enumerate(links):
        if not isinstance(item, dict):
            raise RequestError(f"links[{position}] must be an object")
        index = _int(item, "index")
        if index in indexes:
            raise RequestError(f"links[{position}].index {index} is repeated")
        indexes.add(index)
        params = item.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise RequestError(f"links[{position}].params must map strings to strings")
        custom_code = _text(item, "custom_code")
        if custom_code and not looks_like_code(custom_code):
            raise RequestError(f"links[{position}].custom_code must be letters and digits")
        specs.append(
            LinkSpec(
                index=index,
                cust_flag=_text(item, "cust_flag"),
                params=dict(sorted(params.items())),
                custom_url=_text(item, "custom_url"),
                custom_code=custom_code,
            )
        )
    created = _int(data, "created_at_ms", minimum=1)
    expires = _int(data, "expires_at_ms", minimum=1)
    if expires <= created:
        raise RequestError("expires_at_ms must be after created_at_ms")
    return ResolutionTask(
        tenant_id=_text(data, "tenant_id", required=True),
        task_id=_text(data, "task_id", required=True),
        tpl_id=_text(data, "tpl_id", required=True),
        tpl_name=_text(data, "tpl_name"),
        group=group,
        max_resolutions=_int(data, "max_resolutions", minimum=1) if group else 1,
        link_domain=_text(data, "link_domain"),
        aim_url=_text(data, "aim_url"),
        created_at_ms=created,
        expires_at_ms=expires,
        links=tuple(specs),
    )


class ResolutionMinter:
    """Mints (or finds again, on a retry) the links of a resolution task."""

    def __init__(self, store: LinkStore, secret: bytes, *, code_length: int, max_attempts: int) -> None:
        self.store = store
        self.secret = secret
        self.code_length = code_length
        self.max_attempts = max_attempts

    def record(self, task: ResolutionTask, spec: LinkSpec, code: str) -> LinkRecord:
        return LinkRecord(
            code=code,
            tenant_id=task.tenant_id,
            task_id=task.task_id,
            batch_no=0,
            index=spec.index,
            mobile=spec.cust_flag,
            msisdn="",
            tpl_id=task.tpl_id,
            tpl_name=task.tpl_name,
            params=spec.params,
            route=common_pb2.ROUTE_SMART,
            carrier="",
            custom_url=spec.custom_url,
            link_domain=normalise_domain(task.link_domain),
            aim_url=task.aim_url,
            created_at_ms=task.created_at_ms,
            expires_at_ms=task.expires_at_ms,
            group=task.group,
            max_resolutions=task.max_resolutions if task.group else 0,
        )

    async def mint(self, task: ResolutionTask) -> list[Minted]:
        """One result per link, in request order; every minted link durable (MongoDB) and cached (Redis)."""
        custom = [s for s in task.links if s.custom_code]
        standard = [s for s in task.links if not s.custom_code]
        results: dict[int, Minted] = {}
        for spec, minted in zip(custom, await self._mint_custom(task, custom), strict=True):
            results[spec.index] = minted
        for spec, record in zip(standard, await self._mint_standard(task, standard), strict=True):
            results[spec.index] = Minted(spec.index, record, OK, "")
        records = [m.record for m in results.values() if m.record is not None]
        await self.store.cache(records)
        kind = "group" if task.group else "individual"
        for minted in results.values():
            RESOLUTION_LINKS.labels(kind, minted.result_code).inc()
        return [results[s.index] for s in task.links]

    async def _mint_custom(self, task: ResolutionTask, specs: Sequence[LinkSpec]) -> list[Minted]:
        if not specs:
            return []
        drafts = [self.record(task, spec, spec.custom_code) for spec in specs]
        usable = [d for d in drafts if d.code.lower() not in RESERVED_CODES]
        duplicates = {usable[i].code for i in await self.store.insert_new(usable)}
        owners = await self.store.owners(list(duplicates)) if duplicates else {}
        out: list[Minted] = []
        for spec, draft in zip(specs, drafts, strict=True):
            taken = draft.code.lower() in RESERVED_CODES or (
                draft.code in duplicates and owners.get(draft.code) != draft.owner
            )
            if taken:
                out.append(Minted(spec.index, None, DUPLICATE_CUSTOM_CODE, f"the short code {draft.code} is taken"))
            else:
                out.append(Minted(spec.index, draft, OK, ""))
        return out

    async def _mint_standard(self, task: ResolutionTask, specs: Sequence[LinkSpec]) -> list[LinkRecord]:
        """Derived codes, re-derived past collisions with other owners (as the send-task minter does)."""
        attempts = [0] * len(specs)
        final: list[LinkRecord | None] = [None] * len(specs)
        pending = list(range(len(specs)))
        rounds = 0
        while pending:
            rounds += 1
            if rounds > 2 * self.max_attempts or any(attempts[p] >= self.max_attempts for p in pending):
                raise RuntimeError(f"resolution task {task.task_id}: no free code after {self.max_attempts} attempts")
            drafts = [
                self.record(
                    task,
                    specs[p],
                    derive_code(
                        self.secret,
                        task.tenant_id,
                        task.task_id,
                        specs[p].index,
                        attempt=attempts[p],
                        length=self.code_length,
                    ),
                )
                for p in pending
            ]
            duplicates = await self.store.insert_new(drafts)
            owners = await self.store.owners([drafts[i].code for i in duplicates]) if duplicates else {}
            still: list[int] = []
            for i, position in enumerate(pending):
                draft = drafts[i]
                owner = owners.get(draft.code) if i in duplicates else draft.owner
                if owner == draft.owner:
                    final[position] = draft  # new, or minted by an earlier try of this task
                elif owner is None:
                    still.append(position)  # vanished in between (TTL): insert again
                else:
                    CODE_COLLISIONS.inc()
                    attempts[position] += 1
                    still.append(position)
            pending = still
        return [r for r in final if r is not None]
