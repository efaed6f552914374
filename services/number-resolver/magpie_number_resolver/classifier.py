"""Classify numbers for a template: valid? which carrier? does the handset render the card?

One call handles a whole batch with ONE Redis round trip: a single ``MGET`` (``fast_mget``) of every number's
device key, portability key and downgrade key, plus the registry's warm marker. Then, per number: the portability
override or the segment carrier, the device's interned profile id, and the capability engine's verdict for the
template's approved vendors. Verdicts are cached per (approved vendors, profile id): a campaign of a million
numbers over a few thousand profiles asks the engine a few thousand times.

On a registry miss the vendor capability provider is consulted when one is configured (``providers``: its answers
are cached in Redis with a TTL, so this is a second MGET for the misses only, and a provider call for the numbers
it was never asked about).

Verdict refinements on top of the engine (``learning`` writes the data behind them):

- an *observed* profile (its handset resolved a link) renders even when the table says otherwise (unknown model,
  incomplete fields, old versions): the handset proved it. The vendor filter still applies (the brand names the
  vendor); an observed profile whose brand is not a known vendor keeps the engine's verdict;
- a *downgraded* number (N delivered smart messages, none resolved) that would render is not smart:
  ``NEVER_RESOLVED``.

Reasons are the capability engine's ``Reason`` names (``UNKNOWN_MODEL``, ``OS_TOO_OLD``, ``APP_TOO_OLD``,
``SWITCH_OFF``, ``VENDOR_NOT_APPROVED``, ``MISSING_APP_VERSION`` ...), except that a number neither the registry nor
the provider knows is ``UNKNOWN_DEVICE``, an invalid or unallocated number is ``INVALID_NUMBER`` and a downgraded
one ``NEVER_RESOLVED``.

Speed: the batch path (:meth:`Classifier.prepare` / :meth:`Classifier.send` / :meth:`Classifier.finish`) works on
parallel lists, validates 11-digit numbers with two string methods and one dict look-up, and lets the worker send
the look-up of the next batch before it builds the output of the current one (see ``worker``).
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import redis.asyncio as aioredis

from magpie_number_resolver.capability import CapabilityEngine, Outcome, Reason, Verdict
from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.fast_mget import PendingMget, send_packed_mget
from magpie_number_resolver.hotcache import HotCache, RegistryNotReady
from magpie_number_resolver.metrics import LOOKUP_SECONDS, PROFILE_MISSING, VERDICT_CACHE
from magpie_number_resolver.numbers import national
from magpie_number_resolver.portability import PortabilityStore
from magpie_number_resolver.profiles import ProfileStore
from magpie_number_resolver.providers import ProviderCache
from magpie_number_resolver.registry import DeviceRegistry

log = logging.getLogger(__name__)

INVALID_NUMBER = "INVALID_NUMBER"
UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
NEVER_RESOLVED = "NEVER_RESOLVED"
VENDOR_NOT_APPROVED = Reason.VENDOR_NOT_APPROVED.name


@dataclass(frozen=True, slots=True)
class Capability:
    """The template-specific part of a verdict (shared by every number with the same profile).

    ``encoded`` caches the worker's serialised output fields per (route, carrier); it is not part of the value."""

    smart: bool
    buttons: bool
    reason: str  # "" when smart
    vendor: str  # "" when unknown
    encoded: dict[tuple[int, str], bytes] = field(default_factory=dict, compare=False, hash=False, repr=False)


class NumberResult(NamedTuple):
    msisdn: str  # "" when invalid
    carrier: str  # "" when invalid
    valid: bool
    capability: Capability


INVALID_CAPABILITY = Capability(False, False, INVALID_NUMBER, "")
INVALID = NumberResult("", "", False, INVALID_CAPABILITY)


@dataclass(slots=True)
class BatchResult:
    """One batch's classification. ``carriers`` is positional (one per mobile; None = invalid number, else the
    portability override or the segment carrier); ``msisdns`` and ``capabilities`` list the VALID numbers only,
    in order (the invalid ones are INVALID_NUMBER by definition)."""

    carriers: list[str | None]
    msisdns: list[bytes]  # b"8613800138000"
    capabilities: list[Capability]

    def results(self) -> list[NumberResult]:
        msisdns = iter(self.msisdns)
        capabilities = iter(self.capabilities)
        return [
            INVALID if carrier is None else NumberResult(next(msisdns).decode(), carrier, True, next(capabilities))
            for carrier in self.carriers
        ]


