"""Term alignment: how well a memory's words answer the question's words, one by one.

Each content word of the question is matched to its closest word in the memory (cosine of
static word vectors, so "religious" meets "church" and "exercises" meets "kickboxing"), and the
matches are averaged, each question word weighted by how rare a close match is among the
candidates (a word every candidate matches tells little). The mean-pooled dense vector blurs
exactly this; the keyword index sees only equal words. Measured on LoCoMo dev as a re-ranking of
the fused top 30 (bench/README.md): recall@10 0.777 -> 0.791, multi-hop 0.488 -> 0.520,
open-domain 0.377 -> 0.405; counting equal words alone (no vectors) loses 0.2 to 1 point.

Word vectors come from the shipped static model whatever the embedder is: one table lookup
per word that is a single word piece, a model pass (cached) for the rest.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Sequence

import numpy as np

from memlane.query.keywords import STOPWORDS

log = logging.getLogger("memlane")

#: words of three letters or more (no digits, no underscore)
_WORD = re.compile(r"\b[^\W\d_]{3,}\b", re.UNICODE)
#: a capitalised word after the question's first: a name, most likely
_NAME = re.compile(r"(?<=\w\W)\b[A-Z]\w+")
#: a question word matching a candidate at least this closely counts as found there (for the weights)
CLOSE = 0.9
#: words of several pieces whose vectors are kept (each 1 KB), and memory texts whose words
#: are kept (as rows)
CACHE_WORDS = 20_000
CACHE_TEXTS = 50_000


def content_words(text: str) -> list[str]:
    """Distinct lower-case words of letters, longer than two, not stop words, in order."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS))


