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
import re
import threading
from collections import OrderedDict
from typing import Hashable, Sequence, Union

import numpy as np

from memlane.query.tokens import ASCII_WORD, fts5_tokens

K1 = 1.2
B = 0.75
#: a text's pieces: whitespace-separated stretches holding a non-ASCII character, or ASCII words
_PIECE = re.compile(r"\S*[^\x00-\x7f]\S*|[A-Za-z0-9]+")

#: a memory's context for ``ScopeKeywords.build``: its text, or the positions (in the build's
#: lists) of the memories whose texts, joined by a space, make it (then it is not tokenised again)
Context = Union[str, Sequence[int]]


class _Postings:
    """One term's postings: slots and weighted term frequencies, grown by doubling."""

    __slots__ = ("slots", "weights", "n")

    def __init__(self, slots: np.ndarray | None = None, weights: np.ndarray | None = None) -> None:
        self.slots = np.empty(4, np.int64) if slots is None else slots
        self.weights = np.empty(4, np.float64) if weights is None else weights
        self.n = 0 if slots is None else len(slots)

    def append(self, slot: int, weight: float) -> None:
        if self.n == len(self.slots):  # (a view into a build's arrays is copied here, never written)
            self.slots = np.concatenate([self.slots[: self.n], np.empty(max(self.n, 4), np.int64)])
            self.weights = np.concatenate([self.weights[: self.n], np.empty(max(self.n, 4), np.float64)])
        self.slots[self.n] = slot
        self.weights[self.n] = weight
        self.n += 1


