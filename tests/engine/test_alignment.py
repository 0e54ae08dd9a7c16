"""Term alignment: each question word meets its closest word in a memory, so a memory that
answers in other words ("church" for "religious") gains on one that shares none."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from memlane import Memory
from memlane.engine.alignment import WordVectors, alignment, content_words, shipped_word_vectors

MEMORIES = ["I joined a nearby church to feel closer to my faith", "I bought a new laptop for work",
            "We painted the kitchen walls blue", "Kickboxing twice a week keeps me fit"]


@pytest.fixture(scope="module")
def words() -> WordVectors:
    vectors = shipped_word_vectors()
    assert vectors is not None, "the shipped static model must load"
    return vectors


def test_content_words_are_the_distinct_meaningful_words() -> None:
    assert content_words("Would she be considered RELIGIOUS, religious? (in 2023)") == ["considered", "religious"]


def test_a_memory_in_other_words_aligns_best(words: WordVectors) -> None:
    scores = alignment("Would she be considered religious?", MEMORIES, words)
    assert scores.index(max(scores)) == 0 and all(0 <= s <= 1 for s in scores)
    assert alignment("church faith", ["church faith"], words)[0] == pytest.approx(1.0, abs=1e-3)  # equal words align fully


def test_names_and_empty_questions_align_nothing(words: WordVectors) -> None:
    # a name is the speaker bonus's and the keyword index's business, not alignment's
    assert alignment("What about Caroline and Melanie?", ["Caroline", "Melanie"], words) == [0.0, 0.0]
    assert alignment("what is it?", MEMORIES, words) == [0.0] * len(MEMORIES)
    assert alignment("religious", [], words) == []


def test_a_word_every_candidate_matches_weighs_less(words: WordVectors) -> None:
    texts = ["church on sunday", "sunday market", "sunday football"]
    scores = alignment("church sunday", texts, words)
    assert scores[0] > 0.99
    # "sunday" is in all three, "church" in one: "sunday market" scores under an even split of the two words
    best = (words.matrix(["church", "sunday"]) @ words.matrix(["sunday", "market"]).T).max(axis=1)
    assert scores[1] < best.clip(0).mean() - 0.05


def test_search_lifts_the_memory_that_answers_in_other_words(make_memory: Callable[..., Memory], tmp_path: object) -> None:
    margins = []
    for weight in (0.0, 0.3):
        memory = make_memory(retrieval={"alignment_weight": weight})
        memory.reset()
        memory.add(MEMORIES, user_id="alice", infer=False)
        hits = memory.search("Would she be considered religious?", user_id="alice", limit=4)["results"]
        assert hits[0]["memory"] == MEMORIES[0]
        margins.append(hits[0]["score"] - hits[1]["score"])
    assert margins[1] > margins[0] + 0.05


def test_a_text_without_content_words_aligns_nothing_beside_others(words: WordVectors) -> None:
    scores = alignment("religious church", ["", "it is so", "church"], words)
    assert scores[:2] == [0.0, 0.0] and scores[2] > 0.5


def test_threads_align_alike_while_the_word_cache_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Words of several pieces live in a second table that is replaced when full; texts'
    remembered rows point into it. Threads aligning while it starts over (a tiny cache here)
    get exactly the scores one thread gets alone."""
    import random
    import threading

    from memlane.embedders.static import load_model
    from memlane.engine import alignment as module

    rng = random.Random(7)
    rare = ["kickboxing", "sourdough", "ultramarathon", "harpsichord", "bioluminescent", "cartography", "permaculture",
            "calligraphy", "snorkelling", "woodworking", "astrophotography", "beekeeping", "origami", "taxidermy"]
    common = ["church", "kitchen", "laptop", "garden", "music", "dinner", "sister", "travel"]
    texts = [" ".join(rng.sample(rare, 3) + rng.sample(common, 2)) for _ in range(60)]
    questions = [" ".join(rng.sample(rare + common, 3)) + "?" for _ in range(40)]
    alone = WordVectors(load_model())
    expected = [alignment(q, texts[i % 30:i % 30 + 30], alone) for i, q in enumerate(questions)]
    monkeypatch.setattr(module, "CACHE_WORDS", 6)  # far fewer than the rare words: it starts over again and again
    monkeypatch.setattr(module, "CACHE_TEXTS", 20)
    shared = WordVectors(load_model())
    results: dict[tuple[int, int], list[float]] = {}

    def work(worker: int) -> None:
        for round_ in range(3):
            for i, q in enumerate(questions):
                results[(worker, round_ * 1000 + i)] = alignment(q, texts[i % 30:i % 30 + 30], shared)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 * 3 * len(questions)
    for (_, key), scores in results.items():
        assert scores == pytest.approx(expected[key % 1000], abs=1e-5)


def reference_alignment(query: str, texts: list[str], words: WordVectors) -> list[float]:
    """The definition, one text at a time (what the vectorised ``alignment`` must equal)."""
    from memlane.engine.alignment import _NAME, CLOSE

    names = {w.lower() for w in _NAME.findall(query)}
    asked = [w for w in content_words(query) if w not in names]
    if not asked or not texts:
        return [0.0] * len(texts)
    question = words.matrix(asked)
    best = np.zeros((len(texts), len(asked)))
    for row, text in enumerate(texts):
        found = content_words(text)
        if found:
            best[row] = (question @ words.matrix(found).T).max(axis=1).clip(0)
    weights = np.log1p(len(texts) / (1.0 + (best > CLOSE).sum(axis=0)))
    return list((best @ weights) / weights.sum())


