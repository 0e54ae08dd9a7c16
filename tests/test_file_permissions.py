"""What memlane writes to disk is its owner's alone: directories it creates are 0700, files 0600
(keys, the SQLite store and its -wal/-shm, the per-scope lock files, Qdrant's local folder),
with the common umask 022 that would otherwise make them world-readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Iterator

import pytest

from memlane import Memory
from memlane.files import private_dir, private_file
from memlane.server.keys import KeyStore
from memlane.stores.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` (itself included) → its permission bits."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(folder: Path) -> None:
    seen = modes(folder)
    loose = {name: oct(mode) for name, mode in seen.items() if mode & 0o077}
    assert not loose, f"readable by others: {loose}"


def test_the_store_keys_and_memlane_home_are_private_to_their_owner(make_memory: Callable[..., Memory], tmp_path: Path,
                                                                   backend: str) -> None:
    home = Path(os.environ["MEMLANE_HOME"])
    assert not home.exists()
    keys = KeyStore()  # MEMLANE_HOME/keys.db
    keys.create("acme")
    data = tmp_path / "data" / "deeper"
    memory = make_memory(data / "memlane.db")
    memory.add("Is allergic to cheese", user_id="alice", infer=False)
    assert memory.search("cheese", user_id="alice")["results"]

    assert modes(home)["keys.db"] == 0o600 and modes(home)["."] == 0o700
    assert_private(home)
    if backend != "pgvector":  # the others keep files here: a SQLite database, a Qdrant folder
        written = modes(tmp_path / "data")
        assert any(name.endswith(("-wal", "storage.sqlite")) for name in written), sorted(written)
        if backend == "sqlite":
            assert any(name.endswith(".lock") for name in written), sorted(written)  # the scope's lock file
        assert_private(tmp_path / "data")


def test_a_directory_the_user_made_keeps_its_mode_and_new_files_in_it_are_private(tmp_path: Path) -> None:
    shared = tmp_path / "team"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)
    (shared / "notes.txt").write_text("theirs")
    store = SQLiteStore({"path": str(shared / "memlane.db")})
    keys = KeyStore(shared / "keys.db")
    keys.create("acme")
    store.close()
    seen = modes(shared)
    assert seen["."] == 0o750 and seen["notes.txt"] == 0o644  # not memlane's to change
    assert {name: mode for name, mode in seen.items() if name.startswith(("memlane.db", "keys.db"))} == {
        name: 0o600 for name in seen if name.startswith(("memlane.db", "keys.db"))}
    assert seen["memlane.db"] == seen["keys.db"] == 0o600


def test_private_dir_creates_every_missing_part_0700_and_private_file_keeps_an_existing_file(tmp_path: Path) -> None:
    os.umask(0o077 ^ 0o777)  # even a umask that would strip the owner's own bits
    made = private_dir(tmp_path / "a" / "b" / "c")
    os.umask(0o022)
    assert made.is_dir() and {modes(tmp_path)[p] for p in ("a", "a/b", "a/b/c")} == {0o700}
    (tmp_path / "mine.txt").write_text("x")
    private_file(tmp_path / "mine.txt")
    assert modes(tmp_path)["mine.txt"] == 0o644 and (tmp_path / "mine.txt").read_text() == "x"
    assert stat.S_IMODE(private_file(tmp_path / "new.db").stat().st_mode) == 0o600
