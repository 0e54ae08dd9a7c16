"""The one exception tree of memlane.

Every error memlane raises on purpose is a ``MemlaneError``; faces (client, server, CLI) map
them to their own shape at the boundary, and ``http_status`` says which HTTP status the
server answers with. Errors from sqlite3, psycopg, qdrant-client or the openai SDK are
translated into this tree where they cross into the engine.

    MemlaneError
    ├── ConfigError            bad or unknown config key, provider or value
    │   ├── EmbedderMismatchError   the store was built with another embedding model
    │   └── EndpointNotConfiguredError  no model server configured where one is needed (503)
    ├── ValidationError        bad input to a public method (400)
    │   ├── ScopeError         no user_id / agent_id / run_id where one is required
    │   └── FilterError        malformed filter or unknown operator
    ├── NotFoundError          unknown memory id (404)
    ├── StoreError             the store failed or is unreachable (503)
    ├── EmbedderError          the embedder failed (503)
    ├── LLMError               the memory LLM failed or answered something unusable (502)
    │   └── LLMResponseError   invalid JSON / wrong shape, even after one repair attempt
    └── UpstreamError          the chat model server answered something that is not OpenAI's shape (502)
"""

from __future__ import annotations


class MemlaneError(Exception):
    """Root of every error memlane raises on purpose."""

    http_status: int = 500
    #: The ``code`` of the server's error envelope; default: the class name in snake case.
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:  # a more precise envelope code than the class's (e.g. text_too_long)
            self.code = code


class ConfigError(MemlaneError):
    http_status = 400


class EmbedderMismatchError(ConfigError):
    http_status = 409


class EndpointNotConfiguredError(ConfigError):
    http_status = 503


class ValidationError(MemlaneError, ValueError):
    """Also a ValueError, so generic callers catching bad arguments keep working."""

    http_status = 400


class ScopeError(ValidationError):
    pass


class FilterError(ValidationError):
    pass


class NotFoundError(MemlaneError):
    http_status = 404


class StoreError(MemlaneError):
    http_status = 503


class EmbedderError(MemlaneError):
    http_status = 503


class LLMError(MemlaneError):
    http_status = 502


class LLMResponseError(LLMError):
    pass


class UpstreamError(MemlaneError):
    http_status = 502
    code = "upstream_error"


__all__ = [
    "ConfigError",
    "EmbedderError",
    "EmbedderMismatchError",
    "EndpointNotConfiguredError",
    "FilterError",
    "LLMError",
    "LLMResponseError",
    "MemlaneError",
    "NotFoundError",
    "ScopeError",
    "StoreError",
    "UpstreamError",
    "ValidationError",
]
