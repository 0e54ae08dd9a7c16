"""Anthropic Messages (``POST /v1/messages``; the anthropic SDK's ``messages.create``).

``system`` is a string or a list of text blocks; each of ``messages`` is a ``user`` or
``assistant`` turn whose content is a string or a list of blocks (text, image, document,
tool_use, tool_result, thinking, ...). Only text blocks are a turn's text: images and documents
reach the model, never recall or learning. A user message made only of tool results is a tool's
turn (never a user fact); an assistant's tool_use is the model's turn.

Anthropic takes no system message between turns and wants the roles to alternate, so the memory
block is a text block at the start of the latest user message's content (a copy; the user's own
blocks follow unchanged, after any tool results, which Anthropic wants first). With ``pinned``
placement each earlier user turn gets back the block it was sent with, so ``system`` and every
earlier turn stay byte-identical and Anthropic's prompt cache keeps them. ``after_system``
appends the block to ``system`` instead (nothing after it is cacheable).

Anthropic's own ``metadata`` (``{"user_id": ...}``, its abuse-detection id) passes through: on
this protocol memlane's fields are the scope, recall and ``include_memories`` ones.

The anthropic SDK is imported on first use (it takes about a second), never by ``import memlane``.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Mapping, Optional, Sequence, Union

from memlane.engine.validation import check_encodable
from memlane.errors import EndpointNotConfiguredError, UpstreamError, ValidationError
from memlane.proxy.placement import PinnedBlocks, place
from memlane.proxy.protocols.base import ChatProtocol
from memlane.proxy.recall import as_mapping, memory_message
from memlane.proxy.types import RecallMetadata
from memlane.records import Scope, SearchHit

ROLES = ("user", "assistant")
NO_KEY = "memlane-no-key"
NO_ANTHROPIC_ENDPOINT = ("no Anthropic model server configured for /v1/messages: set ANTHROPIC_API_KEY (and "
                         "ANTHROPIC_BASE_URL for a server other than api.anthropic.com), or upstream.anthropic_api_key / "
                         "upstream.anthropic_base_url in the config")


@functools.cache
def sdk_parameters(method: str) -> frozenset[str]:
    """The keyword arguments the SDK's ``messages.<method>`` takes; any other field of a request
    goes to the model as ``extra_body`` (a field newer than the installed SDK still gets there)."""
    from anthropic.resources.messages import Messages

    return frozenset(inspect.signature(getattr(Messages, method)).parameters) - {"self"}


def anthropic_endpoint(upstream: Any) -> tuple[str | None, str] | None:
    """(base_url, key) of the Anthropic-protocol server: the config's ``upstream.anthropic_*``,
    else ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_API_KEY``; None when neither names one. A URL
    without a key (a local server) gets a placeholder key; a key without a URL is api.anthropic.com."""
    url = upstream.anthropic_base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
    key = upstream.anthropic_api_key or os.environ.get("ANTHROPIC_API_KEY") or None
    if url is None and key is None:
        return None
    return url, key or NO_KEY


def anthropic_client(upstream: Any, *, asynchronous: bool, retries: int) -> tuple[Any, str]:
    """The anthropic SDK client for ``upstream`` (timeouts and retries as the openai upstream's)
    and the setting its address came from; ``EndpointNotConfiguredError`` (503) naming the settings."""
    endpoint = anthropic_endpoint(upstream)
    if endpoint is None:
        raise EndpointNotConfiguredError(NO_ANTHROPIC_ENDPOINT, param="upstream.anthropic_base_url")
    import anthropic

    url, key = endpoint
    source = ("upstream.anthropic_base_url" if upstream.anthropic_base_url else "ANTHROPIC_BASE_URL" if url
              else "the anthropic SDK's default, no ANTHROPIC_BASE_URL")
    sdk = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    client = sdk(base_url=url, api_key=key, timeout=anthropic.Timeout(upstream.timeout, connect=upstream.connect_timeout),
                 max_retries=retries)
    return client, source


def block_text(content: Any) -> str:
    """A content value's text: a string, or its text blocks' text, one per line."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(str(b["text"]) for b in map(as_mapping, content) if b.get("type") == "text" and b.get("text"))
    return ""


def _blocks(content: Any) -> list[Any]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def tool_results_only(message: Any) -> bool:
    """A user message made only of tool results: a tool's turn, not the user's."""
    content = as_mapping(message).get("content")
    return isinstance(content, Sequence) and not isinstance(content, str) and bool(content) and all(
        as_mapping(b).get("type") == "tool_result" for b in content)


def is_user_turn(message: Any) -> bool:
    return as_mapping(message).get("role") == "user" and not tool_results_only(message)


def attach_block(message: Any, block: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the user ``message`` with the memory block as a text block before the user's own
    content (after leading tool results: Anthropic wants those first in their message)."""
    turn = dict(as_mapping(message))
    blocks = _blocks(turn.get("content"))
    first = 0
    while first < len(blocks) and as_mapping(blocks[first]).get("type") == "tool_result":
        first += 1
    turn["content"] = [*blocks[:first], {"type": "text", "text": block["content"]}, *blocks[first:]]
    return turn


def sdk_arguments(request: Mapping[str, Any], method: str = "create") -> dict[str, Any]:
    """``request`` as the SDK method's keyword arguments: fields it does not know go in ``extra_body``."""
    known = sdk_parameters(method)
    args = {k: v for k, v in request.items() if k in known}
    extra = {k: v for k, v in request.items() if k not in known}
    if extra:
        args["extra_body"] = {**(args.get("extra_body") or {}), **extra}
    return args


@functools.cache
def memlane_message() -> type[Any]:
    """``MemlaneMessage``: ``anthropic.types.Message`` with memlane's ``metadata`` (the exchange
    id; the recalled memories with ``include_memories``), as memlane's chat completions carry it."""
    from anthropic.types import Message

    class MemlaneMessage(Message):
        __doc__ = memlane_message.__doc__
        metadata: Optional[Union[RecallMetadata, dict[str, Any]]] = None

    return MemlaneMessage


def __getattr__(name: str) -> Any:
    if name == "MemlaneMessage":
        return memlane_message()
    raise AttributeError(name)


def message_with(response: Any, metadata: RecallMetadata | None) -> Any:
    if metadata is None:
        return response
    data = response.to_dict(mode="python", exclude_unset=True, warnings=False)
    data["metadata"] = metadata
    return memlane_message().model_validate(data)


class AnthropicMessages(ChatProtocol):
    name = "messages"
    upstream = "anthropic"
    turns_field = "messages"
    turns_shape = "list of messages"

    def turns(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        system = request.get("system")
        if system is not None and not isinstance(system, (str, list, tuple)):
            raise ValidationError("system must be a string or a list of text blocks", param="system")
        check_encodable(system, "system")
        if block_text(system):
            out.append({"role": "system", "content": block_text(system)})
        for index, message in enumerate(request.get("messages") or []):
            turn = as_mapping(message)
            role, content = turn.get("role"), turn.get("content")
            if role not in ROLES:
                raise ValidationError(f"messages[{index}].role must be 'user' or 'assistant' (the system prompt is the "
                                      f"top-level system field), got {role!r:.60}", param=f"messages[{index}].role")
            if not isinstance(content, (str, list, tuple)):
                raise ValidationError(f"messages[{index}].content must be a string or a list of content blocks",
                                      param=f"messages[{index}].content")
            if role == "user" and tool_results_only(turn):
                out.append({"role": "tool", "content": ""})
            else:
                out.append({"role": role, "content": block_text(content)})
        return out

    def with_memories(self, request: Mapping[str, Any], hits: Sequence[SearchHit], scope: Scope, placement: str,
                      pinned: PinnedBlocks | None) -> dict[str, Any]:
        if placement == "after_system":
            if not hits:
                return dict(request)
            block = {"type": "text", "text": memory_message(hits)["content"]}
            return {**request, "system": [*_blocks(request.get("system")), block]}
        placed = place(request["messages"], hits, scope, placement, pinned, attach=attach_block, is_user=is_user_turn)
        return {**request, "messages": placed}

    def send(self, client: Any, request: Mapping[str, Any]) -> Any:
        return client.messages.create(**sdk_arguments(request))

    async def asend(self, client: Any, request: Mapping[str, Any]) -> Any:
        return await client.messages.create(**sdk_arguments(request))

    def checked(self, response: Any, stream: bool) -> Any:
        from anthropic.types import Message

        if stream or (isinstance(response, Message) and isinstance(getattr(response, "content", None), list)):
            return response
        raise UpstreamError("the upstream model server answered /v1/messages with something that is not a message "
                            f"({type(response).__name__}); does it speak Anthropic's Messages API?")

    def reply_text(self, response: Any) -> str | None:
        return block_text(response.to_dict(mode="python").get("content")) or None

    def delta_text(self, event: Any) -> str | None:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            return str(event.delta.text)
        if kind == "content_block_start" and event.index > 0 and getattr(event.content_block, "type", None) == "text":
            return "\n"  # text blocks are one per line, as ``reply_text`` joins them
        return None

    def answer(self, response: Any, metadata: RecallMetadata | None) -> Any:
        return message_with(response, metadata)

    def relay(self, stream: Any, on_complete: Any, metadata: RecallMetadata | None, *, asynchronous: bool) -> Any:
        from memlane.proxy.anthropic_streams import AsyncMessagesStream, MessagesStream

        relay = AsyncMessagesStream if asynchronous else MessagesStream
        return relay(stream, on_complete, metadata, self.delta_text)

    def with_stream_metadata(self, event: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
        """``message_start`` carries it on its message, so the SDK's accumulated message
        (``messages.stream(...).get_final_message()``) has it as a create's answer does."""
        if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
            return {**event, "message": {**event["message"], "metadata": dict(metadata)}}
        return {**event, "metadata": dict(metadata)}

    def count_arguments(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A ``count_tokens`` request as the SDK's keyword arguments."""
        return sdk_arguments(request, "count_tokens")


__all__ = ["AnthropicMessages", "MemlaneMessage", "NO_ANTHROPIC_ENDPOINT", "anthropic_client", "anthropic_endpoint"]
