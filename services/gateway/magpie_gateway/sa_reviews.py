"""Reviews of service numbers, their menus and homepages, and ports: what is sent to template-review and how the
decisions (TEMPLATE_REVIEWED) change the documents.

Lifecycle (decided for Magpie; the SDK gives the state values only):

- Service number (``sa_pubs``): ``approve_state`` 1 under review, 2 approved, 3 rejected, for the latest submitted
  info (create, update or unfreeze). ``state`` 1 not effective, 2 effective, 4 frozen (3 "expired" is never
  produced: a service number is changed in place). An approval makes the submitted info the live one (``live``) and
  the service number effective at once (KooMessage promises "within 24 h"); a rejection leaves the previous live
  info (if any) in force. Freezing is immediate; unfreezing is a request that is reviewed (the SDK: "需审核，审核
  通过生效") and the service number stays frozen until approved.
- Menu and homepage (``sa_menus``, ``sa_portals``): one of each per service number, changed in place. A change is a
  new draft (``approve_state`` 1). A draft is reviewed only once its service number has been approved (KooMessage:
  "菜单需要在与其关联的服务号审核通过之后才能催审"): drafts made before are submitted automatically when the
  service number's approval arrives, later ones at once. On approval the draft becomes the live version and the
  menu/homepage effective (``state`` 2); a rejection keeps the previous live version. While the service number is
  frozen its menu and homepage show ``state`` 4.
- Push (``push_menu_info`` / ``push_portal_info``, KooMessage's "催审"): sends the current draft to the reviewer
  again (or for the first time, if its automatic submission failed), for a service number that is approved and not
  frozen, when the draft still awaits its decision. A decision already taken but not yet delivered is then
  delivered again by template-review; a draft waiting for a manual reviewer stays waiting.
- Port (``sa_ports``, ``kind`` "port"): registered ports are reviewed (``approve_state``); only approved ports can be
  bound.

Every change increases ``revision``; decisions of older revisions are ignored (``reviews.ReviewProjector``).

Approvals of a service number, menu or homepage publish the service number's handset snapshot (``sa_publish``)
before the decision's offset is committed.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from magpie.v1 import template_pb2
from magpie_common.topics import TEMPLATE_SUBMITTED
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.reviews import ReviewTarget, register_review_target, submitted_event_id
from magpie_gateway.sa_publish import publish_change
from magpie_gateway.sa_validation import menu_texts, portal_texts
from magpie_gateway.timefmt import utc_now

log = logging.getLogger(__name__)

UNDER_REVIEW = 1
APPROVED = 2
REJECTED = 3

NOT_EFFECTIVE = 1
EFFECTIVE = 2
FROZEN = 4

PUB = template_pb2.REVIEW_SUBJECT_SA_PUB
MENU = template_pb2.REVIEW_SUBJECT_SA_MENU
PORTAL = template_pb2.REVIEW_SUBJECT_SA_PORTAL
PORT = template_pb2.REVIEW_SUBJECT_SA_PORT

ACTION_CREATE = "create"
ACTION_UPDATE = "update"
ACTION_UNFREEZE = "unfreeze"


def pub_is_live(pub: dict[str, Any]) -> bool:
    """Approved at least once and not frozen: its menu and homepage may be reviewed, its ports bound."""
    return pub.get("live") is not None and pub.get("state") == EFFECTIVE


def pub_message(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    texts = [doc["pub_name"], doc["pub_abstract"], *doc.get("signs_for_auto_get_port", [])]
    if doc.get("pub_remark"):
        texts.append(doc["pub_remark"])
    return template_pb2.TemplateSubmitted(
        subject=PUB,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["pub_name"],
        use_template_type=str(doc.get("industry", "")),
        texts=texts,
    )


def draft_message(subject: int, doc: dict[str, Any], pub_name: str) -> template_pb2.TemplateSubmitted:
    """The review request of a menu (``subject`` MENU) or homepage (PORTAL) draft."""
    if subject == MENU:
        texts = menu_texts(doc["draft"]["menu_items"])
        buttons = [
            template_pb2.TemplateButton(text=item["name"], action=item["action_type"], target=item.get("content") or "")
            for top in doc["draft"]["menu_items"]
            for item in (top["sub_menu_items"] or [top])
        ]
    else:
        texts = portal_texts(doc["draft"])
        buttons = []
    return template_pb2.TemplateSubmitted(
        subject=subject,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=pub_name,
        texts=texts,
        buttons=buttons,
    )


def port_message(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    return template_pb2.TemplateSubmitted(
        subject=PORT,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["port"],
        use_template_type=str(doc["port_type"]),
        texts=list(doc["sign"]),
    )


async def submit(
    context: GatewayContext, message: template_pb2.TemplateSubmitted, *, tenant_id: str, trace_id: str
) -> None:
    """Produce a review request for an existing document (nothing is rolled back when this fails)."""
    message.meta.CopyFrom(event_meta(submitted_event_id(message), tenant_id, trace_id))
    await context.producer.send(TEMPLATE_SUBMITTED, message.subject_id, message)


async def submit_draft(
    context: GatewayContext,
    collection: AsyncCollection,
    subject: int,
    doc: dict[str, Any],
    pub_name: str,
    trace_id: str,
) -> None:
    """Send a menu/homepage draft for review and remember which revision was sent."""
    await submit(context, draft_message(subject, doc, pub_name), tenant_id=doc["tenant_id"], trace_id=trace_id)
    await collection.update_one(
        {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "revision": doc["revision"]},
        {"$set": {"submitted_revision": doc["revision"], "submitted_at": utc_now()}},
    )


async def submit_waiting_drafts(context: GatewayContext, pub: dict[str, Any], trace_id: str) -> int:
    """Submit the menu and homepage drafts of ``pub`` that await review and were not sent for their revision."""
    sent = 0
    c = context.collections
    for subject, collection in ((MENU, c.sa_menus), (PORTAL, c.sa_portals)):
        docs = await collection.find(
            {"tenant_id": pub["tenant_id"], "pub_id": pub["_id"], "approve_state": UNDER_REVIEW}
        ).to_list(None)
        for doc in docs:
            if doc.get("submitted_revision", 0) < doc["revision"]:
                await submit_draft(context, collection, subject, doc, pub["pub_name"], trace_id)
                sent += 1
    return sent


# --- decisions ------------------------------------------------------------------------------------------------------
def _pub_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    now = utc_now()
    update: dict[str, Any] = {"review_desc": review.reason, "pending_action": None}
    if not review.approved:
        update["approve_state"] = REJECTED
        return update
    live = {k: doc.get(k) for k in LIVE_PUB_FIELDS}
    state = doc.get("state", NOT_EFFECTIVE)
    if doc.get("pending_action") == ACTION_UNFREEZE or state != FROZEN:
        state = EFFECTIVE
    update.update(
        {
            "approve_state": APPROVED,
            "live": live,
            "state": state,
            "online_at": doc.get("online_at") or now,
            "name_keys": sorted({doc["name_key"]}),
        }
    )
    if state == EFFECTIVE:
        update["frozen_at"] = None
    return update


async def _pub_after(
    context: GatewayContext | None, doc: dict[str, Any], review: template_pb2.TemplateReviewed
) -> None:
    if context is None or not review.approved:
        return
    if pub_is_live(doc):
        await submit_waiting_drafts(context, doc, review.meta.trace_id)
    await _publish(context, doc["tenant_id"], doc["_id"], review)


async def _draft_after(
    context: GatewayContext | None, doc: dict[str, Any], review: template_pb2.TemplateReviewed
) -> None:
    if context is not None and review.approved:
        await _publish(context, doc["tenant_id"], doc["pub_id"], review)


async def _publish(context: GatewayContext, tenant_id: str, pub_id: str, review: template_pb2.TemplateReviewed) -> None:
    """An approval changed what handsets show: publish the service number's snapshot (``sa_publish``); a failure
    is raised so that the decision is retried."""
    trigger = {PUB: "pub_approved", MENU: "menu_approved", PORTAL: "portal_approved"}.get(review.subject, "approved")
    await publish_change(context, tenant_id, pub_id, trace_id=review.meta.trace_id, trigger=trigger, strict=True)


def _draft_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    if not review.approved:
        return {"approve_state": REJECTED, "review_desc": review.reason}
    return {
        "approve_state": APPROVED,
        "review_desc": review.reason,
        "live": doc["draft"],
        "state": EFFECTIVE,
        "online_at": doc.get("online_at") or utc_now(),
    }


def _port_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    return {"approve_state": APPROVED if review.approved else REJECTED, "review_desc": review.reason}


LIVE_PUB_FIELDS = (
    "pub_name",
    "pub_remark",
    "pub_abstract",
    "logo_img",
    "authorization_files",
    "industry",
    "auto_get_port",
    "signs_for_auto_get_port",
    "areas_for_auto_get_port",
)

register_review_target(PUB, ReviewTarget("sa_pubs", "sa_pub", _pub_update, after=_pub_after))
register_review_target(MENU, ReviewTarget("sa_menus", "sa_menu", _draft_update, after=_draft_after))
register_review_target(PORTAL, ReviewTarget("sa_portals", "sa_portal", _draft_update, after=_draft_after))
register_review_target(PORT, ReviewTarget("sa_ports", "sa_port", _port_update))
