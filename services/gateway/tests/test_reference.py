"""``docs/api.md`` lists every public operation with its IAM action and every error code (generated parts are
current), and every operation of the SDK appears in it."""

from __future__ import annotations

from pathlib import Path

from magpie_gateway.reference import error_codes, public_routes, render

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"


def test_generated_parts_of_the_api_doc_are_current() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    assert render(text) == text, "docs/api.md is stale: run `make docs`"


def test_the_tables_cover_every_route_and_code() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    routes = public_routes()
    assert len(routes) >= 62
    for _, method, path, operation in routes:
        assert f"| {method} | `{path}` | `{operation}` |" in text
    for code in error_codes():
        assert f"`{code.code}`" in text
