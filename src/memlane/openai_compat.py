"""Building ``openai`` SDK clients for any OpenAI-compatible server, with one credential rule.

Resolution order (as in simonw/llm's key lookup): the provider's own config, then the
``upstream`` section, then ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. A local server (Ollama,
vLLM, llama.cpp) needs no key, so a base_url without a key gets a placeholder rather than an
error; no key and no base_url is a config error that names the fix.
"""

from __future__ import annotations

import os
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict

from memlane.errors import EndpointNotConfiguredError

NO_KEY = "memlane-no-key"
#: what ``chat.completions.create`` sends as its request options (newer SDKs name the auth
#: scheme): a ``client.post`` that skips ``create``'s parameter transform sends these too
CREATE_OPTIONS: dict[str, Any] = ({"security": {"bearer_auth": True}}
                                  if "security" in getattr(getattr(getattr(openai, "_models", None), "FinalRequestOptions", None),
                                                           "model_fields", {})
                                  else {})


def resolve_endpoint(
    base_url: str | None,
    api_key: str | None,
    *,
    fallback_base_url: str | None = None,
    fallback_api_key: str | None = None,
    where: str,
) -> tuple[str | None, str]:
    url = base_url or fallback_base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = api_key or fallback_api_key or os.environ.get("OPENAI_API_KEY") or None
    if key is None:
        if url is None:
            section = where if where == "upstream" else f"{where}.config"
            raise EndpointNotConfiguredError(
                f"{where}: no OpenAI-compatible endpoint configured; set {section}.base_url "
                "(and api_key if the server needs one), or the OPENAI_BASE_URL / OPENAI_API_KEY "
                "environment variables",
                param=where,
            )
        key = NO_KEY
    return url, key


NO_CHAT_ENDPOINT = ("no model server configured for chats: set OPENAI_BASE_URL (and OPENAI_API_KEY), or the config's "
                    "upstream section, e.g. OPENAI_BASE_URL=http://localhost:11434/v1 for a local Ollama")


def chat_endpoint(upstream: Any, llm: dict[str, Any]) -> tuple[str | None, str] | None:
    """Where chats go: the ``upstream`` section, else the ``llm`` section's endpoint (mem0
    configs name only that), else ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; None when nothing is set."""
    try:
        return resolve_endpoint(upstream.base_url, upstream.api_key, fallback_base_url=llm.get("base_url"),
                                fallback_api_key=llm.get("api_key"), where="upstream")
    except EndpointNotConfiguredError:
        return None


class EndpointOptions(BaseModel):
    """Options every OpenAI-compatible provider shares; providers subclass to add their own."""

    model_config = ConfigDict(extra="forbid")
    api_key: str | None = None
    base_url: str | None = None
    #: Seconds per read; ``connect_timeout`` to open a connection.
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2


def build_client(options: EndpointOptions, fallback: tuple[str | None, str | None], *, where: str) -> Any:
    """An ``openai.OpenAI`` client for a provider's options, after the resolution rule above."""
    import openai

    url, key = resolve_endpoint(
        options.base_url, options.api_key, fallback_base_url=fallback[0], fallback_api_key=fallback[1], where=where
    )
    timeout = openai.Timeout(options.timeout, connect=options.connect_timeout)
    return openai.OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=options.max_retries)