EDGE_TEXTS = [
    "", "   ", "it is the and of", "1234 5678 2023-05-04", "__init__ x_y", "ab cd ef",  # no content words
    "church", "church church CHURCH", "zxqvbnmlkj qwrtpsdfgh", "kickboxing ultramarathon harpsichord",  # one word, repeats, unknown, several pieces
    "café naïve straße Ärger", "Москва and 東京タワー", "ΣΟΦΙΑ ελληνικά", "ﬁnance İstanbul",  # non-ASCII
    " ".join(["sourdough", "garden", "bioluminescent"] * 400) + " " + "a" * 700,  # long, with a 700-letter word
]


@pytest.mark.parametrize("query", ["Would she go to church or a kickboxing class?", "What did Caroline tell Melanie?",
                                   "Москва café straße?", "zxqvbnmlkj finance", "it is what it is", "1234?"])
def test_alignment_equals_its_definition_on_edge_texts(words: WordVectors, query: str) -> None:
    """Empty texts, texts of stop words or digits only, duplicates in one call, unknown and
    non-ASCII words, a very long text, and questions of names only: the vectorised alignment
    (shared rows, remembered texts) scores each text as the one-text-at-a-time definition does."""
    texts = EDGE_TEXTS + EDGE_TEXTS[::3]  # duplicates in one call
    for _ in range(2):  # cold, then from the remembered rows
        assert alignment(query, texts, words) == pytest.approx(reference_alignment(query, texts, words), abs=1e-6)
    for single in EDGE_TEXTS:
        assert alignment(query, [single], words) == pytest.approx(reference_alignment(query, [single], words), abs=1e-6)


@pytest.mark.parametrize("new", ["words", "texts"])
def test_the_caches_stay_bounded_however_much_new_comes(monkeypatch: pytest.MonkeyPatch, new: str) -> None:
    """Every search may bring memories and words never seen: the remembered texts and the table
    of encoded words start over at their limits, so memory stays flat. Tiny limits here;
    unbounded, the table would keep ~6 MB of the 6,300 new words below, the texts ~3 MB of
    their 5,400 (texts of known words: the table's start-overs, which also forget the texts,
    do not hide the texts' own limit)."""
    import random
    import tracemalloc

    from memlane.embedders.static import load_model
    from memlane.engine import alignment as module

    monkeypatch.setattr(module, "CACHE_WORDS", 50)
    monkeypatch.setattr(module, "CACHE_TEXTS", 40)
    vectors = WordVectors(load_model())
    rng = random.Random(11)
    known = ["church", "kitchen", "laptop", "garden", "music", "dinner", "sister", "travel", "market", "football",
             "painting", "faith", "coffee", "summer", "winter", "river", "mountain", "letter", "doctor", "school",
             "friend", "camera", "guitar", "bakery", "theatre"]

    def unseen() -> str:  # a made-up word: several word pieces, so it is encoded and kept
        return "".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(5))

    def searches(n: int) -> None:
        for _ in range(n):
            if new == "words":
                alignment(f"{unseen()} church?", [" ".join([unseen(), *rng.sample(known, 20)]) for _ in range(6)], vectors)
            else:
                alignment("church music?", [" ".join(rng.sample(known, 20)) for _ in range(6)], vectors)

    tracemalloc.start()
    try:
        searches(100)
        settled = tracemalloc.get_traced_memory()[0]
        searches(900)
        grown = tracemalloc.get_traced_memory()[0] - settled
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown} bytes more after 5,400 new texts ({new} new)"


def test_six_threads_align_alike_while_every_call_starts_the_caches_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's executor runs six searches at once. With room for one word and one text,
    every call starts the encoded words over and forgets the texts, while other threads still
    gather from the tables they were handed, and still ask for bare word vectors (``matrix``):
    each gets exactly what one thread alone gets."""
    import random
    import sys
    import threading

    from memlane.embedders.static import load_model
    from memlane.engine import alignment as module

    rng = random.Random(13)
    made_up = ["".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(4)) for _ in range(40)]
    common = ["church", "kitchen", "laptop", "garden", "music", "dinner", "sister", "travel", "", "the and of it"]
    texts = [" ".join(rng.sample(made_up, 3) + rng.sample(common, 2)) for _ in range(40)]
    calls = [(" ".join(rng.sample(made_up + common[:8], 3)) + "?", texts[i % 20:i % 20 + 12] + texts[i % 20:i % 20 + 2])
             for i in range(30)]
    alone = WordVectors(load_model())
    expected = [alignment(q, t, alone) for q, t in calls]
    bare = alone.matrix(made_up)
    monkeypatch.setattr(module, "CACHE_WORDS", 1)
    monkeypatch.setattr(module, "CACHE_TEXTS", 1)
    shared = WordVectors(load_model())
    wrong: list[object] = []

    def work(worker: int) -> None:
        for round_ in range(8):
            for i in range(len(calls)):
                j = (i * 7 + worker + round_) % len(calls)
                if alignment(*calls[j], shared) != pytest.approx(expected[j], abs=1e-6):
                    wrong.append(("alignment", j))
                if (i + worker) % 3 == 0 and np.abs(shared.matrix(made_up[j:j + 5]) - bare[j:j + 5]).max() > 1e-6:
                    wrong.append(("matrix", j))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads change places between any two steps
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switching)
    assert wrong == []
