"""Send tasks: accepting a prepared task (documents, then events, durable before the answer) and the task views.

``task_state`` (SDK field ``AIMSendTasksMode.task_state``):

- ``Success``: the task was accepted (the SDK's value: "submitted successfully"); its recipients are in flight
- ``COMPLETED`` (Magpie extension): every recipient is final (delivered, failed, timed out, skipped or invalid)
- ``Failed``: the task could not be handed to the pipeline (e.g. the broker was unreachable); nothing to wait for

The ``task_status`` filter of ``list_aim_send_tasks`` takes the SDK's ``Success`` (accepted: ``Success`` and
``COMPLETED``) and ``Fail`` (``Failed``), and also ``COMPLETED``.

``magpie_summary.number_check`` is the task's number check: ``total`` (recipients after de-duplication; the
duplicates dropped are ``magpie_summary.duplicates``), ``checked`` and ``pending`` (classified or not yet),
``invalid``, ``resolvable`` (smart), ``unresolvable`` (fallback SMS, VMS or skipped) and ``unresolvable_by_reason``
(``{"UNKNOWN_DEVICE": 3, "APP_TOO_OLD": 1, ...}``, the number-resolver's reasons). The per-recipient reason is
``reason`` in ``list_aim_send_details``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from magpie.v1 import task_pb2
from magpie_common.ids import stable_id
from magpie_common.topics import RECIPIENTS, TASK_ACCEPTED
from magpie_gateway.auth import Principal
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.db import Collections
from magpie_gateway.read_model import BATCH_SIZE, new_batch_documents, number_check, sum_counters
from magpie_gateway.send_task_builder import PreparedTask, build_settings, task_context
from magpie_gateway.send_task_recipients import Chunk
from magpie_gateway.timefmt import iso, iso_ms, utc_now

STATE_ACCEPTING = "Accepting"
STATE_SUCCESS = "Success"
STATE_COMPLETED = "COMPLETED"
STATE_FAILED = "Failed"


def _is_duplicate_only(exc: BulkWriteError) -> bool:
    return all(error.get("code") == 11000 for error in exc.details.get("writeErrors", []))


async def insert_all(collection: AsyncCollection, docs: list[dict[str, Any]]) -> None:
    """``insert_many`` that tolerates documents already present (a resumed task)."""
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if not _is_duplicate_only(exc):
            raise


def task_document(
    principal: Principal,
    prepared: PreparedTask,
    *,
    task_id: str,
    created_at: datetime,
    fallback: str,
    batch_count: int,
    trace_id: str,
) -> dict[str, Any]:
    pre = prepared.prerequisites
    resolve = prepared.resolve
    return {
        "_id": task_id,
        "tenant_id": principal.tenant_id,
        "task_name": prepared.task_name,
        "state": STATE_ACCEPTING,
        "sms_channel": {
            "channel_number": prepared.channel.channel_number,
            "sms_tpl_id": pre.sms_template["_id"],
            "sms_sign": pre.signature["signature_name"],
            "sms_app_name": pre.app["app_name"],
        },
        "resolve_task": {
            "tpl_id": pre.aim_template["_id"],
            "resolve_times": 1,
            "aim_code_type": "individual",
            "generation_type": resolve.generation_type or "1",
            "domain": resolve.domain,
            "expiration_time": prepared.expiration_days,
            **({"recipient_file_id": prepared.recipients.file_id} if prepared.recipients.file_id else {}),
        },
        "tpl_id": pre.aim_template["_id"],
        "tpl_name": pre.aim_template.get("tpl_name", ""),
        "sms_sign": pre.signature["signature_name"],
        "fallback": fallback,
        "submitted": prepared.recipients.submitted,
        "unique_recipients": prepared.recipients.unique,
        "duplicates": prepared.recipients.duplicates,
        "batch_count": batch_count,
        "batch_size": BATCH_SIZE,
        "final_batches": [],
        "created_at": created_at,
        "accepted_at": None,
        "completed_at": None,
        "operator": principal.user_name or principal.user_id,
        "operator_id": principal.user_id,  # the sub-user's id (the tenant id for the main account)
        "trace_id": trace_id,
    }


async def accept(
    context: GatewayContext,
    principal: Principal,
    prepared: PreparedTask,
    *,
    task_id: str,
    fallback_name: str,
    fallback: int,
    trace_id: str,
) -> dict[str, Any]:
    """Write the task, then produce TaskAccepted and the RecipientBatches chunk by chunk as the recipients are read
    (each chunk: its read-model documents in one ``insert_many`` per collection, then its records, awaiting the
    broker's acknowledgement), and return the SDK's ``CreateAimSendTaskResponse`` once every record is durable.

    Resuming a task (same id) reuses its stored creation time, so every event is identical to the first try.
    """
    c = context.collections
    existing = await c.tasks.find_one({"_id": task_id, "tenant_id": principal.tenant_id})
    created_at: datetime = existing["created_at"] if existing else utc_now()
    batch_count = prepared.batch_count
    task = task_document(
        principal,
        prepared,
        task_id=task_id,
        created_at=created_at,
        fallback=fallback_name,
        batch_count=batch_count,
        trace_id=trace_id,
    )
    if existing is None:
        try:
            await c.tasks.insert_one(task)
        except DuplicateKeyError:
            pass
    ctx = task_context(context, principal, prepared, task_id=task_id, created_at=created_at, fallback=fallback)
    tenant = principal.tenant_id
    recipients = prepared.recipients
    accepted = task_pb2.TaskAccepted(
        meta=event_meta(stable_id("task-accepted", task_id), tenant, trace_id),
        ctx=ctx,
        submitted=recipients.submitted,
        unique_recipients=recipients.unique,
        duplicates=recipients.duplicates,
        batch_count=batch_count,
    )
    try:
        await context.producer.send_many([(TASK_ACCEPTED, task_id, accepted)])
        async for chunk in recipients.chunks(build_settings(prepared)):
            await _publish_chunk(context, task, ctx, chunk, batch_count, trace_id)
    except BaseException:
        await c.tasks.update_one({"_id": task_id}, {"$set": {"state": STATE_FAILED}})
        raise
    await c.tasks.update_one(
        {"_id": task_id, "state": {"$in": [STATE_ACCEPTING, STATE_FAILED]}},
        {"$set": {"state": STATE_SUCCESS, "accepted_at": utc_now()}},
    )
    await complete_if_done(c, task_id)  # small tasks may be final before this point
    return create_response(task, prepared)


async def _publish_chunk(
    context: GatewayContext,
    task: dict[str, Any],
    ctx: task_pb2.TaskContext,
    chunk: Chunk,
    batch_count: int,
    trace_id: str,
) -> None:
    """One chunk of batches: the read-model documents first (the projector finds them), then the records."""
    c = context.collections
    task_id, tenant = task["_id"], task["tenant_id"]
    read_docs = [new_batch_documents(task, b.batch_no, b.batch_no * BATCH_SIZE, mobiles) for b, mobiles in chunk]
    await insert_all(c.recipient_batches, [doc for doc, _ in read_docs])
    await insert_all(c.batch_counts, [counts for _, counts in read_docs])
    events: list[tuple[Any, str, Any]] = []
    for batch, _ in chunk:
        batch.meta.CopyFrom(event_meta(stable_id("recipients", task_id, batch.batch_no), tenant, trace_id))
        batch.ctx.CopyFrom(ctx)
        batch.batch_count = batch_count
        events.append((RECIPIENTS, f"{task_id}:{batch.batch_no}", batch))
    await context.producer.send_many(events)


def create_response(task: dict[str, Any], prepared: PreparedTask) -> dict[str, Any]:
    echoed = prepared.recipients.echo()
    return {
        "task_name": task["task_name"],
        "sms_channel": task["sms_channel"],
        "resolve_task": {**task["resolve_task"], "params": echoed},
        "task_id": task["_id"],
        "task_state": STATE_SUCCESS,
        "creation_time": iso_ms(task["created_at"]),
        "submission_count": task["submitted"],
        "send_count": 0,
        "resolve_count": 0,
        # The SDK's marker for "not determined yet": numbers are classified after the task is accepted.
        "support_resolve_count": -1,
        "failed_short_chains": [],
        # Magpie extensions
        "unique_recipients": task["unique_recipients"],
        "duplicates": task["duplicates"],
        "batch_count": task["batch_count"],
        "fallback": task["fallback"],
        "operator": task.get("operator"),
    }


async def task_counts(collections: Collections, task_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Counters of each task: the sum over its batches' counter documents."""
    ids = list(task_ids)
    by_task: dict[str, list[dict[str, Any]]] = {task_id: [] for task_id in ids}
    if ids:
        async for doc in collections.batch_counts.find({"task_id": {"$in": ids}}, {"task_id": 1, "c": 1, "r": 1}):
            by_task.setdefault(doc["task_id"], []).append(doc)
    return {task_id: sum_counters(docs) for task_id, docs in by_task.items()}


def summary_state(task: dict[str, Any]) -> str:
    if task["state"] == STATE_COMPLETED:
        return "COMPLETED"
    if task["state"] == STATE_FAILED:
        return "FAILED"
    return "SENDING"


def task_view(task: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    return {
        "task_name": task["task_name"],
        "sms_channel": task["sms_channel"],
        "resolve_task": {**task["resolve_task"], "params": None},
        "task_id": task["_id"],
        "task_state": STATE_SUCCESS if task["state"] == STATE_ACCEPTING else task["state"],
        "creation_time": iso_ms(task["created_at"]),
        "submission_count": task["submitted"],
        "send_count": counts["submitted"],
        "resolve_count": counts["resolved"],
        "support_resolve_count": counts["smart"],
        "failed_short_chains": [],
        "success_number": counts["delivered"],
        "operator": task.get("operator"),  # Magpie extension: the sub-user (or main account) that created it
        "magpie_summary": {
            "state": summary_state(task),
            "submitted": task["submitted"],
            "unique_recipients": task["unique_recipients"],
            "duplicates": task["duplicates"],
            "classified": counts["classified"],
            "resolvable": counts["smart"],
            "degraded": counts["degraded"],
            "vms": counts["vms"],
            "skipped": counts["skipped"],
            "invalid": counts["invalid"],
            "sent": counts["submitted"],
            "delivered": counts["delivered"],
            "failed": counts["failed"],
            "timeout": counts["timeout"],
            "resolved": counts["resolved"],
            "final": counts["final"],
            "fallback": task.get("fallback"),
            "completed_time": iso(task.get("completed_at")),
            "number_check": number_check(int(task["unique_recipients"]), counts),
        },
    }


async def complete_if_done(collections: Collections, task_id: str, task: dict[str, Any] | None = None) -> bool:
    """Mark an accepted task COMPLETED when all its batches are final; True when it is (now) completed."""
    if task is None:
        task = await collections.tasks.find_one({"_id": task_id}, {"final_batches": 1, "batch_count": 1, "state": 1})
    if task is None:
        return False
    if task["state"] == STATE_COMPLETED:
        return True
    if task["state"] != STATE_SUCCESS or len(task.get("final_batches", [])) < task["batch_count"]:
        return False
    await collections.tasks.update_one(
        {"_id": task_id, "state": STATE_SUCCESS}, {"$set": {"state": STATE_COMPLETED, "completed_at": utc_now()}}
    )
    return True


async def mark_batches_final(collections: Collections, finals: Iterable[tuple[str, int]]) -> None:
    """Record batches whose recipients are all final; a task whose batches all are becomes COMPLETED.

    Idempotent (a set of batch numbers), so replays and redeliveries are harmless."""
    for task_id, batch_no in finals:
        task = await collections.tasks.find_one_and_update(
            {"_id": task_id},
            {"$addToSet": {"final_batches": batch_no}},
            projection={"final_batches": 1, "batch_count": 1, "state": 1},
            return_document=ReturnDocument.AFTER,
        )
        if task is not None:
            await complete_if_done(collections, task_id, task)
