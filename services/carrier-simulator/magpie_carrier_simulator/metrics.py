"""Prometheus exposition of the simulator's counters, read at scrape time (no per-message metric calls)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from magpie_carrier_simulator.simulator import CarrierSimulator


class SimulatorCollector(Collector):
    def __init__(self, simulator: CarrierSimulator) -> None:
        self._simulator = simulator

    def collect(self) -> Iterator[Metric]:
        stats = self._simulator.stats()
        submits = CounterMetricFamily("carrier_sim_submits", "submit_sm received, by answer", labels=["status"])
        for status, count in stats["submit_status"].items():
            submits.add_metric([status], count)
        yield submits
        outcomes = CounterMetricFamily("carrier_sim_outcomes", "accepted submit_sm, by receipt stat", labels=["stat"])
        for stat, count in stats["outcomes"].items():
            outcomes.add_metric([stat], count)
        yield outcomes
        yield CounterMetricFamily("carrier_sim_messages", "messages (concatenated parts once)", value=stats["messages"])
        receipts = stats["receipts"]
        yield CounterMetricFamily(
            "carrier_sim_receipts_generated", "delivery receipts generated", value=receipts["generated"]
        )
        yield CounterMetricFamily(
            "carrier_sim_receipts_delivered", "receipts acknowledged with ESME_ROK", value=receipts["delivered"]
        )
        yield CounterMetricFamily(
            "carrier_sim_receipt_attempts", "deliver_sm sent for receipts", value=receipts["attempts"]
        )
        yield GaugeMetricFamily(
            "carrier_sim_receipts_pending", "receipts not yet acknowledged", value=receipts["pending"]
        )
        yield GaugeMetricFamily(
            "carrier_sim_duplicates", "messages submitted more than once", value=stats["duplicates"]
        )
        sessions = GaugeMetricFamily("carrier_sim_sessions_bound", "bound sessions", labels=["system_id"])
        for system_id, count in stats["sessions"]["bound_by_system_id"].items():
            sessions.add_metric([system_id], count)
        yield sessions


def build_registry(simulator: CarrierSimulator) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SimulatorCollector(simulator))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
