"""Every third-party package the core imports is a declared dependency: a fresh ``pip install
memlane`` (no extras, no torch) must import and run. (httpx was once only there by accident.)"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: modules that belong to an extra (their imports are the extra's)
OPTIONAL = {"stores/pgvector.py", "stores/pg_filters.py", "stores/pg_migrations.py", "stores/qdrant.py", "stores/qdrant_filters.py",
            "embedders/sentence_transformers.py", "embedders/onnx.py", "rerankers/cross_encoder.py", "models/build.py",
            "testing/openai_spec.py",  # jsonschema, in the test extra
            "testing/local_model.py"}  # xllamacpp, in the test extra


def declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def test_the_core_imports_only_declared_packages() -> None:
    owners = importlib.metadata.packages_distributions()
    allowed = declared()
    missing = []
    for path in (ROOT / "src" / "memlane").rglob("*.py"):
        if str(path.relative_to(ROOT / "src" / "memlane")) in OPTIONAL:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top == "memlane" or top in sys.stdlib_module_names:
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & allowed:
                    missing.append(f"{path.relative_to(ROOT)} imports {top} ({', '.join(sorted(dists))})")
    assert missing == []
