"""The check after the memory model: what a small model hands back that is not a fact about the user.

The cases are the answers Qwen2.5-Coder-1.5B gave in issue 25's trials, on its conversations.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.engine import fact_check
from memlane.engine.fact_check import FactCheck
from memlane.testing import Reply, ScriptedUpstream

SEED = "I love Indian food but I cannot eat pizza since I'm allergic to cheese."
SUGGESTED = ("There are many delicious Indian dishes without cheese: try chana masala or dal makhani. You can order "
             "them at a nearby Indian restaurant or online food delivery service like Zomato or Swiggy.")


def check(user: str, assistant: str | None = None) -> FactCheck:
    turns = [{"role": "user", "content": user}] + ([{"role": "assistant", "content": assistant}] if assistant else [])
    return FactCheck(turns, max_chars=400)


@pytest.mark.parametrize("fact", ["Loves Indian food", "Is allergic to cheese", "Cannot eat pizza", "Can't eat pizza because of a cheese allergy"])
def test_what_the_user_said_is_kept(fact: str) -> None:
    assert check(SEED, SUGGESTED).reason(fact) is None


@pytest.mark.parametrize("fact", [
    "You can try them at a nearby Indian restaurant or online food delivery service like Zomato or Swiggy",
    "Try chana masala or dal makhani",
    "Orders from Zomato",
])
def test_the_assistants_suggestions_are_dropped(fact: str) -> None:
    assert check(SEED, SUGGESTED).reason(fact) == fact_check.SUGGESTION


def test_general_knowledge_the_assistant_stated_is_dropped_and_the_users_dog_kept() -> None:
    c = check("I adopted a beagle named Pepper last week!", "Congratulations! Beagles love long walks and sniffing games.")
    assert c.reason("Beagles love long walks") == fact_check.SUGGESTION
    assert c.reason("Adopted a beagle named Pepper") is None


def test_a_suggestion_the_user_took_up_is_theirs() -> None:
    c = FactCheck([{"role": "assistant", "content": "You could try chana masala."},
                   {"role": "user", "content": "Yes, I'll cook chana masala on Friday."}], max_chars=400)
    assert c.reason("Will cook chana masala on Friday") is None


def test_a_paraphrase_sharing_no_word_with_anyone_is_kept() -> None:
    assert check("I'm vegetarian.", "Great, lots of options then.").reason("Does not eat meat") is None


def test_questions_runaways_placeholders_and_the_prompts_example_are_dropped() -> None:
    c = check(SEED, SUGGESTED)
    assert c.reason("What can the user eat instead?") == fact_check.QUESTION
    assert c.reason("Loves Indian food " * 40) == fact_check.TOO_LONG
    assert c.reason("ADD|UPDATE|DELETE|NONE") == fact_check.MALFORMED
    assert c.reason("...") == fact_check.MALFORMED
    assert c.reason('{"facts": ["x"]}') == fact_check.MALFORMED
    assert c.reason("Moved to Denver") == fact_check.EXAMPLE
    assert c.reason("Has a sister named Maya") == fact_check.EXAMPLE
    assert check("My sister Maya lives in Denver.").reason("Has a sister named Maya") is None, "unless it is this user's"


def test_an_agents_own_turns_are_not_checked_as_suggestions() -> None:
    """A conversation of the assistant alone (mem0's agent memories) has no user words to hold
    its facts against: they are kept."""
    c = FactCheck([{"role": "assistant", "content": "I answer in French and keep replies short."}], max_chars=400)
    assert c.reason("Answers in French") is None


def suggestions_too(req: Any) -> Reply:
    if req.stage == "extract":
        return Reply.json({"facts": ["Is allergic to cheese", "Loves Indian food",
                                     "You can try them at a nearby Indian restaurant or online food delivery service like Zomato or Swiggy",
                                     "What dishes have no cheese?"]})
    return Reply.text(SUGGESTED)


def test_learning_keeps_the_users_facts_and_says_what_it_dropped_and_why(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = suggestions_too
    result = memory.add([{"role": "user", "content": SEED}, {"role": "assistant", "content": SUGGESTED}], user_id="alice")
    assert sorted(r["memory"] for r in result["results"]) == ["Is allergic to cheese", "Loves Indian food"]
    assert sorted(r["memory"] for r in memory.get_all(user_id="alice")["results"]) == ["Is allergic to cheese", "Loves Indian food"]


def test_the_check_can_be_turned_off(make_memory: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    memory = make_memory(inference={"check_facts": False})
    upstream.handler = suggestions_too
    result = memory.add([{"role": "user", "content": SEED}, {"role": "assistant", "content": SUGGESTED}], user_id="alice")
    assert len(result["results"]) == 4


def test_advice_and_the_answer_to_the_users_question_are_not_the_users_facts() -> None:
    """Issue 25's 1.5B model turned the user's questions and the assistant's answers into facts."""
    seattle = check("What's the weather usually like in Seattle in November?", "Seattle in November is cool and rainy, with highs around 10°C.")
    assert seattle.reason("Seattle in November is cool and rainy") == fact_check.ANSWER
    sugar = check("I have type 1 diabetes. Remind me, what is a normal fasting blood sugar?",
                  "For most adults, a normal fasting level is between 70 and 99 mg/dL.")
    assert sugar.reason("Normal fasting blood sugar is between 70 and 99 mg/dL") == fact_check.ANSWER
    assert sugar.reason("Has type 1 diabetes") is None, "the user's own fact beside the question is kept"
    visit = check("Do you think I should visit her in summer or autumn?", "Autumn is quieter and cooler.")
    assert visit.reason("Should visit her in autumn") == fact_check.SUGGESTION
    assert check("How do I make a pivot table in Excel?", "Select your data...").reason("How to make a pivot table in Excel") == fact_check.QUESTION
    hounds = check("Actually, Pepper is a basset hound, not a beagle.", "Basset hounds are calm dogs. They do well in apartments.")
    assert hounds.reason("Basset hounds are calm dogs") == fact_check.SUGGESTION
    assert hounds.reason("Pepper is a basset hound") is None


@pytest.mark.parametrize("fact", ["Good morning!", "Haha thanks", "You're sweet", "Thanks, glad to help"])
def test_pleasantries_are_small_talk(fact: str) -> None:
    assert check("Good morning! Haha thanks, you're sweet.", "Anytime!").reason(fact) in (fact_check.SMALL_TALK, fact_check.SUGGESTION)


def test_the_users_birthday_and_age_are_kept() -> None:
    c = check("I turned 40 yesterday!", "Happy birthday! Forty is a great milestone; maybe plan a weekend getaway.")
    assert c.reason("Turned 40 yesterday") is None and c.reason("Is 40 years old") is None
    assert c.reason("Plan a weekend getaway") == fact_check.SUGGESTION


def test_a_fact_naming_the_users_thing_in_the_assistants_word_is_kept_after_a_question() -> None:
    c = check("I have a pup named Pepper, which food is best for him?", "For a dog like Pepper, a puppy formula is best.")
    assert c.reason("Has a dog named Pepper") is None
    assert c.reason("Puppy formula is best") == fact_check.ANSWER


def test_a_fact_sharing_words_with_the_prompts_example_is_not_taken_for_a_copy() -> None:
    """The example speaks of a half marathon and the style line of work: a user's own race and
    job are not copies of them (the scripted ideal lost both before)."""
    assert check("The race got moved to April, by the way.", "Thanks for the update!").reason("The half marathon is in April") is None
    assert check("I started as a data analyst at a startup in Austin.", "Congrats!").reason("Works in Austin") is None
    assert check("Hi!", "Hello!").reason("Is training for a half marathon in May") == fact_check.EXAMPLE


def test_the_topic_of_the_users_question_is_not_a_fact_but_what_they_said_around_it_is() -> None:
    asked = check("What's a good stretching routine after a run?", "Try hamstring stretches and calf raises.")
    assert asked.reason("Stretching routine after a run") == fact_check.QUESTION
    told = check("I'm learning Japanese, what apps help?", "Try a flashcard app.")
    assert told.reason("Is learning Japanese") is None
    both = check("I run every morning. What's a good stretching routine after a run?", "Try calf raises.")
    assert both.reason("Runs every morning") is None


@pytest.mark.parametrize("fact", ["Loved it", "Has been at it for two years", "Likes them"])
def test_a_fact_that_says_it_and_little_else_is_vague(fact: str) -> None:
    c = check("I'm learning Japanese, I've been at it for two years. I loved it from the start.", "That's great!")
    assert c.reason(fact) == fact_check.VAGUE


def test_a_fact_that_names_what_it_stands_for_is_kept() -> None:
    c = check("I bought a road bike and I ride it to work every day.", "Nice, stay safe out there.")
    assert c.reason("Bought a road bike and rides it to work daily") is None


def test_what_the_user_said_of_someone_else_is_not_the_users_own_fact() -> None:
    c = check("My son Leo turns six next Saturday and he's obsessed with dinosaurs.", "A dinosaur party would be fun!")
    assert c.reason("Is obsessed with dinosaurs") == fact_check.SOMEONE_ELSE
    assert c.reason("Son Leo is obsessed with dinosaurs") is None, "naming him keeps it"
    assert c.reason("Son Leo turns six next Saturday") is None
    both = check("My wife and I love hiking, and she's a runner too.", "Nice!")
    assert both.reason("Loves hiking") is None
    assert both.reason("Is a runner") == fact_check.SOMEONE_ELSE
