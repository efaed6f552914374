"""The internal reviewer API (FastAPI), served on the service port together with /metrics, /healthz, /readyz.

- ``GET  /internal/reviews?state=pending|decided|superseded&subject=aim_template&limit=100``  list reviews
- ``GET  /internal/reviews/{review_id}``                                                   one review
- ``POST /internal/reviews/{review_id}/decision``  ``{vendor, approved, reason, reviewer}``  decide a held vendor

A decision that changes a vendor's result stores the new outcome and its ``TemplateReviewed`` (one event per
decision, stable id) and sends it; repeating a decision changes nothing and sends nothing. If the broker is down
the decision is still stored and the outbox sweep sends the event later (``published: false`` in the answer).
When ``MAGPIE_REVIEW_API_TOKEN`` is set every /internal route requires ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from magpie_common.ids import now_ms
from magpie_common.service import ops_routes
from magpie_template_review.catalog import SUBJECT_NAMES
from magpie_template_review.config import ReviewConfig
from magpie_template_review.metrics import MANUAL_DECISIONS
from magpie_template_review.publisher import OutboxPublisher
from magpie_template_review.review_doc import REVIEW_STATES, Decision, DecisionError, summary
from magpie_template_review.store import ReviewStore

log = logging.getLogger(__name__)

SUBJECT_VALUES = {name: value for value, name in SUBJECT_NAMES.items()}


class DecisionRequest(BaseModel):
    vendor: str = Field(min_length=1, max_length=32)
    approved: bool
    reason: str = Field(default="", max_length=1000)
    reviewer: str = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def rejection_needs_reason(self) -> DecisionRequest:
        if not self.approved and not self.reason.strip():
            raise ValueError("a rejection needs a reason")
        return self


def create_app(
    store: ReviewStore,
    publisher: OutboxPublisher,
    config: ReviewConfig,
    readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None,
) -> FastAPI:
    async def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        if not config.api_token:
            return
        expected = f"Bearer {config.api_token}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    router = APIRouter(prefix="/internal/reviews", dependencies=[Depends(authorize)])

    @router.get("")
    async def list_reviews(
        state: Annotated[str | None, Query()] = None,
        subject: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        if state is not None and state not in REVIEW_STATES:
            raise HTTPException(status_code=400, detail=f"state must be one of {', '.join(REVIEW_STATES)}")
        if subject is not None and subject not in SUBJECT_VALUES:
            raise HTTPException(status_code=400, detail=f"subject must be one of {', '.join(SUBJECT_VALUES)}")
        docs = await store.find_reviews(state=state, subject=SUBJECT_VALUES[subject] if subject else None, limit=limit)
        return {"reviews": [summary(doc) for doc in docs]}

    @router.get("/{review_id}")
    async def get_review(review_id: str) -> dict[str, Any]:
        doc = await store.get(review_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"review {review_id} not found")
        return summary(doc)

    @router.post("/{review_id}/decision")
    async def decide(review_id: str, body: DecisionRequest) -> JSONResponse:
        decision = Decision(body.vendor, body.approved, body.reason.strip(), body.reviewer.strip())
        try:
            outcome = await store.decide(review_id, decision, now_ms())
        except DecisionError as exc:
            raise HTTPException(status_code=exc.status, detail=exc.message) from exc
        doc = outcome.doc
        if outcome.changed:
            MANUAL_DECISIONS.labels(decision.vendor.upper(), "approved" if decision.approved else "rejected").inc()
        published = not doc["unpublished"]
        if doc["unpublished"]:
            # A new decision, or a repeated one whose event never reached the broker: send it now.
            try:
                await publisher.publish([doc], "decision")
                published = True
            except Exception:
                log.exception("could not send the decision event; the outbox sweep will", extra={"review": review_id})
        result = summary(doc)
        result.update(
            changed=outcome.changed,
            published=published,
            event_id=doc["outbox"]["event_id"] if doc.get("outbox") else None,
        )
        return JSONResponse(result)

    app = FastAPI(title="Magpie template review (internal)", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    if readiness is not None:
        for route in ops_routes(readiness):
            app.router.routes.append(route)
    return app
