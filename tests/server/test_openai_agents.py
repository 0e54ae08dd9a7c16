"""The OpenAI Agents SDK (Responses API by default, tracing off) running an agent against
memlane serve: a fact told in one run is recalled in a later run of the same user, and the
agent's tool loop reaches the model with its memory block unchanged from step to step."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai

from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm
from tests.threads import wait_until


def test_an_agent_recalls_in_a_later_run_what_it_was_told_in_an_earlier_one(server: LiveServer, upstream: ScriptedUpstream) -> None:
    from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)

    @function_tool
    def find_restaurants(city: str) -> str:
        """Restaurants open tonight in a city."""
        return f"Curry House and Pizza Roma are open in {city}"

    def agent() -> Any:
        model = OpenAIResponsesModel(model="gpt-4.1-nano",
                                     openai_client=openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0))
        return Agent(name="concierge", instructions="Plan dinners.", tools=[find_restaurants], model=model,
                     model_settings=ModelSettings(extra_body={"user_id": "alice"}))

    async def run(question: str) -> str:
        return str((await Runner.run(agent(), question)).final_output)

    upstream.handler = restaurant_llm
    assert asyncio.run(run("I love Indian food but I'm allergic to cheese.")) == "Noted! Here is my suggestion."
    learnt = lambda: {m["memory"] for m in httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"]}  # noqa: E731
    assert wait_until(lambda: learnt() == {"Is allergic to cheese", "Loves Indian food"}, 30)

    def concierge(req: ScriptedRequest) -> Reply:
        if req.stage != "chat":
            return restaurant_llm(req)
        if req.turns[-1].kind == "function_call_output":
            return Reply.text("Try Curry House: no cheese there.")
        return Reply.tools([{"name": "find_restaurants", "arguments": {"city": "San Francisco"}}])

    upstream.clear()
    upstream.handler = concierge
    assert asyncio.run(run("Suggest dinner options in San Francisco.")) == "Try Curry House: no cheese there."
    step, after_tool = [r.json for r in upstream.model_requests("chat", protocol="responses")]
    assert "Is allergic to cheese" in json.dumps([i for i in step["input"] if MEMORY_PREAMBLE in str(i.get("content"))])
    block = next(i for i in step["input"] if MEMORY_PREAMBLE in str(i.get("content")))
    assert block in after_tool["input"] and after_tool["input"][: len(step["input"])] == step["input"], \
        "the tool step repeats the first step's input, memory block included"
    assert after_tool["input"][-1]["type"] == "function_call_output"
