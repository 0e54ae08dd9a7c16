"""memlane: long-term memory for OpenAI-style chat applications."""

from memlane.engine.memory import AsyncMemory, Memory
from memlane.errors import (
    ConfigError,
    EmbedderMismatchError,
    FilterError,
    LLMError,
    MemlaneError,
    NotFoundError,
    ScopeError,
    StoreError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncMemory",
    "ConfigError",
    "EmbedderMismatchError",
    "FilterError",
    "LLMError",
    "MemlaneError",
    "Memory",
    "NotFoundError",
    "ScopeError",
    "StoreError",
    "ValidationError",
    "__version__",
]
