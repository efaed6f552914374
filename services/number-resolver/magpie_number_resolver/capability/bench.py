"""Micro-benchmark of per-number classification: ``bench(n) -> numbers per second``.

The workload imitates a campaign batch: ``n`` numbers (1 % malformed), each with its own ``Device`` instance
(as a registry read would return) drawn from ``distinct_devices`` device profiles over every brand of the table:
listed and unknown models, OS and app versions on both sides of every bound, switches on and off, missing fields.
Each number is classified with :meth:`CapabilityEngine.classify` against a template approved for five of the seven
vendors. Building the workload is not timed; the engine starts cold (empty caches), so the figure includes cache
misses for every profile.

Run ``python -m magpie_number_resolver.capability [n]`` to print the figures (cached and uncached).
"""

from __future__ import annotations

import random
import time

from .engine import CapabilityEngine, Device
from .loader import load_table
from .table import Bound, Brand, CapabilityTable

__all__ = ["bench", "make_workload"]

_APPROVED = frozenset({"HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO"})


def _around(bound: Bound, rng: random.Random) -> str:
    """A version string just below, at, or above a bound (or a far one), in a handset-like spelling."""
    parts = list(bound.lower.parts)
    choice = rng.random()
    if choice < 0.2 and parts[-1] > 0:
        parts[-1] -= 1
    elif choice < 0.6:
        parts[-1] += rng.randint(1, 50)
    elif choice < 0.8:
        parts[0] += 1
    text = ".".join(str(p) for p in parts)
    return text + ("(SP1)" if rng.random() < 0.1 else "")


def _profile(table: CapabilityTable, brand: Brand, rng: random.Random) -> Device:
    models = brand.models
    model = rng.choice(models).name if rng.random() < 0.95 else f"Unlisted {rng.randint(1, 99)}"
    rule = rng.choice(brand.os_rules)
    os_name = rng.choice(sorted(rule.os)) if rule.os else None
    os_version = _around(rule.os_version, rng) if rule.os_version else None
    android = _around(rule.android_version, rng) if rule.android_version else str(rng.randint(6, 14))
    engine_version = _around(rule.quick_app_engine_version, rng) if rule.quick_app_engine_version else None
    condition = rng.choice(rule.conditions)
    version = _around(condition.bound, rng)
    app = version if condition.field == "app_version" else None
    plugin = version if condition.field == "plugin_version" else None
    if rng.random() < 0.03:
        app = None
    return Device(
        brand=rng.choice((brand.vendor, *brand.names)),
        model=model,
        os_name=os_name,
        os_version=os_version,
        android_version=android,
        app_version=app,
        plugin_version=plugin,
        quick_app_engine_version=engine_version,
        smart_info_service=rng.random() < 0.9,
        rich_media_display=rng.random() < 0.9,
    )


def make_workload(
    table: CapabilityTable, n: int, distinct_devices: int = 5_000, seed: int = 7
) -> list[tuple[str, Device | None]]:
    rng = random.Random(seed)
    brands = list(table.brands.values())
    profiles = [_profile(table, rng.choice(brands), rng) for _ in range(distinct_devices)]
    workload: list[tuple[str, Device | None]] = []
    for _ in range(n):
        number = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
        if rng.random() < 0.01:
            number = number[:-1]
        profile = rng.choice(profiles)
        # a fresh instance per number, equal to the profile (as a registry read would return it)
        device = None if rng.random() < 0.02 else Device(*(getattr(profile, f) for f in Device.__slots__))
        workload.append((number, device))
    return workload


def bench(n: int = 200_000, *, distinct_devices: int = 5_000, cache_size: int = 100_000, seed: int = 7) -> float:
    """Classify ``n`` numbers on one core and return numbers per second (see the module docstring)."""
    if n <= 0:
        raise ValueError("n must be positive")
    table = load_table()
    workload = make_workload(table, n, distinct_devices, seed)
    engine = CapabilityEngine(table, cache_size=cache_size)
    classify = engine.classify
    approved = _APPROVED
    start = time.perf_counter()
    for number, device in workload:
        classify(number, device, approved)
    elapsed = time.perf_counter() - start
    return n / elapsed
