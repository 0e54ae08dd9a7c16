"""The LLM contract the engine needs: one chat call that answers a JSON object as text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class JSONTask:
    """What one memory call asks for, so a provider can constrain the answer: servers that
    take a JSON schema (OpenAI, vLLM, llama.cpp, Ollama, LM Studio) decode only answers of that
    shape, which is what keeps a small local model from writing a placeholder or a half object.
    ``max_tokens`` is sized from the task (a server's own default can cut an answer short)."""

    name: str
    schema: dict[str, Any] = field(hash=False)
    max_tokens: int


@runtime_checkable
class LLM(Protocol):
    def complete_json(self, messages: list[dict[str, Any]], *, model: str | None = None,
                      task: JSONTask | None = None) -> str:
        """Return the raw text of the model's answer, requested as JSON (of ``task``'s schema
        where the server supports it); the engine parses and checks it whatever was asked."""
        ...
