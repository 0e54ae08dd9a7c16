"""The stance bonus through a whole search, on every store: a question asking what to avoid
finds the allergy, not the favourite cuisine that word vectors put closer to "foods"."""

from __future__ import annotations

from typing import Callable

from memlane import Memory

MEMORIES = ["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"]


def first(memory: Memory, question: str) -> str:
    return str(memory.search(question, user_id="ana", limit=3)["results"][0]["memory"])


def test_with_the_default_config_the_allergy_answers_what_to_avoid_on_every_store(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory()
    memory.add(MEMORIES, user_id="ana", infer=False)
    for question in ("Which foods must I avoid?", "what can't I eat?"):
        assert first(memory, question) == "I am allergic to cheese", question
    assert first(memory, "What dishes do I enjoy most?") == "My favourite cuisine is Indian"  # and the reverse
    # without it the dense cosine and term alignment both pull "foods" to "cuisine"
    memory.config.retrieval = memory.config.retrieval.model_copy(update={"stance_bonus": 0})
    assert first(memory, "Which foods must I avoid?") == "My favourite cuisine is Indian"
