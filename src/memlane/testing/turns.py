"""One view of a chat request's conversation, whichever protocol carried it.

Tests ask the scripted upstream "what did the model see?" the same way for OpenAI chat
completions, OpenAI Responses and Anthropic Messages: a list of ``Turn`` (role, text, kind). Only
text is read (text content parts and blocks, joined by newlines); images, audio and files are left
out of ``text`` and stay in the request's raw ``json``. Tool traffic gets turns of its own, with
``kind`` saying which (``function_call``/``function_call_output`` in Responses, ``tool_use``/
``tool_result`` in Messages, ``tool_calls`` messages and ``role: tool`` in chat), so that a test can
check what was and was not sent as a plain message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Protocol = Literal["chat", "responses", "messages"]

#: Content part and block types whose ``text`` is conversation text, in all three protocols.
TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    #: ``message`` for a plain turn; otherwise the tool item or block it came from.
    kind: str = "message"


def text_of(content: Any) -> str:
    """The text of a content value: a string, or the text parts of a list of parts or blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") in TEXT_PARTS and isinstance(p.get("text"), str)]
        return "\n".join(texts)
    return ""


def turns_of(protocol: Protocol, body: Any) -> list[Turn]:
    """The turns of a request body in ``protocol``, system prompt first, in the order sent."""
    if not isinstance(body, dict):
        return []
    if protocol == "chat":
        return _chat_turns(body)
    if protocol == "responses":
        return _responses_turns(body)
    return _messages_turns(body)


def _chat_turns(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", ""))
        if role == "tool":
            turns.append(Turn("tool", text_of(m.get("content")), "tool_result"))
            continue
        if m.get("content") is not None or not m.get("tool_calls"):
            turns.append(Turn(role, text_of(m.get("content"))))
        for call in m.get("tool_calls") or []:
            turns.append(Turn(role, str((call.get("function") or {}).get("arguments", "")), "tool_call"))
    return turns


def _responses_turns(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        turns.append(Turn("system", instructions))
    items = body.get("input")
    if isinstance(items, str):
        turns.append(Turn("user", items))
        return turns
    for item in items or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and "role" in item:
            turns.append(Turn(str(item["role"]), text_of(item.get("content"))))
        elif kind == "function_call":
            turns.append(Turn("assistant", str(item.get("arguments", "")), "function_call"))
        elif kind == "function_call_output":
            output = item.get("output")
            turns.append(Turn("tool", output if isinstance(output, str) else text_of(output), "function_call_output"))
    return turns


def _messages_turns(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    system = body.get("system")
    if system:
        turns.append(Turn("system", text_of(system)))
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", ""))
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        if isinstance(content, str) or any(isinstance(b, dict) and b.get("type") in TEXT_PARTS for b in blocks) or not blocks:
            turns.append(Turn(role, text_of(content)))
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                turns.append(Turn(role, json.dumps(block.get("input", {})), "tool_use"))
            elif block.get("type") == "tool_result":
                turns.append(Turn("tool", text_of(block.get("content")), "tool_result"))
    return turns


def count_tokens(turns: list[Turn]) -> int:
    """The scripted tokenizer: one token per whitespace-separated word of every turn."""
    return sum(len(t.text.split()) for t in turns)
