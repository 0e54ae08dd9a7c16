"""A second look at what reconcile added beside a memory it should have changed.

Small local models asked to reconcile ("Race got moved to April" against "Training for a half
marathon in March") often answer NONE for the old memory and ADD for the new fact, so the stale
memory stays beside its correction and later recalls inject both. With
``inference.confirm_changes`` on, each fact reconcile added while memories were shown is put to
the model again as one yes/no question about the one memory most like it ("is this memory still
true, now that the user said this?"): a question a small model answers far better than a list of
events. A "no" updates that memory to what the model says is true now (or deletes it when
nothing is left); the added fact stays, so nothing the user said is lost. Every other answer,
a failed call included, leaves reconcile's decisions as they were.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from memlane.engine import inference, prompts
from memlane.engine.identity import content_hash
from memlane.errors import MemlaneError
from memlane.llms.base import LLM
from memlane.records import MemoryRecord

log = logging.getLogger("memlane.memory")


def parse_confirmation(raw: str) -> tuple[bool, str]:
    value = inference.load_object(raw)
    still, now = value.get("still_true"), value.get("now_true", "")
    if not isinstance(still, bool):
        raise ValueError('"still_true" must be true or false')
    if not isinstance(now, str):
        raise ValueError('"now_true" must be a string')
    return still, now.strip()


def confirmed(
    llm: LLM, decisions: list[inference.Decision], existing: Sequence[MemoryRecord],
    embed: Callable[[Sequence[str]], np.ndarray], *, model: str | None, max_chars: int,
) -> list[inference.Decision]:
    """``decisions`` with an UPDATE (or DELETE) added for each memory the model, asked about
    it alone, says a fact reconcile ADDed has made untrue."""
    by_alias = {str(i): r for i, r in enumerate(existing)}
    # an UPDATE that keeps a memory's text (its content_hash, as learning applies it) changes
    # nothing (small models answer it for NONE);
    # one of an id that was not shown adds its text (as memlane.engine.learning applies it)
    touched = {d.alias for d in decisions if d.event == "DELETE" or (d.event == "UPDATE" and d.alias in by_alias
                                                                      and content_hash(d.text) != by_alias[d.alias].hash)}
    open_ = [(alias, r) for alias, r in by_alias.items() if alias not in touched and not r.immutable]
    added = [d for d in decisions if d.event == "ADD" or (d.event == "UPDATE" and d.alias not in by_alias)]
    if not open_ or not added:
        return decisions
    memory_vectors = embed([r.memory for _, r in open_])
    fact_vectors = embed([d.text for d in added])
    out = list(decisions)
    for decision, vector in zip(added, fact_vectors):
        if not open_:
            break
        best = int(np.argmax(memory_vectors @ vector))
        alias, record = open_[best]
        try:
            still, now = inference.ask(llm, prompts.confirm_messages(record.memory, decision.text), parse_confirmation,
                                       prompts.CONFIRM_SHAPE, model=model, task=prompts.confirm_task(len(record.memory)))
        except MemlaneError as exc:  # an unusable or failed answer: reconcile's decisions stand
            log.info("confirming %r against %r failed (%s): left as reconcile said", decision.text[:80], record.memory[:80], exc)
            continue
        if still or content_hash(now) == record.hash:
            continue
        if now and len(now) <= max_chars:
            out.append(inference.Decision("UPDATE", now, alias, reason="confirm_changes"))
        else:
            out.append(inference.Decision("DELETE", record.memory, alias, reason="confirm_changes"))
        log.info("confirm_changes: %r is no longer true after %r: %s", record.memory[:80], decision.text[:80],
                 f"now {now[:80]!r}" if now else "deleted")
        del open_[best]
        memory_vectors = np.delete(memory_vectors, best, axis=0)
    return out
