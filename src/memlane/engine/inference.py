"""The two LLM stages of ``add(infer=True)``: strict parsing, one repair round, nothing guessed.

An answer that is not the contract's JSON is sent back once with the parse error; a second bad
answer is an ``LLMResponseError`` (the learner sets the exchange aside as dead, with the answer
in its reason), never a half-applied guess.

A batch's extraction (``extract_batch_facts``) wants each exchange's facts apart. An answer of
one plain list of facts for all of them (what a model that ignored the batch's instructions, or
a custom prompt, gives) cannot say which exchange each fact came from: it raises
``UnattributedFacts`` at once, with no repair round, and the learner learns those exchanges one
at a time instead.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from memlane.engine import prompts
from memlane.errors import LLMResponseError
from memlane.llms.base import LLM, JSONTask

log = logging.getLogger("memlane.inference")

EVENTS = ("ADD", "UPDATE", "DELETE", "NONE")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

T = TypeVar("T")


@dataclass(frozen=True)
class Decision:
    event: str
    text: str
    alias: str | None
    #: why the decision is not the model's own (memlane.engine.immutable), for the history row
    reason: str | None = None


def load_object(raw: str) -> dict[str, Any]:
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


class UnattributedFacts(Exception):
    """A batch's extraction answered one list of facts, not each exchange's: which exchange a
    fact came from (whose turns it is checked against) is unknown. Not a ``ValueError``: no
    repair round; the learner learns the batch's exchanges one at a time."""


#: what a labelled fact said beside its text (memlane.engine.guidance): ``categories`` as the
#: model wrote them, ``excluded`` True when the project's instructions rule it out
Labels = dict[str, dict[str, Any]]


_CUT_FACTS = re.compile(r'^\s*(?:```(?:json)?\s*)?\{\s*"facts"\s*:\s*\[')


def cut_facts(raw: str) -> list[Any] | None:
    """The complete items of a ``{"facts": [...`` answer cut off before its end (a small model
    repeating one fact until ``max_tokens``), or None when ``raw`` is not such an answer. Each
    item is one the model finished; nothing after the cut is guessed."""
    opening = _CUT_FACTS.match(raw)
    if opening is None:
        return None
    decoder = json.JSONDecoder()
    items: list[Any] = []
    at = opening.end()
    while True:
        while at < len(raw) and raw[at] in " \t\r\n,":
            at += 1
        if at >= len(raw) or raw[at] in "]}":
            return None  # the list ended: not cut (an answer that is bad in another way)
        try:
            item, at = decoder.raw_decode(raw, at)
        except json.JSONDecodeError:
            return items if items and raw.rstrip()[-1:] not in "]}" else None
        items.append(item)


def parse_facts(raw: str, labels: Labels | None = None) -> list[str]:
    try:
        value = load_object(raw)
    except ValueError:
        items = cut_facts(raw)
        if items is None:
            raise
        facts = _fact_list(items, "facts", labels)
        log.warning("memory LLM answer cut after %d complete facts (%d distinct); learning those", len(items), len(facts))
        return facts
    return _fact_list(value.get("facts"), "facts", labels)


def _fact_list(facts: Any, where: str, labels: Labels | None = None) -> list[str]:
    """The facts' texts; a labelled fact (``{"text", "categories", "excluded"}``) leaves what it
    said in ``labels``, under its text."""
    if not isinstance(facts, list):
        raise ValueError(f'the object has no "{where}" list' if where == "facts" else f"{where} is not a list")
    out: list[str] = []
    for index, fact in enumerate(facts):
        said: dict[str, Any] = {}
        if isinstance(fact, dict) and isinstance(fact.get("text"), str):
            said = {"categories": fact.get("categories"), "excluded": fact.get("excluded") is True, "keys": fact.get("keys")}
            fact = fact["text"]
        elif isinstance(fact, dict) and len(fact) == 1:
            # {"fact": "..."}: what small models write in JSON mode, unambiguous enough to take
            (fact,) = fact.values()
        if not isinstance(fact, str):
            raise ValueError(f"{where}[{index}] is not a string")
        if fact.strip() and fact.strip() not in out:
            out.append(fact.strip())
            if labels is not None and said:
                labels[fact.strip()] = said
    return out


def parse_batch_facts(raw: str, exchanges: int, labels: Labels | None = None) -> list[list[str]]:
    """Each of ``exchanges`` exchanges' facts, from ``{"exchanges": [{"exchange": n, "facts":
    [...]}, ...]}`` (an exchange left out has none; entries without numbers, one per exchange,
    are taken in order). ``{"facts": []}`` is nothing learnt from any; a non-empty plain
    ``facts`` list is ``UnattributedFacts``."""
    value = load_object(raw)
    entries = value.get("exchanges")
    if entries is None and "facts" in value:
        if _fact_list(value["facts"], "facts"):
            raise UnattributedFacts(f"the memory model answered one list of facts for {exchanges} exchanges, not each one's")
        return [[] for _ in range(exchanges)]
    if not isinstance(entries, list):
        raise ValueError('the object has no "exchanges" list')
    out: list[list[str]] = [[] for _ in range(exchanges)]
    positional = len(entries) == exchanges and all(isinstance(e, dict) and "exchange" not in e for e in entries)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"exchanges[{index}] is not an object")
        number = index + 1 if positional else entry.get("exchange")
        if isinstance(number, str) and number.strip().isdigit():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= exchanges:
            raise ValueError(f"exchanges[{index}].exchange must be a number from 1 to {exchanges}")
        kept = out[number - 1]
        kept.extend(f for f in _fact_list(entry.get("facts"), f"exchanges[{index}].facts", labels) if f not in kept)
    return out


