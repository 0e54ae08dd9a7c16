"""The README's examples run as written (with this machine's addresses put in)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
#: the README's first screen: everything before the inspector's pictures
FIRST_SCREEN_ENDS = "Open `http://127.0.0.1:8765/ui`"


def python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_hosted_example_runs_line_by_line(tmp_path: Path, upstream: ScriptedUpstream, capsys: object) -> None:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        code = (python_block_after("## Hosted mode")
                .replace('"ml-..."', repr(key)).replace('"http://127.0.0.1:8765"', repr(server.url))
                .replace('"http://127.0.0.1:11434/v1"', repr(upstream.url)))
        exec(compile(code, "README.md (hosted mode)", "exec"), {})
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "Noted! Here is my suggestion." in out and "'results'" in out


def test_the_embedded_example_runs_as_written(isolated_env: Path, upstream: ScriptedUpstream, monkeypatch: object) -> None:
    """The drop-in client section, with OPENAI_BASE_URL pointing at a model server as the
    quickstart says: the preference is remembered."""
    upstream.handler = restaurant_llm
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # type: ignore[attr-defined]
    scope: dict[str, object] = {}
    exec(compile(python_block_after("## The drop-in client"), "README.md (drop-in client)", "exec"), scope)
    remembered = {m["memory"] for m in scope["client"].memory.get_all(user_id="alice")["results"]}  # type: ignore[attr-defined]
    assert remembered == {"Is allergic to cheese", "Loves Indian food"}
    scope["client"].close()  # type: ignore[attr-defined]


def first_screen_commands() -> list[list[str]]:
    """The shell commands of the README's first screen, as a new user types them (comments off,
    leading VAR=value assignments off)."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text[: text.index(FIRST_SCREEN_ENDS)], re.S):
        for line in block.splitlines():
            words = shlex.split(line.split("#", 1)[0])
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if words:
                commands.append(words)
    return commands


def test_the_first_screen_names_only_what_a_fresh_clone_has_after_make_run() -> None:
    """`make` targets that exist, and memlane where `make run` installs it (the Makefile's
    $(BIN), pyproject's console script): a bare `memlane` is not on a new user's PATH."""
    makefile = MAKEFILE.read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, re.M))
    venv = re.search(r"^VENV := (\S+)$", makefile, re.M)[1]  # type: ignore[index]
    assert re.search(r"^BIN := \$\(VENV\)/bin$", makefile, re.M)
    assert "memlane" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert re.search(r"^run: .*\n\t\$\(BIN\)/memlane serve$", makefile, re.M), "make run runs the venv's memlane"
    commands = first_screen_commands()
    assert ["make", "run"] in commands and any(words[1:3] == ["keys", "create"] for words in commands)
    for words in commands:
        if words[0] == "make":
            assert words[1] in targets, words
        else:
            assert words[0] == f"{venv}/bin/memlane", f"{shlex.join(words)!r}: not on PATH after make run"


def test_the_first_screen_memlane_commands_run_as_written(tmp_path: Path) -> None:
    """Each memlane command of the first screen, run from the checkout: literally where
    `.venv/bin/memlane` exists (after make run / make test), else through the console script's
    own entry point with the same arguments."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["memlane"]
    module, _, function = entry.partition(":")
    for words in [w for w in first_screen_commands() if w[0] != "make"]:
        program = ROOT / words[0]
        argv = [str(program), *words[1:]] if program.exists() else \
            [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())", *words[1:]]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "MEMLANE_HOME": str(tmp_path)})
        assert done.returncode == 0, (words, done.stderr)
        if words[1:3] == ["keys", "create"]:
            assert re.search(r"\bml-\S+", done.stdout), done.stdout


def test_the_serve_banner_names_the_memlane_that_was_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` starts .venv/bin/memlane, not on PATH: the banner's "memlane keys create" hint
    says that path; a memlane on PATH is just `memlane`."""
    from memlane.cli.common import invoked_as

    script = tmp_path / ".venv" / "bin" / "memlane"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [".venv/bin/memlane", "serve"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert invoked_as() == ".venv/bin/memlane"
    monkeypatch.setenv("PATH", str(script.parent))
    assert invoked_as() == "memlane"


def chromium_step() -> str:
    """The line of `make test`'s set-up that installs chromium, as make runs it."""
    shown = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), ".venv/.test-stamp"], capture_output=True, text=True, check=True).stdout
    (line,) = [line for line in shown.splitlines() if "chromium" in line]
    return line


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("chromium_there", [True, False])
def test_make_test_waits_for_the_apt_lock_and_installs_chromium_only_when_missing(tmp_path: Path, chromium_there: bool) -> None:
    """Run with stand-ins for apt-get (whose first update finds the lock held, as when another apt
    runs) and sleep: the update is retried, every apt call waits for dpkg's lock, and nothing is
    installed when chromium is already there."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log, held = tmp_path / "apt.log", tmp_path / "held-once"
    scripts = {
        "apt-get": f'#!/bin/sh\necho "$*" >> {log}\ncase "$*" in *update*) if [ ! -e {held} ]; then : > {held}; exit 100; fi;; esac\nexit 0\n',
        "sleep": "#!/bin/sh\nexit 0\n",
        **({"chromium": "#!/bin/sh\nexit 0\n"} if chromium_there else {}),
    }
    for name, text in scripts.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    done = subprocess.run(["/bin/sh", "-c", chromium_step()], env={"PATH": str(stubs)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    if chromium_there:
        assert calls == []
        return
    assert [c.split()[2] for c in calls] == ["update", "update", "install"], calls
    assert all(c.startswith("-o DPkg::Lock::Timeout=600 ") for c in calls), calls
    assert calls[-1].endswith("install -y -q chromium")
