"""Classify numbers for a template: valid? which carrier? does the handset render the card?

One call handles a whole batch with ONE Redis round trip: a single ``MGET`` (``fast_mget``) of every number's
device key, every number's portability key and the registry's warm marker. Then, per number: the portability
override or the segment carrier, the device's interned profile id, and the capability engine's verdict for the
template's approved vendors. Verdicts are cached per (approved vendors, profile id): a campaign of a million
numbers over a few thousand profiles asks the engine a few thousand times.

Reasons are the capability engine's ``Reason`` names (``UNKNOWN_MODEL``, ``OS_TOO_OLD``, ``APP_TOO_OLD``,
``SWITCH_OFF``, ``VENDOR_NOT_APPROVED``, ``MISSING_APP_VERSION`` ...), except that a number the registry does not
know is ``UNKNOWN_DEVICE``; an invalid or unallocated number is ``INVALID_NUMBER``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import redis.asyncio as aioredis

from magpie_number_resolver.capability import CapabilityEngine, Outcome, Reason, Verdict
from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.fast_mget import mget
from magpie_number_resolver.hotcache import HotCache, RegistryNotReady
from magpie_number_resolver.metrics import LOOKUP_SECONDS, PROFILE_MISSING, VERDICT_CACHE
from magpie_number_resolver.numbers import parse
from magpie_number_resolver.portability import PortabilityStore
from magpie_number_resolver.profiles import ProfileStore
from magpie_number_resolver.registry import DeviceRegistry

log = logging.getLogger(__name__)

INVALID_NUMBER = "INVALID_NUMBER"
UNKNOWN_DEVICE = "UNKNOWN_DEVICE"


@dataclass(frozen=True, slots=True)
class Capability:
    """The template-specific part of a verdict (shared by every number with the same profile)."""

    smart: bool
    buttons: bool
    reason: str  # "" when smart
    vendor: str  # "" when unknown


class NumberResult(NamedTuple):
    msisdn: str  # "" when invalid
    carrier: str  # "" when invalid
    valid: bool
    capability: Capability


INVALID = NumberResult("", "", False, Capability(False, False, INVALID_NUMBER, ""))


def reason_name(reason: Reason | None) -> str:
    if reason is None:
        return ""
    if reason is Reason.NO_DEVICE_RECORD:
        return UNKNOWN_DEVICE
    return reason.name


def capability_of(verdict: Verdict) -> Capability:
    outcome = verdict.outcome
    smart = outcome is Outcome.RENDER or outcome is Outcome.RENDER_BUTTONS
    return Capability(
        smart=smart,
        buttons=outcome is Outcome.RENDER_BUTTONS,
        reason="" if smart else reason_name(verdict.reason),
        vendor=verdict.vendor or "",
    )


def vendor_set(vendors: Iterable[str]) -> frozenset[str]:
    """Approved vendors as the engine's codes (upper case); an empty set approves no vendor."""
    return frozenset(v.strip().upper() for v in vendors if v and v.strip())


class Classifier:
    def __init__(
        self,
        redis: aioredis.Redis,
        registry: DeviceRegistry,
        portability: PortabilityStore,
        profiles: ProfileStore,
        hot: HotCache,
        engine: CapabilityEngine,
        segments: SegmentTable,
        verdict_cache_size: int = 200_000,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.portability = portability
        self.profiles = profiles
        self.hot = hot
        self.engine = engine
        self.segments = segments
        self.verdict_cache_size = verdict_cache_size
        self._dev_prefix = registry.key("").encode()
        self._port_prefix = portability.key("").encode()
        self._marker = hot.marker.encode()
        self._verdicts: dict[frozenset[str] | None, dict[bytes | None, Capability]] = {}
        self._cached = 0

    async def classify(self, mobiles: Sequence[str], approved_vendors: frozenset[str] | None) -> list[NumberResult]:
        """One result per mobile, in order; ``approved_vendors`` None = any vendor (see the module docstring)."""
        table = self.segments
        parsed = [parse(mobile, table) for mobile in mobiles]
        valid = [p for p in parsed if p is not None]
        if not valid:
            return [INVALID] * len(mobiles)
        dev_prefix = self._dev_prefix
        port_prefix = self._port_prefix
        keys = [dev_prefix + msisdn.encode() for msisdn, _ in valid]
        keys.extend([port_prefix + msisdn.encode() for msisdn, _ in valid])
        keys.append(self._marker)
        started = time.perf_counter()
        values = await mget(self.redis, keys)
        LOOKUP_SECONDS.observe(time.perf_counter() - started)
        if values[-1] is None:
            self.hot.start_fill()
            raise RegistryNotReady("the device registry is not loaded into Redis yet (fill in progress)")
        count = len(valid)
        ids = values[:count]
        ports = values[count : 2 * count]
        cache = self._verdicts.get(approved_vendors)
        if cache is None:
            cache = self._verdicts[approved_vendors] = {}
        unseen = [i for i in ids if i is not None and i not in cache and self.profiles.cached_device(i) is None]
        if unseen:
            await self.profiles.resolve(unseen)
        results: list[NumberResult] = []
        position = 0
        misses = 0
        for item in parsed:
            if item is None:
                results.append(INVALID)
                continue
            msisdn, carrier = item
            profile_id = ids[position]
            ported = ports[position]
            position += 1
            capability = cache.get(profile_id)
            if capability is None:
                misses += 1
                capability = self._evaluate(profile_id, approved_vendors, cache)
            results.append(NumberResult(msisdn, ported.decode() if ported else carrier, True, capability))
        VERDICT_CACHE.labels("hit").inc(count - misses)
        if misses:
            VERDICT_CACHE.labels("miss").inc(misses)
        return results

    def _evaluate(
        self, profile_id: bytes | None, vendors: frozenset[str] | None, cache: dict[bytes | None, Capability]
    ) -> Capability:
        device = None
        if profile_id is not None:
            device = self.profiles.cached_device(profile_id)
            if device is None:
                PROFILE_MISSING.inc()
                log.error("profile id without a profile; treating the number as unknown", extra={"id": profile_id})
        capability = capability_of(self.engine.evaluate(device, vendors))
        if self._cached >= self.verdict_cache_size:
            self._verdicts.clear()
            self._verdicts[vendors] = cache = {}
            self._cached = 0
        if device is not None or profile_id is None:
            cache[profile_id] = capability
            self._cached += 1
        return capability
