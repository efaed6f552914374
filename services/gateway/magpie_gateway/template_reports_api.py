"""AIM template reports: ``list_aim_template_reports`` (resolutions, exposures and clicks per template and day, from
the counters ``magpie_gateway.template_stats`` keeps; see there what each number counts and what a day is).

Request rules: ``tpl_ids`` 1 to 100 templates of the caller (a deleted template whose reports exist is accepted;
an id that is neither the caller's template nor has reports of the caller is 404); ``begin_time`` and
``end_time`` are required, ``begin_time`` not after ``end_time``; a window longer than 90 days answers an empty
list, as KooMessage documents; ``factory_type`` restricts to handset vendors (huawei, honor, xiaomi, oppo, vivo,
meizu, samsung; case-insensitive), the counters of the listed vendors are summed. Rows: newest day first, then in
the order of ``tpl_ids``; ``offset``/``limit`` page over the rows (limit 1-1000, default 10).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends

from magpie_gateway.aim_models import ListAimTemplateReportsRequestBody, ListAimTemplateReportsResponse
from magpie_gateway.aim_templates import VENDORS
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import not_found
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.pagination import page
from magpie_gateway.template_stats import COUNTERS, daily_rows, templates_with_stats
from magpie_gateway.timefmt import iso, parse_time
from magpie_gateway.validation import invalid

router = APIRouter(tags=["AIM template reports"])

MAX_TPL_IDS = 100
MAX_WINDOW = timedelta(days=90)


@router.post(
    "/v1/aim/template-reports/query",
    response_model=ListAimTemplateReportsResponse,
    summary="list_aim_template_reports",
)
async def list_aim_template_reports(
    body: ListAimTemplateReportsRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    tpl_ids = list(dict.fromkeys(t.strip() for t in body.tpl_ids or [] if t and t.strip()))
    if not tpl_ids:
        raise invalid("tpl_ids must name at least one AIM template")
    if len(tpl_ids) > MAX_TPL_IDS:
        raise invalid(f"at most {MAX_TPL_IDS} tpl_ids per request")
    begin = parse_time("begin_time", body.begin_time)
    end = parse_time("end_time", body.end_time)
    if begin is None or end is None:
        raise invalid("begin_time and end_time are required")
    if begin > end:
        raise invalid("begin_time must not be after end_time")
    vendors = list(dict.fromkeys(v.strip().upper() for v in body.factory_type or [] if v and v.strip()))
    unknown_vendors = [v for v in vendors if v not in VENDORS]
    if unknown_vendors:
        raise invalid(f"factory_type must be among {', '.join(v.lower() for v in VENDORS)}")
    paging = page(body.offset, body.limit)
    owned = {
        doc["_id"]
        async for doc in context.collections.aim_templates.find(
            {"tenant_id": tenant, "_id": {"$in": tpl_ids}}, {"_id": 1}
        )
    }
    missing = [t for t in tpl_ids if t not in owned]
    if missing:
        missing = [t for t in missing if t not in await templates_with_stats(context.collections, tenant, missing)]
        if missing:
            raise not_found(f"AIM templates {', '.join(missing)}")
    rows: list[dict[str, Any]] = []
    if end - begin <= MAX_WINDOW:
        rows = await daily_rows(context.collections, tenant, tpl_ids, begin, end, vendors or None)
    selected = rows[paging.offset : paging.offset + paging.limit]
    return {
        "template_reports": [
            {
                "tpl_id": row["tpl_id"],
                "start_time": iso(row["day"]),
                "end_time": iso(row["end"]),
                **{name: row[name] for name in COUNTERS},
            }
            for row in selected
        ],
        "page_info": paging.info(len(rows)),
    }
