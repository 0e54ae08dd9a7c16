"""The memory LLM on any OpenAI-compatible chat server, through the official ``openai`` SDK."""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion

from memlane.config import validate_section
from memlane.errors import LLMError, MemlaneError
from memlane.llms.base import JSONTask
from memlane.openai_compat import CREATE_OPTIONS, EndpointOptions, build_client

log = logging.getLogger("memlane.llm")

DEFAULT_MODEL = "gpt-4.1-nano"

#: How an answer's shape is asked for, strongest first: a server that refuses one is asked the
#: next way (and remembered, per model, for the life of the client).
FORMATS = ("json_schema", "json_object", "text")
#: the order ``chat.completions.create`` writes these keys in
_BODY_ORDER = ("model", "messages", "max_tokens", "response_format", "temperature")
#: words in a 400/422 that say the server refused the ``response_format`` rather than the call
_FORMAT_REFUSAL = ("response_format", "json_schema", "json schema", "schema", "grammar", "structured", "guided")


class Options(EndpointOptions):
    model: str = DEFAULT_MODEL
    temperature: float = 0.0
    #: a cap on every memory call's answer; each call also sets its own from its task's size
    max_tokens: int | None = None
    timeout: float = 120.0
    #: The outbox retries a failed exchange with backoff; SDK retries underneath would multiply it.
    max_retries: int = 0
    #: How answers are constrained: ``auto`` asks for the task's JSON schema, then JSON mode,
    #: then plain text, stepping down when a server refuses one (logged once); the strict
    #: parser checks every answer whatever was asked.
    response_format: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    #: ``false`` is ``response_format: text`` (kept from before ``response_format`` existed)
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
        #: per model: the strongest format its server has not refused
        self._formats: dict[str, str] = {}

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

    def format_for(self, model: str) -> str:
        """The ``response_format`` kind the next call for ``model`` asks for."""
        if not self.options.json_mode:
            return "text"
        if self.options.response_format != "auto":
            return self.options.response_format
        return self._formats.get(model, FORMATS[0])

    def _refused(self, model: str, kind: str, exc: Exception) -> bool:
        """Whether ``exc`` is the server refusing ``kind``; if so, step down (logged once)."""
        if kind == "text" or self.options.response_format != "auto":
            return False
        if not isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
            return False
        if not any(word in str(exc).lower() for word in _FORMAT_REFUSAL):
            return False
        following = FORMATS[FORMATS.index(kind) + 1]
        with self._lock:
            self._formats[model] = following
        log.warning("the memory model server refused response_format %s for %r (%s); asking with %s from now on",
                    kind, model, str(exc)[:200], following)
        return True

    def complete_json(self, messages: list[dict[str, Any]], *, model: str | None = None,
                      task: JSONTask | None = None) -> str:
        model = model or self.options.model
        while True:
            kind = self.format_for(model)
            if kind == "json_schema" and task is None:
                kind = "json_object"
            try:
                return self._call(messages, model, kind, task)
            except LLMError as exc:
                if not self._refused(model, kind, exc.__cause__ or exc):
                    raise

    def _call(self, messages: list[dict[str, Any]], model: str, kind: str, task: JSONTask | None) -> str:
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "temperature": self.options.temperature}
        if kind == "json_schema" and task is not None:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": task.name, "schema": task.schema, "strict": True}}
        elif kind == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        caps = [n for n in (self.options.max_tokens, task.max_tokens if task else None) if n]
        if caps:
            kwargs["max_tokens"] = min(caps)
        with self._lock:
            self._in_flight += 1
        try:
            client = self.client  # a missing endpoint is a ConfigError, not an LLM failure
            # The body is memlane's own JSON (strings, numbers, the task's schema as a dict), so
            # ``chat.completions.create``'s parameter transform (a walk of every message and of
            # the schema against the SDK's TypedDicts) would change nothing: ``client.post`` sends
            # the same request, with the SDK's errors and parsing, for about a third less CPU per
            # call (1.1 -> 0.7 ms for a reconcile-sized one, bench/README.md).
            body = {k: kwargs[k] for k in _BODY_ORDER if k in kwargs}  # (byte for byte what ``create`` sends)
            resp = client.post("/chat/completions", body=body, options=CREATE_OPTIONS, cast_to=ChatCompletion)
        except MemlaneError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/connection error becomes LLMError
            raise LLMError(f"memory LLM call failed: {exc}") from exc
        finally:
            with self._lock:
                self._in_flight -= 1
        # The SDK does not validate a 200's body: it hands back the text of one that is not JSON
        # (an HTML page), a list, or a completion missing its parts; each is the LLM failing.
        choices = getattr(resp, "choices", None) if isinstance(resp, ChatCompletion) else None
        if not isinstance(resp, ChatCompletion) or (choices is not None and not isinstance(choices, list)):
            raise LLMError(f"memory LLM answered with something that is not a chat completion: {str(resp)[:200]!r}")
        if not choices:
            raise LLMError("memory LLM answered with no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if message is None or not (content is None or isinstance(content, str)):
            raise LLMError(f"memory LLM answered with something that is not a chat completion: {str(resp)[:200]!r}")
        if getattr(choice, "finish_reason", None) == "length":
            log.warning("the memory model's answer for %r was cut at max_tokens=%s", model, kwargs.get("max_tokens"))
        return content or ""
