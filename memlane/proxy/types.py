"""Response types: the ``openai`` package's own, with memlane's ``metadata`` added."""

from __future__ import annotations

from typing import Dict, List, Optional, Union

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
