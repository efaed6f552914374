"""Hourly settlements, maintained from the ledger (§6: usage of 08:00-09:00 is settled around 10:00).

A settlement is the total of one (tenant, hour, product), the hour being that of ``charged_at``. Each run
recomputes, from the ledger, every hour from the one before the watermark up to the current (open) hour and writes
the totals with ``$set``: recomputing is idempotent, so any number of billing instances may run it. An hour becomes
``final`` once it ended ``grace`` ago (longer than any charge transaction lasts, so no unit can still commit into
it); the watermark ``settled_through`` then moves to its end. Summaries read final settlements before the
watermark and the ledger after it, so their cost does not grow with the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import UpdateOne

from magpie_billing import metrics
from magpie_billing.clock import HOUR, Clock, floor_hour, utcnow
from magpie_billing.store import WATERMARK_ID, BillingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SettleReport:
    hours: int  # hours recomputed
    rows: int  # settlement documents written
    settled_through: datetime | None


def settlement_id(tenant_id: str, product: str, hour: datetime) -> str:
    return f"{tenant_id}|{product}|{hour:%Y%m%d%H}"


class Settler:
    def __init__(
        self,
        store: BillingStore,
        *,
        clock: Clock = utcnow,
        interval_s: float = 60.0,
        grace: timedelta = timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.grace = grace
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Settle every ``interval_s`` until stopped; a failed run is logged and retried at the next tick."""
        while not self._stopping.is_set():
            try:
                await self.settle()
            except Exception:
                log.exception("settlement run failed; retrying at the next interval")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass

    async def settle(self) -> SettleReport:
        now = self.clock()
        watermark = await self.store.watermark()
        if watermark is not None:
            start = watermark - HOUR
        else:
            first = await self.store.ledger.find_one({}, sort=[("charged_at", 1)], projection={"charged_at": 1})
            if first is None:
                return SettleReport(0, 0, None)
            start = floor_hour(first["charged_at"])
        current = floor_hour(now)
        closed_through = floor_hour(now - self.grace)  # every hour ending at or before this is final
        hours = 0
        rows = 0
        hour = start
        while hour <= current:
            rows += await self._settle_hour(hour, final=hour + HOUR <= closed_through, now=now)
            hours += 1
            hour += HOUR
        settled_through = watermark
        if watermark is None or closed_through > watermark:
            await self.store.state.update_one(
                {"_id": WATERMARK_ID}, {"$max": {"settled_through": closed_through}}, upsert=True
            )
            settled_through = closed_through
        if settled_through is not None:
            metrics.SETTLED_THROUGH.set(settled_through.timestamp())
        return SettleReport(hours, rows, settled_through)

    async def _settle_hour(self, hour: datetime, *, final: bool, now: datetime) -> int:
        cursor = await self.store.ledger.aggregate(
            [
                {"$match": {"charged_at": {"$gte": hour, "$lt": hour + HOUR}}},
                {
                    "$group": {
                        "_id": {"tenant_id": "$tenant_id", "product": "$product"},
                        "units": {"$sum": "$count"},
                        "quantity": {"$sum": "$quantity"},
                        "from_packages": {"$sum": "$from_packages"},
                        "on_demand": {"$sum": "$on_demand"},
                    }
                },
            ]
        )
        updates = []
        async for row in cursor:
            tenant_id, product = row["_id"]["tenant_id"], row["_id"]["product"]
            updates.append(
                UpdateOne(
                    {"_id": settlement_id(tenant_id, product, hour)},
                    {
                        "$set": {
                            "tenant_id": tenant_id,
                            "product": product,
                            "hour": hour,
                            "units": row["units"],
                            "quantity": row["quantity"],
                            "from_packages": row["from_packages"],
                            "on_demand": row["on_demand"],
                            "final": final,
                            "settled_at": now,
                        }
                    },
                    upsert=True,
                )
            )
        if updates:
            await self.store.settlements.bulk_write(updates, ordered=False)
        return len(updates)
