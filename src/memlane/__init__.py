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
from memlane.proxy.client import AsyncMemlane, Mem0, Memlane
from memlane.proxy.types import MemlaneChatCompletion

__version__ = "0.1.0"

__all__ = [
    "AsyncMemlane",
    "AsyncMemory",
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
    "ScopeError",
    "StoreError",
    "ValidationError",
    "__version__",
]
