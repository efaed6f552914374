"""The internal API of resolution-task links (called by the gateway's ``create_resolve_task``, never by the public).

``POST /internal/resolution-links`` with header ``X-Internal-Token: <MAGPIE_SHORTLINK_INTERNAL_TOKEN>``::

    {"tenant_id", "task_id", "tpl_id", "tpl_name", "group": false, "max_resolutions": 1,
     "link_domain": "https://mgp.example/", "aim_url": "", "created_at_ms": ..., "expires_at_ms": ...,
     "links": [{"index": 0, "cust_flag": "13800138000", "params": {"name": "..."}, "custom_url": "",
                "custom_code": ""}]}

-> 200 ``{"links": [{"index", "code", "short_url", "result_code", "error_message", "created_at_ms",
"expires_at_ms"}]}`` in request order (``result_code`` "0" minted, ``KM.90016482`` custom code taken). The call is
idempotent per (tenant, task, index): repeating it answers the same links (raised to the request's
``expires_at_ms`` / ``max_resolutions`` if they were lower). 400 ``KM.00000400`` malformed request,
404 when the token is wrong or the API is disabled (no token configured: the edge is public, so the API exists
only with a token), 503 ``KM.00000503`` when MongoDB is unavailable (retry).

``POST /internal/resolution-links/update`` (same header) raises the limits of minted links of one task::

    {"tenant_id", "task_id", "links": [{"index": 0, "code": "aB3dE5fG7h"}],
     "expires_at_ms": 1767225600000 | null, "max_resolutions": 500 | null}

-> 200 ``{"links": [{"index", "code", "expires_at_ms", "max_resolutions", "group"}], "missing": []}``: the limits
now (only raised, never lowered; the edge applies them from the next request on). When a link is not stored under
that task (any more: expired longer than the retention ago) nothing changes and the answer is 200 with
``"links": []`` and the indexes in ``missing``. Idempotent. 400 ``KM.00000400`` malformed request (also
``max_resolutions`` for a link that is not a group link), 404 wrong token / API disabled, 503 ``KM.00000503`` when
MongoDB or Redis is unavailable (retry: the change is applied again).

The routes are served by the edge process (role ``edge``), on the edge's port, so put ``/internal/`` behind the
same network boundary as the other services' internal APIs.
"""

from __future__ import annotations

import hmac
import logging

import orjson
from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.responses import JSONResponse, Response

from magpie_common.kafka import is_transient
from magpie_shortlink.edge import ERR_BAD_REQUEST, ERR_NOT_FOUND, ERR_UNAVAILABLE, NO_STORE, json_error
from magpie_shortlink.resolution_links import RequestError, ResolutionMinter, parse_change, parse_task

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Internal-Token"
PATH = "/internal/resolution-links"
UPDATE_PATH = PATH + "/update"
MAX_BODY = 2 * 1024 * 1024


def internal_router(minter: ResolutionMinter | None, token: str) -> APIRouter:
    router = APIRouter()

    @router.post(PATH)
    async def mint_resolution_links(request: Request) -> Response:
        given = request.headers.get(TOKEN_HEADER, "")
        if minter is None or not token or not hmac.compare_digest(given.encode(), token.encode()):
            return json_error(404, ERR_NOT_FOUND, "not found")
        body = await request.body()
        if len(body) > MAX_BODY:
            return json_error(400, ERR_BAD_REQUEST, f"request body larger than {MAX_BODY} bytes")
        try:
            task = parse_task(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            return json_error(400, ERR_BAD_REQUEST, f"malformed JSON body: {exc.msg}")
        except RequestError as exc:
            return json_error(400, ERR_BAD_REQUEST, str(exc))
        try:
            minted = await minter.mint(task)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("link storage unavailable", extra={"task_id": task.task_id, "error": repr(exc)})
            return json_error(503, ERR_UNAVAILABLE, "link storage unavailable, retry later")
        log.info(
            "resolution links minted",
            extra={"tenant_id": task.tenant_id, "task_id": task.task_id, "links": len(minted), "group": task.group},
        )
        return JSONResponse({"links": [m.as_json() for m in minted]}, headers=NO_STORE)

    @router.post(UPDATE_PATH)
    async def update_resolution_links(request: Request) -> Response:
        given = request.headers.get(TOKEN_HEADER, "")
        if minter is None or not token or not hmac.compare_digest(given.encode(), token.encode()):
            return json_error(404, ERR_NOT_FOUND, "not found")
        body = await request.body()
        if len(body) > MAX_BODY:
            return json_error(400, ERR_BAD_REQUEST, f"request body larger than {MAX_BODY} bytes")
        try:
            change = parse_change(orjson.loads(body))
            updated = await minter.update(change)
        except orjson.JSONDecodeError as exc:
            return json_error(400, ERR_BAD_REQUEST, f"malformed JSON body: {exc.msg}")
        except RequestError as exc:
            return json_error(400, ERR_BAD_REQUEST, str(exc))
        except Exception as exc:
            if not (is_transient(exc) or isinstance(exc, RedisError)):
                raise
            log.warning("link storage unavailable", extra={"error": repr(exc)})
            return json_error(503, ERR_UNAVAILABLE, "link storage unavailable, retry later")
        log.info(
            "resolution links updated",
            extra={
                "tenant_id": change.tenant_id,
                "task_id": change.task_id,
                "links": len(change.links),
                "missing": len(updated.missing),
                "expires_at_ms": change.expires_at_ms,
                "max_resolutions": change.max_resolutions,
            },
        )
        return JSONResponse(updated.as_json(), headers=NO_STORE)

    return router
