"""The memory LLM on any OpenAI-compatible chat server, through the official ``openai`` SDK."""

from __future__ import annotations

import threading
from typing import Any

from memlane.config import validate_section
from memlane.errors import LLMError, MemlaneError
from memlane.openai_compat import EndpointOptions, build_client

DEFAULT_MODEL = "gpt-4.1-nano"


class Options(EndpointOptions):
    model: str = DEFAULT_MODEL
    temperature: float = 0.0
    max_tokens: int | None = None
    timeout: float = 120.0
    #: The outbox retries a failed exchange with backoff; SDK retries underneath would multiply it.
    max_retries: int = 0
    #: Some servers reject ``response_format``; the strict parser still checks the JSON.
    json_mode: bool = True


class OpenAILLM:
    def __init__(
        self,
        options: dict[str, Any] | None = None,
        *,
        fallback_base_url: str | None = None,
        fallback_api_key: str | None = None,
        **_: Any,
    ) -> None:
        self.options = validate_section(Options, options or {}, "llm.config")
        self._fallback = (fallback_base_url, fallback_api_key)
        self._client: Any = None
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def client(self) -> Any:
        """Built on first use, so a store used only with ``infer=False`` needs no endpoint."""
        with self._lock:
            if self._client is None:
                self._client = build_client(self.options, self._fallback, where="llm")
            return self._client

    def release_idle(self) -> None:
        """Close the client's kept-alive connections while no call is in flight (the learner
        calls it when the outbox is empty): an idle learner holds no connection to the model
        server. The next call builds a new client."""
        with self._lock:
            if self._client is None or self._in_flight:
                return
            client, self._client = self._client, None
        client.close()

    def complete_json(self, messages: list[dict[str, Any]], *, model: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "model": model or self.options.model,
            "messages": messages,
            "temperature": self.options.temperature,
        }
        if self.options.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        if self.options.max_tokens:
            kwargs["max_tokens"] = self.options.max_tokens
        with self._lock:
            self._in_flight += 1
        try:
            client = self.client  # a missing endpoint is a ConfigError, not an LLM failure
            resp = client.chat.completions.create(**kwargs)
        except MemlaneError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/connection error becomes LLMError
            raise LLMError(f"memory LLM call failed: {exc}") from exc
        finally:
            with self._lock:
                self._in_flight -= 1
        if not resp.choices:
            raise LLMError("memory LLM answered with no choices")
        return resp.choices[0].message.content or ""
