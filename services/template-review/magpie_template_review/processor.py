"""The consumer handler: TemplateSubmitted batches in, reviews stored, TemplateReviewed out.

Per partition batch, in order:

1. validate every record (a record that can never be reviewed is a PoisonMessage → dead-letter topic);
2. look up, in one round trip each, the reviews that already exist for these (subject, subject_id, revision)
   and the latest reviewed revision of each subject;
3. skip duplicates (already reviewed: re-send their event only if it was never acknowledged) and stale
   submissions (older than the latest reviewed revision), review the rest;
4. insert the new reviews (insert_many, unordered; the unique index settles races), close older revisions,
   send the events and mark them published — all before returning, so the offsets commit after the outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from magpie.v1 import template_pb2
from magpie_common.ids import now_ms
from magpie_common.kafka import Decoded, PoisonMessage
from magpie_template_review.catalog import SUBJECT_NAMES
from magpie_template_review.metrics import REVIEWS, RULE_HITS, SKIPPED
from magpie_template_review.publisher import OutboxPublisher
from magpie_template_review.review_doc import STATE_PENDING, Doc, new_review_doc, review_id
from magpie_template_review.rules import Reviewer
from magpie_template_review.store import ReviewStore, SubjectKey
from magpie_template_review.submission import Submission

log = logging.getLogger(__name__)


def validate(message: template_pb2.TemplateSubmitted) -> Submission:
    if message.subject not in SUBJECT_NAMES:
        raise PoisonMessage(f"unsupported review subject {message.subject}")
    if not message.subject_id:
        raise PoisonMessage("subject_id is empty")
    if message.revision < 0:
        raise PoisonMessage(f"negative revision {message.revision}")
    return Submission.from_message(message)


class SubmissionProcessor:
    def __init__(
        self,
        store: ReviewStore,
        reviewer: Reviewer,
        publisher: OutboxPublisher,
        manual_vendors: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.reviewer = reviewer
        self.publisher = publisher
        self.manual_vendors = manual_vendors

    async def handle(self, batch: Sequence[Decoded[template_pb2.TemplateSubmitted]]) -> None:
        items = [(item.message, validate(item.message)) for item in batch]
        ids = [review_id(s.subject, s.subject_id, s.revision) for _, s in items]
        existing = await self.store.get_many(ids)
        latest = await self.store.latest_revisions((s.subject, s.subject_id) for _, s in items)

        new_docs: dict[str, Doc] = {}
        resend: dict[str, Doc] = {}
        for (message, sub), rid in zip(items, ids, strict=True):
            key: SubjectKey = (sub.subject, sub.subject_id)
            subject = SUBJECT_NAMES[sub.subject]
            if rid in existing or rid in new_docs:
                SKIPPED.labels(subject, "duplicate").inc()
                doc = existing.get(rid)
                if doc is not None and doc["unpublished"]:
                    resend[rid] = doc
                continue
            if sub.revision < latest.get(key, -1):
                SKIPPED.labels(subject, "stale").inc()
                log.info(
                    "ignored a stale submission",
                    extra={"subject": subject, "subject_id": sub.subject_id, "revision": sub.revision},
                )
                continue
            auto = self.reviewer.review(sub)
            new_docs[rid] = new_review_doc(sub, message.meta, auto, self.manual_vendors, now_ms())
            latest[key] = sub.revision

        raced = await self.store.insert_new(list(new_docs.values()))
        if raced:
            # Stored meanwhile by another delivery: theirs is the review; send it if it is still unsent.
            for rid, doc in (await self.store.get_many(sorted(raced))).items():
                if doc["unpublished"]:
                    resend[rid] = doc
        inserted = [doc for rid, doc in new_docs.items() if rid not in raced]
        for doc in inserted:
            self._count(doc)

        newest: dict[SubjectKey, int] = {}
        for doc in inserted:
            key = (doc["subject"], doc["subject_id"])
            newest[key] = max(newest.get(key, -1), doc["revision"])
        for (subject_value, subject_id), revision in newest.items():
            await self.store.supersede_older(subject_value, subject_id, revision)

        await self.publisher.publish(inserted, "review")
        await self.publisher.publish(list(resend.values()), "republish")

    @staticmethod
    def _count(doc: Doc) -> None:
        outcome = "approved" if doc["approved"] else "rejected"
        if doc["state"] == STATE_PENDING:
            outcome = "pending"
        REVIEWS.labels(doc["subject_name"], outcome).inc()
        for rule_id in doc["rule_ids"]:
            RULE_HITS.labels(rule_id).inc()
