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
A link found again this way is brought up to the request's limits (``expires_at``, a group link's
``max_resolutions``; never lowered), so regenerating the failed links of a task whose validity or budget was
raised meanwhile leaves every link with the task's current limits.

Changing the limits of minted links (:meth:`ResolutionMinter.update`, the gateway's "extend validity" and "add
resolution count"): the links are named by (task, index, code) and must all still be stored with that owner (an
expired link is kept for ``MAGPIE_SHORTLINK_EXPIRED_RETENTION_S``, then the TTL index removes it and its code may
be given to someone else); otherwise nothing changes and the answer lists the missing links. ``expires_at`` and
``max_resolutions`` only grow (``$max``); the hot copies are rewritten at once, so every edge replica applies the
new limits from the next request on: an expired link resolves again, an exhausted group link counts again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from magpie.v1 import common_pb2
from magpie_shortlink.codes import derive_code, looks_like_code
from magpie_shortlink.links import LinkOwner, LinkRecord, ms_to_datetime, normalise_domain
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


LINK_UPDATES = Counter(
    "magpie_shortlink_resolution_link_updates_total",
    "Limit changes of resolution-task links (validity, group budget): applied, or refused for missing links",
    ["result"],
)


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


@dataclass(frozen=True)
class LinkChange:
    """New limits for minted links of a task: each only raised, ``None`` = unchanged."""

    tenant_id: str
    task_id: str
    links: tuple[tuple[int, str], ...]  # (index, code)
    expires_at_ms: int | None
    max_resolutions: int | None


@dataclass(frozen=True)
class Updated:
    records: list[LinkRecord]  # the links with their limits now, in request order (empty when some are missing)
    missing: list[int]  # indexes of links not stored (any more) under this task

    def as_json(self) -> dict[str, object]:
        return {
            "links": [
                {
                    "index": r.index,
                    "code": r.code,
                    "expires_at_ms": r.expires_at_ms,
                    "max_resolutions": r.max_resolutions,
                    "group": r.group,
                }
                for r in self.records
            ],
            "missing": self.missing,
        }


def _optional_int(data: dict[str, object], name: str, *, minimum: int) -> int | None:
    if data.get(name) is None:
        return None
    return _int(data, name, minimum=minimum)


def parse_change(data: object) -> LinkChange:
    """The limit-change request of the internal API, or :class:`RequestError`."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    links = data.get("links")
    if not isinstance(links, list) or not links:
        raise RequestError("links must be a non-empty list")
    if len(links) > MAX_LINKS:
        raise RequestError(f"at most {MAX_LINKS} links per request")
    pairs: list[tuple[int, str]] = []
    seen: set[int] = set()
    for position, item in enumerate(links):
        if not isinstance(item, dict):
            raise RequestError(f"links[{position}] must be an object")
        index = _int(item, "index")
        code = _text(item, "code", required=True)
        if not looks_like_code(code):
            raise RequestError(f"links[{position}].code must be letters and digits")
        if index in seen:
            raise RequestError(f"links[{position}].index {index} is repeated")
        seen.add(index)
        pairs.append((index, code))
    expires = _optional_int(data, "expires_at_ms", minimum=1)
    budget = _optional_int(data, "max_resolutions", minimum=1)
    if expires is None and budget is None:
        raise RequestError("give expires_at_ms, max_resolutions or both")
    return LinkChange(
        tenant_id=_text(data, "tenant_id", required=True),
        task_id=_text(data, "task_id", required=True),
        links=tuple(pairs),
        expires_at_ms=expires,
        max_resolutions=budget,
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
        records = await self._align([m.record for m in results.values() if m.record is not None], task)
        for index, minted in list(results.items()):
            if minted.record is not None:
                results[index] = Minted(index, records[minted.record.code], minted.result_code, minted.error_message)
        await self.store.cache(list(records.values()))
        kind = "group" if task.group else "individual"
        for minted in results.values():
            RESOLUTION_LINKS.labels(kind, minted.result_code).inc()
        return [results[s.index] for s in task.links]

    async def _align(self, records: Sequence[LinkRecord], task: ResolutionTask) -> dict[str, LinkRecord]:
        """The stored links of ``records`` (by code), those found again raised to the task's limits."""
        if not records:
            return {}
        raised: dict[str, object] = {"expires_at": ms_to_datetime(task.expires_at_ms)}
        if task.group:
            raised["max_resolutions"] = task.max_resolutions
        codes = [r.code for r in records]
        owned = {"_id": {"$in": codes}, "tenant_id": task.tenant_id, "task_id": task.task_id}
        await self.store.links.update_many(owned, {"$max": raised})
        stored = {
            doc["_id"]: LinkRecord.from_document(doc) async for doc in self.store.links.find({"_id": {"$in": codes}})
        }
        return {r.code: stored.get(r.code, r) for r in records}

    async def update(self, change: LinkChange) -> Updated:
        """Raise the limits of a task's minted links (all or none: see the module docstring)."""
        codes = [code for _, code in change.links]
        docs = {doc["_id"]: doc async for doc in self.store.links.find({"_id": {"$in": codes}})}
        missing: list[int] = []
        for index, code in change.links:
            doc = docs.get(code)
            owner = (
                None
                if doc is None
                else LinkOwner(doc.get("tenant_id", ""), doc.get("task_id", ""), doc.get("index", -1))
            )
            if owner != LinkOwner(change.tenant_id, change.task_id, index):
                missing.append(index)
        if missing:
            LINK_UPDATES.labels("missing").inc()
            return Updated([], missing)
        raised: dict[str, object] = {}
        if change.expires_at_ms is not None:
            raised["expires_at"] = ms_to_datetime(change.expires_at_ms)
        if change.max_resolutions is not None:
            not_group = [index for index, code in change.links if not docs[code].get("group")]
            if not_group:
                raise RequestError(f"max_resolutions applies to group links only (links {not_group} are not)")
            raised["max_resolutions"] = change.max_resolutions
        query = {"_id": {"$in": codes}, "tenant_id": change.tenant_id, "task_id": change.task_id}
        await self.store.links.update_many(query, {"$max": raised})
        records = [LinkRecord.from_document(doc) async for doc in self.store.links.find(query)]
        await self.store.refresh(records)
        by_code = {r.code: r for r in records}
        vanished = [index for index, code in change.links if code not in by_code]  # removed by the TTL index
        if vanished:
            LINK_UPDATES.labels("missing").inc()
            return Updated([], vanished)
        LINK_UPDATES.labels("updated").inc()
        return Updated([by_code[code] for _, code in change.links], [])

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
