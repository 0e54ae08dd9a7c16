"""Learning: the facts a conversation states, reconciled into the memories of its scope.

Fact extraction reads only the new turns, in chunks (``inference.max_input_chars`` x
``max_chunks``), outside the scope's lock. Under the lock, each fact brings the memories of the
scope most like it; the memory LLM decides, for the facts against what it was shown, what to add,
update or delete (memlane.engine.inference), and those decisions become store changes that touch
only the memories it was shown. An outbox exchange leaves the outbox in the commit that applies
them, or on its own when there was nothing to learn; between steps, background learning lets
recalls in flight go first (memlane.engine.foreground).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from memlane.config import MemlaneConfig
from memlane.engine import inference, prompts
from memlane.engine.expiry import visible
from memlane.engine.fact_check import Dropped, FactCheck
from memlane.engine.foreground import Foreground
from memlane.engine.identity import Lifetime, content_hash, new_record
from memlane.engine.immutable import kept_beside
from memlane.engine.messages import normalize_messages, transcript
from memlane.engine.ranking import fuse
from memlane.llms.base import LLM
from memlane.records import MemoryRecord, Scope, utc_now
from memlane.stores.base import Applied, Change, MemoryStore
from memlane.stores.outbox import OutboxItem

log = logging.getLogger("memlane.memory")

#: How many existing memories each new fact brings to the reconcile stage.
SIMILAR_PER_FACT = 5
MAX_EXISTING_SHOWN = 40


@dataclass
class Learnt:
    """What learning from one exchange did: the store changes, and the extracted facts that
    were not learnt, each with why (memlane.engine.fact_check)."""

    applied: list[Applied] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)


class Learning:
    """Learns into one store with one memory LLM, embedding with the engine's ``embed``."""

    def __init__(self, store: MemoryStore, llm: LLM, embed: Callable[[Sequence[str]], np.ndarray], config: MemlaneConfig,
                 foreground: Foreground) -> None:
        self.store = store
        self.llm = llm
        self.config = config
        self.foreground = foreground
        self._embed = embed

    def learn(self, item: OutboxItem) -> Learnt:
        """Learn from one outbox exchange (``Memory.learn``); the config's memory model, when it
        names one, wins over the chat's."""
        payload = item.payload
        scope = Scope(**payload["scope"])
        model = None if self.config.llm.config.get("model") else payload.get("model")
        return self.add_inferred(
            normalize_messages(payload["messages"]), scope, payload.get("metadata") or {}, None, None, model, outbox=item,
            when=payload.get("timestamp"),
        )

    def add_inferred(
        self, turns: list[dict[str, Any]], scope: Scope, meta: dict[str, Any], prompt: str | None,
        actor: str | None, llm_model: str | None, *, outbox: OutboxItem | None = None, when: str | None = None,
        lifetime: Lifetime | None = None,
    ) -> Learnt:
        """Extract, check, reconcile, apply: ``add(infer=True)``, and each outbox exchange (``outbox``)."""
        learnt = Learnt()

        def nothing_learnt() -> Learnt:
            if outbox is not None:
                self.store.outbox.done(outbox)
            return learnt

        conversation = transcript(turns)
        if not conversation.strip():
            return nothing_learnt()
        extraction_prompt = prompt or self.config.custom_fact_extraction_prompt or prompts.FACT_EXTRACTION_PROMPT.format(
            today=(when or utc_now())[:10]  # the conversation's own date: relative dates resolve against it
        )
        # Extraction reads only the new turns, so it runs outside the scope lock.
        limits = self.config.inference
        pieces, dropped = inference.chunk_conversation(conversation, limits.max_input_chars, limits.max_chunks)
        if dropped:
            log.warning("exchange of %d characters: the oldest %d were left out of fact extraction (inference.max_input_chars"
                        " x inference.max_chunks = %d)", len(conversation), dropped, limits.max_input_chars * limits.max_chunks)
        facts = list(dict.fromkeys(
            fact for piece in pieces for fact in inference.extract_facts(self.llm, extraction_prompt, piece, model=llm_model)))
        if limits.check_facts:
            facts, learnt.dropped = FactCheck(turns, max_chars=limits.max_fact_chars).split(facts)
            for d in learnt.dropped:
                log.info("extracted fact not learnt (%s): %r", d.reason, d.fact[:200])
        if not facts:
            return nothing_learnt()
        def chats_first() -> None:  # background learning waits for recalls in flight
            if outbox is not None:
                self.foreground.wait_idle(self.config.outbox.yield_seconds)

        chats_first()
        fact_vectors = self._embed(facts)
        with self.store.scope_lock(scope):
            existing = self._similar_existing(scope, facts, fact_vectors, between=chats_first)
            if existing:
                shown = [{"id": str(i), "text": r.memory} for i, r in enumerate(existing)]
                system = self.config.custom_update_memory_prompt or prompts.UPDATE_MEMORY_PROMPT
                decisions = inference.reconcile(self.llm, system, shown, facts, model=llm_model)
            else:  # nothing to update or delete: every fact is new, no second call needed
                decisions = [inference.Decision("ADD", fact, None) for fact in facts]
            changes = self._changes_for(decisions, existing, scope, meta, dict(zip(facts, fact_vectors)), when, lifetime)
            if not changes:
                return nothing_learnt()
            chats_first()
            learnt.applied = self.store.apply(changes, actor_id=actor, outbox_done=outbox)
            return learnt

    def _similar_existing(self, scope: Scope, facts: list[str], vectors: np.ndarray,
                          between: Callable[[], None] = lambda: None) -> list[MemoryRecord]:
        keys: dict[Any, None] = {}
        live = visible(self.store, scope, None, show_expired=False)  # an expired memory is not reconciled into
        for fact, vector in zip(facts, vectors):
            between()
            found = self.store.search(scope, live, vector, fact, SIMILAR_PER_FACT * 4, exact_scope=True)
            keys.update(dict.fromkeys(r.key for r in fuse(found, self.config.retrieval)[:SIMILAR_PER_FACT]))
        records = self.store.fetch(list(keys)[:MAX_EXISTING_SHOWN])
        return [records[k] for k in keys if k in records]

    def _changes_for(
        self, decisions: list[inference.Decision], existing: list[MemoryRecord], scope: Scope,
        meta: dict[str, Any], known_vectors: dict[str, np.ndarray], when: str | None = None, lifetime: Lifetime | None = None,
    ) -> list[Change]:
        """Turn the LLM's decisions into store changes, touching only the memories it was shown.
        New memories carry the conversation's time (``when``); updates are dated now."""
        by_alias = {str(i): r for i, r in enumerate(existing)}
        now = utc_now()
        changes: list[Change] = []
        touched: set[str] = set()
        pending_hashes = {r.hash for r in existing}
        for d in decisions:
            target = by_alias.get(d.alias or "")
            if target is not None and target.immutable and d.event in ("UPDATE", "DELETE"):
                d = kept_beside(d, target)  # an ADD of the new fact beside it (memlane.engine.immutable)
            if d.event == "UPDATE" and target is None:
                log.info("reconcile: UPDATE of unknown id %r kept as a new memory", d.alias)
                d = inference.Decision("ADD", d.text, None)
            if d.event == "ADD":
                h = content_hash(d.text)
                if h in pending_hashes:
                    continue  # exact duplicate of an existing or already-added memory
                pending_hashes.add(h)
                changes.append(Change("ADD", new_record(d.text, scope, meta, when or now, lifetime), reason=d.reason))
            elif d.event == "UPDATE" and target is not None and target.id not in touched:
                if content_hash(d.text) == target.hash or content_hash(d.text) in pending_hashes:
                    continue
                touched.add(target.id)
                pending_hashes.add(content_hash(d.text))
                updated = MemoryRecord(
                    id=target.id, memory=d.text, hash=content_hash(d.text), metadata={**target.metadata, **meta},
                    user_id=target.user_id, agent_id=target.agent_id, run_id=target.run_id,
                    created_at=target.created_at, updated_at=now,
                )
                changes.append(Change("UPDATE", updated))
            elif d.event == "DELETE" and target is not None and target.id not in touched:
                touched.add(target.id)
                changes.append(Change("DELETE", target))
            elif d.event == "DELETE":
                log.info("reconcile: DELETE of unknown id %r ignored", d.alias)
        missing = [c.record.memory for c in changes if c.event != "DELETE" and c.record.memory not in known_vectors]
        if missing:
            known_vectors.update(zip(missing, self._embed(missing)))
        for c in changes:
            if c.event != "DELETE":
                c.vector = known_vectors[c.record.memory]
        return changes
