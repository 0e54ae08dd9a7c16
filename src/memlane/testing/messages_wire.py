"""Anthropic's Messages API (``POST /v1/messages``) as the scripted upstream renders it.

Shapes follow the ``anthropic`` SDK's own types (``anthropic.types.Message``, the
``RawMessageStreamEvent`` union and ``lib/streaming/_messages.py``, which accumulates
``messages.stream``): a scripted text is one ``text`` block, each scripted tool call a
``tool_use`` block after it; streams are ``message_start``, then per block
``content_block_start`` / ``content_block_delta`` (``text_delta`` or ``input_json_delta``) /
``content_block_stop`` with one ``ping`` after the first start, then ``message_delta`` (stop reason,
cumulative output tokens) and ``message_stop``. Errors use Anthropic's envelope,
``{"type": "error", "error": {"type", "message"}, "request_id"}``, with the error type that goes
with the status.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, Iterator

from memlane.testing.sse import Event, Piece, stream_pieces
from memlane.testing.turns import count_tokens, turns_of

if TYPE_CHECKING:
    from memlane.testing.scripted_upstream import Reply

#: The error types Anthropic's API answers with (``anthropic.types.shared.ErrorType``).
ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "timeout_error", "api_error", "overloaded_error",
})
_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
              404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error",
              529: "overloaded_error"}
#: Chat completions' finish reasons, as Messages' stop reasons.
_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens", "content_filter": "refusal"}


def request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def error_type_for(status: int, given: str | None = None) -> str:
    """The Anthropic error type: the scripted one when Anthropic has it, else the status's."""
    if given in ERROR_TYPES:
        return str(given)
    return _BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, type: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type_for(status, type), "message": message}, "request_id": request_id()}


def check_request(body: Any, *, counting: bool = False) -> tuple[int, dict[str, Any]] | None:
    """The 400 Anthropic answers a malformed request with, or None when it is well formed."""
    if not isinstance(body, dict):
        return 400, error_body(400, "There was an issue with the request body: it is not a JSON object.")
    required = ("model", "messages") if counting else ("model", "max_tokens", "messages")
    for name in required:
        if name not in body:
            return 400, error_body(400, f"{name}: Field required")
    if not counting and (not isinstance(body["max_tokens"], int) or isinstance(body["max_tokens"], bool)):
        return 400, error_body(400, "max_tokens: Input should be a valid integer")
    if not isinstance(body["messages"], list):
        return 400, error_body(400, "messages: Input should be a valid list")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return 400, error_body(400, "system: Input should be a valid string or a list of text blocks")
    for i, m in enumerate(body["messages"]):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "system":
            return 400, error_body(400, 'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                                        'parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            return 400, error_body(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if not isinstance(m.get("content"), (str, list)):
            return 400, error_body(400, f"messages.{i}.content: Field required")
    return None


def count_body(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/messages/count_tokens``: the same count a create request's usage reports."""
    return {"input_tokens": count_tokens(turns_of("messages", body))}


class MessageRender:
    """One request's Message: the finished object, its event stream, or a stream that fails."""

    def __init__(self, body: dict[str, Any], reply: Reply) -> None:
        self.body = body
        self.reply = reply
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        usage = reply.usage or {}
        self.input_tokens = int(usage.get("input_tokens", usage.get("prompt_tokens", count_tokens(turns_of("messages", body)))))
        self.output_tokens = int(usage.get("output_tokens", usage.get("completion_tokens", max(1, len((reply.content or "").split())))))
        reason = reply.finish_reason
        self.stop_reason = reason if reason in _STOP_REASONS.values() or reason in ("stop_sequence", "pause_turn") else _STOP_REASONS.get(reason, "end_turn")
        self.blocks = self._blocks()

    def _blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.reply.content is not None or not self.reply.tool_calls:
            blocks.append({"type": "text", "text": self.reply.content or ""})
        for call in self.reply.tool_calls or []:
            blocks.append({"type": "tool_use", "id": "toolu_" + call["id"].removeprefix("call_"), "name": call["function"]["name"],
                           "input": json.loads(call["function"]["arguments"] or "{}")})
        return blocks

    def usage(self, output_tokens: int) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": output_tokens, "service_tier": "standard"}

    def message(self) -> dict[str, Any]:
        """The Message object a non-streamed create returns."""
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.body.get("model", "scripted-model"),
                "content": self.blocks, "stop_reason": self.stop_reason, "stop_sequence": None,
                "usage": self.usage(self.output_tokens)}

    def events(self) -> Iterator[Event | Piece]:
        """The SSE events of a streamed create, in the order Anthropic sends them."""
        start = {**self.message(), "content": [], "stop_reason": None, "stop_sequence": None, "usage": self.usage(1)}
        yield "message_start", {"type": "message_start", "message": start}
        number = 0
        for index, block in enumerate(self.blocks):
            if block["type"] == "text":
                opened = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in stream_pieces(block["text"])]
            else:  # tool_use: its input streams as JSON text, after an empty first piece as Anthropic sends it
                opened = {**block, "input": {}}
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *stream_pieces(json.dumps(block["input"]))]]
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}
            if index == 0:
                yield "ping", {"type": "ping"}
            for delta in deltas:
                yield Piece(number)
                number += 1
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                "usage": {"output_tokens": self.output_tokens}}
        yield "message_stop", {"type": "message_stop"}

    @staticmethod
    def failure(message: str) -> list[Event]:
        """How a stream ends when the model fails part-way: an ``error`` event, as Anthropic sends it."""
        return [("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})]
