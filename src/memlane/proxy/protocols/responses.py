"""OpenAI Responses (``POST /v1/responses``, ``client.responses.create``).

``input`` is a string or a list of items: messages (``role`` with text or content parts),
function calls and their outputs, reasoning and more. The turns recall and learning read are
the messages' text; a function call or any other item the model produced counts as the model's
turn (the user's turns before it are not new), a function call's output as a tool's (never a
user fact). ``instructions`` is the system prompt. With ``previous_response_id`` the upstream
keeps the earlier turns: ``input`` holds only this call's, which is all memlane reads and learns.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import openai
from openai.types.responses import Response

from memlane.errors import UpstreamError
from memlane.proxy.placement import PinnedBlocks, place
from memlane.proxy.protocols.base import ChatProtocol
from memlane.proxy.recall import as_mapping
from memlane.proxy.types import RecallMetadata, response_with
from memlane.records import Scope, SearchHit

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text")
#: items that carry a tool's answer (the rest of the non-message items are the model's doing)
TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output", "computer_call_output", "local_shell_call_output",
                "mcp_approval_response", "mcp_call_output")


@contextmanager
def _chat_only_named(client: Any) -> Iterator[None]:
    """A 404 from the model server most likely means it speaks only chat completions: the same
    ``openai.NotFoundError`` (status and body kept), saying so. memlane does not translate."""
    try:
        yield
    except openai.NotFoundError as exc:
        exc.message = (f"{exc.message} (the model server at {client.base_url} has no /responses: it may speak only chat "
                       "completions; call chat.completions with it)")
        exc.args = (exc.message,)
        raise


def item_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(str(p.get("text", "")) for p in map(as_mapping, content) if p.get("type") in TEXT_PARTS and p.get("text"))
    return ""


class Responses(ChatProtocol):
    name = "responses"
    turns_field = "input"
    turns_shape = "string or list of input items"
    text_turns = True
    sdk_fields = ("model", "input", "stream", "instructions")

    def stream_error(self, error: dict[str, Any]) -> dict[str, Any]:
        """Responses streams end in an ``error`` event (the SDK raises on it)."""
        inner = error.get("error", {})
        return {"type": "error", "code": inner.get("code"), "message": inner.get("message"), "param": None, "sequence_number": 0}

    def turns(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if isinstance(request.get("instructions"), str) and request["instructions"]:
            out.append({"role": "system", "content": request["instructions"]})
        given = request.get("input")
        if isinstance(given, str):
            return [*out, {"role": "user", "content": given}]
        for item in given or []:
            item = as_mapping(item)
            kind, role = item.get("type"), item.get("role")
            if role in MESSAGE_ROLES and kind in (None, "message"):
                out.append({"role": role, "content": item_text(item.get("content"))})
            elif kind in TOOL_OUTPUTS:
                out.append({"role": "tool", "content": ""})
            elif kind is not None and kind != "item_reference":
                out.append({"role": "assistant", "content": ""})  # a call, reasoning: the model's turn
        return out

    def with_memories(self, request: Mapping[str, Any], hits: Sequence[SearchHit], scope: Scope, placement: str,
                      pinned: PinnedBlocks | None) -> dict[str, Any]:
        given = request.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        placed = place(items, hits, scope, placement, pinned)
        if len(placed) == len(items):
            return dict(request)  # no block: the caller's request as it was, a string input included
        return {**request, "input": placed}

    def send(self, client: Any, request: Mapping[str, Any]) -> Any:
        with _chat_only_named(client):
            return client.responses.create(**request)

    async def asend(self, client: Any, request: Mapping[str, Any]) -> Any:
        with _chat_only_named(client):
            return await client.responses.create(**request)

    def checked(self, response: Any, stream: bool) -> Any:
        if stream or (isinstance(response, Response) and isinstance(response.output, list)):
            return response
        raise UpstreamError("the upstream model server answered /responses with something that is not a response "
                            f"({type(response).__name__}); does it speak OpenAI's Responses API? Chat-only servers: "
                            "use chat.completions")

    def reply_text(self, response: Any) -> str | None:
        return response.output_text or None

    def delta_text(self, event: Any) -> str | None:
        return event.delta if getattr(event, "type", None) == "response.output_text.delta" else None

    def answer(self, response: Any, metadata: RecallMetadata | None) -> Any:
        return response_with(response, metadata)
