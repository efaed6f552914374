"""The OpenAPI document at ``/openapi.json`` (rendered at ``/docs``), made true to how the gateway answers:

- validation errors are ``400 {"error_code": "KM.00000400", "error_msg"}``, not FastAPI's 422, and every signed
  operation documents its 401 (signature/token), 403 (IAM), 404 (unknown or another tenant's id), 409 (a reused
  ``Idempotency-Key``, on POST) and 413 (body or file too large) answers with the error body;
- the two ways to authenticate are declared as security schemes (AK/SK ``SDK-HMAC-SHA256`` and ``X-Auth-Token``);
- file downloads (operations named ``download_*``) answer the file's bytes, not JSON;
- every JSON request body and every successful response has an example: the one the model declares
  (``Field(examples=...)``, ``model_config["json_schema_extra"]``) or else one built from the schema — field
  names, formats, enums, bounds and defaults decide the values, so the example validates against the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["error_code", "error_msg"],
    "properties": {
        "error_code": {"type": "string", "example": "KM.00000400"},
        "error_msg": {"type": "string", "example": "Invalid request parameter: task_name is required"},
    },
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
ERROR_ANSWERS: dict[str, tuple[str, str, str]] = {
    "400": ("Invalid request (KM.* code tells which rule)", "KM.00000400", "Invalid request parameter: ..."),
    "401": ("Authentication failed (signature, clock skew, replay, token)", "APIGW.0301", "Incorrect IAM ..."),
    "403": ("The caller's IAM policies deny the action", "KM.00000403", "The operation is not allowed ..."),
    "404": ("Unknown id, or an id of another tenant", "KM.00000404", "The resource does not exist: ..."),
    "409": ("Idempotency-Key reused with another request, or still running", "KM.00000409", "The Idempotency ..."),
    "413": ("Request body or uploaded file too large", "KM.00000413", "Request body too large"),
}
SECURITY_SCHEMES = {
    "AkSk": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "Huawei Cloud AK/SK signature as the official SDK computes it: "
            "`SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<names>, Signature=<hex>` with an `X-Sdk-Date` header "
            "(`YYYYMMDDTHHMMSSZ`, at most 15 minutes off); a signature is accepted once."
        ),
    },
    "Token": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
        "description": "An IAM token (valid 24 hours) obtained from the token endpoint.",
    },
}
BINARY = {"type": "string", "format": "binary"}
MAX_DEPTH = 8
SAMPLE_TIME = "2026-11-22T08:00:00Z"


class ExampleBuilder:
    """Builds an example value of a JSON schema (resolving ``$ref`` against the document's components)."""

    def __init__(self, components: dict[str, Any]) -> None:
        self._schemas = components.get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self._schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema

    def build(self, schema: dict[str, Any], name: str = "", depth: int = 0) -> Any:
        schema = self.resolve(schema)
        for key in ("example", "default", "const"):
            if key in schema and schema[key] is not None:
                return schema[key]
        if schema.get("examples"):
            examples = schema["examples"]
            return examples[0] if isinstance(examples, list) else next(iter(examples.values()))
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if self.resolve(s).get("type") != "null"]
                return self.build(options[0], name, depth) if options else None
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self.build(part, name, depth)
                if isinstance(value, dict):
                    merged.update(value)
                else:
                    return value
            return merged
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            if depth >= MAX_DEPTH:
                return {}
            return {prop: self.build(sub, prop, depth + 1) for prop, sub in schema.get("properties", {}).items()}
        if kind == "array":
            if depth >= MAX_DEPTH:
                return []
            count = max(1, int(schema.get("minItems", 1)))
            return [self.build(schema.get("items", {}), name, depth + 1) for _ in range(min(count, 3))]
        if kind == "integer":
            return self._number(schema, name, integer=True)
        if kind == "number":
            return float(self._number(schema, name, integer=False))
        if kind == "boolean":
            return False
        if kind == "string":
            return self._string(schema, name)
        return None

    @staticmethod
    def _number(schema: dict[str, Any], name: str, *, integer: bool) -> int | float:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        guess = {"limit": 10, "offset": 0, "url_type": 0}.get(name, 1)
        value = max(guess, low + (1 if "exclusiveMinimum" in schema else 0))
        if high is not None:
            value = min(value, high - (1 if "exclusiveMaximum" in schema else 0))
        return int(value) if integer else value

    @staticmethod
    def _string(schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format", "")
        lowered = name.lower()
        if fmt == "date-time" or lowered.endswith(("_time", "time")):
            value = SAMPLE_TIME
        elif fmt in ("uri", "url") or "url" in lowered or lowered.endswith(("addr", "target")):
            value = "https://www.example.com/receipts"
        elif lowered in ("mobile", "cust_flag", "phone") or lowered.endswith("mobile"):
            value = "13900000001"
        elif lowered.endswith("_id") or lowered == "id":
            value = f"{lowered.removesuffix('_id').upper() or 'ID'}0000000001"[:32]
        elif "sign" in lowered:
            value = "喜鹊商城"
        elif lowered.endswith("name"):
            value = "example_name"
        elif lowered.endswith(("content", "desc", "remark", "intro")):
            value = "您的优惠已到账，点击 ${1} 查看。拒收请回复R"
        else:
            value = "example"
        min_len, max_len = int(schema.get("minLength", 0)), schema.get("maxLength")
        if len(value) < min_len:
            value = value + "x" * (min_len - len(value))
        if max_len is not None:
            value = value[: int(max_len)]
        return value


def _json_media(content: dict[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    return content.get("application/json")


def _has_example(media: dict[str, Any], builder: ExampleBuilder) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = builder.resolve(media.get("schema", {}))
    return bool(schema.get("example") is not None or schema.get("examples"))


def improve(document: dict[str, Any]) -> dict[str, Any]:
    """Apply the changes of the module docstring to a generated OpenAPI document (in place; returned)."""
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["ErrorBody"] = ERROR_SCHEMA
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    builder = ExampleBuilder(components)
    for path, operations in document.get("paths", {}).items():
        signed = path.startswith("/v1/") or path.startswith("/v3/")
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            responses.pop("422", None)
            wanted = ["400"]
            if signed:
                wanted += ["401", "403"]
                if "{" in path:
                    wanted.append("404")
                if method == "post":
                    wanted += ["409", "413"]
                operation.setdefault("security", [{"AkSk": []}, {"Token": []}])
            for status in wanted:
                description, code, message = ERROR_ANSWERS[status]
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {
                            "application/json": {
                                "schema": ERROR_REF,
                                "example": {"error_code": code, "error_msg": message},
                            }
                        },
                    },
                )
            body = _json_media((operation.get("requestBody") or {}).get("content"))
            if body is not None and not _has_example(body, builder):
                body["example"] = builder.build(body.get("schema", {}))
            for status, response in responses.items():
                if not status.startswith("2"):
                    continue
                if str(operation.get("summary", "")).startswith("download_"):
                    response["content"] = {"application/octet-stream": {"schema": BINARY}}  # the file's bytes
                    continue
                media = _json_media(response.get("content"))
                if media is not None and not _has_example(media, builder):
                    media["example"] = builder.build(media.get("schema", {}))
    return document


def install(app: FastAPI) -> None:
    """Serve the improved document (built once, on first request)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = improve(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
