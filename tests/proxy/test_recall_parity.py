"""The chat path recalls exactly what ``Memory.search`` finds: the embedded client and a memlane
server, asked the same question, inject the same memories in the same order with the same
scores, speaker and time bonuses included (issue 13's "same recall as Memory.search")."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest

from memlane import Memlane
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config

CONVERSATION = [
    ("2023-05-08T13:56:00Z", [("Caroline", "I went to a LGBTQ support group yesterday and it was so powerful."),
                              ("Melanie", "That's great! I'm painting a sunrise over the lake these days."),
                              ("Caroline", "I'm looking into adoption agencies; I want to give kids a loving home.")]),
    ("2023-06-27T10:00:00Z", [("Melanie", "We went camping with the kids at the beach last weekend."),
                              ("Caroline", "I gave a talk at a school about my transgender journey."),
                              ("Melanie", "I signed up for a pottery class, it's so calming.")]),
    ("2023-08-14T18:30:00Z", [("Caroline", "The adoption agency interview went well, I'm hopeful!"),
                              ("Melanie", "My daughter's birthday was lovely, we saw a concert together.")]),
]
#: question -> (speaker, month) every one of its first hits has (None: any): the bonuses at work
QUESTIONS = {
    "What did Caroline research?": (3, "Caroline", None),  # names a speaker: the speaker bonus
    "What did Melanie do in June 2023?": (2, "Melanie", "2023-06"),  # a speaker and a period: both bonuses
    "Which hobbies are calming?": (1, "Melanie", None),
    "When did the interview with the agency happen?": (1, "Caroline", "2023-08"),
}


def ranked(memories: list[Any]) -> list[tuple[str, float]]:
    return [(m["id"], round(m["score"], 4)) if isinstance(m, dict) else (m.id, round(m.score, 4)) for m in memories]


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_embedded_client_and_the_server_inject_what_search_finds(question: str, make_server: Callable[..., LiveServer],
                                                                      upstream: ScriptedUpstream, tmp_path: Path) -> None:
    server = make_server()
    api = httpx.Client(base_url=server.url)
    for when, turns in CONVERSATION:
        body = {"messages": [{"role": "user", "content": text, "name": who} for who, text in turns],
                "user_id": "conv-1", "infer": False, "timestamp": when}
        assert api.post("/v1/memories", json=body).status_code == 200

    client = Memlane(config=client_config(tmp_path / "server.db", upstream))  # the server's store, embedded
    try:
        results = client.memory.search(question, user_id="conv-1", limit=10)["results"]
        first, speaker, month = QUESTIONS[question]
        assert all(r["metadata"]["actor_id"] == speaker and r["created_at"].startswith(month or "") for r in results[:first])
        searched = ranked(results)
        assert len(searched) == 8
        embedded = client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}],
                                                  user_id="conv-1", include_memories=True)
        assert ranked(embedded.metadata.memories) == searched
    finally:
        client.close()
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    served = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": question}],
                                         extra_body={"user_id": "conv-1", "include_memories": True})
    assert ranked(served.metadata["memories"]) == searched  # type: ignore[attr-defined]
