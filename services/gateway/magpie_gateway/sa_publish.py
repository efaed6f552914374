"""Publication of service numbers to the handsets: a complete snapshot of each service number (``SaPublished``) on
the compacted topic SA_PUBLISHED, key ``pub:<pub_id>``, consumed by the shortlink edge, which serves the messaging
app (``magpie_shortlink.sa_edge``).

What a snapshot holds: the approved (live) info of the service number (name, remark, intro, industry, logo), its
state (1 not effective, 2 effective, 4 frozen), the approved menu (tree, entries numbered by position) and
homepage, the company name, and every port binding with the port number and type, the bound signatures and
regions. Images travel as ``SaMediaChunk`` records (512 KiB pieces, key ``media:<sha256>:<seq>``, content-addressed
and immutable) produced before the first snapshot that shows them; the snapshot names them by sha256.

When a snapshot is produced (decided for Magpie):

- approval of the service number (create, update, unfreeze), of its menu or of its homepage (``sa_reviews`` after
  hooks): in the reviews consumer, before the decision's offset is committed;
- ``freeze_pub``, ``lock_port`` (bind) and ``unlock_port`` (unbind): before the API answers.
  Rejections change nothing a handset sees; ports are bound only once approved and a bound port cannot be deleted,
  so port reviews and ``delete_port_info`` change no snapshot. Service numbers are never deleted (no operation).

Nothing is lost - the gateway's database is the outbox:

- Every change sets ``publish_pending`` and increments ``publish_changes`` on the ``sa_pubs`` document (freeze: in
  the same update as the change; bindings: ``publish_pending`` before the binding is written, the increment after).
- One publisher at a time per service number: it claims a lease (``publish_lease_until``, ``publish_token``,
  ``MAGPIE_SA_PUBLISH_LEASE_S``, default 60 s) and takes the next ``publish_version``, reads the current state,
  produces (acks=all), then clears ``publish_pending`` only if ``publish_changes`` did not move meanwhile; otherwise
  it publishes again. So versions grow in the order the snapshots were read, and the last snapshot always reflects
  the last change. A publisher whose lease ran out (stalled) publishes once more after its late record, so the
  newest snapshot is also the last record of the key (what compaction keeps).
- When producing fails in an API call, the call still succeeds (the change is stored) and the snapshot stays
  pending: the worker (``SaPublicationWorker``, one per gateway process) publishes every pending service number
  every ``MAGPIE_SA_PUBLISH_INTERVAL_S`` (default 30 s). In the reviews consumer the error propagates and the
  decision is retried.
- At start, the worker re-checks every service number that was ever approved or published
  (``MAGPIE_SA_REPUBLISH``): ``changed`` (default) rebuilds each snapshot and publishes those whose content differs
  from the last one published (``published_hash``): this repairs a process that died between a change and its
  snapshot; ``all`` publishes every service number again, images included (after the topic was lost); ``off``.

Consumers keep the snapshot with the highest ``version`` per service number.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo import ReturnDocument

from magpie.v1 import sa_pb2
from magpie_common.config import env_float, env_str
from magpie_common.ids import stable_id
from magpie_common.topics import SA_PUBLISHED
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.db import Collections
from magpie_gateway.periodic import PeriodicWorker
from magpie_gateway.timefmt import to_ms, utc_now

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024
BINDING = "binding"
PORT = "port"
FROZEN = 4  # sa_reviews.FROZEN (not imported: sa_reviews imports this module)
REPUBLISH_MODES = ("changed", "all", "off")

SNAPSHOTS = Counter("magpie_gateway_sa_snapshots_total", "Service-number snapshots produced", ["trigger"])
PUBLISH_FAILURES = Counter("magpie_gateway_sa_publish_failures_total", "Snapshots that could not be produced")


def lease_s() -> float:
    return env_float("MAGPIE_SA_PUBLISH_LEASE_S", 60.0)


def snapshot_key(pub_id: str) -> str:
    return f"pub:{pub_id}"


def pending_update() -> dict[str, Any]:
    """The update marking a service number's snapshot as out of date (merge into the update of the change)."""
    return {"$set": {"publish_pending": True}, "$inc": {"publish_changes": 1}}


async def mark_pending(c: Collections, tenant_id: str, pub_id: str) -> None:
    """Before a change stored outside the ``sa_pubs`` document: the worker publishes it even if we die meanwhile."""
    await c.sa_pubs.update_one({"_id": pub_id, "tenant_id": tenant_id}, {"$set": {"publish_pending": True}})


