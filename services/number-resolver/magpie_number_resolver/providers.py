"""Vendor capability providers: who else may know the handset of a number the registry does not know.

Handset vendors (and some carriers) run capability services that answer "which handset is behind this number?" for
their own users. The classifier consults one on a registry miss (``classifier``), through :class:`ProviderCache`,
which keeps every answer in Redis with a TTL so that a vendor is asked about a number at most once per TTL.

The interface (:class:`CapabilityProvider`)::

    async def lookup(numbers: Sequence[str]) -> dict[str, DeviceProfile | None]

``numbers`` are msisdns (``8613800138000``). The answer maps each number the provider answered for to its profile,
or to None when the provider does not know the number (a negative answer, cached too). A number absent from the
answer was not answered (cached nowhere, asked again next time). An exception means the provider is unavailable.

Implementations
- :class:`SimulatedProvider`: in-process and deterministic (a hash of seed and number decides hit or miss and which
  profile), with a configurable latency and hit rate. Its profile pool is drawn from the capability table
  (capable and incapable handsets of every brand), so classification of its answers exercises the real rules.
- :class:`HttpProvider`: ``POST {url}`` with ``{"numbers": [...]}`` answered by ``{"devices": {msisdn: {device
  fields} | null}}`` (the fields of ``devices.build_profile``; an entry that fails validation is logged and treated
  as not answered). ``vendor_sim`` serves the simulated provider this way on a real socket, which is how the
  tests and a demo run it (``python -m magpie_number_resolver.vendor_sim``).

Cache (:class:`ProviderCache`, Redis ``rkey("vp", msisdn)``): a positive answer is stored as the interned profile id
(``profiles``; the profile itself goes to MongoDB and the Redis profile hash like any other) with
``MAGPIE_NR_PROVIDER_TTL_S``; a negative one as ``-`` with the shorter ``MAGPIE_NR_PROVIDER_NEGATIVE_TTL_S``. The
look-up of a batch's misses is one MGET; numbers not cached are asked in chunks of ``MAGPIE_NR_PROVIDER_BATCH``
(at most ``MAGPIE_NR_PROVIDER_CONCURRENCY`` calls at a time), each bounded by ``MAGPIE_NR_PROVIDER_TIMEOUT_MS``.
A provider error or timeout never fails a campaign: its numbers stay unknown devices for that batch, nothing is
cached, the error is counted (``magpie_number_resolver_provider_calls_total{result="error"}``) and logged.

The registry always wins: the provider is asked only for numbers without a registry record, and a record written
later (import, learning) hides a cached provider answer at once. Provider answers are not written to the registry:
they are the vendor's data, refreshed when the TTL runs out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import redis.asyncio as aioredis

from magpie_common.config import Settings
from magpie_number_resolver.capability import default_engine
from magpie_number_resolver.capability.bench import make_workload
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.devices import DeviceProfile, FieldError, build_profile
from magpie_number_resolver.fast_mget import mget
from magpie_number_resolver.metrics import PROVIDER_CACHE, PROVIDER_CALLS, PROVIDER_SECONDS
from magpie_number_resolver.profiles import ProfileStore

log = logging.getLogger(__name__)

PROVIDER_NONE = "none"
PROVIDER_SIMULATED = "simulated"
PROVIDER_HTTP = "http"
PROVIDER_KINDS = (PROVIDER_NONE, PROVIDER_SIMULATED, PROVIDER_HTTP)
NEGATIVE = b"-"
MAX_LOOKUP_NUMBERS = 1000  # the largest request the simulated vendor service accepts


class ProviderError(RuntimeError):
    """The provider could not answer (unreachable, timeout, malformed answer)."""


class CapabilityProvider(Protocol):
    name: str

    async def lookup(self, numbers: Sequence[str]) -> dict[str, DeviceProfile | None]: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- simulated


def simulated_pool(count: int = 500, seed: int = 7) -> list[DeviceProfile]:
    """``count`` distinct, complete device profiles drawn from the capability table (deterministic for a seed)."""
    table = default_engine().table
    pool: dict[str, DeviceProfile] = {}
    attempt = 0
    while len(pool) < count and attempt < 20:
        for _, device in make_workload(table, count * 3, distinct_devices=count * 2, seed=seed + attempt):
            if device is None:
                continue
            try:
                profile = build_profile(
                    {
                        "brand": device.brand,
                        "model": device.model,
                        "os_name": device.os_name,
                        "os_version": device.os_version,
                        "app_version": device.app_version,
                        "android_version": device.android_version,
                        "plugin_version": device.plugin_version,
                        "quick_app_engine_version": device.quick_app_engine_version,
                        "smart_service_switch": device.smart_info_service,
                        "rich_media_switch": device.rich_media_display,
                    }
                )
            except FieldError:
                continue  # incomplete (no OS name, no app version): a vendor answers complete records
            pool.setdefault(profile.packed, profile)
            if len(pool) >= count:
                break
        attempt += 1
    return list(pool.values())


class SimulatedProvider:
    """A vendor service in process: deterministic answers, a configurable hit rate and latency per call."""

    name = PROVIDER_SIMULATED

    def __init__(self, *, hit_rate: float = 0.5, latency_ms: float = 20.0, seed: str = "magpie", pool_size: int = 500):
        if not 0.0 <= hit_rate <= 1.0:
            raise ValueError("hit_rate must be between 0 and 1")
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self.hit_rate = hit_rate
        self.latency_ms = latency_ms
        self.seed = seed
        self.pool = simulated_pool(pool_size)
        self.calls = 0
        self.numbers_asked = 0

    def answer(self, msisdn: str) -> DeviceProfile | None:
        """The deterministic answer for one number (no latency)."""
        digest = hashlib.blake2b(f"{self.seed}:{msisdn}".encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        if (value % 1_000_000) >= self.hit_rate * 1_000_000:
            return None
        return self.pool[(value >> 20) % len(self.pool)]

    async def lookup(self, numbers: Sequence[str]) -> dict[str, DeviceProfile | None]:
        self.calls += 1
        self.numbers_asked += len(numbers)
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        return {number: self.answer(number) for number in numbers}

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------- HTTP


def profile_json(profile: DeviceProfile) -> dict[str, Any]:
    return {name: value for name, value in profile.as_dict().items() if name != "observed"}


class HttpProvider:
    """A vendor service over HTTP (see the module docstring for the contract)."""

    name = PROVIDER_HTTP

    def __init__(self, url: str, *, timeout_s: float = 2.0, client: httpx.AsyncClient | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"provider URL must be http(s), got {url!r}")
        self.url = url
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._own_client = client is None

    async def lookup(self, numbers: Sequence[str]) -> dict[str, DeviceProfile | None]:
        try:
            response = await self._client.post(self.url, json={"numbers": list(numbers)})
        except httpx.HTTPError as exc:
            raise ProviderError(f"provider unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise ProviderError(f"provider answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            devices = response.json()["devices"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError('provider answer is not {"devices": {...}}') from exc
        if not isinstance(devices, dict):
            raise ProviderError("provider answer: devices must be an object")
        asked = set(numbers)
        answer: dict[str, DeviceProfile | None] = {}
        for number, fields in devices.items():
            if number not in asked:
                continue
            if fields is None:
                answer[number] = None
                continue
            if not isinstance(fields, dict):
                log.warning("provider answered a non-object device", extra={"msisdn": number})
                PROVIDER_CALLS.labels(self.name, "invalid_entry").inc()
                continue
            try:
                answer[number] = build_profile(fields)
            except FieldError as exc:
                log.warning("provider answered an invalid device", extra={"msisdn": number, "error": str(exc)})
                PROVIDER_CALLS.labels(self.name, "invalid_entry").inc()
        return answer

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()


# ---------------------------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class ProviderSettings:
    ttl_s: int = 7 * 86400
    negative_ttl_s: int = 86400
    batch: int = 100
    concurrency: int = 4
    timeout_s: float = 2.0


class ProviderCache:
    """Provider answers in Redis with a TTL; the classifier's entry point for registry misses."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        profiles: ProfileStore,
        provider: CapabilityProvider,
        options: ProviderSettings | None = None,
    ) -> None:
        self.redis = redis
        self.profiles = profiles
        self.provider = provider
        self.options = options or ProviderSettings()
        if self.options.batch <= 0 or self.options.concurrency <= 0:
            raise ValueError("provider batch and concurrency must be positive")
        self.prefix = settings.rkey("vp", "").encode()
        self._gate = asyncio.Semaphore(self.options.concurrency)

    def key(self, msisdn: str) -> str:
        return self.prefix.decode() + msisdn

    async def profile_ids(self, msisdns: Sequence[bytes]) -> list[bytes | None]:
        """Per msisdn (bytes), the profile id of the provider's answer (cached or fresh), or None when unknown."""
        if not msisdns:
            return []
        prefix = self.prefix
        cached = await mget(self.redis, [prefix + m for m in msisdns])
        result: list[bytes | None] = []
        missing: list[int] = []
        negative = 0
        for position, value in enumerate(cached):
            if value is None:
                missing.append(position)
                result.append(None)
            elif value == NEGATIVE:
                negative += 1
                result.append(None)
            else:
                result.append(value)
        PROVIDER_CACHE.labels("hit").inc(len(msisdns) - len(missing) - negative)
        if negative:
            PROVIDER_CACHE.labels("negative").inc(negative)
        if not missing:
            return result
        PROVIDER_CACHE.labels("miss").inc(len(missing))
        numbers = [msisdns[position].decode() for position in missing]
        answers = await self._ask(numbers)
        if answers:
            fresh = await self._store(answers)
            for position, number in zip(missing, numbers, strict=True):
                result[position] = fresh.get(number)
        return result

    async def _ask(self, numbers: list[str]) -> dict[str, DeviceProfile | None]:
        size = self.options.batch
        chunks = [numbers[start : start + size] for start in range(0, len(numbers), size)]
        answers = await asyncio.gather(*(self._call(chunk) for chunk in chunks))
        merged: dict[str, DeviceProfile | None] = {}
        for answer in answers:
            merged.update(answer)
        return merged

    async def _call(self, numbers: list[str]) -> dict[str, DeviceProfile | None]:
        name = self.provider.name
        async with self._gate:
            started = time.perf_counter()
            try:
                answer = await asyncio.wait_for(self.provider.lookup(numbers), self.options.timeout_s)
            except Exception as exc:
                PROVIDER_CALLS.labels(name, "error").inc()
                log.warning(
                    "capability provider failed; numbers stay unknown for this batch",
                    extra={"provider": name, "numbers": len(numbers), "error": repr(exc)},
                )
                return {}
            finally:
                PROVIDER_SECONDS.labels(name).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(name, "ok").inc()
        return answer

    async def _store(self, answers: dict[str, DeviceProfile | None]) -> dict[str, bytes]:
        """Cache the answers; returns msisdn -> profile id (bytes) of the positive ones."""
        positive = {number: profile for number, profile in answers.items() if profile is not None}
        ids = await self.profiles.ids_for(positive.values()) if positive else {}
        fresh = {number: str(ids[profile.packed]).encode() for number, profile in positive.items()}
        pipe = self.redis.pipeline(transaction=False)
        prefix = self.prefix
        for number, profile in answers.items():
            if profile is None:
                pipe.set(prefix + number.encode(), NEGATIVE, ex=self.options.negative_ttl_s)
            else:
                pipe.set(prefix + number.encode(), fresh[number], ex=self.options.ttl_s)
        await pipe.execute()
        return fresh

    async def forget(self, msisdns: Sequence[str]) -> int:
        """Drop cached answers (operator action or tests)."""
        if not msisdns:
            return 0
        return int(await self.redis.delete(*[self.key(m) for m in msisdns]))

    async def close(self) -> None:
        await self.provider.close()


def build_provider(config: ResolverConfig) -> CapabilityProvider | None:
    """The provider ``MAGPIE_NR_PROVIDER`` names (None for ``none``)."""
    kind = config.provider.strip().lower()
    if kind == PROVIDER_NONE:
        return None
    if kind == PROVIDER_SIMULATED:
        return SimulatedProvider(hit_rate=config.sim_hit_rate, latency_ms=config.sim_latency_ms, seed=config.sim_seed)
    if kind == PROVIDER_HTTP:
        if not config.provider_url:
            raise ValueError("MAGPIE_NR_PROVIDER=http needs MAGPIE_NR_PROVIDER_URL")
        return HttpProvider(config.provider_url, timeout_s=config.provider_timeout_ms / 1000)
    raise ValueError(f"MAGPIE_NR_PROVIDER must be one of {', '.join(PROVIDER_KINDS)}, got {config.provider!r}")


def provider_settings(config: ResolverConfig) -> ProviderSettings:
    return ProviderSettings(
        ttl_s=config.provider_ttl_s,
        negative_ttl_s=config.provider_negative_ttl_s,
        batch=config.provider_batch,
        concurrency=config.provider_concurrency,
        timeout_s=config.provider_timeout_ms / 1000,
    )
