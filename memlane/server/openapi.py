"""``/openapi.json`` as the server answers: errors are OpenAI's envelope with the statuses the
server really uses (FastAPI's default documents a 422 this server never sends)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}
_OPEN = {"/healthz", "/readyz"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def describe(app: FastAPI) -> dict[str, Any]:
    """The document, built once: every operation lists the error statuses it can answer."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["ErrorResponse"] = ERROR_SCHEMA
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if path in _OPEN:
                    continue
                responses["400"] = _error("Bad input: the message and param name the field")
                responses["401"] = _error("Missing, invalid or revoked API key (when keys are required)")
                if "{" in path:
                    responses["404"] = _error("No such memory in this project")
                if path.startswith("/v1/chat") or path == "/v1/models":
                    responses["502"] = _error("The upstream model server failed, refused memlane's key, or answered something unusable")
                    responses["504"] = _error("The upstream model server timed out")
                if method in ("post", "put"):
                    responses["413"] = _error("Request body too large")
                responses["503"] = _error("The store is unavailable")
        app.openapi_schema = spec
    return app.openapi_schema
