"""The generated parts of ``docs/api.md``: the table of every public operation (method, path, operation name, IAM
action) and the table of every error code, both built from the code itself so the documentation cannot drift.

``python -m magpie_gateway.reference docs/api.md`` rewrites the parts between the ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` markers (``make docs``); ``python -m magpie_gateway.reference --check docs/api.md`` exits
non-zero when they are stale (the test suite does the same).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from magpie_gateway import app as app_module
from magpie_gateway import codes, errors
from magpie_gateway.iam.actions import ACTIONS, PUBLIC_OPERATIONS, ROOT_ONLY_OPERATIONS

MARKER = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.DOTALL)


def public_routes() -> list[tuple[str, str, str, str]]:
    """(tag, METHOD, path, operation) of every public (signed) route, in a stable order."""
    app = FastAPI()
    for name in dir(app_module):
        module = getattr(app_module, name)
        if name.endswith("_api") and hasattr(module, "router") and name != "internal_api":
            app.include_router(module.router)
    rows: list[tuple[str, str, str, str]] = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            tags: list[str] = operation.get("tags") or ["other"]
            rows.append((tags[0], method.upper(), path, str(operation.get("summary", ""))))
    return sorted(rows)


def _action(operation: str) -> str:
    if operation in PUBLIC_OPERATIONS:
        return "(any authenticated caller)"
    if operation in ROOT_ONLY_OPERATIONS:
        return "(main account only)"
    entry = ACTIONS.get(operation)
    return f"`{entry.action}`" if entry else "(main account only)"


def operations_table() -> str:
    lines = ["| area | method | path | operation | IAM action |", "|---|---|---|---|---|"]
    for tag, method, path, operation in public_routes():
        lines.append(f"| {tag} | {method} | `{path}` | `{operation}` | {_action(operation)} |")
    return "\n".join(lines) + "\n"


def error_codes() -> list[errors.ErrorCode]:
    found: dict[str, errors.ErrorCode] = {}
    for module in (errors, codes):
        for value in vars(module).values():
            if isinstance(value, errors.ErrorCode):
                found.setdefault(value.code, value)
    return sorted(found.values(), key=lambda c: (c.code.split(".")[0], c.code))


def errors_table() -> str:
    lines = ["| error_code | HTTP | meaning |", "|---|---|---|"]
    for code in error_codes():
        lines.append(f"| `{code.code}` | {code.http_status} | {code.message} |")
    return "\n".join(lines) + "\n"


GENERATORS: dict[str, Any] = {"operations": operations_table, "errors": errors_table}


def render(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        generator = GENERATORS.get(match["name"])
        if generator is None:
            return match.group(0)
        return f"{match.group(1)}{generator()}{match.group(4)}"

    return MARKER.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m magpie_gateway.reference", description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when the generated parts are stale")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{args.path} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