def parse_decisions(raw: str) -> list[Decision]:
    value = load_object(raw)
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
    task: JSONTask | None = None,
) -> T:
    """One call asking for ``task``'s JSON; on a bad answer, one repair call; then give up
    loudly (``LLMResponseError``: the learner sets the exchange aside rather than asking the
    same model the same question again and again)."""
    raw = llm.complete_json(messages, model=model, task=task)
    try:
        return parse(raw)
    except ValueError as first:
        log.warning("memory LLM answer unusable (%s); asking once more", first)
        retry = [
            *messages,
            {"role": "assistant", "content": raw},
            {"role": "user", "content": prompts.REPAIR_PROMPT.format(error=first, shape=shape)},
        ]
        raw = llm.complete_json(retry, model=model, task=task)
        try:
            return parse(raw)
        except ValueError as second:
            raise LLMResponseError(
                f"memory LLM answered invalid JSON twice: {second}; answer began {raw[:200]!r}"
            ) from None


def extract_facts(llm: LLM, system_prompt: str, conversation: str, *, model: str | None = None,
                  labels: Labels | None = None, keys: bool = False) -> list[str]:
    """``labels`` (not None): the prompt asks for labelled facts (``prompts.with_guidance``), and
    what each said beside its text is left there; ``keys``: with search keys."""
    labelled = labels is not None
    shape = prompts.KEYED_FACTS_SHAPE if keys else prompts.LABELLED_FACTS_SHAPE if labelled else prompts.FACTS_SHAPE
    return ask(llm, prompts.extraction_messages(system_prompt, conversation), lambda raw: parse_facts(raw, labels), shape, model=model,
               task=prompts.extraction_task(len(conversation), labelled, keys))


def extract_batch_facts(llm: LLM, system_prompt: str, conversations: list[str], *, model: str | None = None,
                        labels: Labels | None = None, keys: bool = False) -> list[list[str]]:
    """One extraction call about several exchanges (``prompts.batch_extraction_messages``):
    each one's facts, in order. ``UnattributedFacts`` for one plain list of facts."""
    messages = prompts.batch_extraction_messages(system_prompt, conversations)
    return ask(llm, messages, lambda raw: parse_batch_facts(raw, len(conversations), labels), prompts.BATCH_FACTS_SHAPE, model=model,
               task=prompts.batch_extraction_task(sum(len(c) for c in conversations), len(conversations), labels is not None, keys))


def reconcile(
    llm: LLM, system_prompt: str, existing: list[dict[str, str]], facts: list[str], *, model: str | None = None,
    batched: bool = False,
) -> list[Decision]:
    """``batched``: the facts of several exchanges, in the order they were said (repeats kept)."""
    return ask(
        llm, prompts.reconcile_messages(system_prompt, existing, facts, batched=batched), parse_decisions, prompts.MEMORY_SHAPE,
        model=model, task=prompts.reconcile_task(len(existing), len(facts)),
    )


_ROLE_LABEL = re.compile(r"[a-z]+: ")


def _role_label(line: str) -> str:
    found = _ROLE_LABEL.match(line)
    return found.group(0) if found else ""


def chunk_conversation(conversation: str, max_chars: int, max_chunks: int) -> tuple[list[str], int]:
    """The conversation cut into at most ``max_chunks`` pieces of at most ``max_chars``, at line
    boundaries where it can be (a longer line is cut by characters); when it does not fit, the
    most recent part is kept. Returns the pieces and how many characters were left out.

    A piece that starts inside a turn (a long turn cut, or the oldest part left out) starts
    with that turn's role again (``user: ``; not counted in ``max_chars``): where a cut falls is
    the caller's to choose, by the length of their text, so without it a piece could open with
    text of theirs that reads as another turn."""
    budget = max_chars * max_chunks
    dropped = max(0, len(conversation) - budget)
    text = conversation[dropped:]
    # the role of a turn the budget cut into: the label at the start of its line
    opened_inside = _role_label(conversation[conversation.rfind("\n", 0, dropped) + 1:]) if dropped and conversation[dropped - 1] != "\n" else ""
    pieces: list[tuple[str, str]] = []  # (role label repeated, text)
    current, current_label = "", ""
    for index, line in enumerate(text.splitlines(keepends=True)):
        label = opened_inside if index == 0 else ""  # what this line's first part needs in front
        continued = label or _role_label(line)  # what its later parts need
        while len(line) > max_chars:
            if current:
                pieces.append((current_label, current))
                current, current_label = "", ""
            pieces.append((label, line[:max_chars]))
            line, label = line[max_chars:], continued
        if len(current) + len(line) > max_chars:
            pieces.append((current_label, current))
            current, current_label = "", ""
        if not current:
            current_label = label
        current += line
    if current.strip():
        pieces.append((current_label, current))
    return [label + piece for label, piece in pieces if piece.strip()], dropped
