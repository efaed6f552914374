"""Who resolved a link: the handset's brand, model, OS and messaging-app version, for the RESOLVED LinkEvent.

The number-resolver learns from it (a number whose handset resolved a link is recorded as capable, with this
handset), so the edge tells what it can, from two sources:

1. the resolve call's optional ``handset`` object (``brand``, ``model``, ``os_name``, ``os_version``,
   ``app_version``): the messaging app knows itself best, so a non-empty field given there wins;
2. the ``User-Agent``, parsed with **device-detector** (the Python port of matomo's Device Detector rules). It was
   chosen over ua-parser (uap-core) after trying both on WebView UAs of Huawei, Honor, Xiaomi, OPPO, vivo, Meizu
   and Samsung handsets: ua-parser named the brand of Huawei and Samsung only (vivo ``V2241A``, OPPO ``PGT110``,
   Xiaomi ``2211133C`` came out as "Generic"), device-detector named every brand and the marketing model
   (``NOH-AN00`` -> Huawei "Mate 40 Pro"), which is the spelling of the capability table. Its costs, and what is
   done about them: ~2.5 s of CPU and ~55 MB to load its rules and 10-25 ms per User-Agent never seen before. The
   parsing runs in one child process per edge process (started with the edge, :func:`warm_up`, which loads the
   rules there), so the event loop never blocks on it. Not a thread: ``regex`` releases the GIL around every
   match and, with a busy event loop, re-acquiring it hundreds of times per parse (the convoy effect) stretched
   one 10 ms parse to seconds (measured). Results are kept in an LRU cache per User-Agent string (``CACHE_SIZE``; a
   messaging app of one model and version always sends the same string). A resolve call never waits more than
   ``PARSE_BUDGET_S`` (250 ms) for a parse: past that (right after start, while the rules load) its event goes
   without the User-Agent's fields, and the parse still fills the cache. If the child dies a new one is started;
3. the messaging app's version, which device-detector does not know (it knows browsers): the last product token
   of the User-Agent whose name looks like a messaging app — it contains ``mms``, ``messag`` or ``sms`` (any case),
   e.g. ``HwMessaging/11.1.1.400``, ``com.android.mms/12.0.1.7``, ``SmartSMS/5.3``.

Fields are cut to the registry's limits (brand and OS 40, model 80, versions 40 characters) and cleaned of control
characters. A parser failure is logged and leaves the User-Agent's part empty; it never fails the resolve call.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from magpie.v1 import link_pb2

log = logging.getLogger(__name__)

CACHE_SIZE = 4096
PARSE_BUDGET_S = 0.25  # longest a resolve call waits for a User-Agent never seen before
MAX_USER_AGENT = 512
LIMITS = {"brand": 40, "model": 80, "os_name": 40, "os_version": 40, "app_version": 40}
FIELDS = tuple(LIMITS)
EMPTY = dict.fromkeys(FIELDS, "")
SOURCE_REQUEST = "request"
SOURCE_USER_AGENT = "user_agent"

_APP_TOKEN = re.compile(r"([A-Za-z][\w.\-]*)/(\d+(?:\.\d+)*)")
_MESSAGING = re.compile(r"mms|messag|sms", re.IGNORECASE)
_SAMPLES = (
    "Mozilla/5.0 (Linux; Android 12; NOH-AN00 Build/HUAWEINOH-AN00; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/99.0.4844.88 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; V2241A Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/87.0.4280.141 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 13; zh-cn; 2211133C Build/TKQ1.220905.001) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Version/4.0 Chrome/100.0.4896.127 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; PGT110 Build/TP1A.220905.001) AppleWebKit/537.36 Chrome/99 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; meizu 18 Build/RKQ1.200826.002) AppleWebKit/537.36 Chrome/99 Mobile Safari/537.36",
)

_parse_lock = threading.Lock()
_warm = threading.Event()
_pool: ProcessPoolExecutor | None = None
_cache: OrderedDict[str, dict[str, str]] = OrderedDict()
_pending: dict[str, Future[dict[str, str]]] = {}
_cache_lock = threading.Lock()  # the cache is filled by the pool's result thread


def clean(value: str, limit: int) -> str:
    return "".join(ch for ch in value if ch >= " " and ch != "\x7f").strip()[:limit]


def app_version_of(user_agent: str) -> str:
    """The version of the last messaging-app product token of a User-Agent ("" when there is none)."""
    found = ""
    for name, version in _APP_TOKEN.findall(user_agent):
        if _MESSAGING.search(name):
            found = version
    return found


def parse_user_agent(user_agent: str) -> dict[str, str]:
    """Brand, model, OS name and version (device-detector) and the messaging-app version of a User-Agent.

    Blocking (10-25 ms for a new string, seconds on the very first call of a process): the edge runs it in its
    parser process (:func:`user_agent_fields`)."""
    from device_detector import DeviceDetector  # a heavy import: only where it is used

    fields = {name: "" for name in FIELDS}
    fields["app_version"] = clean(app_version_of(user_agent), LIMITS["app_version"])
    try:
        with _parse_lock:
            parsed = DeviceDetector(user_agent, skip_bot_detection=True).parse()
            found = {
                "brand": parsed.device_brand() or "",
                "model": parsed.device_model() or "",
                "os_name": parsed.os_name() or "",
                "os_version": parsed.os_version() or "",
            }
    except Exception:
        log.exception("user agent not parsed", extra={"user_agent": user_agent[:200]})
        return fields
    for name, value in found.items():
        text = clean(str(value), LIMITS[name])
        fields[name] = "" if text.upper() in ("UNK", "UNKNOWN") else text
    return fields


def _child_warm_up() -> None:
    """Initializer of the parser process: load the rules before the first real User-Agent arrives."""
    for sample in _SAMPLES:
        parse_user_agent(sample)


def _loaded() -> bool:
    """A no-op job: its completion says the parser process has run its initializer."""
    return True


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_child_warm_up
        )
        pool.submit(_loaded).add_done_callback(lambda done: _warm.set() if done.exception() is None else None)
        _pool = pool
    return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken parser process (the next parse starts a new one)."""
    global _pool
    if _pool is pool:
        _pool = None
        _warm.clear()
        pool.shutdown(wait=False, cancel_futures=True)


