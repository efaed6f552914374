"""Custom short codes (KooMessage ``generation_type`` 2): which codes are free, and the internal API that asks.

The code space is global: a link's code is its ``_id`` in ``links`` and the edge finds a link by the path alone
(``/{code}``, whatever host the request came to), so a custom code is usable only if no other link holds it, in any
tenant. A code is **taken** when

- it names a route of the edge itself (``RESERVED_CODES``: ``h5``, ``v1``, ``metrics``, ...), or
- a stored link of another task holds it. That includes an expired link during its retention
  (``MAGPIE_SHORTLINK_EXPIRED_RETENTION_S``): it still answers 410 at that URL, and giving the code to a new link
  would show the new recipient's card to whoever follows the old SMS. Once the TTL index removed the old link the
  code is free again.

Links of the asking task itself do not take a code: a resumed task (the gateway retrying the same task id) finds
its own links again.

``POST /internal/custom-codes/check`` (edge role, header ``X-Internal-Token: <MAGPIE_SHORTLINK_INTERNAL_TOKEN>``,
like ``/internal/resolution-links``)::

    {"tenant_id": "...", "task_id": "" | "T...", "codes": ["Spring01", ...]}   (1 to 10,000 codes)

-> 200 ``{"taken": ["Spring01"]}`` (in request order, each once). 400 ``KM.00000400`` malformed request, 404 when the
token is wrong or the internal API is disabled, 503 ``KM.00000503`` when MongoDB is unavailable. The gateway asks it
before accepting a send task with custom codes (an early, clear KM.90016482); the minter decides for good when it
inserts the links (:mod:`magpie_shortlink.minting`), so two tasks racing for one code cannot both get it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from magpie_common.kafka import is_transient
from magpie_shortlink.codes import looks_like_code
from magpie_shortlink.edge import ERR_BAD_REQUEST, ERR_NOT_FOUND, ERR_UNAVAILABLE, NO_STORE, json_error
from magpie_shortlink.resolution_links import RESERVED_CODES
from magpie_shortlink.store import LinkStore

log = logging.getLogger(__name__)

CHECK_PATH = "/internal/custom-codes/check"
TOKEN_HEADER = "X-Internal-Token"
MAX_CHECK_CODES = 10_000
MAX_BODY = 1024 * 1024


def reserved(code: str) -> bool:
    """Whether ``code`` names one of the edge's own routes (it could never be reached as a link)."""
    return code.lower() in RESERVED_CODES


async def taken_codes(store: LinkStore, codes: Sequence[str], *, tenant_id: str, task_id: str) -> list[str]:
    """The codes of ``codes`` a new link of (``tenant_id``, ``task_id``) cannot have, in order, each once."""
    unique = list(dict.fromkeys(codes))
    owners = await store.owners([c for c in unique if not reserved(c)])
    return [
        code
        for code in unique
        if reserved(code) or (code in owners and (owners[code].tenant_id, owners[code].task_id) != (tenant_id, task_id))
    ]


class CheckError(ValueError):
    """A malformed check request."""


def parse_check(data: object) -> tuple[str, str, list[str]]:
    if not isinstance(data, dict):
        raise CheckError("the body must be a JSON object")
    tenant_id = data.get("tenant_id")
    task_id = data.get("task_id") or ""
    codes = data.get("codes")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise CheckError("tenant_id is required")
    if not isinstance(task_id, str):
        raise CheckError("task_id must be a string")
    if not isinstance(codes, list) or not codes:
        raise CheckError("codes must be a non-empty list")
    if len(codes) > MAX_CHECK_CODES:
        raise CheckError(f"at most {MAX_CHECK_CODES} codes per request")
    for position, code in enumerate(codes):
        if not isinstance(code, str) or not looks_like_code(code):
            raise CheckError(f"codes[{position}] must be letters and digits")
    return tenant_id, task_id, codes


def custom_codes_router(store: LinkStore | None, token: str) -> APIRouter:
    """The check route; ``store`` None (or no token) = the internal API is disabled (404)."""
    router = APIRouter()

    @router.post(CHECK_PATH)
    async def check_custom_codes(request: Request) -> Response:
        given = request.headers.get(TOKEN_HEADER, "")
        if store is None or not token or not hmac.compare_digest(given.encode(), token.encode()):
            return json_error(404, ERR_NOT_FOUND, "not found")
        body = await request.body()
        if len(body) > MAX_BODY:
            return json_error(400, ERR_BAD_REQUEST, f"request body larger than {MAX_BODY} bytes")
        try:
            tenant_id, task_id, codes = parse_check(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            return json_error(400, ERR_BAD_REQUEST, f"malformed JSON body: {exc.msg}")
        except CheckError as exc:
            return json_error(400, ERR_BAD_REQUEST, str(exc))
        try:
            taken = await taken_codes(store, codes, tenant_id=tenant_id, task_id=task_id)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("link storage unavailable", extra={"tenant_id": tenant_id, "error": repr(exc)})
            return json_error(503, ERR_UNAVAILABLE, "link storage unavailable, retry later")
        return JSONResponse({"taken": taken}, headers=NO_STORE)

    return router
