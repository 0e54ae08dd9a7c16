"""The SQLite store's scope locks leave nothing behind: a fixed set of lock files, however many
scopes were written (one file per scope, never removed, once piled up to 2,244), and no lock
object per scope kept in memory; cross-process exclusion per scope still holds."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from memlane.records import Scope
from memlane.stores.scope_locks import STRIPES, ScopeLocks
from memlane.stores.sqlite import SQLiteStore


def test_many_scopes_leave_a_fixed_set_of_lock_files(tmp_path: Path) -> None:
    store = SQLiteStore({"path": str(tmp_path / "m.db")})
    try:
        for n in range(500):
            with store.scope_lock(Scope(user_id=f"user-{n}")):
                pass
        files = list((tmp_path / "m.db.locks").iterdir())
        assert 0 < len(files) <= STRIPES
        assert store._scope_locks.held() == 0, "no lock is kept for a scope nobody holds"
    finally:
        store.close()


def test_lock_files_of_earlier_versions_are_removed_when_the_store_opens(tmp_path: Path) -> None:
    folder = tmp_path / "m.db.locks"
    folder.mkdir()
    for n in range(30):
        (folder / f"{n:024x}.lock").touch()
    SQLiteStore({"path": str(tmp_path / "m.db")}).close()
    assert list(folder.iterdir()) == []


def same_stripe_keys(locks: ScopeLocks) -> tuple[str, str]:
    first = Scope(user_id="u0").key
    for n in range(1, 10_000):
        other = Scope(user_id=f"u{n}").key
        if locks.stripe_of(other) == locks.stripe_of(first):
            return first, other
    raise AssertionError("no two keys share a stripe")


def test_threads_of_one_process_never_wait_for_another_scope_of_their_stripe(tmp_path: Path) -> None:
    locks = ScopeLocks(tmp_path / "locks")
    first, other = same_stripe_keys(locks)
    release = threading.Event()
    holding = threading.Event()

    def hold_first() -> None:
        with locks.hold(first):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold_first)
    thread.start()
    try:
        assert holding.wait(5)
        started = time.monotonic()
        with locks.hold(other):
            assert time.monotonic() - started < 0.5
    finally:
        release.set()
        thread.join()
    assert locks.held() == 0


HOLDER = """
import sys, time
from pathlib import Path
from memlane.stores.scope_locks import ScopeLocks
locks = ScopeLocks(Path(sys.argv[1]))
with locks.hold(sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_another_process_waits_for_a_scope_held_here(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    key = Scope(user_id="alice").key
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), key, "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with ScopeLocks(folder).hold(key):
            waited = time.monotonic() - started
        assert waited > 0.8, "the scope was held by the other process"
    finally:
        holder.wait(10)
