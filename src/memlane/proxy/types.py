"""Response types: the ``openai`` package's own, with memlane's ``metadata`` added."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from openai.types.chat import ChatCompletion
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
    memories: List[RecalledMemory] = []


class MemlaneChatCompletion(ChatCompletion):
    """``openai.types.chat.ChatCompletion`` plus ``metadata.memories`` when asked for.

    OpenAI's own ``metadata`` (a string map) still comes through when the upstream sends one
    and memories were not requested.
    """

    metadata: Optional[Union[RecallMetadata, Dict[str, str]]] = None  # type: ignore[assignment]


def completion_with(response: Any, memories: RecallMetadata | None) -> MemlaneChatCompletion:
    """The upstream's (or the server's) chat completion as a ``MemlaneChatCompletion``, with what
    was recalled as ``metadata.memories`` when asked for: the one place answers are wrapped."""
    # a server's metadata.memories is not the SDK's string map: no warning for it
    data = response.to_dict(mode="python", exclude_unset=True, warnings=False) if hasattr(response, "to_dict") else dict(response)
    if memories is not None:
        data["metadata"] = memories
    elif isinstance(data.get("metadata"), dict) and "memories" in data["metadata"]:
        data["metadata"] = RecallMetadata.model_validate(data["metadata"])
    return MemlaneChatCompletion.model_validate(data)