class WordVectors:
    """Unit vectors for words, from a model2vec static model.

    A word is a row: the table's own row when the word is one word piece, else a row of a
    second, growing table of encoded words (``CACHE_WORDS`` of them; one model pass each). A
    memory's words are remembered as their rows (``CACHE_TEXTS`` texts), so aligning 30
    candidates is array work, not a dictionary lookup per word (1.3 -> ~0.3 ms a search on real
    text, most of it the Python loops over ~600 words)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        table = np.asarray(model.embedding, dtype=np.float32)
        # unit rows in single precision (30 MB for the shipped model): gathering half-precision
        # rows and widening them cost 0.18 ms a search, a third of the whole alignment
        self._table = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-9)
        self._base = len(self._table)
        self._vocab: dict[str, int] = model.tokenizer.get_vocab()
        # rows of words of several pieces, after the table's: row 0 of it is zeros (what a text
        # without words aligns with); grown into spare room, replaced (never rewritten) when full
        self._extra = np.zeros((64, self._table.shape[1]), dtype=np.float32)
        self._extra_rows: dict[str, int] = {}
        self._texts: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def dims(self) -> int:
        return int(self._table.shape[1])

    def matrix(self, words: Sequence[str]) -> np.ndarray:
        """The words' unit vectors, one row each."""
        with self._lock:
            self._start_over_if_full()
            rows = self._rows_of(list(words))
            extra = self._extra
        return self.gather(rows, extra)

    def rows_of_texts(self, texts: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
        """Each text's content words as rows (a text without any: the zero row), and the table
        of encoded words those rows may point into (read it with ``gather``)."""
        with self._lock:
            self._start_over_if_full()
            out = []
            for text in texts:
                rows = self._texts.get(text)
                if rows is None:
                    if len(self._texts) >= CACHE_TEXTS:
                        self._texts.clear()
                    rows = self._rows_of(content_words(text))
                    if not len(rows):
                        rows = np.array([self._base], dtype=np.int64)  # the zero row
                    self._texts[text] = rows
                out.append(rows)
            return out, self._extra

    def gather(self, rows: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """The vectors of ``rows``, read from the word table and ``extra`` (the table of encoded
        words ``rows_of_texts`` handed out with them: a later start-over replaces it)."""
        out = np.empty((len(rows), self._table.shape[1]), dtype=np.float32)
        pieces = rows < self._base
        out[pieces] = self._table[rows[pieces]]
        out[~pieces] = extra[rows[~pieces] - self._base]
        return out

    def _start_over_if_full(self) -> None:
        """(under the lock) A new, empty table of encoded words once ``CACHE_WORDS`` are in it,
        and no text's rows, which pointed into the old one. Only between two calls: rows handed
        out within one call all point into the table that call returns."""
        if len(self._extra_rows) >= CACHE_WORDS:
            self._extra = np.zeros_like(self._extra[:64])
            self._extra_rows.clear()
            self._texts.clear()

    def _rows_of(self, words: list[str]) -> np.ndarray:
        """(under the lock) The rows of ``words``, encoding the words of several pieces not seen yet."""
        rows = [self._vocab.get(w, -1) for w in words]
        missing = [i for i, row in enumerate(rows) if row < 0]
        unseen = []
        for i in missing:
            row = self._extra_rows.get(words[i])
            if row is None:
                unseen.append(i)
            else:
                rows[i] = row
        if unseen:
            fresh = list(dict.fromkeys(words[i] for i in unseen))
            encoded = np.asarray(self._model.encode(fresh, use_multiprocessing=False), dtype=np.float32).reshape(len(fresh), -1)
            encoded /= np.maximum(np.linalg.norm(encoded, axis=1, keepdims=True), 1e-9)
            start = 1 + len(self._extra_rows)
            if start + len(fresh) > len(self._extra):
                grown = np.zeros((max(2 * len(self._extra), start + len(fresh)), self._extra.shape[1]), dtype=np.float32)
                grown[:start] = self._extra[:start]
                self._extra = grown
            self._extra[start:start + len(fresh)] = encoded  # rows no reader was handed yet
            for offset, word in enumerate(fresh):
                self._extra_rows[word] = self._base + start + offset
            for i in unseen:
                rows[i] = self._extra_rows[words[i]]
        return np.array(rows, dtype=np.int64)


def alignment(query: str, texts: Sequence[str], vectors: WordVectors) -> list[float]:
    """For each text, the weighted mean over the query's content words of their best cosine
    (0 at worst) to one of the text's words (0 for a text without words); all 0 for a query
    without any. Names in the query are left out."""
    names = {w.lower() for w in _NAME.findall(query)}
    asked = [w for w in content_words(query) if w not in names]
    if not asked or not texts:
        return [0.0] * len(texts)
    per_text, extra = vectors.rows_of_texts(texts)
    flat = np.concatenate(per_text)
    vocabulary, slots = np.unique(flat, return_inverse=True)
    similarity = vectors.matrix(asked) @ vectors.gather(vocabulary, extra).T  # question words x distinct words
    starts = np.zeros(len(per_text), dtype=np.int64)
    np.cumsum([len(rows) for rows in per_text[:-1]], out=starts[1:])
    # each text's best match per question word; a text without words has the zero row: 0
    best = np.maximum(np.maximum.reduceat(similarity[:, slots.reshape(-1)], starts, axis=1), 0.0).T
    found_in = (best > CLOSE).sum(axis=0)
    weights = np.log1p(len(texts) / (1.0 + found_in))
    return [float(v) for v in (best @ weights) / weights.sum()]


_shipped: list[WordVectors | None] = []
_shipped_lock = threading.Lock()


def shipped_word_vectors() -> WordVectors | None:
    """The shipped static model's word vectors, loaded once; None (alignment off, said once in
    the log) if the model cannot be loaded."""
    with _shipped_lock:
        if not _shipped:
            from memlane.embedders.static import load_model

            try:
                _shipped.append(WordVectors(load_model()))
            except Exception as exc:  # noqa: BLE001 - a missing model turns one ranking signal off, never search
                log.warning("term alignment is off: the shipped static model did not load (%s)", exc)
                _shipped.append(None)
        return _shipped[0]
