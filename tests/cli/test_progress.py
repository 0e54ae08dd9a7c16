"""Long operations (import, export, bulk delete) show a progress bar on a terminal and stay
quiet when piped: the real `memlane` process, its stderr a pseudo-terminal or a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROWS = 1200


def memlane(home: Path, *args: str, terminal: bool) -> tuple[str, str]:
    """stdout and stderr of ``memlane ARGS``, stderr on a pseudo-terminal when ``terminal``."""
    env = {**os.environ, "MEMLANE_HOME": str(home), "COLUMNS": "100"}
    command = [sys.executable, "-m", "memlane.cli", *args]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=child, env=env, text=True)
    os.close(child)
    out = process.stdout.read() if process.stdout else ""
    shown = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(parent)
    assert process.wait(120) == 0, shown
    return out, shown.decode("utf-8", "replace")


def test_import_export_and_bulk_delete_show_progress_on_a_terminal_only(tmp_path: Path) -> None:
    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps({"memory": f"Note {i} about the garden", "user_id": "alice"}) + "\n" for i in range(ROWS)))

    out, shown = memlane(tmp_path / "a", "memories", "import", str(source), "--batch-size", "500", terminal=True)
    assert json.loads(out) == {"imported": ROWS, "skipped": 0} and "importing: 100%" in shown and f"{ROWS}/{ROWS}" in shown
    out, shown = memlane(tmp_path / "a", "memories", "export", "-o", str(tmp_path / "out.jsonl"), terminal=True)
    assert "exporting" in shown and f"exported {ROWS} memories" in shown
    out, shown = memlane(tmp_path / "a", "memories", "delete", "--all", "--user", "alice", terminal=True)
    assert json.loads(out)["message"] == "Memories deleted successfully!" and "deleting: 100%" in shown and f"{ROWS}/{ROWS}" in shown

    out, quiet = memlane(tmp_path / "b", "memories", "import", str(source), terminal=False)
    assert json.loads(out)["imported"] == ROWS and quiet == ""
    out, quiet = memlane(tmp_path / "b", "memories", "delete", "--all", "--user", "alice", terminal=False)
    assert quiet == ""