class ScopeKeywords:
    """One scope's BM25 index. ``version`` is the scope version it reflects (the store's);
    ``lock`` is held by whoever reads or updates it. Terms are numbered per index; every token
    goes through ``_ids``, which stems a word once (``memlane.query.tokens``) and then maps it
    straight to its term's number."""

    def __init__(self, context_weight: float) -> None:
        self.context_weight = float(context_weight)
        self.version: int | None = None
        self.lock = threading.Lock()
        #: queued for (or being) built in the background; searches use the full-text query meanwhile
        self.building = False
        self.clear()

    def clear(self) -> None:
        self._term_of: dict[str, int] = {}  # stem -> term number
        self._word_term: dict[str, int] = {}  # ASCII word -> its stem's term number
        self._stretch_terms: dict[str, tuple[int, ...]] = {}  # non-ASCII stretch -> its term numbers
        self._df = np.zeros(64, np.int64)
        self._postings: dict[int, _Postings] = {}
        self._slot_of: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []
        self._doc_terms: list[tuple[np.ndarray, np.ndarray] | None] = []  # slot -> (terms, weights)
        #: what ``_load`` built, by term: ``_terms_of`` sorts it by memory on the first removal
        self._built: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None
        self._length = np.zeros(16, np.float64)
        self._alive = np.zeros(16, bool)
        self._tokens = 0.0
        self._dead = 0
        self._norm: np.ndarray | None = None
        self._parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # term -> _saturated's answer
        self._key_array: np.ndarray | None = None

    # -- tokens to term numbers ---------------------------------------------------------------

    def _term(self, stem: str) -> int:
        term = self._term_of.get(stem)
        if term is None:
            term = self._term_of[stem] = len(self._term_of)
            if term >= len(self._df):
                self._df = np.concatenate([self._df, np.zeros(len(self._df), np.int64)])
        return term

    def _ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every token of ``texts`` as term numbers, concatenated, and each text's token count.
        A text with non-ASCII characters is cut at separators into ASCII words and stretches
        holding the rest (those go to FTS5 whole, remembered per stretch): ``memlane.query.tokens``
        says why that is exact."""
        words = self._word_term
        flat: list[int] = []
        counts: list[int] = []
        for text in texts:
            if text.isascii():
                found = ASCII_WORD.findall(text.lower())
                try:
                    flat.extend([words[w] for w in found])
                except KeyError:
                    self._learn(found)
                    flat.extend([words[w] for w in found])
                counts.append(len(found))
                continue
            start = len(flat)
            for piece in _PIECE.findall(text):
                if piece.isascii():
                    word = piece.lower()
                    term = words.get(word)
                    if term is None:
                        self._learn([word])
                        term = words[word]
                    flat.append(term)
                else:
                    terms = self._stretch_terms.get(piece)
                    if terms is None:
                        terms = self._stretch_terms[piece] = tuple(self._term(t) for t in fts5_tokens().tokens(piece))
                    flat.extend(terms)
            counts.append(len(flat) - start)
        return np.array(flat, np.int64), np.array(counts, np.int64)

    def _learn(self, words: Sequence[str]) -> None:
        fresh = sorted({w for w in words if w not in self._word_term})
        for word, stems in zip(fresh, fts5_tokens().tokens_of(fresh)):
            self._word_term[word] = self._term(stems[0])

    def query_terms(self, stems: Sequence[str]) -> list[int]:
        """The term numbers of query stems this index holds (others match nothing)."""
        return [t for t in (self._term_of.get(s) for s in stems) if t is not None]

    # -- changes ------------------------------------------------------------------------------

    def build(self, keys: Sequence[Hashable], memories: Sequence[str], contexts: Sequence[Context],
              ids: Sequence[int]) -> None:
        """Index these memories from scratch: texts, contexts (see ``Context``), scope id counts.
        Vectorised: a 10k-memory real-text scope in a fraction of a second."""
        self.clear()
        n = len(keys)
        mem_terms, mem_counts = self._ids(memories)
        starts = np.concatenate([[0], np.cumsum(mem_counts)])
        texts = [(i, c) for i, c in enumerate(contexts) if isinstance(c, str) and c]
        joined = [(i, j) for i, c in enumerate(contexts) if not isinstance(c, str) for j in c]
        ctx_text_terms, ctx_text_counts = self._ids([c for _, c in texts])
        owners_text = np.repeat(np.array([i for i, _ in texts], np.int64), ctx_text_counts)
        dst = np.array([i for i, _ in joined], np.int64)
        src = np.array([j for _, j in joined], np.int64)
        lens = mem_counts[src]
        offsets = np.zeros(0, np.int64)
        if len(src):  # each joined neighbour's occurrences: a ragged range of mem_terms
            offsets = np.repeat(starts[src] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(int(lens.sum()))
        ctx_terms = np.concatenate([ctx_text_terms, mem_terms[offsets]])
        ctx_owners = np.concatenate([owners_text, np.repeat(dst, lens)])
        ctx_counts = np.bincount(ctx_owners, minlength=n)
        terms = np.concatenate([mem_terms, ctx_terms])
        owners = np.concatenate([np.repeat(np.arange(n, dtype=np.int64), mem_counts), ctx_owners])
        weights = np.concatenate([np.ones(len(mem_terms)), np.full(len(ctx_terms), self.context_weight)])
        lengths = (mem_counts + ctx_counts + np.asarray(ids, np.int64)).astype(np.float64)
        self._load(list(keys), terms, owners, weights, lengths)

    def _load(self, keys: list[Hashable], terms: np.ndarray, owners: np.ndarray, weights: np.ndarray,
              lengths: np.ndarray) -> None:
        """Fill a cleared index from (term, owner, weight) occurrences of ``len(keys)`` memories."""
        n = len(keys)
        codes = terms * max(n, 1) + owners
        order = np.argsort(codes)
        codes = codes[order]
        firsts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]])) if len(codes) else np.zeros(0, np.int64)
        tf = np.add.reduceat(weights[order], firsts) if len(codes) else np.zeros(0)
        pairs = codes[firsts]
        p_term, p_slot = pairs // max(n, 1), pairs % max(n, 1)
        bounds = np.flatnonzero(np.concatenate([[True], p_term[1:] != p_term[:-1], [True]])) if len(pairs) else np.zeros(1, np.int64)
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            self._postings[int(p_term[a])] = _Postings(p_slot[a:b], tf[a:b])
        self._df = np.bincount(p_term, minlength=max(64, len(self._df), 2 * len(self._term_of))).astype(np.int64)
        self._built = (p_term, tf, p_slot, n)  # each memory's terms, sorted out when first needed
        self._doc_terms = [None] * n
        self._keys = keys
        self._slot_of = {k: i for i, k in enumerate(keys)}
        size = max(16, n)
        self._length = np.zeros(size, np.float64)
        self._length[:n] = lengths
        self._alive = np.zeros(size, bool)
        self._alive[:n] = True
        self._tokens = float(lengths.sum())

    def put(self, key: Hashable, memory: str, context: str, ids: int) -> None:
        """Index (or re-index) one memory: its text, its context, its scope id count."""
        self.remove(key)
        occurrences, counts = self._ids([memory, context])
        weights = np.concatenate([np.ones(int(counts[0])), np.full(int(counts[1]), self.context_weight)])
        terms, inverse = np.unique(occurrences, return_inverse=True)
        tf = np.bincount(inverse.reshape(-1), weights=weights, minlength=len(terms))
        slot = len(self._keys)
        if slot == len(self._length):
            self._length = np.concatenate([self._length, np.zeros(slot)])
            self._alive = np.concatenate([self._alive, np.zeros(slot, bool)])
        length = float(counts.sum() + ids)
        self._length[slot] = length
        self._alive[slot] = True
        self._tokens += length
        self._slot_of[key] = slot
        self._keys.append(key)
        self._doc_terms.append((terms, tf))
        for t, f in zip(terms.tolist(), tf.tolist()):
            postings = self._postings.get(t)
            if postings is None:
                postings = self._postings[t] = _Postings()
            postings.append(slot, f)
        self._df[terms] += 1
        self._changed()

    def remove(self, key: Hashable) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        terms = self._terms_of(slot)
        self._doc_terms[slot] = None
        self._alive[slot] = False
        self._tokens -= float(self._length[slot])
        if terms is not None:
            self._df[terms[0]] -= 1
        self._dead += 1
        self._changed()
        if self._dead > 1000 and self._dead > len(self._slot_of):
            self._compact()

    def _terms_of(self, slot: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A live memory's (terms, weights)."""
        if self._built is not None and slot < self._built[3]:
            p_term, tf, p_slot, n = self._built
            by_doc = np.argsort(p_slot, kind="stable")
            d_term, d_tf = p_term[by_doc], tf[by_doc]
            cuts = np.searchsorted(p_slot[by_doc], np.arange(n + 1)).tolist()
            for s in range(n):
                if self._alive[s]:
                    self._doc_terms[s] = (d_term[cuts[s]:cuts[s + 1]], d_tf[cuts[s]:cuts[s + 1]])
            self._built = None
        return self._doc_terms[slot]

    def _changed(self) -> None:
        self._norm = self._key_array = None
        self._parts = {}

    def _compact(self) -> None:
        """Drop removed memories' slots and postings (after many updates and deletions)."""
        live = [s for s in range(len(self._keys)) if self._alive[s]]
        docs = [self._terms_of(s) for s in live]
        keys, lengths = [self._keys[s] for s in live], self._length[live].copy()
        counts = np.array([len(d[0]) if d else 0 for d in docs], np.int64)
        terms = np.concatenate([d[0] for d in docs if d] or [np.zeros(0, np.int64)])
        weights = np.concatenate([d[1] for d in docs if d] or [np.zeros(0)])
        owners = np.repeat(np.arange(len(live), dtype=np.int64), counts)
        kept = self._term_of, self._word_term, self._stretch_terms, self._df
        self.clear()
        self._term_of, self._word_term, self._stretch_terms, self._df = kept
        self._load(keys, terms, owners, weights, lengths)

    # -- reads ------------------------------------------------------------------------------

    @property
    def documents(self) -> int:
        return len(self._slot_of)

    @property
    def nbytes(self) -> int:
        """About what the index holds in memory: postings (and each memory's view of them),
        the term and word maps, the per-memory arrays and keys."""
        postings = sum(p.slots.nbytes + p.weights.nbytes for p in self._postings.values())
        return int(2 * postings + 150 * (len(self._term_of) + len(self._word_term)) + 150 * len(self._keys)
                   + self._length.nbytes * 2)

    def search(self, stems: Sequence[str], k: int, *, allowed: np.ndarray | None = None) -> dict[Hashable, float]:
        """The ``k`` best memories holding any of ``stems`` (one per query word, in order, as
        the FTS5 query's phrases) by BM25, higher is better; ``allowed``: only these keys."""
        docs = self.documents
        if not stems or not docs or k <= 0:
            return {}
        n_slots = len(self._keys)
        scores = np.zeros(n_slots, np.float64)
        matched = np.zeros(n_slots, bool)
        for term in self.query_terms(stems):
            df = int(self._df[term])
            if df == 0:
                continue
            idf = math.log((docs - df + 0.5) / (df + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            slots, saturated = self._saturated(term)
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

    def _saturated(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """The term's slots and BM25's term-frequency part for each, ``f (k1 + 1) / (f + k1 (1
        - b + b D / avgdl))``: kept until a change moves the average length or the postings."""
        postings = self._postings[term]
        cached = self._parts.get(term)
        if cached is not None and len(cached[0]) == postings.n:
            return cached
        if self._norm is None:
            self._norm = K1 * (1 - B + B * self._length[: len(self._keys)] / (self._tokens / self.documents))
        slots, weights = postings.slots[: postings.n], postings.weights[: postings.n]
        part = (slots, (weights * (K1 + 1.0)) / (weights + self._norm[slots]))
        self._parts[term] = part
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
        #: per entry: (the entry, its memories, its size) when ``nbytes`` last measured it
        self._measured: dict[Hashable, tuple[ScopeKeywords, int, int]] = {}
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
        """Record the entry's size after a change; drop the least recently used past the bound.
        The size is measured again (``nbytes`` walks every posting list: ~2 ms at a 10k scope, and
        a server catches up after each memory learnt) once the entry's memories changed by a
        hundredth since it was last measured; in between it is scaled by their count."""
        docs = entry.documents
        measured = self._measured.get(key)
        if measured is not None and measured[0] is entry and abs(docs - measured[1]) <= max(64, measured[1] // 100):
            size = int(measured[2] * max(docs, 1) / max(measured[1], 1))
        else:
            size = entry.nbytes
            self._measured[key] = (entry, docs, size)
        with self._lock:
            if self._entries.get(key) is not entry:
                return
            self._sizes[key] = size
            while sum(self._sizes.values()) > self.max_bytes and self._entries:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self._sizes.pop(oldest, None)
                self._measured.pop(oldest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._measured.clear()
