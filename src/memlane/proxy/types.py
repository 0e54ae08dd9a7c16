"""Response types: the ``openai`` package's own, with memlane's ``metadata`` added."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import BaseModel, ConfigDict


class RecalledMemory(BaseModel):
    """One memory that was injected into the call, with its search score."""

    model_config = ConfigDict(extra="allow")
    id: str
    memory: str
    score: float
    metadata: Dict[str, object] = {}
    user_id: Optional[str] = None
    agent_id: Optional[str] = None
    run_id: Optional[str] = None
    created_at: Optional[str] = None
    updated_at: Optional[str] = None


class RecallMetadata(BaseModel):
    """A chat answer's ``metadata``: ``memories`` (with ``include_memories``) and
    ``exchange_id``, the id its exchange was queued under to learn from (a chat with a scope;
    ``GET /v1/exchanges/{id}?wait=30`` tells when it was learnt; ``client.flush()`` waits for it).
    Keys the upstream itself sent in ``metadata`` (OpenAI's string map) are kept beside them."""

    model_config = ConfigDict(extra="allow")
    memories: Optional[List[RecalledMemory]] = None
    exchange_id: Optional[str] = None


#: the key of ``metadata`` that carries the exchange's id (documented in docs/client.md)
EXCHANGE_ID = "exchange_id"


class MemlaneChatCompletion(ChatCompletion):
    """``openai.types.chat.ChatCompletion`` plus ``metadata.memories`` when asked for and
    ``metadata.exchange_id`` when the call had a scope.

    OpenAI's own ``metadata`` (a string map) still comes through when the upstream sends one.
    """

    metadata: Optional[Union[RecallMetadata, Dict[str, str]]] = None  # type: ignore[assignment]


def _with_metadata(response: Any, memories: RecallMetadata | None, model: type[Any]) -> Any:
    # a server's metadata.memories is not the SDK's string map: no warning for it
    data = response.to_dict(mode="python", exclude_unset=True, warnings=False) if hasattr(response, "to_dict") else dict(response)
    theirs = data.get("metadata") if isinstance(data.get("metadata"), dict) else None
    if memories is not None:
        data["metadata"] = RecallMetadata.model_validate({**(theirs or {}), **memories.model_dump(exclude_unset=True)})
    elif theirs is not None and ("memories" in theirs or EXCHANGE_ID in theirs):
        data["metadata"] = RecallMetadata.model_validate(theirs)
    return model.model_validate(data)


def completion_with(response: Any, memories: RecallMetadata | None) -> MemlaneChatCompletion:
    """The upstream's (or the server's) chat completion as a ``MemlaneChatCompletion``, with what
    was recalled as ``metadata.memories`` when asked for: the one place answers are wrapped."""
    return _with_metadata(response, memories, MemlaneChatCompletion)  # type: ignore[no-any-return]


class MemlaneResponse(Response):
    """``openai.types.responses.Response`` with memlane's ``metadata`` (as on chat completions)."""

    metadata: Optional[Union[RecallMetadata, Dict[str, str]]] = None  # type: ignore[assignment]


def response_with(response: Any, memories: RecallMetadata | None) -> MemlaneResponse:
    """A Responses API answer as a ``MemlaneResponse``, ``metadata`` as ``completion_with`` sets it."""
    return _with_metadata(response, memories, MemlaneResponse)  # type: ignore[no-any-return]
