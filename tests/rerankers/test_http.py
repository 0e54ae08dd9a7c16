"""The ``http`` reranker against a scripted ``/v1/rerank`` server over real HTTP, through
``Memory.search``: it re-orders the fused top candidates, and whatever goes wrong with the server
(an error, a hang, a malformed answer, nobody listening) the search answers in the fused order."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any, Callable

import pytest

from memlane import ConfigError, Memory
from memlane.testing import RerankReply, ScriptedReranker

MEMORIES = ["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"]
QUESTION = "Which foods must I avoid?"


def allergy_first(query: str, document: str) -> float:
    """A rule a real cross-encoder would follow here: the allergy answers the question."""
    return 0.92 if "allergic" in document else 0.35 if "cuisine" in document else 0.05


def http_reranker(server: ScriptedReranker, **config: Any) -> dict[str, Any]:
    return {"provider": "http", "config": {"base_url": server.url, "timeout": 2.0, **config}}


def with_memories(make_memory: Callable[..., Memory], reranker: dict[str, Any]) -> Memory:
    # without the stance bonus (which alone ranks the allergy first), so the fused order is wrong
    memory = make_memory(reranker=reranker, retrieval={"stance_bonus": 0})
    memory.add(MEMORIES, user_id="alice", infer=False)
    return memory


def fused(memory: Memory, query: str = QUESTION, **kw: Any) -> list[dict[str, Any]]:
    return memory.search(query, user_id="alice", rerank=False, **kw)["results"]


def test_the_reranker_orders_the_fused_top_and_its_relevance_is_the_score(make_memory: Callable[..., Memory],
                                                                          reranker_server: ScriptedReranker) -> None:
    reranker_server.scorer = allergy_first
    memory = with_memories(make_memory, http_reranker(reranker_server, model="bge-reranker-v2-m3", api_key="rr-key"))
    before = fused(memory)
    assert before[0]["memory"] != "I am allergic to cheese"  # the fused order gets this one wrong (issue 23)
    assert reranker_server.requests == []  # rerank=False sent nothing

    hits = memory.search(QUESTION, user_id="alice")["results"]

    assert [h["memory"] for h in hits] == ["I am allergic to cheese", "My favourite cuisine is Indian", "I live in San Francisco"]
    assert [h["score"] for h in hits] == [0.92, 0.35, 0.05] == [h["rerank_score"] for h in hits]
    hybrid = {h["memory"]: h["score"] for h in before}
    assert all(h["hybrid_score"] == hybrid[h["memory"]] for h in hits)  # the fused score it replaced
    assert "rerank_score" not in before[0] and "hybrid_score" not in before[0]
    (sent,) = reranker_server.requests
    assert sent.path == "/v1/rerank" and sent.headers["authorization"] == "Bearer rr-key"
    assert sent.json == {"query": QUESTION, "documents": [h["memory"] for h in before], "top_n": 3, "model": "bge-reranker-v2-m3"}
    assert memory.rerank_stats() == {"reranked": 1, "rerank_fallbacks": 0, "last_rerank_error": None}


def refused_url() -> str:
    """An address nobody listens on: a port bound, never listened on, then freed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


