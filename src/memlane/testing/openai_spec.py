"""Validate JSON against a schema of OpenAI's published OpenAPI spec.

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


def validate(instance: Any, schema_name: str, spec_path: str | Path) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` matches ``components.schemas[name]``."""
    try:
        import jsonschema
    except ImportError:
        raise ImportError("validating against OpenAI's spec needs jsonschema: pip install jsonschema (in memlane[test])") from None
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components(str(spec_path))}
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)
