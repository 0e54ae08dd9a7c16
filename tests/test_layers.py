"""Data flows one way (architecture.md): faces → engine → stores/query. No module imports a
layer above its own, and no face reaches past the engine into its store."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memlane"
#: what each layer may not import
FORBIDDEN = {
    "query": ("memlane.engine", "memlane.stores", "memlane.proxy", "memlane.server", "memlane.cli"),
    "stores": ("memlane.engine", "memlane.proxy", "memlane.server", "memlane.cli"),
    "embedders": ("memlane.engine", "memlane.stores", "memlane.proxy", "memlane.server", "memlane.cli"),
    "llms": ("memlane.engine", "memlane.stores", "memlane.proxy", "memlane.server", "memlane.cli"),
    "rerankers": ("memlane.engine", "memlane.stores", "memlane.proxy", "memlane.server", "memlane.cli"),
    "engine": ("memlane.proxy", "memlane.server", "memlane.cli"),
    "proxy": ("memlane.server", "memlane.cli", "memlane.stores"),
}
FACES = ("proxy", "server", "cli")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = []
    for layer, banned in FORBIDDEN.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            wrong += [f"{path.relative_to(PACKAGE)} imports {name}" for name in imports(path) if name.startswith(banned)]
    assert wrong == []


def test_faces_talk_to_the_engine_never_to_its_store() -> None:
    reaching = re.compile(r"\.store\b")
    wrong = [f"{path.relative_to(PACKAGE)}:{number}" for face in FACES for path in (PACKAGE / face).rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), start=1) if reaching.search(line)]
    assert wrong == []
