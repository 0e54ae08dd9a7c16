"""The LLM contract the engine needs: one chat call that answers a JSON object as text."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LLM(Protocol):
    def complete_json(self, messages: list[dict[str, Any]], *, model: str | None = None) -> str:
        """Return the raw text of the model's answer, requested in JSON mode."""
        ...
