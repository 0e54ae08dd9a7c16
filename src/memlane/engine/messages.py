"""Turning what callers pass as ``messages`` into a clean list of OpenAI-format turns."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from memlane.engine.prompts import transcript_line
from memlane.errors import ValidationError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content array."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(p for p in parts if p)
    raise ValidationError(f"message content must be a string or a list of parts, got {type(content).__name__}", param="messages")


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Accept a string, one message dict, or a list of dicts or strings; return new dicts
    (the caller's objects are never mutated)."""
    if isinstance(messages, str):
        if not messages.strip():
            raise ValidationError("messages must not be empty", param="messages")
        return [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping):
        messages = [messages]
    if not isinstance(messages, Sequence) or not messages:
        raise ValidationError(
            "messages must be a non-empty string, a message object or a list of messages",
            param="messages",
        )
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if isinstance(message, str):  # a bare string in a list is a user turn
            message = {"role": "user", "content": message}
        if not isinstance(message, Mapping):
            raise ValidationError(f"messages[{index}] must be an object with role and content", param="messages")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise ValidationError(f"messages[{index}].role must be one of {sorted(ROLES)}, got {role!r}", param="messages")
        turn: dict[str, Any] = {"role": role, "content": content_text(message.get("content"))}
        if message.get("name"):
            if not isinstance(message["name"], str):
                raise ValidationError(f"messages[{index}].name must be a string", param="messages")
            turn["name"] = message["name"]
        if message.get("metadata") is not None:
            # memlane extension for infer=False: metadata of this one turn (e.g. its dia_id)
            if not isinstance(message["metadata"], Mapping):
                raise ValidationError(f"messages[{index}].metadata must be an object", param="messages")
            turn["metadata"] = dict(message["metadata"])
        out.append(turn)
    return out


def transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """The conversation the way the extraction prompt shows it to the LLM: one line per turn,
    the role first, the turn's own line breaks escaped (``prompts.transcript_line``), so a
    turn's text cannot forge another turn."""
    return "\n".join(transcript_line(m["role"], m["content"]) for m in messages if m["role"] != "system" and m["content"])
