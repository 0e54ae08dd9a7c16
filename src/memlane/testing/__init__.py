"""Test helpers that ship with memlane, so users' own tests (and ours) get a real model server
without a hosted model: see ``scripted_upstream``, which speaks OpenAI chat completions, OpenAI
Responses and Anthropic Messages over real HTTP, and ``rerank_server``, a ``/v1/rerank`` server."""

from memlane.testing.rerank_server import RerankReply, ScriptedReranker
from memlane.testing.scripted_upstream import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.turns import Turn

__all__ = ["RerankReply", "Reply", "ScriptedRequest", "ScriptedReranker", "ScriptedUpstream", "Turn"]
