"""``/openapi.json`` as the server answers: errors are OpenAI's envelope with the statuses the
server really uses (FastAPI's default documents a 422 this server never sends)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

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
#: routes whose memory calls run in the project's lanes (server/lanes.py), which answer 429 when full
_LANED = ("/v1/memories", "/v1/exchanges", "/v1/entities", "/v1/users", "/v1/exports", "/v2/", "/v3/", "/v1/batch", "/v1/feedback",
          "/v1/webhooks", "/api/v1/webhooks", "/v1/project", "/api/v1/orgs")
_SCOPE_FIELDS = {"user_id": {"type": "string", "description": "memory scope (or the X-Memlane-User-Id header)"},
                 "agent_id": {"type": "string"}, "run_id": {"type": "string"}}
#: OpenAI's chat request as memlane reads it: model and messages are checked, every other
#: OpenAI field passes through to the model untouched, memlane's own fields are taken out
CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "additionalProperties": True,
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role"],
                                                                "properties": {"role": {"type": "string"}}}},
        "stream": {"type": "boolean"},
        **_SCOPE_FIELDS,
        "metadata": {"type": "object", "description": "stored with what is learnt; never sent upstream"},
        "filters": {"type": "object", "description": "restricts what is recalled (mem0's filter language)"},
        "limit": {"type": "integer", "minimum": 1, "description": "memories injected at most (default 10)"},
        "top_k": {"type": "integer", "minimum": 1, "description": "another name for limit"},
        "include_memories": {"type": "boolean", "description": "answer with metadata.memories: what was recalled"},
    },
}


_MEMLANE_FIELDS = {key: value for key, value in CHAT_REQUEST["properties"].items()  # type: ignore[attr-defined]
                   if key not in ("model", "messages", "stream")}
#: OpenAI's Responses request as memlane reads it (``input`` a string or items; the rest passes)
RESPONSES_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "additionalProperties": True,
    "properties": {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string", "minLength": 1},
                            {"type": "array", "minItems": 1, "items": {"type": "object"}}]},
        "instructions": {"type": "string"},
        "stream": {"type": "boolean"},
        **_MEMLANE_FIELDS,
    },
}
#: Anthropic's Messages request as memlane reads it (memlane's fields as for chat)
MESSAGES_REQUEST = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "additionalProperties": True,
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role", "content"],
                                                                "properties": {"role": {"type": "string"}}}},
        "stream": {"type": "boolean"},
        **{key: value for key, value in _MEMLANE_FIELDS.items() if key != "metadata"},
    },
}
EMBEDDINGS_REQUEST = {"type": "object", "required": ["model", "input"], "additionalProperties": True,
                      "properties": {"model": {"type": "string"}, "input": {}}}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {"type": {"type": "string", "enum": ["error"]},
                   "error": {"type": "object", "required": ["type", "message"],
                             "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}},
}
#: the request body each model route takes, by path
_BODIES = {"/v1/chat/completions": "ChatRequest", "/v1/responses": "ResponsesRequest", "/v1/messages": "MessagesRequest",
           "/v1/messages/count_tokens": "MessagesRequest", "/v1/embeddings": "EmbeddingsRequest"}
_MODEL_ROUTES = ("/v1/chat", "/v1/responses", "/v1/messages", "/v1/embeddings", "/v1/models")


def _error(description: str, schema: str = "ErrorResponse") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def describe(app: FastAPI) -> dict[str, Any]:
    """The document, built once: every operation lists the error statuses it can answer."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["ErrorResponse"] = ERROR_SCHEMA
        schemas["ChatRequest"] = CHAT_REQUEST
        schemas["ResponsesRequest"] = RESPONSES_REQUEST
        schemas["MessagesRequest"] = MESSAGES_REQUEST
        schemas["EmbeddingsRequest"] = EMBEDDINGS_REQUEST
        schemas["AnthropicErrorResponse"] = ANTHROPIC_ERROR
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                            "description": "a memlane key (`memlane keys create`); `Token <key>` works too"}}
        for path, schema in _BODIES.items():
            operation = spec["paths"].get(path, {}).get("post")
            if operation is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if path in _OPEN:
                    continue
                operation["security"] = [{"bearer": []}]
                kind = "AnthropicErrorResponse" if path.startswith("/v1/messages") else "ErrorResponse"
                responses["400"] = _error("Bad input: the message and param name the field", kind)
                responses["401"] = _error("Missing, invalid or revoked API key (when keys are required)", kind)
                if "{" in path:
                    responses["404"] = _error("No such memory in this project")
                if path.startswith(_MODEL_ROUTES):
                    responses["502"] = _error("The upstream model server failed, refused memlane's key, or answered something unusable", kind)
                    responses["504"] = _error("The upstream model server timed out", kind)
                if method in ("post", "put"):
                    responses["413"] = _error("Request body too large", kind)
                    responses["415"] = _error("The body is not JSON (send Content-Type: application/json)", kind)
                if path.startswith(_LANED):
                    responses["429"] = _error("The project has too many memory calls running and queued (see Retry-After)")
                responses["503"] = _error("The store is unavailable", kind)
        app.openapi_schema = spec
    return app.openapi_schema


#: the API docs pages load images and data from this server only (their scripts and styles are
#: the bundles' own, inline ones included, so those are not restricted)
DOCS_POLICY = "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), from files shipped in a package so the
    pages work with no network (FastAPI's defaults load them from a CDN and stay blank offline).

    The files come from ``fastapi-offline``'s ``static`` folder (Swagger UI 5, ReDoc 2), served
    under ``/docs/assets``; only its files are used, not its FastAPI subclass. Swagger UI must be
    5 or later: this document is OpenAPI 3.1 (FastAPI's), which Swagger UI 4 (the
    ``swagger-ui-bundle`` package) answers with "Unable to render this definition".

    Both pages answer with :data:`DOCS_POLICY`, so the browser loads no image nor data from
    elsewhere: ReDoc's footer otherwise fetches its logo from Redocly's CDN (the image hides
    itself when refused), and Swagger UI's validator badge is off.
    """
    from fastapi.openapi.docs import get_redoc_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs/assets", StaticFiles(directory=docs_assets()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="memlane API", swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url="/docs/assets/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})
        page.headers["content-security-policy"] = DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url="/openapi.json", title="memlane API", redoc_js_url="/docs/assets/redoc.standalone.js",
                              redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False)
        page.headers["content-security-policy"] = DOCS_POLICY
        return page


def docs_assets() -> Path:
    """The folder holding ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"
