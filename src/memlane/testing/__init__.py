"""Test helpers that ship with memlane, so users' own tests (and ours) get a real model server
without a hosted model: see ``scripted_upstream``, which speaks OpenAI chat completions, OpenAI
Responses and Anthropic Messages over real HTTP, ``rerank_server``, a ``/v1/rerank`` server, and ``webhook_receiver``, a webhook endpoint."""

from memlane.testing.rerank_server import RerankReply, ScriptedReranker
from memlane.testing.scripted_upstream import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.turns import Turn
from memlane.testing.webhook_receiver import WebhookReceiver

__all__ = ["RerankReply", "Reply", "ScriptedRequest", "ScriptedReranker", "ScriptedUpstream", "Turn", "WebhookReceiver"]