def warm_up() -> None:
    """Start the parser process, which loads device-detector's rules (once per process; returns at once)."""
    _executor()


def is_warm() -> bool:
    """The parser process has loaded the rules."""
    return _warm.is_set()


async def user_agent_fields(user_agent: str) -> dict[str, str]:
    """:func:`parse_user_agent` through the LRU cache, parsing in the parser process on a miss.

    A resolve call waits at most ``PARSE_BUDGET_S`` for a new User-Agent (the rules may still be loading right after
    start): past that it goes on without the User-Agent's fields, and the parse still completes into the cache
    for the next call. Concurrent calls with the same new User-Agent share one parse."""
    text = user_agent[:MAX_USER_AGENT]
    if not text.strip():
        return dict(EMPTY)
    with _cache_lock:
        found = _cache.get(text)
        if found is not None:
            _cache.move_to_end(text)
            return found
        pending = _pending.get(text)
    if pending is None:
        pool = _executor()
        try:
            pending = pool.submit(parse_user_agent, text)
        except (BrokenProcessPool, RuntimeError):
            _discard(pool)
            return dict(EMPTY)
        with _cache_lock:
            _pending[text] = pending
        pending.add_done_callback(lambda done: _remember(text, done, pool))  # runs in the pool's thread
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)), PARSE_BUDGET_S)
    except TimeoutError:
        log.info("user agent parse over budget; resolving without it", extra={"user_agent": text[:200]})
        return dict(EMPTY)
    except BrokenProcessPool:
        return dict(EMPTY)


def _remember(text: str, done: Future[dict[str, str]], pool: ProcessPoolExecutor) -> None:
    with _cache_lock:
        _pending.pop(text, None)
    if done.cancelled():
        return
    error = done.exception()
    if error is not None:
        log.warning("user agent parser process failed; restarting it", extra={"error": repr(error)})
        if isinstance(error, BrokenProcessPool):
            _discard(pool)
        return
    with _cache_lock:
        _cache[text] = done.result()
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


async def describe(user_agent: str, requested: Mapping[str, str]) -> link_pb2.Handset:
    """The handset of a resolve call: the request's own fields first, the User-Agent's for the rest."""
    given = {name: clean(requested.get(name, ""), LIMITS[name]) for name in FIELDS}
    parsed = await user_agent_fields(user_agent)
    sources = []
    if any(given.values()):
        sources.append(SOURCE_REQUEST)
    if any(parsed[name] and not given[name] for name in FIELDS):
        sources.append(SOURCE_USER_AGENT)
    merged = {name: given[name] or parsed[name] for name in FIELDS}
    return link_pb2.Handset(**merged, source="+".join(sources))
