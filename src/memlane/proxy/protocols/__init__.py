"""The chat protocols memlane speaks, one adapter each (see ``base``), found by name."""

from __future__ import annotations

from memlane.proxy.protocols.base import ChatProtocol
from memlane.proxy.protocols.chat import ChatCompletions
from memlane.proxy.protocols.messages import AnthropicMessages
from memlane.proxy.protocols.responses import Responses

CHAT = ChatCompletions()
RESPONSES = Responses()
MESSAGES = AnthropicMessages()
PROTOCOLS: dict[str, ChatProtocol] = {p.name: p for p in (CHAT, RESPONSES, MESSAGES)}

__all__ = ["CHAT", "MESSAGES", "PROTOCOLS", "RESPONSES", "ChatProtocol"]
