"""The gateway serves every operation of the official SDK (``KooMessageClient``) at the SDK's method and path,
named by the SDK's operation name (``summary``), and some test drives each one through the SDK client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from huaweicloudsdkcore.client import Client
from huaweicloudsdkkoomessage import v1
from huaweicloudsdkkoomessage.v1 import KooMessageClient

from .conftest import Harness

TESTS = [Path(__file__).parent, Path(__file__).parents[3] / "tests"]


def sdk_operations() -> dict[str, tuple[str, str]]:
    """operation name -> (HTTP method, path template) as the SDK calls it."""
    names = [
        name
        for name in dir(KooMessageClient)
        if not name.startswith("_")
        and not name.endswith("_invoker")
        and name not in dir(Client)
        and name not in ("new_builder", "call_api")
    ]
    result: dict[str, tuple[str, str]] = {}
    for name in names:
        request_class = getattr(v1, "".join(part.capitalize() for part in name.split("_")) + "Request")
        info = getattr(KooMessageClient, f"_{name}_http_info")(request_class())
        result[name] = (info["method"], info["resource_path"])
    return result


def test_the_sdk_has_62_operations() -> None:
    assert len(sdk_operations()) == 62


@pytest.mark.integration
async def test_every_sdk_operation_is_served_at_its_path(harness: Harness) -> None:
    served = {
        operation["summary"]: (method.upper(), path)
        for path, operations in harness.gateway.app.openapi()["paths"].items()
        for method, operation in operations.items()
        if operation.get("summary")
    }
    missing = {op: where for op, where in sdk_operations().items() if served.get(op) != where}
    assert not missing, f"{len(missing)} SDK operations are not served at the SDK's method and path: {missing}"


def test_every_sdk_operation_is_called_through_the_sdk_in_a_test() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for folder in TESTS for p in folder.rglob("test_*.py"))
    uncalled = sorted(op for op in sdk_operations() if not re.search(rf"\.{op}\(", sources))
    assert not uncalled, f"no test calls these operations through the SDK client: {uncalled}"
