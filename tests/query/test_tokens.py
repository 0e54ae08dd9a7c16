"""The in-process keyword index splits and stems text exactly as SQLite's FTS5 ``porter
unicode61`` tokenizer does (the keyword ranking was defined and measured with it): ASCII words,
punctuation, digits, diacritics, other scripts and odd whitespace alike."""

from __future__ import annotations

import sqlite3

from memlane.query.tokens import FTS5Tokens

TEXTS = [
    "[1:56 pm on 8 May, 2023] Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "Running, runs, ran; allergies & allergic — generously generalised relational conditional",
    "Café crème à Zürich: naïve résumé, ÉCOLE, straße, İstanbul, ǅemal",
    "日本語のテキスト mixed with English words and emoji 🎉🎉 done",
    "foo_bar baz-qux 3.14 x\u00a0y\u2003z tab\there don't can't I'm O'Neil's",
    "CAPS lock, MiXeD case, e-mail addresses like a.b@example.com and URLs https://x.org/a?b=c",
    "",
]


def fts5_reference(texts: list[str]) -> list[list[str]]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(m, tokenize = 'porter unicode61')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    db.executemany("INSERT INTO t (rowid, m) VALUES (?, ?)", list(enumerate(texts)))
    found: list[list[tuple[int, str]]] = [[] for _ in texts]
    for term, doc, offset in db.execute("SELECT term, doc, offset FROM v"):
        found[doc].append((offset, term))
    return [[term for _, term in sorted(tokens)] for tokens in found]


def test_tokens_equal_fts5s_own() -> None:
    tokens = FTS5Tokens()
    assert tokens.tokens_of(TEXTS) == fts5_reference(TEXTS)
    assert tokens.tokens_of(TEXTS) == fts5_reference(TEXTS), "the same from the memo"
    assert tokens.tokens("Running allergies generously") == ["run", "allergi", "gener"]


def test_words_first_seen_one_at_a_time_are_stemmed_alike() -> None:
    tokens = FTS5Tokens()
    one_by_one = [tokens.tokens(text) for text in reversed(TEXTS)]
    assert one_by_one[::-1] == fts5_reference(TEXTS)
