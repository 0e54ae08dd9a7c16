"""Validate JSON against a schema of OpenAI's published OpenAPI spec.

``validate`` checks an object against one named schema; ``validate_event`` checks an event of a
Responses stream against the schema for its ``type`` (the spec's ``ResponseStreamEvent`` is an
``anyOf`` of ~60 events, whose failures say only "not valid under any of the given schemas").

The spec marks optional-null fields with OpenAPI 3.0's ``nullable: true``, which JSON Schema
validators ignore; ``_with_nulls`` rewrites each such schema to also accept ``null``, so that
validation means what the spec's authors meant.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any


def _with_nulls(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_nulls(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _with_nulls(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=4)
def _components(spec_path: str) -> dict[str, Any]:
    spec = json.loads(Path(spec_path).read_text())
    return _with_nulls(spec["components"])


@lru_cache(maxsize=256)
def _validator(schema_name: str, spec_path: str) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise ImportError("validating against OpenAI's spec needs jsonschema: pip install jsonschema (in memlane[test])") from None
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components(spec_path)}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(instance: Any, schema_name: str, spec_path: str | Path) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` matches ``components.schemas[name]``."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(schema_name, str(spec_path)).iter_errors(instance))
    if error is not None:
        raise error


@lru_cache(maxsize=4)
def _event_schemas(spec_path: str) -> dict[str, str]:
    """Each Responses stream event's ``type`` -> the name of its schema in the spec."""
    schemas = _components(spec_path)["schemas"]
    by_type: dict[str, str] = {}
    for ref in schemas["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        for event_type in schemas[name].get("properties", {}).get("type", {}).get("enum", []):
            by_type[event_type] = name
    return by_type


def validate_event(instance: Any, spec_path: str | Path) -> str:
    """Validate one event of a Responses stream against the schema for its ``type``; return the
    schema's name. An event whose type the spec does not list is a ``ValueError``."""
    event_type = instance.get("type") if isinstance(instance, dict) else None
    name = _event_schemas(str(spec_path)).get(str(event_type))
    if name is None:
        raise ValueError(f"OpenAI's spec has no Responses stream event of type {event_type!r}")
    validate(instance, name, spec_path)
    return name
