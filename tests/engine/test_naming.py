"""Names in memories: what the name bonus gives to an answer of "what was its name?"."""

from __future__ import annotations

from memlane.engine.naming import names_in, naming


def test_names_are_quoted_titles_and_capitalised_words_inside_a_sentence() -> None:
    assert names_in('It\'s called "Dangal" and it moved me.') == {"dangal"}
    assert names_in("I want to go to Spain next month, to Madrid.") == {"spain", "madrid"}
    # a sentence's first word, "I", days and months are not names
    assert names_in("Today I went out. On Sunday in May I rested.") == set()


def test_a_name_the_question_has_or_most_candidates_share_does_not_count() -> None:
    texts = ["Hi, Linda. Which movie did you watch?", "Hi, Linda. Tell me more.", 'It\'s called "Dangal", Linda.',
             "Hi, Linda. What did you think of it?", "I watched it with Linda.", "Hello again, Linda.", "A movie about Spain."]
    keys = list(range(len(texts)))
    # "Linda" is in most candidates (the user's own name), "Spain" is in the question
    assert naming("I watched a movie in Spain, what was its name?", keys, texts) == {2}


def test_the_scopes_own_name_is_not_an_answer() -> None:
    texts = ["Hello, my name is Frank. Nice to meet you.", 'You can watch "Home Cooking", a food program.']
    assert naming("I once recommended a food program to you, what was its name?", [0, 1], texts) == {0, 1}
    assert naming("I once recommended a food program to you, what was its name?", [0, 1], texts, own=("Frank", None)) == {1}
