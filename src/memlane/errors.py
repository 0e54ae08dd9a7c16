"""The one exception tree of memlane.

Every error memlane raises on purpose is a ``MemlaneError``; faces (client, server, CLI) map
them to their own shape at the boundary, and ``http_status`` says which HTTP status the
server answers with. Errors from sqlite3, psycopg, qdrant-client or the openai SDK are
translated into this tree where they cross into the engine.

    MemlaneError
    ├── ConfigError            bad or unknown config key, provider or value
    │   ├── AuthenticationError     a memlane server refused the API key (401; hosted mode)
    │   ├── EmbedderMismatchError   the store was built with another embedding model
    │   └── EndpointNotConfiguredError  no model server configured where one is needed (503)
    ├── ValidationError        bad input to a public method (400)
    │   ├── ScopeError         no user_id / agent_id / run_id where one is required
    │   └── FilterError        malformed filter or unknown operator
    ├── NotFoundError          unknown memory id (404)
    ├── StoreError             the store failed or is unreachable (503)
    ├── OutboxFullError        the outbox holds outbox.max_queued exchanges or max_queued_mb (429)
    │   └── ExchangeTooLargeError   one exchange larger than the whole outbox.max_queued_mb (413)
    ├── EmbedderError          the embedder failed (503)
    ├── LLMError               the memory LLM failed or answered something unusable (502)
    │   └── LLMResponseError   invalid JSON / wrong shape, even after one repair attempt
    ├── RerankerError          a reranker failed, timed out or answered something unusable (502;
    │                          recall never raises it: it falls back to the fused order)
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


class AuthenticationError(ConfigError):
    """A memlane server refused the API key. Hosted mode raises it for memory calls and chats
    alike (for chats as a subclass of ``openai.AuthenticationError`` too, see
    ``memlane.proxy.hosted``); a ``ConfigError``, as the key is configuration."""

    http_status = 401
    code = "invalid_api_key"


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


class OutboxFullError(MemlaneError):
    """The store's outbox already holds ``outbox.max_queued`` exchanges (or
    ``outbox.max_queued_mb``): one project cannot fill the disk. A chat is never refused for it
    (its exchange is then not learnt from, and that is counted and logged)."""

    http_status = 429
    code = "outbox_full"


class ExchangeTooLargeError(OutboxFullError):
    """One exchange larger than the whole outbox bound: it could never be queued."""

    http_status = 413
    code = "exchange_too_large"


class EmbedderError(MemlaneError):
    http_status = 503


class LLMError(MemlaneError):
    http_status = 502


class LLMResponseError(LLMError):
    pass


class RerankerError(MemlaneError):
    """A reranker failed. Raised by reranker providers; the engine catches it and keeps the
    fused order (memlane.engine.reranking), so a search never fails for it."""

    http_status = 502
    code = "reranker_error"


class UpstreamError(MemlaneError):
    http_status = 502
    code = "upstream_error"


__all__ = [
    "AuthenticationError",
    "ConfigError",
    "EmbedderError",
    "EmbedderMismatchError",
    "EndpointNotConfiguredError",
    "ExchangeTooLargeError",
    "FilterError",
    "LLMError",
    "LLMResponseError",
    "MemlaneError",
    "NotFoundError",
    "OutboxFullError",
    "RerankerError",
    "ScopeError",
    "StoreError",
    "UpstreamError",
    "ValidationError",
]
