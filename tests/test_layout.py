"""memlane imports from anywhere: a folder named ``memlane`` in the working directory (the clone
itself, seen from its parent folder) never shadows the installed package (src layout)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_memlane_folder_in_the_working_directory_does_not_shadow_the_package(tmp_path: Path) -> None:
    (tmp_path / "memlane").mkdir()
    (tmp_path / "memlane" / "README.md").write_text("a clone's folder, not the package\n")
    done = subprocess.run([sys.executable, "-c", "from memlane import Memlane, Memory; print('ok')"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
