"""The action table stays complete: every route of the application has an IAM action (or is deliberately public
or reserved to the main account), every row names a real operation, and docs/iam.md lists every row.

No infrastructure: the application is built with a stand-in context (routes and middleware only)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from huaweicloudsdkkoomessage.v1 import KooMessageClient

from magpie_gateway.app import create_app
from magpie_gateway.config import GatewayConfig
from magpie_gateway.iam.actions import ACTIONS, PUBLIC_OPERATIONS, ROOT_ONLY_OPERATIONS, Kind, Product
from magpie_gateway.iam.policies import check_pattern

DOCS = Path(__file__).resolve().parents[3] / "docs" / "iam.md"


def _app() -> FastAPI:
    context: Any = SimpleNamespace(
        collections=SimpleNamespace(idempotency=None, tokens=None), credentials=None, config=GatewayConfig()
    )

    async def ready() -> dict[str, bool]:
        return {}

    return create_app(context, ready, replay_store=None)


def _routes() -> list[tuple[str, str, str | None]]:
    """(methods, path, summary) of every route of the application."""
    routes = []
    for route in iter_route_contexts(_app().routes):
        methods = ",".join(sorted((route.methods or set()) - {"HEAD"}))
        routes.append((methods, route.path or "", getattr(route.original_route, "summary", None)))
    return routes


def _sdk_operations() -> set[str]:
    """The operations of the official client: its methods that have an ``<name>_invoker`` companion."""
    own = {name for name, value in vars(KooMessageClient).items() if inspect.isfunction(value)}
    return {name for name in own if f"{name}_invoker" in own}


def test_every_v1_route_has_an_action() -> None:
    routes = [r for r in _routes() if r[1].startswith(("/v1/", "/v3/"))]
    assert len(routes) > 30
    missing = [
        f"{methods} {path} summary={summary!r}"
        for methods, path, summary in routes
        if summary not in ACTIONS and summary not in PUBLIC_OPERATIONS and summary not in ROOT_ONLY_OPERATIONS
    ]
    assert not missing, (
        "these routes have no IAM action (sub-users are refused until magpie_gateway/iam/actions.py maps their "
        "summary, and docs/iam.md lists it):\n  " + "\n  ".join(missing)
    )


def test_unsigned_routes_are_only_ops_docs_internal_and_tokens() -> None:
    for _, path, _ in _routes():
        assert path.startswith(("/v1/", "/v3/auth/tokens", "/internal/", "/docs", "/redoc")) or path in (
            "/openapi.json",
            "/metrics",
            "/healthz",
            "/readyz",
        ), path


def test_every_row_names_an_sdk_operation_or_a_registered_route() -> None:
    sdk = _sdk_operations()
    assert len(sdk) == 62, sorted(sdk)
    summaries = {summary for _, _, summary in _routes()}
    unknown = sorted(op for op in ACTIONS if op not in sdk and op not in summaries)
    assert not unknown, f"rows of no SDK operation and no route (typo?): {unknown}"
    absent = sorted(sdk - set(ACTIONS))
    assert not absent, f"SDK operations without an action: {absent}"


def test_actions_are_well_formed_and_consistent() -> None:
    by_action: dict[str, tuple[Product, Kind]] = {}
    for entry in ACTIONS.values():
        check_pattern(entry.action, entry.operation)
        service = entry.action.split(":")[0]
        assert service == ("iam" if entry.product is Product.IAM else "KooMessage"), entry
        seen = by_action.setdefault(entry.action, (entry.product, entry.kind))
        assert seen == (entry.product, entry.kind), f"{entry.action} has two products or kinds"
    assert not PUBLIC_OPERATIONS & set(ACTIONS) and not ROOT_ONLY_OPERATIONS & set(ACTIONS)
    # The actions Huawei Cloud publishes keep their names.
    for operation, action in {
        "list_aim_templates": "KooMessage:devTemplate:list",
        "create_resolve_task": "KooMessage:devResolveTask:create",
        "check_mobile_capability": "KooMessage:devMobileCapability:check",
        "create_aim_send_task": "KooMessage:devSendTask:create",
        "send_aim_batch_messages": "KooMessage:devSendTask:create",
        "list_aim_send_tasks": "KooMessage:devSendTask:list",
        "list_aim_msg_app_detail": "KooMessage:aimMsgApp:list",
        "upload_aim_msg_signature_file": "KooMessage:aimMsgSignature:create",
    }.items():
        assert ACTIONS[operation].action == action


def test_docs_list_every_action() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \| `([^`]+)` \| (\w+) \| (\w+) \|$", text, re.MULTILINE))
    expected = {(e.operation, e.action, e.product.value, e.kind.value) for e in ACTIONS.values()}
    missing = sorted(expected - rows)
    stale = sorted(rows - expected)
    assert not missing, f"docs/iam.md lacks these action rows: {missing}"
    assert not stale, f"docs/iam.md has rows that are not in ACTIONS: {stale}"
