"""Carrier simulator: an SMSC speaking SMPP 3.4 with latency, throttling, failure injection and receipts."""

from magpie_carrier_simulator.config import SimulatorConfig
from magpie_carrier_simulator.simulator import CarrierSimulator

__all__ = ["CarrierSimulator", "SimulatorConfig"]