async def mark_changed(c: Collections, tenant_id: str, pub_id: str) -> None:
    """After a change: any snapshot read before it is out of date."""
    await c.sa_pubs.update_one({"_id": pub_id, "tenant_id": tenant_id}, pending_update())


async def publish_change(
    context: GatewayContext, tenant_id: str, pub_id: str, *, trace_id: str = "", trigger: str, strict: bool = False
) -> None:
    """Record a change of the service number and publish its snapshot (durable when this returns).

    ``strict`` re-raises a failure (the reviews consumer retries the decision); otherwise it is logged and the
    worker publishes the pending snapshot later."""
    await mark_changed(context.collections, tenant_id, pub_id)
    if strict:
        try:
            await publish(context, pub_id, trace_id=trace_id, trigger=trigger)
        except Exception:
            PUBLISH_FAILURES.inc()
            raise
    else:
        await publish_pending_change(context, pub_id, trace_id=trace_id, trigger=trigger)


async def publish_pending_change(context: GatewayContext, pub_id: str, *, trace_id: str = "", trigger: str) -> None:
    """Publish a change already marked (``pending_update`` merged into the change); a failure is logged and the
    worker publishes the pending snapshot later."""
    try:
        await publish(context, pub_id, trace_id=trace_id, trigger=trigger)
    except Exception:
        PUBLISH_FAILURES.inc()
        log.exception("service-number snapshot not produced; left pending", extra={"pub_id": pub_id})


# --- snapshots ------------------------------------------------------------------------------------------------------
@dataclass
class MediaRef:
    sha256: str
    tenant_id: str
    file_id: str
    mime: str


@dataclass
class Built:
    snapshot: sa_pb2.SaPublished
    media: dict[str, MediaRef] = field(default_factory=dict)  # sha256 -> where its bytes are

    def content_hash(self) -> str:
        """A hash of what the handset sees (meta and version excluded)."""
        copy = sa_pb2.SaPublished()
        copy.CopyFrom(self.snapshot)
        copy.ClearField("meta")
        copy.version = 0
        return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def _ms(value: datetime | None) -> int:
    return to_ms(value) if isinstance(value, datetime) else 0


