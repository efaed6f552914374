"""The OpenAPI document tells the truth: error answers with the error body (400, not 422), security schemes, and
an example for every JSON request body and successful response, valid against its schema."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from magpie_gateway.openapi_docs import ExampleBuilder, improve

from .conftest import Harness

pytestmark = pytest.mark.integration


def inline(schema: Any, schemas: dict[str, Any], depth: int = 0) -> Any:
    """The schema with every ``$ref`` replaced by its target (for validating examples)."""
    if depth > 30:
        return {}
    if isinstance(schema, dict):
        if "$ref" in schema:
            return inline(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, depth + 1)
        return {k: inline(v, schemas, depth + 1) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline(v, schemas, depth + 1) for v in schema]
    return schema


async def test_every_operation_is_documented_with_examples_and_error_answers(harness: Harness) -> None:
    async with harness.admin() as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    schemas = document["components"]["schemas"]
    assert {"AkSk", "Token"} <= set(document["components"]["securitySchemes"])
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path}"
            assert {"400", "401", "403"} <= set(responses), f"{method} {path}"
            assert responses["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body is not None:
                example = body.get("example")
                assert example is not None, f"{method} {path}: request body without example"
                validator = jsonschema_rs.validator_for(inline(body["schema"], schemas))
                errors = [e.message for e in validator.iter_errors(example)]
                assert not errors, f"{method} {path}: example does not match its schema: {errors[:3]}"
            ok = next((r for status, r in responses.items() if status.startswith("2")), None)
            assert ok is not None, f"{method} {path}: no success response"
            media = (ok.get("content") or {}).get("application/json")
            if media is not None:
                assert media.get("example") is not None or media.get("examples"), f"{method} {path}"
            checked += 1
    assert checked >= 90


def test_examples_follow_names_formats_and_bounds() -> None:
    components = {
        "schemas": {
            "Body": {
                "type": "object",
                "properties": {
                    "mobile": {"type": "string"},
                    "callback_url": {"type": "string", "maxLength": 20},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 5},
                    "state": {"type": "string", "enum": ["ON", "OFF"]},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]},
                },
            },
            "Item": {"type": "object", "properties": {"name": {"type": "string", "examples": ["张三"]}}},
        }
    }
    value = ExampleBuilder(components).build({"$ref": "#/components/schemas/Body"})
    assert value == {
        "mobile": "13900000001",
        "callback_url": "https://www.example.",
        "limit": 5,
        "state": "ON",
        "items": [{"name": "张三"}],
        "maybe": 3,
    }


def test_improve_replaces_422_and_adds_errors() -> None:
    document: dict[str, Any] = {
        "paths": {
            "/v1/things/{id}": {
                "post": {"responses": {"200": {"description": "ok"}, "422": {"description": "validation"}}}
            }
        }
    }
    responses = improve(document)["paths"]["/v1/things/{id}"]["post"]["responses"]
    assert "422" not in responses
    assert {"400", "401", "403", "404", "409", "413"} <= set(responses)
