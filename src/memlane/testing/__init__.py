"""Test helpers that ship with memlane, so users' own tests (and ours) get a real OpenAI-protocol
server without a hosted model: see ``scripted_upstream``."""

from memlane.testing.scripted_upstream import Reply, ScriptedRequest, ScriptedUpstream

__all__ = ["Reply", "ScriptedRequest", "ScriptedUpstream"]
