"""The two LLM stages of ``add(infer=True)``: strict parsing, one repair round, nothing guessed.

An answer that is not the contract's JSON is sent back once with the parse error; a second bad
answer is an ``LLMResponseError`` (the outbox retries it later), never a half-applied guess.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from memlane.engine import prompts
from memlane.errors import LLMResponseError
from memlane.llms.base import LLM

log = logging.getLogger("memlane.inference")

EVENTS = ("ADD", "UPDATE", "DELETE", "NONE")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

T = TypeVar("T")


@dataclass(frozen=True)
class Decision:
    event: str
    text: str
    alias: str | None


def _load_object(raw: str) -> dict[str, Any]:
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:  # many local models wrap JSON in a code fence even in JSON mode
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def parse_facts(raw: str) -> list[str]:
    value = _load_object(raw)
    facts = value.get("facts")
    if not isinstance(facts, list):
        raise ValueError('the object has no "facts" list')
    out: list[str] = []
    for index, fact in enumerate(facts):
        if not isinstance(fact, str):
            raise ValueError(f"facts[{index}] is not a string")
        if fact.strip() and fact.strip() not in out:
            out.append(fact.strip())
    return out


def parse_decisions(raw: str) -> list[Decision]:
    value = _load_object(raw)
    items = value.get("memory")
    if not isinstance(items, list):
        raise ValueError('the object has no "memory" list')
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"memory[{index}] is not an object")
        event = str(item.get("event", "")).upper()
        if event not in EVENTS:
            raise ValueError(f"memory[{index}].event must be one of {', '.join(EVENTS)}")
        text = item.get("text", "")
        if not isinstance(text, str):
            raise ValueError(f"memory[{index}].text is not a string")
        if event in ("ADD", "UPDATE") and not text.strip():
            raise ValueError(f"memory[{index}] is {event} without text")
        alias = item.get("id")
        if alias is not None and not isinstance(alias, (str, int)):
            raise ValueError(f"memory[{index}].id is not a string")
        out.append(Decision(event, text.strip(), None if alias is None else str(alias).strip()))
    return out


def ask(
    llm: LLM,
    messages: list[dict[str, Any]],
    parse: Callable[[str], T],
    shape: str,
    *,
    model: str | None = None,
) -> T:
    """One call in JSON mode; on a bad answer, one repair call; then give up loudly."""
    raw = llm.complete_json(messages, model=model)
    try:
        return parse(raw)
    except ValueError as first:
        log.warning("memory LLM answer unusable (%s); asking once more", first)
        retry = [
            *messages,
            {"role": "assistant", "content": raw},
            {"role": "user", "content": prompts.REPAIR_PROMPT.format(error=first, shape=shape)},
        ]
        raw = llm.complete_json(retry, model=model)
        try:
            return parse(raw)
        except ValueError as second:
            raise LLMResponseError(
                f"memory LLM answered invalid JSON twice: {second}; answer began {raw[:200]!r}"
            ) from None


def extract_facts(llm: LLM, system_prompt: str, conversation: str, *, model: str | None = None) -> list[str]:
    return ask(llm, prompts.extraction_messages(system_prompt, conversation), parse_facts, prompts.FACTS_SHAPE, model=model)


def reconcile(
    llm: LLM, system_prompt: str, existing: list[dict[str, str]], facts: list[str], *, model: str | None = None
) -> list[Decision]:
    return ask(
        llm, prompts.reconcile_messages(system_prompt, existing, facts), parse_decisions, prompts.MEMORY_SHAPE, model=model
    )


def chunk_conversation(conversation: str, max_chars: int, max_chunks: int) -> tuple[list[str], int]:
    """The conversation cut into at most ``max_chunks`` pieces of at most ``max_chars``, at line
    boundaries where it can be (a longer line is cut by characters); when it does not fit, the
    most recent part is kept. Returns the pieces and how many characters were left out."""
    budget = max_chars * max_chunks
    dropped = max(0, len(conversation) - budget)
    text = conversation[dropped:]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:max_chars])
            line = line[max_chars:]
        if len(current) + len(line) > max_chars:
            pieces.append(current)
            current = ""
        current += line
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()], dropped