FAULTS = {
    "500": lambda server: server.queue(RerankReply.error(500)),
    "timeout": lambda server: server.queue(RerankReply.slow(5.0)),
    "not JSON": lambda server: server.queue(RerankReply.raw("<html>bad gateway</html>", content_type="text/html")),
    "no results": lambda server: server.queue(RerankReply.raw({"data": []})),
    "a score missing": lambda server: server.queue(RerankReply.raw({"results": [{"index": 0, "relevance_score": 0.9}]})),
    "an index out of range": lambda server: server.queue(RerankReply.raw(
        {"results": [{"index": i, "relevance_score": 0.5} for i in (0, 1, 7)]})),
    "a score that is not a number": lambda server: server.queue(RerankReply.raw(
        {"results": [{"index": i, "relevance_score": "high"} for i in range(3)]})),
    "connection refused": None,
}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_reranker_never_breaks_the_search(fault: str, make_memory: Callable[..., Memory], reranker_server: ScriptedReranker,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    reranker_server.scorer = allergy_first
    config = http_reranker(reranker_server, timeout=0.5)
    if fault == "connection refused":
        config["config"]["base_url"] = refused_url()
    else:
        FAULTS[fault](reranker_server)  # type: ignore[misc]
    memory = with_memories(make_memory, config)
    expected = fused(memory)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="memlane.rerank"):
        hits = memory.search(QUESTION, user_id="alice")["results"]

    assert time.monotonic() - started < 3  # a hung reranker costs its timeout, not the search
    assert hits == expected  # the fused order and scores, as if no reranker were configured
    stats = memory.rerank_stats()
    assert stats["rerank_fallbacks"] == 1 and stats["reranked"] == 0 and stats["last_rerank_error"]
    assert [r.getMessage() for r in caplog.records if r.name == "memlane.rerank"][0].startswith("reranker 'http' failed")
    if fault != "connection refused":  # the next search finds the server well again
        assert memory.search(QUESTION, user_id="alice")["results"][0]["memory"] == "I am allergic to cheese"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_burst_of_failures_is_counted_each_time_and_logged_once(make_memory: Callable[..., Memory],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    memory = with_memories(make_memory, {"provider": "http", "config": {"base_url": refused_url()}})
    with caplog.at_level(logging.WARNING, logger="memlane.rerank"):
        for _ in range(4):
            assert len(memory.search(QUESTION, user_id="alice")["results"]) == 3
    assert memory.rerank_stats()["rerank_fallbacks"] == 4
    assert len([r for r in caplog.records if r.name == "memlane.rerank"]) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_tei_protocol_and_logit_scores(make_memory: Callable[..., Memory], reranker_server: ScriptedReranker) -> None:
    """TEI's native route takes ``texts`` and answers a bare list of ``{index, score}``;
    llama.cpp answers logits: both end as relevances in [0, 1], in the server's order."""
    reranker_server.scorer = allergy_first
    reranker_server.logits = True
    memory = with_memories(make_memory, http_reranker(reranker_server, base_url=reranker_server.url.removesuffix("/v1"),
                                                      protocol="tei"))
    hits = memory.search(QUESTION, user_id="alice")["results"]
    assert hits[0]["memory"] == "I am allergic to cheese"
    assert all(0.0 <= h["score"] <= 1.0 for h in hits) and hits[0]["score"] > 0.8 > 0.2 > hits[-1]["score"]
    (sent,) = reranker_server.requests
    assert sent.path == "/rerank" and set(sent.json) == {"query", "texts"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_top_n_bounds_what_is_sent_and_threshold_reads_the_reranked_score(make_memory: Callable[..., Memory],
                                                                          reranker_server: ScriptedReranker) -> None:
    reranker_server.scorer = allergy_first
    memory = with_memories(make_memory, http_reranker(reranker_server, top_n=2))
    memory.search(QUESTION, user_id="alice", limit=1)
    assert len(reranker_server.requests[-1].json["documents"]) == 2  # the fused top 2
    memory.search(QUESTION, user_id="alice", limit=3)
    assert len(reranker_server.requests[-1].json["documents"]) == 3  # at least the limit
    kept = memory.search(QUESTION, user_id="alice", threshold=0.3)["results"]
    assert [h["memory"] for h in kept] == ["I am allergic to cheese", "My favourite cuisine is Indian"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_wide_top_n_reaches_past_the_bonus_pool(make_memory: Callable[..., Memory], reranker_server: ScriptedReranker) -> None:
    """The speaker/time/alignment bonuses look at max(3 x limit, 30) candidates; a larger top_n
    still gets that many sent."""
    memory = make_memory(reranker=http_reranker(reranker_server, top_n=40))
    memory.add([f"Food note {i}: tried dish number {i}" for i in range(45)], user_id="alice", infer=False)
    assert len(memory.search("Which food did I try?", user_id="alice", limit=5)["results"]) == 5
    assert len(reranker_server.requests[-1].json["documents"]) == 40


@pytest.mark.parametrize(("config", "message"), [
    ({"provider": "http", "config": {"base_url": "http://x", "bogus": 1}}, "unknown config key 'reranker.config.bogus'"),
    ({"provider": "http", "config": {}}, "reranker.config.base_url"),
    ({"provider": "http", "config": {"base_url": "localhost:8080"}}, "must be an http"),
    ({"provider": "cohere", "config": {}}, "memlane's equivalent is {provider: http"),
    ({"provider": "nope"}, "unknown reranker provider 'nope'; known providers: cross_encoder, http, llm"),
])
def test_a_bad_reranker_section_is_a_clear_error(config: dict[str, Any], message: str, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}, "reranker": config})