class SnapshotBuilder:
    """Reads one service number's current state from the gateway's database."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.c = context.collections

    async def image(self, built: Built, tenant_id: str, resource_id: str | None) -> sa_pb2.SaImage | None:
        if not resource_id:
            return None
        doc = await self.c.sa_media.find_one({"_id": resource_id, "tenant_id": tenant_id})
        if doc is None:
            log.warning("image of a service number not found", extra={"resource_id": resource_id})
            return None
        sha = doc.get("sha256")
        if not sha:
            _, data = await self.context.files.read(tenant_id, doc["file_id"])
            sha = hashlib.sha256(data).hexdigest()
            await self.c.sa_media.update_one({"_id": resource_id, "tenant_id": tenant_id}, {"$set": {"sha256": sha}})
        built.media[sha] = MediaRef(sha, tenant_id, doc["file_id"], doc.get("mime") or "")
        return sa_pb2.SaImage(
            sha256=sha,
            mime=doc.get("mime") or "",
            size=int(doc.get("size") or 0),
            width=int(doc.get("width") or 0),
            height=int(doc.get("height") or 0),
        )

    @staticmethod
    def menu_item(item: dict[str, Any], item_id: str) -> sa_pb2.SaMenuItem:
        entry = sa_pb2.SaMenuItem(
            id=item_id,
            name=item["name"],
            action_type=item["action_type"],
            content=item.get("content") or "",
            ext={k: str(v) for k, v in (item.get("ext_msg") or {}).items() if v is not None},
        )
        for j, child in enumerate(item.get("sub_menu_items") or [], start=1):
            entry.children.append(SnapshotBuilder.menu_item(child, f"{item_id}.{j}"))
        return entry

    async def build(self, pub: dict[str, Any], version: int) -> Built:
        tenant = pub["tenant_id"]
        snapshot = sa_pb2.SaPublished(
            meta=event_meta(stable_id("sa-published", pub["_id"], version), tenant),
            pub_id=pub["_id"],
            version=version,
            state=int(pub.get("state") or 1),
            frozen=pub.get("state") == FROZEN,
            online_at_ms=_ms(pub.get("online_at")),
        )
        built = Built(snapshot)
        live = pub.get("live") or {}
        if live:
            snapshot.name = live.get("pub_name") or ""
            snapshot.remark = live.get("pub_remark") or ""
            snapshot.intro = live.get("pub_abstract") or ""
            snapshot.industry = int(live.get("industry") or 0)
            logo = await self.image(built, tenant, live.get("logo_img"))
            if logo is not None:
                snapshot.logo.CopyFrom(logo)
        tenant_doc = await self.context.tenants.get_tenant(tenant)
        snapshot.company_name = (tenant_doc or {}).get("name") or ""

        menu = await self.c.sa_menus.find_one({"tenant_id": tenant, "pub_id": pub["_id"]})
        if menu is not None:
            snapshot.menu_id = menu["_id"]
            for i, item in enumerate((menu.get("live") or {}).get("menu_items") or [], start=1):
                snapshot.menus.append(self.menu_item(item, str(i)))
        portal = await self.c.sa_portals.find_one({"tenant_id": tenant, "pub_id": pub["_id"]})
        if portal is not None and portal.get("live"):
            page = portal["live"]
            homepage = sa_pb2.SaHomepage(portal_id=portal["_id"], summary=page.get("summary") or "")
            background = await self.image(built, tenant, page.get("background_img"))
            if background is not None:
                homepage.background.CopyFrom(background)
            for tel in page.get("tels") or []:
                homepage.hotlines.add(tel=tel["tel"], usage=tel.get("usage") or "")
            for app in page.get("fastapps") or []:
                quick = sa_pb2.SaQuickApp(
                    name=app["name"],
                    description=app.get("description") or "",
                    deeplink=app.get("deeplink") or "",
                    depend_engine_version=app.get("depend_engine_version") or "",
                )
                logo = await self.image(built, tenant, app.get("logo_img"))
                if logo is not None:
                    quick.logo.CopyFrom(logo)
                homepage.quick_apps.append(quick)
            snapshot.homepage.CopyFrom(homepage)

        bindings = await self.c.sa_ports.find({"tenant_id": tenant, "kind": BINDING, "pub_id": pub["_id"]}).to_list(
            None
        )
        bindings.sort(key=lambda b: (_ms(b.get("created_at")), b["_id"]))
        port_ids = list({b["port_id"] for b in bindings})
        ports = {
            p["_id"]: p
            for p in await self.c.sa_ports.find(
                {"tenant_id": tenant, "kind": PORT, "_id": {"$in": port_ids}}, projection={"sign_check": 1}
            ).to_list(None)
        }
        for b in bindings:
            snapshot.bindings.add(
                binding_id=b["_id"],
                port_id=b["port_id"],
                port=b["port"],
                port_type=int(b["port_type"]),
                signs=list(b["sign"]),
                regions=list(b["regions"]),
                sign_check=int(ports.get(b["port_id"], {}).get("sign_check") or 0),
                bound_at_ms=_ms(b.get("created_at")),
            )
        return built


def media_records(ref: MediaRef, data: bytes, trace_id: str = "") -> list[tuple[str, sa_pb2.SaPublicationRecord]]:
    count = max(1, -(-len(data) // CHUNK_BYTES))
    records = []
    for seq in range(count):
        chunk = sa_pb2.SaMediaChunk(
            meta=event_meta(stable_id("sa-media", ref.sha256, seq), ref.tenant_id, trace_id),
            sha256=ref.sha256,
            seq=seq,
            count=count,
            data=data[seq * CHUNK_BYTES : (seq + 1) * CHUNK_BYTES],
            size=len(data),
            mime=ref.mime,
        )
        records.append((f"media:{ref.sha256}:{seq}", sa_pb2.SaPublicationRecord(chunk=chunk)))
    return records


# --- publishing -----------------------------------------------------------------------------------------------------
def _lease_free(now: datetime) -> dict[str, Any]:
    return {"$or": [{"publish_lease_until": None}, {"publish_lease_until": {"$lt": now}}]}


async def _produce(context: GatewayContext, built: Built, already: set[str], trace_id: str) -> None:
    """The images not yet published (one piece at a time: small producer buffers), then the snapshot."""
    for sha, ref in built.media.items():
        if sha in already:
            continue
        _, data = await context.files.read(ref.tenant_id, ref.file_id)
        for key, record in media_records(ref, data, trace_id):
            await context.producer.send(SA_PUBLISHED, key, record)
    if trace_id:
        built.snapshot.meta.trace_id = trace_id
    await context.producer.send(
        SA_PUBLISHED, snapshot_key(built.snapshot.pub_id), sa_pb2.SaPublicationRecord(pub=built.snapshot)
    )


async def publish(context: GatewayContext, pub_id: str, *, trace_id: str = "", trigger: str = "change") -> bool:
    """Publish the pending snapshot of ``pub_id`` until the latest change is out. False when there was nothing to
    do by us: nothing pending, or another publisher holds the lease (it publishes the change we made)."""
    c = context.collections
    lease = timedelta(seconds=lease_s())
    while True:
        now = utc_now()
        token = secrets.token_hex(8)
        doc = await c.sa_pubs.find_one_and_update(
            {"_id": pub_id, "publish_pending": True, **_lease_free(now)},
            {"$set": {"publish_lease_until": now + lease, "publish_token": token}, "$inc": {"publish_version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return False
        changes = int(doc.get("publish_changes") or 0)
        already = set(doc.get("published_media") or [])
        try:
            built = await SnapshotBuilder(context).build(doc, int(doc["publish_version"]))
            await asyncio.wait_for(_produce(context, built, already, trace_id), lease.total_seconds() / 2)
        except BaseException:
            with contextlib.suppress(Exception):
                await c.sa_pubs.update_one(
                    {"_id": pub_id, "publish_token": token},
                    {"$set": {"publish_lease_until": None, "publish_token": None}},
                )
            raise
        SNAPSHOTS.labels(trigger).inc()
        published = sorted(already | set(built.media))
        done = await c.sa_pubs.update_one(
            {"_id": pub_id, "publish_token": token, "publish_changes": changes},
            {
                "$set": {
                    "publish_pending": False,
                    "publish_lease_until": None,
                    "publish_token": None,
                    "published_version": built.snapshot.version,
                    "published_hash": built.content_hash(),
                    "published_media": published,
                    "published_at": utc_now(),
                }
            },
        )
        if done.matched_count == 1:
            return True
        released = await c.sa_pubs.update_one(
            {"_id": pub_id, "publish_token": token},
            {"$set": {"publish_lease_until": None, "publish_token": None, "published_media": published}},
        )
        if released.matched_count == 0:
            # Our lease ran out and another publisher took over: our record may have landed after its newer one.
            log.warning("service-number publication lease lost; publishing again", extra={"pub_id": pub_id})
            await mark_changed(c, doc["tenant_id"], pub_id)
        # else: a change arrived while we produced: publish again.


class SaPublicationWorker(PeriodicWorker):
    """Publishes the pending snapshots periodically, and re-checks every service number once at start (the loop:
    ``periodic.PeriodicWorker``)."""

    failure_message = "service-number publication round failed; retrying later"

    def __init__(
        self, context: GatewayContext, *, interval_s: float | None = None, republish: str | None = None
    ) -> None:
        super().__init__(interval_s if interval_s is not None else env_float("MAGPIE_SA_PUBLISH_INTERVAL_S", 30.0))
        self.context = context
        mode = (republish if republish is not None else env_str("MAGPIE_SA_REPUBLISH", "changed")).strip().lower()
        if mode not in REPUBLISH_MODES:
            raise ValueError(f"MAGPIE_SA_REPUBLISH must be one of {', '.join(REPUBLISH_MODES)}, got {mode!r}")
        self.republish = mode
        self.startup_done = mode == "off"

    async def round(self) -> bool:
        if not self.startup_done:
            await self.recheck_all(force=self.republish == "all")
            self.startup_done = True
        await self.publish_pending()
        return False

    async def publish_pending(self) -> int:
        """Publish every pending service number whose lease is free; the number of snapshots produced."""
        c = self.context.collections
        now = utc_now()
        docs = await c.sa_pubs.find(
            {"publish_pending": True, **_lease_free(now)}, projection={"_id": 1, "tenant_id": 1}
        ).to_list(None)
        produced = 0
        for doc in docs:
            if self.stopping:
                break
            try:
                produced += await publish(self.context, doc["_id"], trigger="pending")
            except Exception:
                PUBLISH_FAILURES.inc()
                log.exception("pending service-number snapshot not produced", extra={"pub_id": doc["_id"]})
        return produced

    async def recheck_all(self, *, force: bool = False) -> int:
        """Mark pending every service number whose snapshot differs from the last one published (``force``: all,
        images included); the number marked."""
        c = self.context.collections
        builder = SnapshotBuilder(self.context)
        marked = 0
        query = {"$or": [{"live": {"$ne": None}}, {"published_version": {"$exists": True}}]}
        async for doc in c.sa_pubs.find(query):
            if self.stopping:
                break
            if not force:
                built = await builder.build(doc, int(doc.get("publish_version") or 0))
                if doc.get("published_hash") == built.content_hash():
                    continue
                update = pending_update()
            else:
                update = pending_update()
                update["$set"]["published_media"] = []
            await c.sa_pubs.update_one({"_id": doc["_id"], "tenant_id": doc["tenant_id"]}, update)
            marked += 1
        if marked:
            log.info("service-number snapshots to republish", extra={"count": marked, "force": force})
        return marked
