"""The download center's worker: runs the export jobs of every tenant inside each gateway process.

A job (collection ``exports``) goes PENDING -> RUNNING -> SUCCEEDED | FAILED. Any number of gateway replicas run a
worker; a job is claimed atomically (``find_one_and_update`` of the oldest PENDING job, or of a RUNNING job whose
lease ran out because its worker died) with a fresh claim token, so two replicas never run one job at the same
time. While it runs, the worker renews the lease (``MAGPIE_EXPORT_LEASE_S``, default 60 s); every later write is
conditioned on the claim token, so a worker that lost its job (deleted by the tenant, or taken over after a stall)
drops its result and removes the file it wrote. A job interrupted three times (crashes, shutdowns mid-way) fails.
On shutdown a running job is handed back (PENDING) for the next worker.

The file is written to a temporary file (CSV: UTF-8 with a BOM so spreadsheet programs read Chinese text; XLSX:
openpyxl's write-only workbook), page by page in a worker thread so the event loop keeps serving requests, then
stored in GridFS with the ``files`` metadata (``console_files.GeneratedFiles``). Cells that a spreadsheet would
take as a formula (text starting with ``=``, ``+``, ``-``, ``@``, except phone numbers and plain numbers) are
prefixed with ``'`` in CSV and written as text in XLSX. A finished file is kept ``MAGPIE_EXPORT_RETENTION_DAYS``
(default 7) days, then the job and its file are removed. An export holds at most ``MAGPIE_EXPORT_MAX_ROWS``
(default 1,000,000) rows; a larger one fails with a message asking for a narrower selection.

Exports (``export_type``):

- ``SEND_TASKS``: one row per smart-message send task created in the window.
- ``SEND_DETAILS``: one row per recipient of one task, or of the tasks created in the window.
- ``RESOLUTION_DETAILS``: the recipients that received a smart-message link (route SMART), with whether and when
  the link was resolved.

Pending jobs are noticed within ``MAGPIE_EXPORT_POLL_S`` (default 2 s), at once when created on the same replica.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from prometheus_client import Counter
from pymongo import ReturnDocument

from magpie_common.config import env_float, env_int
from magpie_common.ids import new_id
from magpie_gateway.console_files import GeneratedFiles
from magpie_gateway.context import GatewayContext
from magpie_gateway.periodic import PeriodicWorker
from magpie_gateway.read_model import SMART, array, recipient_view
from magpie_gateway.tasks import task_counts, task_view
from magpie_gateway.timefmt import iso, utc_now

log = logging.getLogger(__name__)

PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STATES = (PENDING, RUNNING, SUCCEEDED, FAILED)

SEND_TASKS = "SEND_TASKS"
SEND_DETAILS = "SEND_DETAILS"
RESOLUTION_DETAILS = "RESOLUTION_DETAILS"
EXPORT_TYPES = (SEND_TASKS, SEND_DETAILS, RESOLUTION_DETAILS)
FORMATS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FILE_KIND = "export"
MAX_ATTEMPTS = 3
PAGE_TASKS = 200

EXPORTS_DONE = Counter("magpie_gateway_exports_total", "Export jobs finished", ["export_type", "outcome"])

COLUMNS: dict[str, tuple[str, ...]] = {
    SEND_TASKS: (
        "task_id",
        "task_name",
        "state",
        "creation_time",
        "completed_time",
        "tpl_id",
        "tpl_name",
        "sms_app_name",
        "sms_sign",
        "sms_tpl_id",
        "fallback",
        "submitted",
        "unique_recipients",
        "duplicates",
        "resolvable",
        "degraded",
        "skipped",
        "invalid",
        "sent",
        "delivered",
        "failed",
        "timeout",
        "resolved",
        "operator",
    ),
    SEND_DETAILS: (
        "task_id",
        "task_name",
        "tpl_id",
        "tpl_name",
        "sms_sign",
        "index",
        "cust_flag",
        "send_status",
        "stage",
        "route",
        "reason",
        "msg_id",
        "segments",
        "send_time",
        "receive_time",
        "result_code",
        "resolved",
        "resolve_time",
    ),
    RESOLUTION_DETAILS: (
        "task_id",
        "task_name",
        "tpl_id",
        "tpl_name",
        "index",
        "cust_flag",
        "send_status",
        "resolved",
        "resolve_time",
    ),
}

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBERISH = re.compile(r"[+-]?[0-9][0-9 .\-]*")


class ExportFailed(Exception):
    """The export cannot be produced; the message is shown to the tenant."""


class _Lost(Exception):
    """The job is no longer ours (deleted, or claimed by another worker after our lease ran out)."""


class _Stopping(Exception):
    """The worker is shutting down mid-job."""


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_safe(value: Any) -> Any:
    value = _cell(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBERISH.fullmatch(value):
        return "'" + value
    return value


class _Writer:
    """Rows to a temporary file, CSV or XLSX (blocking methods: called in a worker thread)."""

    def __init__(self, file_format: str, columns: Sequence[str], sheet: str) -> None:
        self.format = file_format
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.rows = 0
        self._detached = False
        if file_format == "csv":
            self._text = io.TextIOWrapper(self.file, encoding="utf-8-sig", newline="")
            self._csv = csv.writer(self._text)
            self._csv.writerow(columns)
        else:
            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet(sheet[:31])
            self._sheet.append(list(columns))

    def _xlsx_cell(self, value: Any) -> Any:
        value = _cell(value)
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
            if value.startswith("="):
                cell = WriteOnlyCell(self._sheet, value=value)
                cell.data_type = "s"
                return cell
        return value

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.format == "csv":
            self._csv.writerows([csv_safe(v) for v in row] for row in rows)
        else:
            for row in rows:
                self._sheet.append([self._xlsx_cell(v) for v in row])
        self.rows += len(rows)

    def finish(self) -> IO[bytes]:
        """The finished file, positioned at its start."""
        if self.format == "csv":
            self._text.flush()
            self._text.detach()
            self._detached = True
        else:
            self._book.save(self.file)
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        if self.format == "csv" and not self._detached:
            self._text.close()  # closes the file too
        else:
            self.file.close()


def _window_query(job: dict[str, Any]) -> dict[str, Any]:
    params = job["params"]
    query: dict[str, Any] = {"tenant_id": job["tenant_id"]}
    if params.get("task_id"):
        query["_id"] = params["task_id"]
    else:
        query["created_at"] = {"$gte": params["begin"], "$lte": params["end"]}
    return query


def task_row(task: dict[str, Any], counts: dict[str, int]) -> list[Any]:
    view = task_view(task, counts)
    summary = view["magpie_summary"]
    channel = view["sms_channel"]
    values = {
        "task_id": view["task_id"],
        "task_name": view["task_name"],
        "state": summary["state"],
        "creation_time": view["creation_time"],
        "completed_time": summary["completed_time"],
        "tpl_id": task.get("tpl_id"),
        "tpl_name": task.get("tpl_name"),
        "sms_app_name": channel.get("sms_app_name"),
        "sms_sign": channel.get("sms_sign"),
        "sms_tpl_id": channel.get("sms_tpl_id"),
        "fallback": summary["fallback"],
        "submitted": summary["submitted"],
        "unique_recipients": summary["unique_recipients"],
        "duplicates": summary["duplicates"],
        "resolvable": summary["resolvable"],
        "degraded": summary["degraded"],
        "skipped": summary["skipped"],
        "invalid": summary["invalid"],
        "sent": summary["sent"],
        "delivered": summary["delivered"],
        "failed": summary["failed"],
        "timeout": summary["timeout"],
        "resolved": summary["resolved"],
        "operator": view["operator"],
    }
    return [values[c] for c in COLUMNS[SEND_TASKS]]


class ExportWorker(PeriodicWorker):
    """Claims and runs export jobs until ``stop()``; has the ``run``/``stop``/``ready`` of a consumer loop so the
    gateway runs it with its loops (``periodic.PeriodicWorker``); ``wake()``: a job was created or retried on this
    replica, look now instead of at the next poll."""

    failure_message = "export worker iteration failed"

    def __init__(
        self,
        context: GatewayContext,
        *,
        poll_s: float | None = None,
        max_poll_s: float | None = None,
        lease_s: float | None = None,
        max_rows: int | None = None,
        retention_days: float | None = None,
    ) -> None:
        super().__init__(
            poll_s if poll_s is not None else env_float("MAGPIE_EXPORT_POLL_S", 2.0),
            max_interval_s=max_poll_s if max_poll_s is not None else env_float("MAGPIE_EXPORT_POLL_MAX_S", 30.0),
        )
        self._context = context
        self._c = context.collections
        self._files = GeneratedFiles(context.collections.database)
        self.lease = timedelta(seconds=lease_s if lease_s is not None else env_float("MAGPIE_EXPORT_LEASE_S", 60.0))
        self.max_rows = max_rows if max_rows is not None else env_int("MAGPIE_EXPORT_MAX_ROWS", 1_000_000)
        days = retention_days if retention_days is not None else env_float("MAGPIE_EXPORT_RETENTION_DAYS", 7.0)
        self.retention = timedelta(days=days)
        self.name = new_id("W")
        self._next_cleanup = utc_now()

    @property
    def poll_s(self) -> float:
        """Seconds between looks for a job while jobs keep coming; idle, the wait doubles up to ``max_interval_s``
        (``periodic``). ``wake()`` (a job created or retried on this replica) looks at once."""
        return self.interval_s

    async def round(self) -> bool:
        """Run one claimed job (and look for the next at once), or clean up and wait for the next poll."""
        job = await self.claim()
        if job is not None:
            await self.process(job)
            return True
        await self.cleanup()
        return False

    async def claim(self) -> dict[str, Any] | None:
        now = utc_now()
        job: dict[str, Any] | None = await self._c.exports.find_one_and_update(
            {"$or": [{"state": PENDING}, {"state": RUNNING, "lease_until": {"$lt": now}}]},
            {
                "$set": {
                    "state": RUNNING,
                    "claim": new_id("C"),
                    "worker": self.name,
                    "lease_until": now + self.lease,
                    "started_at": now,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("created_at", 1), ("_id", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return job

    def _mine(self, job: dict[str, Any]) -> dict[str, Any]:
        return {"_id": job["_id"], "tenant_id": job["tenant_id"], "claim": job["claim"]}

    async def _finish(self, job: dict[str, Any], update: dict[str, Any]) -> bool:
        now = utc_now()
        result = await self._c.exports.update_one(
            self._mine(job), {"$set": {**update, "updated_at": now, "lease_until": None, "claim": None}}
        )
        return result.matched_count == 1

    async def process(self, job: dict[str, Any]) -> None:
        export_type = job["export_type"]
        if job.get("attempts", 1) > MAX_ATTEMPTS:
            await self._finish(
                job,
                {
                    "state": FAILED,
                    "error_msg": f"the export was interrupted {MAX_ATTEMPTS} times",
                    "finished_at": utc_now(),
                },
            )
            EXPORTS_DONE.labels(export_type, "failed").inc()
            return
        try:
            file_id, rows, size = await self._produce(job)
        except _Lost:
            log.info("export job lost", extra={"export_id": job["_id"]})
            return
        except _Stopping:
            await self._c.exports.update_one(
                self._mine(job),
                {"$set": {"state": PENDING, "claim": None, "lease_until": None}, "$inc": {"attempts": -1}},
            )
            return
        except ExportFailed as exc:
            await self._finish(job, {"state": FAILED, "error_msg": str(exc), "finished_at": utc_now()})
            EXPORTS_DONE.labels(export_type, "failed").inc()
            return
        except Exception:
            log.exception("export job failed", extra={"export_id": job["_id"]})
            await self._finish(
                job, {"state": FAILED, "error_msg": "internal error while writing the file", "finished_at": utc_now()}
            )
            EXPORTS_DONE.labels(export_type, "failed").inc()
            return
        now = utc_now()
        stored = await self._finish(
            job,
            {
                "state": SUCCEEDED,
                "file_id": file_id,
                "row_count": rows,
                "file_size": size,
                "error_msg": None,
                "finished_at": now,
                "expires_at": now + self.retention,
            },
        )
        if not stored:
            await self._files.delete(file_id)
            log.info("export job gone before it finished; file removed", extra={"export_id": job["_id"]})
            return
        EXPORTS_DONE.labels(export_type, "succeeded").inc()

    async def _heartbeat(self, job: dict[str, Any], state: dict[str, datetime]) -> None:
        if self.stopping:
            raise _Stopping
        now = utc_now()
        if now - state["renewed"] < self.lease / 3:
            return
        result = await self._c.exports.update_one(self._mine(job), {"$set": {"lease_until": now + self.lease}})
        if result.matched_count != 1:
            raise _Lost
        state["renewed"] = now

    async def _produce(self, job: dict[str, Any]) -> tuple[str, int, int]:
        export_type = job["export_type"]
        writer = await asyncio.to_thread(_Writer, job["file_format"], COLUMNS[export_type], export_type.lower())
        beat = {"renewed": utc_now()}
        try:
            pages = self._task_rows(job) if export_type == SEND_TASKS else self._recipient_rows(job)
            async for rows in pages:
                await self._heartbeat(job, beat)
                await asyncio.to_thread(writer.write, rows)
            source = await asyncio.to_thread(writer.finish)
            await self._heartbeat(job, beat)
            file_id = await self._files.put(
                job["tenant_id"], FILE_KIND, job["file_name"], job["file_format"], FORMATS[job["file_format"]], source
            )
            return file_id, writer.rows, source.tell()
        finally:
            await asyncio.to_thread(writer.close)

    async def _task_rows(self, job: dict[str, Any]) -> AsyncIterator[list[list[Any]]]:
        query = _window_query(job)
        total = await self._c.tasks.count_documents(query)
        if total > self.max_rows:
            raise ExportFailed(f"{total} rows exceed the limit of {self.max_rows}; choose a shorter time window")
        cursor = self._c.tasks.find(query).sort([("created_at", -1), ("_id", 1)])
        batch: list[dict[str, Any]] = []
        async for task in cursor:
            batch.append(task)
            if len(batch) >= PAGE_TASKS:
                yield await self._task_page(batch)
                batch = []
        if batch:
            yield await self._task_page(batch)

    async def _task_page(self, tasks: list[dict[str, Any]]) -> list[list[Any]]:
        counts = await task_counts(self._c, [t["_id"] for t in tasks])
        return [task_row(t, counts[t["_id"]]) for t in tasks]

    async def _recipient_rows(self, job: dict[str, Any]) -> AsyncIterator[list[list[Any]]]:
        only_smart = job["export_type"] == RESOLUTION_DETAILS
        columns = COLUMNS[job["export_type"]]
        tasks = (
            await self._c.tasks.find(_window_query(job), {"unique_recipients": 1})
            .sort([("created_at", -1), ("_id", 1)])
            .to_list(None)
        )
        total = sum(int(t.get("unique_recipients") or 0) for t in tasks)
        if total > self.max_rows:
            raise ExportFailed(
                f"{total} recipients exceed the limit of {self.max_rows} rows; export one task or a shorter window"
            )
        for task in tasks:
            cursor = self._c.recipient_batches.find({"tenant_id": job["tenant_id"], "task_id": task["_id"]}).sort(
                "batch_no", 1
            )
            async for doc in cursor:
                routes = array(doc, "route")
                rows = []
                for position in range(doc["n"]):
                    if only_smart and routes[position] != SMART:
                        continue
                    view = recipient_view(doc, position)
                    rows.append([view.get(c) for c in columns])
                if rows:
                    yield rows

    async def cleanup(self) -> None:
        """Remove finished exports whose retention ran out (at most every minute)."""
        now = utc_now()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + timedelta(minutes=1)
        async for job in self._c.exports.find({"state": SUCCEEDED, "expires_at": {"$lt": now}}).limit(500):
            deleted = await self._c.exports.find_one_and_delete(
                {"_id": job["_id"], "tenant_id": job["tenant_id"], "state": SUCCEEDED}
            )
            if deleted is not None and deleted.get("file_id"):
                await self._files.delete(deleted["file_id"])
                log.info("expired export removed", extra={"export_id": job["_id"], "expired": iso(job["expires_at"])})