@dataclass(slots=True)
class Prepared:
    """A batch validated and keyed, its look-up not yet sent."""

    carriers: list[str | None]  # segment carrier per mobile; None = invalid
    valid: list[bytes]  # msisdns of the valid numbers, in order
    command: bytes  # the packed MGET (empty when no number is valid)
    key_count: int


_FIRST5 = operator.itemgetter(slice(0, 5))
_MSISDN_LENGTH = 13


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
        *,
        provider: ProviderCache | None = None,
        downgrade_prefix: str | None = None,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.portability = portability
        self.profiles = profiles
        self.hot = hot
        self.engine = engine
        self.segments = segments
        self.provider = provider
        self.verdict_cache_size = verdict_cache_size
        self._dev_prefix = registry.key("").encode()
        self._port_prefix = portability.key("").encode()
        self._downgrade_prefix = downgrade_prefix.encode() if downgrade_prefix is not None else None
        self._marker = hot.marker.encode()
        self._verdicts: dict[frozenset[str] | None, dict[bytes | None, Capability]] = {}
        self._downgraded: dict[Capability, Capability] = {}
        self._cached = 0
        self._by5 = segments.prefix_carriers
        # The 11-digit fast path relies on every listed segment being a 1[3-9] mobile segment (as ``national``).
        self._fast = all(len(p) == 5 and p.isdigit() and p[0] == "1" and p[1] in "3456789" for p in self._by5)

    # ------------------------------------------------------------------------------------------ batch path

    def prepare(self, mobiles: Sequence[str]) -> Prepared:
        """Validate the numbers and pack the look-up command (no I/O).

        The common case (11 ASCII digits) is checked with C-level maps over the whole batch; only the other
        spellings go through ``numbers.national`` one by one. The MGET is packed with one join per key group:
        every msisdn is 13 bytes, so each key of a group has the same length and header."""
        by5 = self._by5
        carriers: list[str | None] = list(map(by5.get, map(_FIRST5, mobiles)))
        regular = self._fast and set(map(len, mobiles)) <= {11}
        if regular:
            joined = "".join(mobiles)
            regular = joined.isdigit() and joined.isascii()
        nationals: list[str | None] = list(mobiles)
        if not regular:
            for position, mobile in enumerate(mobiles):
                if self._fast and len(mobile) == 11 and mobile.isdigit() and mobile.isascii():
                    continue
                number = national(mobile)
                nationals[position] = number
                carriers[position] = by5.get(number[:5]) if number is not None else None
        if None in carriers:
            chosen = [number for number, carrier in zip(nationals, carriers, strict=True) if carrier is not None]
        else:
            chosen = nationals
        if not chosen:
            return Prepared(carriers, [], b"", 0)
        valid = ("86" + ",86".join(chosen)).encode().split(b",")  # type: ignore[arg-type]
        groups = [self._dev_prefix, self._port_prefix]
        if self._downgrade_prefix is not None:
            groups.append(self._downgrade_prefix)
        count = len(valid)
        parts = [b"*%d\r\n$4\r\nMGET\r\n" % (count * len(groups) + 2)]
        for prefix in groups:
            header = b"$%d\r\n" % (len(prefix) + _MSISDN_LENGTH) + prefix
            parts.append(header)
            parts.append((b"\r\n" + header).join(valid))
            parts.append(b"\r\n")
        marker = self._marker
        parts.append(b"$%d\r\n%s\r\n" % (len(marker), marker))
        return Prepared(carriers, valid, b"".join(parts), count * len(groups) + 1)

    async def send(self, prepared: Prepared) -> PendingMget:
        """Send the batch's one MGET (the reply is read by :meth:`finish`)."""
        return await send_packed_mget(self.redis, prepared.command, prepared.key_count)

    async def finish(
        self, prepared: Prepared, pending: PendingMget, approved_vendors: frozenset[str] | None
    ) -> BatchResult:
        """Read the MGET reply and classify every number (``approved_vendors`` None = any vendor)."""
        started = time.perf_counter()
        values = await pending.result()
        LOOKUP_SECONDS.observe(time.perf_counter() - started)
        valid = prepared.valid
        count = len(valid)
        carriers = prepared.carriers
        if not count:
            return BatchResult(carriers, [], [])
        if values[-1] is None:
            self.hot.start_fill()
            raise RegistryNotReady("the device registry is not loaded into Redis yet (fill in progress)")
        ids = values[:count]
        if self.provider is not None and None in ids:
            misses = [position for position, value in enumerate(ids) if value is None]
            answers = await self.provider.profile_ids([valid[position] for position in misses])
            for position, profile_id in zip(misses, answers, strict=True):
                if profile_id is not None:
                    ids[position] = profile_id
        cache = self._verdicts.get(approved_vendors)
        if cache is None:
            cache = self._verdicts[approved_vendors] = {}
        capabilities: list[Capability | None] = list(map(cache.get, ids))
        misses_count = capabilities.count(None)
        if misses_count:
            cached_device = self.profiles.cached_device
            unseen = [i for i in set(ids) if i is not None and i not in cache and cached_device(i) is None]
            if unseen:
                await self.profiles.resolve(unseen)
            for position, capability in enumerate(capabilities):
                if capability is None:
                    capabilities[position] = self._evaluate(ids[position], approved_vendors, cache)
        VERDICT_CACHE.labels("hit").inc(count - misses_count)
        if misses_count:
            VERDICT_CACHE.labels("miss").inc(misses_count)
        ports = values[count : 2 * count]
        if ports.count(None) != count:
            positions = [position for position, carrier in enumerate(carriers) if carrier is not None]
            for index, ported in enumerate(ports):
                if ported is not None:
                    carriers[positions[index]] = ported.decode()
        if self._downgrade_prefix is not None:
            downgrades = values[2 * count : 3 * count]
            if downgrades.count(None) != count:
                for position, flag in enumerate(downgrades):
                    capability = capabilities[position]
                    if flag is not None and capability is not None and capability.smart:
                        capabilities[position] = self._downgrade(capability)
        return BatchResult(carriers, valid, capabilities)  # type: ignore[arg-type]

    async def lookup(self, mobiles: Sequence[str], approved_vendors: frozenset[str] | None) -> BatchResult:
        prepared = self.prepare(mobiles)
        return await self.finish(prepared, await self.send(prepared), approved_vendors)

    async def classify(self, mobiles: Sequence[str], approved_vendors: frozenset[str] | None) -> list[NumberResult]:
        """One result per mobile, in order; ``approved_vendors`` None = any vendor (see the module docstring)."""
        return (await self.lookup(mobiles, approved_vendors)).results()

    # ------------------------------------------------------------------------------------------ verdicts

    def _downgrade(self, capability: Capability) -> Capability:
        downgraded = self._downgraded.get(capability)
        if downgraded is None:
            if len(self._downgraded) >= 4096:
                self._downgraded.clear()
            downgraded = self._downgraded[capability] = Capability(False, False, NEVER_RESOLVED, capability.vendor)
        return downgraded

    def _observed(self, capability: Capability, brand: str, vendors: frozenset[str] | None) -> Capability:
        """The verdict of an observed handset (it resolved a link): renders unless its vendor is not approved."""
        if capability.smart or capability.reason == VENDOR_NOT_APPROVED or not brand:
            return capability
        vendor = self.engine.table.vendor_code(brand)
        if vendor is None:
            return capability
        if vendors is not None and vendor not in vendors:
            return Capability(False, False, VENDOR_NOT_APPROVED, vendor)
        return Capability(True, False, "", vendor)

    def _evaluate(
        self, profile_id: bytes | None, vendors: frozenset[str] | None, cache: dict[bytes | None, Capability]
    ) -> Capability:
        device = None
        profile = None
        if profile_id is not None:
            device = self.profiles.cached_device(profile_id)
            profile = self.profiles.cached_profile(profile_id)
            if device is None:
                PROFILE_MISSING.inc()
                log.error("profile id without a profile; treating the number as unknown", extra={"id": profile_id})
        capability = capability_of(self.engine.evaluate(device, vendors))
        if profile is not None and profile.observed:
            capability = self._observed(capability, profile.brand, vendors)
        if self._cached >= self.verdict_cache_size:
            self._verdicts.clear()
            self._verdicts[vendors] = cache = {}
            self._cached = 0
        if device is not None or profile_id is None:
            cache[profile_id] = capability
            self._cached += 1
        return capability
