"""memlane: long-term memory for OpenAI-style chat applications."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memlane.engine.memory import AsyncMemory, Memory
from memlane.errors import (
    AuthenticationError,
    ConfigError,
    EmbedderMismatchError,
    FilterError,
    LLMError,
    MemlaneError,
    NotFoundError,
    OutboxFullError,
    ScopeError,
    StoreError,
    ValidationError,
)

if TYPE_CHECKING:
    from memlane.proxy.client import AsyncMemlane, Mem0, Memlane
    from memlane.proxy.types import MemlaneChatCompletion

#: the chat clients load the openai SDK (~0.25 s), so they are imported when first used: a
#: program that only uses the engine (or the CLI) does not pay for them
_CLIENTS = {"AsyncMemlane": "memlane.proxy.client", "Mem0": "memlane.proxy.client", "Memlane": "memlane.proxy.client",
            "MemlaneChatCompletion": "memlane.proxy.types"}


def __getattr__(name: str) -> Any:
    if name in _CLIENTS:
        import importlib

        value = getattr(importlib.import_module(_CLIENTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memlane' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "AsyncMemlane",
    "AsyncMemory",
    "AuthenticationError",
    "ConfigError",
    "EmbedderMismatchError",
    "FilterError",
    "LLMError",
    "Mem0",
    "Memlane",
    "MemlaneChatCompletion",
    "MemlaneError",
    "Memory",
    "NotFoundError",
    "OutboxFullError",
    "ScopeError",
    "StoreError",
    "ValidationError",
    "__version__",
]
