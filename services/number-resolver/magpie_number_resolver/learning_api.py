"""Operator routes of the learning state (added to the internal API by ``app``; errors as in ``api``).

- ``GET /internal/downgrades/{mobile}``     -> ``{msisdn, sends, downgraded_at, expires_at, unresolved_sends}``
                                             | 404 when the number is not downgraded
- ``DELETE /internal/downgrades/{mobile}``  lift the downgrade (the count restarts) -> 204 | 404
- ``GET /internal/smart-sends/{mobile}``    -> ``{msisdn, unresolved_sends, downgraded}`` (always 200)
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import JSONResponse, Response

from magpie_number_resolver.api import ApiError, invalid
from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.devices import FieldError
from magpie_number_resolver.importers import mobile_of
from magpie_number_resolver.learning import Downgrades


def downgrade_routes(app: FastAPI, downgrades: Downgrades, segments: SegmentTable) -> None:
    def msisdn_of(mobile: str) -> str:
        try:
            return mobile_of(mobile, segments)
        except FieldError as exc:
            raise invalid(str(exc)) from None

    @app.get("/internal/downgrades/{mobile}")
    async def get_downgrade(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        found = await downgrades.get(msisdn)
        if found is None:
            raise ApiError(404, "KM.00000404", f"{msisdn} is not downgraded")
        return JSONResponse({**found, "unresolved_sends": await downgrades.unresolved_sends(msisdn)})

    @app.delete("/internal/downgrades/{mobile}")
    async def delete_downgrade(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        if not await downgrades.clear(msisdn):
            raise ApiError(404, "KM.00000404", f"{msisdn} is not downgraded")
        return Response(status_code=204)

    @app.get("/internal/smart-sends/{mobile}")
    async def smart_sends(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        return JSONResponse(
            {
                "msisdn": msisdn,
                "unresolved_sends": await downgrades.unresolved_sends(msisdn),
                "downgraded": await downgrades.get(msisdn) is not None,
            }
        )
