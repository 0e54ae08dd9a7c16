"""Text to index terms exactly as SQLite's FTS5 ``porter unicode61`` tokenizer makes them, in
process, for every store.

Keyword ranking was defined by that tokenizer (the SQLite store's FTS5 index; LoCoMo recall was
measured with it), so the in-process keyword index (``memlane.stores.keyword_index``) must split
and stem text the same way, whatever the backend. Rather than a second stemmer that could drift
from it, the words are stemmed by FTS5 itself, on a private in-memory database, once per distinct
word (remembered after): measured on LoCoMo's 3.7k distinct words, 8 ms for all of them in one
call, after which tokenising a memory is a regular expression and dictionary lookups.

Why this is exact: ``unicode61`` treats every whitespace character as a separator, and within
ASCII its token characters are exactly ``[A-Za-z0-9]`` (folded to lower case). So an ASCII
stretch of text is split here with a regular expression and only its words go to FTS5; a stretch
with other characters (diacritics, other scripts) goes to FTS5 whole, and its tokens are
remembered per stretch.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from typing import Iterable, Sequence

#: an ASCII text's tokens, before stemming, are exactly this pattern's matches in its lower case
ASCII_WORD = re.compile(r"[a-z0-9]+")
#: distinct words (and non-ASCII stretches) remembered; past this the memo starts again
MAX_REMEMBERED = 500_000


class FTS5Tokens:
    """Tokens of ``porter unicode61``; thread-safe (one private connection behind a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE words USING fts5(t, tokenize = 'porter unicode61')")
        self._db.execute("CREATE VIRTUAL TABLE words_v USING fts5vocab(words, 'instance')")
        self._stems: dict[str, str] = {}  # ASCII word -> stem
        self._stretches: dict[str, tuple[str, ...]] = {}  # non-ASCII stretch -> its tokens

    def tokens(self, text: str) -> list[str]:
        """Every token of ``text`` in order (stop words included, as FTS5 indexes them)."""
        return self.tokens_of([text])[0]

    def tokens_of(self, texts: Sequence[str]) -> list[list[str]]:
        """``tokens`` of many texts, with one FTS5 call for all the words not seen before."""
        pieces = [self._parts(text) for text in texts]
        try:
            return [self._stemmed(parts) for parts in pieces]
        except KeyError:
            self._learn({p for parts in pieces for p in parts})
            return [self._stemmed(parts) for parts in pieces]

    @staticmethod
    def _parts(text: str) -> list[str]:
        """ASCII words, and non-ASCII stretches marked with a leading NUL (FTS5 tokenises those)."""
        if text.isascii():
            return ASCII_WORD.findall(text.lower())
        parts: list[str] = []
        for stretch in text.split():
            if stretch.isascii():
                parts.extend(ASCII_WORD.findall(stretch.lower()))
            else:
                parts.append("\x00" + stretch)
        return parts

    def _stemmed(self, parts: list[str]) -> list[str]:
        stems = self._stems
        if not any(p[0] == "\x00" for p in parts):
            return [stems[p] for p in parts]
        tokens: list[str] = []
        for p in parts:
            if p[0] == "\x00":
                tokens.extend(self._stretches[p[1:]])
            else:
                tokens.append(stems[p])
        return tokens

    def _learn(self, parts: Iterable[str]) -> None:
        words = [p for p in parts if p[0] != "\x00" and p not in self._stems]
        stretches = [p[1:] for p in parts if p[0] == "\x00" and p[1:] not in self._stretches]
        if not words and not stretches:
            return
        with self._lock:
            if len(self._stems) + len(self._stretches) > MAX_REMEMBERED:
                self._stems, self._stretches = {}, {}
            db = self._db
            db.execute("BEGIN")
            try:
                if words:  # one row: each ASCII word is exactly one token, so offset i is word i
                    db.execute("INSERT INTO words (rowid, t) VALUES (0, ?)", (" ".join(words),))
                for n, stretch in enumerate(stretches, 1):
                    db.execute("INSERT INTO words (rowid, t) VALUES (?, ?)", (n, stretch))
                found: dict[int, list[tuple[int, str]]] = {}
                for term, doc, offset in db.execute("SELECT term, doc, offset FROM words_v"):
                    found.setdefault(int(doc), []).append((int(offset), term))
                db.execute("DELETE FROM words")
            finally:
                db.execute("COMMIT")
            first = dict(found.get(0, []))
            for i, word in enumerate(words):
                self._stems[word] = first.get(i, word)
            for n, stretch in enumerate(stretches, 1):
                self._stretches[stretch] = tuple(t for _, t in sorted(found.get(n, [])))


_shared: FTS5Tokens | None = None
_shared_lock = threading.Lock()


def fts5_tokens() -> FTS5Tokens:
    """The process's one tokenizer (its memo is shared by every store and scope)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = FTS5Tokens()
    return _shared
