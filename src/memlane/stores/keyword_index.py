"""Keyword (BM25) scoring from an in-process index per scope, for every store.

Why: an FTS5 (or PostgreSQL full-text) query scores every memory that holds any query term,
one row at a time, and has no top-k pruning; when a scope's memories share their words (one
product's catalogue, one user's hobby) that is most of the scope on every search (measured, 10k
memories from a small vocabulary: 13.7 ms a keyword query). Here each scope's postings are numpy
arrays, so scoring the same matches is a few vectorised operations (bench/README.md has the
table: this against FTS5, ``bm25s`` and ``tantivy``).

What it computes is FTS5's ``bm25()`` exactly as the SQLite store called it (k1 1.2, b 0.75, the
memory text weighted 1, its conversation context ``context_weight``, the document length counting
every token of both plus one per scope id, as the FTS table's scope column did; the same query
terms, ``memlane.query.tokens``' stems; every one of them: the FTS5 query left out the commonest
for speed, which costs this index little), with the statistics (documents, average length,
document frequency) of the scope searched rather than of the whole table: a user's ranking does
not depend on other users' memories, and one scope's index needs nothing outside it.

The store stays the source of truth: an index is built from its rows, kept in step with the
per-scope change journal every write adds to in its own transaction (``SQLStore._journal``), and
dropped whenever (LRU, bounded in bytes), to be rebuilt at the next search.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Hashable, Sequence

import numpy as np

K1 = 1.2
B = 0.75


class _Postings:
    """One term's postings: slots and weighted term frequencies, grown by doubling."""

    __slots__ = ("slots", "weights", "n")

    def __init__(self) -> None:
        self.slots = np.empty(4, np.int64)
        self.weights = np.empty(4, np.float64)
        self.n = 0

    def append(self, slot: int, weight: float) -> None:
        if self.n == len(self.slots):
            self.slots = np.concatenate([self.slots, np.empty(self.n, np.int64)])
            self.weights = np.concatenate([self.weights, np.empty(self.n, np.float64)])
        self.slots[self.n] = slot
        self.weights[self.n] = weight
        self.n += 1


