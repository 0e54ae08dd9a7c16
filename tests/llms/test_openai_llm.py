"""The memory LLM over the official openai SDK against the scripted server."""

from __future__ import annotations

import pytest

from memlane import ConfigError, LLMError
from memlane.llms.openai import OpenAILLM
from memlane.testing import Reply, ScriptedUpstream


def test_json_mode_and_options_reach_the_server(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "model": "m-1", "max_tokens": 99})
    upstream.queue(Reply.json({"facts": []}))
    assert llm.complete_json([{"role": "user", "content": "hi"}]) == '{"facts": []}'
    body = upstream.requests[-1].json
    assert body["response_format"] == {"type": "json_object"}
    assert body["model"] == "m-1" and body["max_tokens"] == 99 and body["temperature"] == 0.0
    assert upstream.requests[-1].headers["authorization"] == "Bearer k"


def test_json_mode_can_be_off_for_servers_without_it(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "json_mode": False})
    llm.complete_json([{"role": "user", "content": "hi"}])
    assert "response_format" not in upstream.requests[-1].json
    assert upstream.requests[-1].headers["authorization"] == "Bearer memlane-no-key"


@pytest.mark.parametrize("status", [400, 429, 500])
def test_server_errors_become_llm_errors(upstream: ScriptedUpstream, status: int) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "max_retries": 0})
    upstream.queue(Reply.error(status, "nope"))
    with pytest.raises(LLMError, match="memory LLM call failed"):
        llm.complete_json([{"role": "user", "content": "hi"}])


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match="llm.config.temprature"):
        OpenAILLM({"temprature": 0.2})
