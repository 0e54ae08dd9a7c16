"""OpenAI's Responses API (``POST /v1/responses``) as the scripted upstream renders it.

A scripted ``Reply`` becomes a Response object shaped as OpenAI's OpenAPI spec describes it
(``components.schemas.Response``): ``output`` holds a ``message`` item with one ``output_text``
part when the reply has text, and one ``function_call`` item per scripted tool call; the request's
settings are echoed back as the real API does. Streaming is the named-event SSE stream the
openai SDK's ``responses.create(stream=True)`` and ``responses.stream()`` read, each event with
its ``sequence_number`` from 0. Errors use OpenAI's envelope, as on chat completions.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Iterator

from memlane.testing.sse import Event, Piece, stream_pieces
from memlane.testing.turns import count_tokens, turns_of

if TYPE_CHECKING:
    from memlane.testing.scripted_upstream import Reply


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def check_request(body: Any) -> tuple[int, dict[str, Any]] | None:
    """The 400 OpenAI answers a malformed create request with, or None when it is well formed."""
    if not isinstance(body, dict):
        return 400, error_body("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, error_body("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    given = body.get("input")
    if given is not None and not isinstance(given, (str, list)):
        return 400, error_body("Invalid type for 'input': expected one of a string or array of input items.", param="input", code="invalid_type")
    if isinstance(given, list):
        for i, item in enumerate(given):
            if not isinstance(item, dict):
                return 400, error_body(f"Invalid type for 'input[{i}]': expected an input item.", param=f"input[{i}]", code="invalid_type")
            if item.get("type", "message") == "message" and item.get("role") not in ("user", "assistant", "system", "developer"):
                return 400, error_body(f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.",
                                       param=f"input[{i}].role", code="invalid_value")
    return None


def count_body(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/responses/input_tokens``: the same count a create request's usage reports."""
    return {"object": "response.input_tokens", "input_tokens": count_tokens(turns_of("responses", body))}


def _tool(tool: Any) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"description": None, "parameters": None, "strict": True, **tool}
    return tool


class ResponseRender:
    """One request's Response: the finished object, its event stream, or a stream that fails."""

    def __init__(self, body: dict[str, Any], reply: Reply) -> None:
        self.body = body
        self.reply = reply
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.sequence = 0
        usage = reply.usage or {}
        self.input_tokens = int(usage.get("input_tokens", usage.get("prompt_tokens", count_tokens(turns_of("responses", body)))))
        self.output_tokens = int(usage.get("output_tokens", usage.get("completion_tokens", len((reply.content or "").split()))))
        if reply.finish_reason == "length":
            self.final_status, self.incomplete = "incomplete", {"reason": "max_output_tokens"}
        elif reply.finish_reason == "content_filter":
            self.final_status, self.incomplete = "incomplete", {"reason": "content_filter"}
        else:
            self.final_status, self.incomplete = "completed", None
        self.items = self._items()

    # -- the object ------------------------------------------------------------------------------

    def _items(self) -> list[dict[str, Any]]:
        item_status = "incomplete" if self.final_status == "incomplete" else "completed"
        items: list[dict[str, Any]] = []
        if self.reply.content is not None or not self.reply.tool_calls:
            items.append({"id": f"msg_{uuid.uuid4().hex}", "type": "message", "status": item_status, "role": "assistant",
                          "content": [self._part(self.reply.content or "")]})
        for call in self.reply.tool_calls or []:
            items.append({"id": f"fc_{uuid.uuid4().hex}", "type": "function_call", "status": "completed",
                          "arguments": call["function"]["arguments"], "call_id": call["id"], "name": call["function"]["name"]})
        return items

    @staticmethod
    def _part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def usage(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": self.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens}

    def response(self, status: str | None = None, *, output: list[dict[str, Any]] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Response object; by default the finished one, as a non-streamed create returns it."""
        b = self.body
        status = status or self.final_status
        done = status in ("completed", "incomplete")
        text = dict(b.get("text") or {"format": {"type": "text"}})
        text.setdefault("verbosity", "medium")
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": bool(b.get("background", False)),
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error, "incomplete_details": self.incomplete if status == "incomplete" else None,
            "instructions": b.get("instructions"), "max_output_tokens": b.get("max_output_tokens"),
            "max_tool_calls": b.get("max_tool_calls"), "model": b.get("model", "scripted-model"),
            "output": self.items if output is None else output,
            "parallel_tool_calls": b.get("parallel_tool_calls", True),
            "previous_response_id": b.get("previous_response_id"), "prompt_cache_key": b.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None, **(b.get("reasoning") or {})},
            "safety_identifier": b.get("safety_identifier"), "service_tier": "default", "store": b.get("store", True),
            "temperature": b.get("temperature", 1.0), "text": text, "tool_choice": b.get("tool_choice", "auto"),
            "tools": [_tool(t) for t in b.get("tools") or []], "top_logprobs": b.get("top_logprobs", 0),
            "top_p": b.get("top_p", 1.0), "truncation": b.get("truncation", "disabled"),
            "metadata": b.get("metadata") or {},
            # the spec has no null usage or user (the API sends nulls; the SDK reads both alike)
            **({"usage": self.usage()} if done else {}),
            **({"user": b["user"]} if isinstance(b.get("user"), str) else {}),
        }

    # -- the stream -------------------------------------------------------------------------------

    def _event(self, type: str, **fields: Any) -> Event:
        event = {"type": type, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return type, event

    def events(self) -> Iterator[Event | Piece]:
        """The SSE events of a streamed create, in the order OpenAI sends them."""
        pending = self.response("in_progress", output=[])
        yield self._event("response.created", response=pending)
        yield self._event("response.in_progress", response=pending)
        number = 0
        for index, item in enumerate(self.items):
            if item["type"] == "message":
                yield self._event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                yield self._event("response.content_part.added", **where, part=self._part(""))
                text = item["content"][0]["text"]
                for piece in stream_pieces(text):
                    yield Piece(number)
                    number += 1
                    yield self._event("response.output_text.delta", **where, delta=piece, logprobs=[])
                yield self._event("response.output_text.done", **where, text=text, logprobs=[])
                yield self._event("response.content_part.done", **where, part=item["content"][0])
            else:
                yield self._event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "arguments": ""})
                for piece in stream_pieces(item["arguments"]):
                    yield Piece(number)
                    number += 1
                    yield self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece)
                yield self._event("response.function_call_arguments.done", item_id=item["id"], name=item["name"],
                                  output_index=index, arguments=item["arguments"])
            yield self._event("response.output_item.done", output_index=index, item=item)
        final = "response.incomplete" if self.final_status == "incomplete" else "response.completed"
        yield self._event(final, response=self.response())

    def failure(self, message: str) -> list[Event]:
        """How a stream ends when the model fails part-way: ``response.failed``, as OpenAI sends it."""
        return [self._event("response.failed", response=self.response("failed", output=[], error={"code": "server_error", "message": message}))]

