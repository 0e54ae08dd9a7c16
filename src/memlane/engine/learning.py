"""Learning: the facts a conversation states, reconciled into the memories of its scope.

Fact extraction reads only the new turns, in chunks (``inference.max_input_chars`` x
``max_chunks``), outside the scope's lock. Under the lock, each fact brings the memories of the
scope most like it; the memory LLM decides, for the facts against what it was shown, what to add,
update or delete (memlane.engine.inference), and those decisions become store changes that touch
only the memories it was shown. An outbox exchange leaves the outbox in the commit that applies
them, or on its own when there was nothing to learn; between steps, background learning lets
recalls in flight go first (memlane.engine.foreground).

Batches (``learn_batch``, ``outbox.batch_size``). When several exchanges of one scope wait, the
learner claims them together, and they are learnt with what one at a time gives:

- Which go together (``batch_size_of``): the claim's exchanges, oldest first, as long as they
  share their metadata, their timestamp (the payload's ``timestamp``, or none) and their memory
  model (the chat's ``model`` when the config names none), and their transcripts together fit
  one extraction call (``inference.max_input_chars``: a batch is never chunked). That is the
  compatibility rule, chosen over carrying each fact's origin into the store: one reconcile
  decision can stand for facts of several exchanges, so their metadata or times could not be
  kept apart; with the rule, everything a memory keeps of the exchange it came from (its
  metadata, its ``created_at`` from the timestamp, its history rows' times) is the same
  whichever exchange of the batch it came from, and nothing is lost. The first exchange that
  differs goes back to the outbox for the next claim. Chats' exchanges carry no timestamp and
  one client's metadata, so under load they batch.
- One extraction call shows the exchanges apart and in order ("exchange 1:", "exchange 2:" ...,
  ``prompts.BATCH_FACT_EXTRACTION_PROMPT``) and gets each one's facts, so each fact is checked
  (memlane.engine.fact_check) against its own exchange's turns only, as one at a time. A custom
  extraction prompt states its own, one-exchange answer: with one, exchanges go one at a time.
- The batch's facts are embedded in one call and shown to one reconcile call, in the order they
  were said (a fact two exchanges state is shown twice: one at a time it is reconciled twice),
  with the scope's memories most like any of them; the changes go in one commit that also
  removes every outbox item of the batch (``apply(..., outbox_done=[...])``).
- What can differ from one at a time: facts of one batch that bear on each other (a later
  exchange corrects an earlier one, the gym visited twice) are decided in the one reconcile pass
  (the model sees them all, oldest first), so history records their net change (one ADD of the
  corrected fact, one UPDATE for both visits) where one at a time records each step; without a
  payload timestamp a new memory's ``created_at`` is when its batch was learnt. Which
  exchange an applied change is reported for (the recall log) is the one whose fact it matches,
  else the one whose fact shares most words with it.
- A batch that fails (the model answered one list for all, ``UnattributedFacts``; a bad answer
  after the repair round; the model server down) raises, and the learner learns its exchanges one
  at a time: each is retried or set aside as it would be alone, so one bad exchange costs the
  others no attempt. A lost lease discards the whole batch (``LeaseLost``; nothing was written).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from memlane.config import MemlaneConfig
from memlane.engine import inference, prompts
from memlane.engine.expiry import visible
from memlane.engine.fact_check import Dropped, FactCheck, roots
from memlane.engine.confirm import confirmed
from memlane.engine.foreground import Foreground
from memlane.engine.guidance import Guidance, categories_of, keys_of, resolve
from memlane.engine.identity import Lifetime, content_hash, new_record
from memlane.engine.immutable import kept_beside
from memlane.engine.messages import normalize_messages, transcript
from memlane.engine.ranking import fuse
from memlane.llms.base import LLM, JSONTask
from memlane.records import MemoryRecord, Scope, utc_now
from memlane.stores.base import Applied, Change, MemoryStore
from memlane.stores.outbox import OutboxDone, OutboxItem

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


class CallTally:
    """Memory-LLM calls made (repair rounds included), counted across threads: the learner's
    ``llm_calls``, what learning costs in the model's money."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


