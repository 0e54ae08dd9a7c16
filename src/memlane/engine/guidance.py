"""What to learn, and how to file it: a project's instructions and categories for extraction.

mem0's Platform takes ``custom_instructions`` (in the user's words: "never store health
information") and ``custom_categories`` per project and per add. Here both reach the one
extraction call that is made anyway: the model writes each fact as an object with the categories
that fit it and whether the instructions exclude it, so categories cost no extra call and an
excluded fact is dropped by the learner (counted as ``excluded``) rather than trusted to be left
out. Where they come from, first wins: the add's own, the project's (``update_project``, kept in
the store), the config's (``inference.custom_instructions`` / ``custom_categories``). Categories
are assigned only when a list is given or ``inference.assign_categories`` is on (then mem0's
default list): a longer answer costs tokens, and small models answer it worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from memlane.errors import ValidationError

#: mem0's default categories (its Platform's list), with what each holds
DEFAULT_CATEGORIES: dict[str, str] = {
    "personal_details": "name, age, relationships, important dates",
    "family": "family members and relations",
    "professional_details": "job, career, workplace, skills",
    "sports": "sports followed or played",
    "travel": "trips, places visited or planned",
    "food": "food preferences, diet, allergies",
    "music": "music tastes",
    "health": "health, medical conditions, fitness",
    "technology": "devices, software, technical interests",
    "hobbies": "hobbies and pastimes",
    "fashion": "clothing and style",
    "entertainment": "films, shows, books, games",
    "milestones": "achievements and life events",
    "user_preferences": "likes, dislikes and preferences not covered above",
    "misc": "anything else",
}
MAX_INSTRUCTIONS_CHARS = 4000
MAX_CATEGORIES = 100


@dataclass(frozen=True)
class Guidance:
    """The instructions and categories one extraction follows; empty: extraction as always."""

    instructions: str | None = None
    categories: dict[str, str] = field(default_factory=dict)
    #: ask for a few search keys per fact (``inference.search_keys``), indexed with it
    keys: bool = False

    @property
    def labelled(self) -> bool:
        """Whether facts come back as objects (categories, excluded, keys) rather than strings."""
        return bool(self.instructions or self.categories or self.keys)


def check_instructions(value: Any, param: str = "custom_instructions") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{param} must be a string", param=param)
    if len(value) > MAX_INSTRUCTIONS_CHARS:
        raise ValidationError(f"{param} is {len(value)} characters; at most {MAX_INSTRUCTIONS_CHARS}", param=param)
    return value.strip() or None


def check_categories(value: Any, param: str = "custom_categories") -> dict[str, str] | None:
    """mem0's shapes: a list of names, or of one-key objects ``{"name": "what it holds"}``."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f'{param} must be a list of names or of {{"name": "description"}} objects', param=param)
    if len(value) > MAX_CATEGORIES:
        raise ValidationError(f"{param} has {len(value)} categories; at most {MAX_CATEGORIES}", param=param)
    out: dict[str, str] = {}
    for index, item in enumerate(value):
        if isinstance(item, str):
            name, description = item, ""
        elif isinstance(item, Mapping) and len(item) == 1:
            ((name, description),) = item.items()
        else:
            raise ValidationError(f'{param}[{index}] must be a name or one {{"name": "description"}} object', param=param)
        if not isinstance(name, str) or not name.strip() or len(name) > 100 or not isinstance(description, str):
            raise ValidationError(f"{param}[{index}]: a category is a non-empty name of at most 100 characters", param=param)
        out[name.strip()] = description.strip()
    return out


PROJECT_SETTINGS = ("custom_instructions", "custom_categories")


def project_update(body: Mapping[str, Any]) -> dict[str, Any]:
    """An ``update_project`` request's settings; any other (mem0's ``memory_depth``, ...) is
    refused by name rather than silently dropped."""
    unsupported = sorted(set(body) - set(PROJECT_SETTINGS))
    if unsupported:
        raise ValidationError(f"{unsupported[0]} is not a project setting here ({' and '.join(PROJECT_SETTINGS)} are)",
                              param=unsupported[0], code="unsupported_setting")
    return dict(body)


def resolve(config: Any, project: Mapping[str, Any], instructions: str | None = None,
            categories: Sequence[Any] | None = None) -> Guidance:
    """The guidance for one add: its own, else the project's, else the config's."""
    inference = config.inference
    chosen_instructions = instructions or project.get("custom_instructions") or inference.custom_instructions
    chosen = check_categories(categories) if categories is not None else None
    if chosen is None and project.get("custom_categories") is not None:
        chosen = check_categories(project["custom_categories"])
    if chosen is None and inference.custom_categories is not None:
        chosen = check_categories(inference.custom_categories, "inference.custom_categories")
    if chosen is None and inference.assign_categories:
        chosen = dict(DEFAULT_CATEGORIES)
    return Guidance(check_instructions(chosen_instructions), chosen or {}, bool(inference.search_keys))


#: search keys kept per fact, and characters per key: a key is a short phrase
MAX_KEYS = 6
MAX_KEY_CHARS = 60


def keys_of(value: Any) -> list[str]:
    """The search keys a model gave a fact: short distinct phrases, at most ``MAX_KEYS``."""
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value:
        key = item.strip() if isinstance(item, str) else ""
        if key and len(key) <= MAX_KEY_CHARS and key.lower() not in (k.lower() for k in out):
            out.append(key)
    return out[:MAX_KEYS]


def categories_of(value: Any, known: Mapping[str, str]) -> list[str]:
    """The categories a model gave a fact, kept to the known names (any case), in order."""
    if not isinstance(value, list):
        return []
    by_lower = {name.lower(): name for name in known}
    out: list[str] = []
    for item in value:
        name = by_lower.get(str(item).strip().lower()) if isinstance(item, str) else None
        if name and name not in out:
            out.append(name)
    return out
