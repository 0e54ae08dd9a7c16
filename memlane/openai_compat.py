"""Building ``openai`` SDK clients for any OpenAI-compatible server, with one credential rule.

Resolution order (as in simonw/llm's key lookup): the provider's own config, then the
``upstream`` section, then ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. A local server (Ollama,
vLLM, llama.cpp) needs no key, so a base_url without a key gets a placeholder rather than an
error; no key and no base_url is a config error that names the fix.
"""

from __future__ import annotations

import os
from typing import Any

from memlane.errors import ConfigError

NO_KEY = "memlane-no-key"


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
            raise ConfigError(
                f"{where}: no OpenAI-compatible endpoint configured; set {where}.config.base_url "
                "(and api_key if the server needs one), or the OPENAI_BASE_URL / OPENAI_API_KEY "
                "environment variables",
                param=where,
            )
        key = NO_KEY
    return url, key


def make_client(base_url: str | None, api_key: str, *, timeout: float, max_retries: int) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