class _Tallied:
    """The memory LLM, each call counted in a ``CallTally``."""

    def __init__(self, llm: LLM, tally: CallTally) -> None:
        self._llm = llm
        self._tally = tally

    def complete_json(self, messages: list[dict[str, Any]], *, model: str | None = None,
                      task: JSONTask | None = None) -> str:
        self._tally.add()
        return self._llm.complete_json(messages, model=model, task=task)


@dataclass(frozen=True)
class Exchange:
    """One outbox exchange, read: what learning needs of its payload."""

    item: OutboxItem
    scope: Scope
    turns: list[dict[str, Any]]
    meta: dict[str, Any]
    #: when it happened (the payload's ``timestamp``); None: now
    when: str | None
    #: the memory model for it: the chat's, unless the config names one
    model: str | None

    @property
    def transcript(self) -> str:
        return transcript(self.turns)

    @property
    def batch_key(self) -> tuple[str, str, str | None, str | None]:
        """What two exchanges must share to be learnt together (see the module docstring)."""
        return self.scope.key, json.dumps(self.meta, sort_keys=True, ensure_ascii=False, default=str), self.when, self.model


def exchange_of(item: OutboxItem, config: MemlaneConfig) -> Exchange:
    """``item``'s payload read (``ValidationError`` for messages that are not a conversation)."""
    payload = item.payload
    return Exchange(item, Scope(**payload["scope"]), normalize_messages(payload["messages"]), payload.get("metadata") or {},
                    payload.get("timestamp"), None if config.llm.config.get("model") else payload.get("model"))


def batch_size_of(items: Sequence[OutboxItem], config: MemlaneConfig) -> int:
    """How many of ``items`` (one claim: one scope's, oldest first) to learn together: the
    first, and each next one with the same ``batch_key`` while their transcripts still fit one
    extraction call; 1 with a custom extraction prompt, or when the first cannot be read (it
    fails alone, as it would have)."""
    if len(items) < 2 or config.custom_fact_extraction_prompt:
        return min(len(items), 1)
    return _fitting(items, config)[0]


def _fitting(items: Sequence[OutboxItem], config: MemlaneConfig) -> tuple[int, list[str] | None]:
    """``batch_size_of``'s count (``items`` not empty, no custom prompt), with the transcripts
    those exchanges show the extraction call; None when the first cannot be read."""
    try:
        first = exchange_of(items[0], config)
    except Exception:  # noqa: BLE001 - a payload that cannot be learnt fails on its own
        return 1, None
    shown = [first.transcript] if first.transcript.strip() else []
    if len(prompts.batch_conversation(shown)) > config.inference.max_input_chars:
        return 1, shown  # one exchange that needs chunks of its own
    count = 1
    for item in items[1:]:
        try:
            exchange = exchange_of(item, config)
        except Exception:  # noqa: BLE001
            break
        text = exchange.transcript
        if exchange.batch_key != first.batch_key or (
                text.strip() and len(prompts.batch_conversation([*shown, text])) > config.inference.max_input_chars):
            break
        if text.strip():
            shown.append(text)
        count += 1
    return count, shown


#: the shortest transcript an exchange more could add to a batch: one turn of one character
_SHORTEST_TRANSCRIPT = prompts.transcript_line("user", "x")


def room_for_more(items: Sequence[OutboxItem], config: MemlaneConfig) -> bool:
    """Whether an exchange more of the scope, arriving now, could still be learnt together with
    ``items`` (one claim, oldest first): not with a custom extraction prompt (one exchange a
    call), nor when they already do not all fit one extraction call (``batch_size_of``), nor
    when even the shortest exchange more would not fit beside them (a long one near
    ``inference.max_input_chars``). The learner holds a short claim back only when it could."""
    if config.custom_fact_extraction_prompt:
        return False
    count, shown = _fitting(items, config) if items else (0, [])
    if shown is None or count < len(items):  # (a payload that cannot be learnt fails on its own, at once)
        return False
    return len(prompts.batch_conversation([*shown, _SHORTEST_TRANSCRIPT])) <= config.inference.max_input_chars