class ScopeKeywords:
    """One scope's BM25 index. ``version`` is the scope version it reflects (the store's);
    ``lock`` is held by whoever reads or updates it."""

    def __init__(self, context_weight: float) -> None:
        self.context_weight = float(context_weight)
        self.version: int | None = None
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self._slot_of: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []
        self._doc_terms: list[dict[str, float] | None] = []  # slot -> term -> weighted frequency
        self._length = np.zeros(16, np.float64)
        self._alive = np.zeros(16, bool)
        self._postings: dict[str, _Postings] = {}
        self._df: dict[str, int] = {}
        self._tokens = 0.0
        self._dead = 0
        self._norm: np.ndarray | None = None
        self._parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # stem -> _saturated's answer
        self._key_array: np.ndarray | None = None

    # -- changes ----------------------------------------------------------------------------

    def put(self, key: Hashable, memory: Sequence[str], context: Sequence[str], ids: int) -> None:
        """Index (or re-index) one memory: its text's tokens, its context's, its scope id count."""
        self.remove(key)
        terms: dict[str, float] = {}
        for t in memory:
            terms[t] = terms.get(t, 0.0) + 1.0
        w = self.context_weight
        for t in context:
            terms[t] = terms.get(t, 0.0) + w
        slot = len(self._keys)
        if slot == len(self._length):
            self._length = np.concatenate([self._length, np.zeros(slot)])
            self._alive = np.concatenate([self._alive, np.zeros(slot, bool)])
        length = float(len(memory) + len(context) + ids)
        self._length[slot] = length
        self._alive[slot] = True
        self._tokens += length
        self._slot_of[key] = slot
        self._keys.append(key)
        self._doc_terms.append(terms)
        for t, f in terms.items():
            postings = self._postings.get(t)
            if postings is None:
                postings = self._postings[t] = _Postings()
            postings.append(slot, f)
            self._df[t] = self._df.get(t, 0) + 1
        self._norm = self._key_array = None
        self._parts = {}

    def put_many(self, docs: Sequence[tuple[Hashable, Sequence[str], Sequence[str], int]]) -> None:
        """``put`` for each of ``docs``; into an empty index, with each term's postings built in
        one go (a 10k-memory scope: ~9x faster than one ``put`` at a time)."""
        if self._slot_of:
            for doc in docs:
                self.put(*doc)
            return
        self.clear()
        w = self.context_weight
        slots_of: dict[str, list[int]] = {}
        weights_of: dict[str, list[float]] = {}
        lengths: list[float] = []
        for slot, (key, memory, context, ids) in enumerate(docs):
            terms: dict[str, float] = {}
            for t in memory:
                terms[t] = terms.get(t, 0.0) + 1.0
            for t in context:
                terms[t] = terms.get(t, 0.0) + w
            for t, f in terms.items():
                found = slots_of.get(t)
                if found is None:
                    slots_of[t], weights_of[t] = [slot], [f]
                else:
                    found.append(slot)
                    weights_of[t].append(f)
            lengths.append(float(len(memory) + len(context) + ids))
            self._slot_of[key] = slot
            self._keys.append(key)
            self._doc_terms.append(terms)
        for t, slots in slots_of.items():
            postings = self._postings[t] = _Postings()
            postings.slots, postings.weights = np.array(slots, np.int64), np.array(weights_of[t], np.float64)
            postings.n = len(slots)
            self._df[t] = len(slots)
        size = max(16, len(lengths))
        self._length = np.zeros(size, np.float64)
        self._length[: len(lengths)] = lengths
        self._alive = np.zeros(size, bool)
        self._alive[: len(lengths)] = True
        self._tokens = float(sum(lengths))

    def remove(self, key: Hashable) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        terms = self._doc_terms[slot]
        self._doc_terms[slot] = None
        self._alive[slot] = False
        self._tokens -= float(self._length[slot])
        for t in terms or ():
            self._df[t] -= 1
        self._dead += 1
        self._norm = self._key_array = None
        self._parts = {}
        if self._dead > 1000 and self._dead > len(self._slot_of):
            self._compact()

    def _compact(self) -> None:
        """Drop removed memories' slots and postings (after many updates and deletions)."""
        live = [(self._keys[s], self._doc_terms[s], float(self._length[s])) for s in range(len(self._keys)) if self._alive[s]]
        self.clear()
        for key, terms, length in live:
            slot = len(self._keys)
            if slot == len(self._length):
                self._length = np.concatenate([self._length, np.zeros(slot)])
                self._alive = np.concatenate([self._alive, np.zeros(slot, bool)])
            self._length[slot], self._alive[slot] = length, True
            self._tokens += length
            self._slot_of[key] = slot
            self._keys.append(key)
            self._doc_terms.append(terms)
            for t, f in (terms or {}).items():
                self._postings.setdefault(t, _Postings()).append(slot, f)
                self._df[t] = self._df.get(t, 0) + 1

    # -- reads ------------------------------------------------------------------------------

    @property
    def documents(self) -> int:
        return len(self._slot_of)

    @property
    def nbytes(self) -> int:
        """About what the index holds in memory (postings, per-memory term maps, arrays)."""
        postings = sum(p.slots.nbytes + p.weights.nbytes for p in self._postings.values())
        terms = sum(len(t) for t in self._doc_terms if t)
        return int(postings + 120 * terms + 200 * len(self._keys) + self._length.nbytes * 2)

    def search(self, stems: list[str], k: int, *, allowed: np.ndarray | None = None) -> dict[Hashable, float]:
        """The ``k`` best memories holding any of ``stems`` (one per query word, in order, as
        the FTS5 query's phrases) by BM25, higher is better; ``allowed``: only these keys."""
        docs = self.documents
        if not stems or not docs or k <= 0:
            return {}
        n_slots = len(self._keys)
        scores = np.zeros(n_slots, np.float64)
        matched = np.zeros(n_slots, bool)
        for stem in stems:
            df = self._df.get(stem, 0)
            if df == 0:
                continue
            idf = math.log((docs - df + 0.5) / (df + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            slots, saturated = self._saturated(stem)
            scores[slots] += idf * saturated
            matched[slots] = True
        matched &= self._alive[:n_slots]
        found = np.flatnonzero(matched)
        keys = self._keys_array()
        if allowed is not None and len(found):
            found = found[np.isin(keys[found], allowed)]
        if len(found) > k:  # the k best; ties at the cut go to the smallest keys, as an ordered query's
            negative = -scores[found]
            cut = np.partition(negative, k - 1)[k - 1]
            better, tied = found[negative < cut], found[negative == cut]
            need = k - len(better)
            if len(tied) > need:
                tied = tied[np.argpartition(keys[tied], need - 1)[:need]]
            found = np.concatenate([better, tied])
        best = scores[found]
        order = np.lexsort((keys[found], -best))
        return dict(zip(keys[found[order]].tolist(), best[order].tolist()))

    def _saturated(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """The term's slots and BM25's term-frequency part for each, ``f (k1 + 1) / (f + k1 (1
        - b + b D / avgdl))``: kept until a change moves the average length or the postings."""
        postings = self._postings[stem]
        cached = self._parts.get(stem)
        if cached is not None and len(cached[0]) == postings.n:
            return cached
        if self._norm is None:
            self._norm = K1 * (1 - B + B * self._length[: len(self._keys)] / (self._tokens / self.documents))
        slots, weights = postings.slots[: postings.n], postings.weights[: postings.n]
        part = (slots, (weights * (K1 + 1.0)) / (weights + self._norm[slots]))
        self._parts[stem] = part
        return part

    def _keys_array(self) -> np.ndarray:
        if self._key_array is None:
            self._key_array = np.asarray(self._keys)
        return self._key_array


class KeywordIndexes:
    """The scopes' indexes, least recently used dropped first past ``max_bytes``."""

    def __init__(self, max_bytes: int, context_weight: float) -> None:
        self.max_bytes = max_bytes
        self.context_weight = context_weight
        self._entries: OrderedDict[Hashable, ScopeKeywords] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def entry(self, key: Hashable) -> ScopeKeywords:
        """The scope's index (a new, empty one with no version if there was none)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = ScopeKeywords(self.context_weight)
            self._entries.move_to_end(key)
            return entry

    def account(self, key: Hashable, entry: ScopeKeywords) -> None:
        """Record the entry's size after a change; drop the least recently used past the bound."""
        size = entry.nbytes
        with self._lock:
            if self._entries.get(key) is not entry:
                return
            self._sizes[key] = size
            while sum(self._sizes.values()) > self.max_bytes and self._entries:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self._sizes.pop(oldest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