class Learning:
    """Learns into one store with one memory LLM, embedding with the engine's ``embed``."""

    def __init__(self, store: MemoryStore, llm: LLM, embed: Callable[[Sequence[str]], np.ndarray], config: MemlaneConfig,
                 foreground: Foreground) -> None:
        self.store = store
        self.llm = llm
        self.config = config
        self.foreground = foreground
        self._embed = embed

    def _llm(self, tally: CallTally | None) -> LLM:
        return self.llm if tally is None else _Tallied(self.llm, tally)

    def learn(self, item: OutboxItem, tally: CallTally | None = None) -> Learnt:
        """Learn from one outbox exchange (``Memory.learn``); the config's memory model, when it
        names one, wins over the chat's. ``tally`` counts the memory-LLM calls made."""
        e = exchange_of(item, self.config)
        return self.add_inferred(e.turns, e.scope, e.meta, None, None, e.model, outbox=item, when=e.when, llm=self._llm(tally))

    def learn_batch(self, items: Sequence[OutboxItem], tally: CallTally | None = None) -> list[Learnt]:
        """Learn from several exchanges of one scope together (see the module docstring): what
        each one did, in order. ``items`` must be learnable together (``batch_size_of``)."""
        if len(items) <= 1:
            return [self.learn(item, tally) for item in items]
        if batch_size_of(items, self.config) != len(items):
            raise ValueError("these outbox items cannot be learnt together (memlane.engine.learning.batch_size_of)")
        llm = self._llm(tally)
        exchanges = [exchange_of(item, self.config) for item in items]
        first = exchanges[0]
        learnt = [Learnt() for _ in exchanges]
        facts_of: list[list[str]] = [[] for _ in exchanges]
        shown = [index for index, e in enumerate(exchanges) if e.transcript.strip()]
        guidance = self.guidance()
        labels: inference.Labels | None = {} if guidance.labelled else None
        if shown:
            system = prompts.with_guidance(prompts.BATCH_FACT_EXTRACTION_PROMPT.format(today=(first.when or utc_now())[:10]),
                                           guidance.instructions, guidance.categories, guidance.keys)
            found = inference.extract_batch_facts(llm, system, [exchanges[i].transcript for i in shown], model=first.model,
                                                  labels=labels, keys=guidance.keys)
            for index, facts in zip(shown, found):
                facts_of[index] = facts
        origin: dict[str, int] = {}  # each fact: the (first) exchange it came from
        for index, e in enumerate(exchanges):
            facts_of[index], excluded = self._excluded(facts_of[index], labels)
            facts_of[index], learnt[index].dropped = self._checked(e.turns, facts_of[index])
            learnt[index].dropped[:0] = excluded
            for fact in facts_of[index]:
                origin.setdefault(fact, index)
        # A fact two exchanges state is reconciled twice one at a time; here it is shown twice,
        # in order ("went to the gym again" twice is two visits, "lives in Denver" twice one fact).
        said = [fact for facts in facts_of for fact in facts]
        applied = self._reconcile_and_apply(said, first.scope, first.meta, first.when, first.model, llm,
                                            actor=None, outbox=list(items), batched=True, extras=self._filed(labels, guidance))
        for a in applied:
            learnt[_reported_for(a, origin, len(exchanges))].applied.append(a)
        return learnt

    def _checked(self, turns: list[dict[str, Any]], facts: list[str]) -> tuple[list[str], list[Dropped]]:
        """The facts to learn and the ones dropped (``inference.check_facts``), against ``turns``."""
        if not self.config.inference.check_facts:
            return facts, []
        kept, dropped = FactCheck(turns, max_chars=self.config.inference.max_fact_chars).split(facts)
        for d in dropped:
            log.info("extracted fact not learnt (%s): %r", d.reason, d.fact[:200])
        return kept, dropped

    def add_inferred(
        self, turns: list[dict[str, Any]], scope: Scope, meta: dict[str, Any], prompt: str | None,
        actor: str | None, llm_model: str | None, *, outbox: OutboxItem | None = None, when: str | None = None,
        lifetime: Lifetime | None = None, llm: LLM | None = None, guidance: Guidance | None = None,
    ) -> Learnt:
        """Extract, check, reconcile, apply: ``add(infer=True)``, and each outbox exchange (``outbox``).
        ``guidance``: the add's instructions and categories (default: the project's, the config's)."""
        llm = llm or self.llm
        guidance = guidance or self.guidance()
        labels: inference.Labels | None = {} if guidance.labelled else None
        learnt = Learnt()
        conversation = transcript(turns)
        facts: list[str] = []
        if conversation.strip():
            extraction_prompt = prompt or self.config.custom_fact_extraction_prompt or prompts.FACT_EXTRACTION_PROMPT.format(
                today=(when or utc_now())[:10]  # the conversation's own date: relative dates resolve against it
            )
            extraction_prompt = prompts.with_guidance(extraction_prompt, guidance.instructions, guidance.categories, guidance.keys)
            # Extraction reads only the new turns, so it runs outside the scope lock.
            limits = self.config.inference
            pieces, dropped = inference.chunk_conversation(conversation, limits.max_input_chars, limits.max_chunks)
            if dropped:
                log.warning("exchange of %d characters: the oldest %d were left out of fact extraction (inference.max_input_chars"
                            " x inference.max_chunks = %d)", len(conversation), dropped, limits.max_input_chars * limits.max_chunks)
            facts = list(dict.fromkeys(
                fact for piece in pieces
                for fact in inference.extract_facts(llm, extraction_prompt, piece, model=llm_model, labels=labels, keys=guidance.keys)))
            facts, excluded = self._excluded(facts, labels)
            facts, learnt.dropped = self._checked(turns, facts)
            learnt.dropped[:0] = excluded
        learnt.applied = self._reconcile_and_apply(facts, scope, meta, when, llm_model, llm, actor=actor, outbox=outbox, lifetime=lifetime,
                                                   extras=self._filed(labels, guidance))
        return learnt

    def guidance(self) -> Guidance:
        """The project's instructions and categories (its store's settings, else the config's)."""
        return resolve(self.config, self.store.project_settings())

    @staticmethod
    def _excluded(facts: list[str], labels: inference.Labels | None) -> tuple[list[str], list[Dropped]]:
        """The facts the model marked as excluded by the instructions, dropped (``excluded``)."""
        if not labels:
            return facts, []
        dropped = [Dropped(f, "excluded") for f in facts if labels.get(f, {}).get("excluded")]
        for d in dropped:
            log.info("extracted fact not learnt (excluded by the instructions): %r", d.fact[:200])
        return [f for f in facts if not labels.get(f, {}).get("excluded")], dropped

    @staticmethod
    def _filed(labels: inference.Labels | None, guidance: Guidance) -> dict[str, dict[str, list[str]]]:
        """What each fact's memory keeps in its metadata besides the add's: its ``categories``
        (kept to the guidance's names) and ``search_keys``."""
        if not labels:
            return {}
        filed: dict[str, dict[str, list[str]]] = {}
        for fact, said in labels.items():
            extra = {"categories": categories_of(said.get("categories"), guidance.categories) if guidance.categories else [],
                     "search_keys": keys_of(said.get("keys")) if guidance.keys else []}
            extra = {k: v for k, v in extra.items() if v}
            if extra:
                filed[fact] = extra
        return filed

    def _reconcile_and_apply(
        self, facts: list[str], scope: Scope, meta: dict[str, Any], when: str | None, llm_model: str | None, llm: LLM, *,
        actor: str | None, outbox: OutboxDone | None, batched: bool = False, lifetime: Lifetime | None = None,
        extras: dict[str, dict[str, list[str]]] | None = None,
    ) -> list[Applied]:
        """The facts reconciled with the scope's memories most like them and applied; the outbox
        item(s) leave in that commit, or on their own when there is nothing to change.
        ``batched``: the facts of several exchanges, in the order they were said, repeats kept."""
        def nothing_learnt() -> list[Applied]:
            if outbox is not None:
                self.store.outbox.done(outbox)
            return []

        if not facts:
            return nothing_learnt()

        def chats_first() -> None:  # background learning waits for recalls in flight
            if outbox is not None:
                self.foreground.wait_idle(self.config.outbox.yield_seconds)

        chats_first()
        distinct = list(dict.fromkeys(facts))
        fact_vectors = self._embed(distinct)
        with self.store.scope_lock(scope):
            existing = self._similar_existing(scope, distinct, fact_vectors, between=chats_first)
            if existing:
                shown = [{"id": str(i), "text": r.memory} for i, r in enumerate(existing)]
                system = self.config.custom_update_memory_prompt or prompts.UPDATE_MEMORY_PROMPT
                decisions = inference.reconcile(llm, system, shown, facts, model=llm_model, batched=batched)
                if self.config.inference.confirm_changes:
                    decisions = confirmed(llm, decisions, existing, self._embed, model=llm_model,
                                          max_chars=self.config.inference.max_fact_chars)
            else:  # nothing to update or delete: every fact is new, no second call needed
                decisions = [inference.Decision("ADD", fact, None) for fact in distinct]
            changes = self._changes_for(decisions, existing, scope, meta, dict(zip(distinct, fact_vectors)), when, lifetime,
                                        extras or {})
            if not changes:
                return nothing_learnt()
            chats_first()
            return self.store.apply(changes, actor_id=actor, outbox_done=outbox)

    def _similar_existing(self, scope: Scope, facts: list[str], vectors: np.ndarray,
                          between: Callable[[], None] = lambda: None) -> list[MemoryRecord]:
        keys: dict[Any, None] = {}
        live = visible(self.store, scope, None, show_expired=False)  # an expired memory is not reconciled into
        for fact, vector in zip(facts, vectors):
            between()
            found = self.store.search(scope, live, vector, fact, SIMILAR_PER_FACT * 4, exact_scope=True)
            keys.update(dict.fromkeys(r.key for r in fuse(found, self.config.retrieval, limit=SIMILAR_PER_FACT)))
        records = self.store.fetch(list(keys)[:MAX_EXISTING_SHOWN])
        return [records[k] for k in keys if k in records]

    def _changes_for(
        self, decisions: list[inference.Decision], existing: list[MemoryRecord], scope: Scope,
        meta: dict[str, Any], known_vectors: dict[str, np.ndarray], when: str | None = None, lifetime: Lifetime | None = None,
        extras: dict[str, dict[str, list[str]]] | None = None,
    ) -> list[Change]:
        """Turn the LLM's decisions into store changes, touching only the memories it was shown.
        New memories carry the conversation's time (``when``); updates are dated now. A memory
        made from a labelled fact carries its ``extras`` (categories, search keys) in its
        metadata; a text reconcile rewrote gets the one fact's when there was one fact."""
        filed = extras or {}
        only = next(iter(filed.values())) if len(filed) == 1 else None

        def meta_for(text: str, base: dict[str, Any]) -> dict[str, Any]:
            return {**base, **(filed.get(text) or only or {})}

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
                changes.append(Change("ADD", new_record(d.text, scope, meta_for(d.text, meta), when or now, lifetime), reason=d.reason))
            elif d.event == "UPDATE" and target is not None and target.id not in touched:
                if content_hash(d.text) == target.hash or content_hash(d.text) in pending_hashes:
                    continue
                touched.add(target.id)
                pending_hashes.add(content_hash(d.text))
                updated = MemoryRecord(
                    id=target.id, memory=d.text, hash=content_hash(d.text), metadata=meta_for(d.text, {**target.metadata, **meta}),
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


def _reported_for(applied: Applied, origin: dict[str, int], exchanges: int) -> int:
    """Which exchange of a batch a change is reported for: the one whose fact it is, else the
    one whose fact shares most words with it (the later on a tie), else the last."""
    text = applied.previous_memory if applied.event == "DELETE" and applied.previous_memory else applied.record.memory
    if text in origin:
        return origin[text]
    words = roots(text)
    shared, index = max(((len(words & roots(fact)), index) for fact, index in origin.items()), default=(0, exchanges - 1))
    return index if shared else exchanges - 1
