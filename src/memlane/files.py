"""Files only their owner can read: what memlane writes (keys, memories, chats waiting to be
learnt) is as private as a password file.

The rule: a directory memlane creates is 0700 and a file it creates is 0600, whatever the umask.
A directory or file that already exists keeps its mode: it may be one the user made and shares
on purpose (a group-readable data folder), and memlane does not change what it did not create.
A new file in such a folder is still 0600, so its content stays the owner's.

No process-wide ``umask`` is touched: it would race with other threads creating files. Instead
each file is created with its mode (``os.open(..., 0o600)``) before the library that fills it
opens it; SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's mode.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """``path`` as a directory, each missing part of it created 0700 (``Path.mkdir(parents=True)``
    would give the parents the umask's mode); existing directories are left as they are."""
    path = Path(path)
    missing: list[Path] = []
    for part in (path, *path.parents):
        if part.is_dir():
            break
        missing.append(part)
    for part in reversed(missing):
        try:
            part.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not part.is_dir():
                raise
            continue  # another process made it first: it is theirs to have set
        os.chmod(part, DIR_MODE)  # the umask may have taken owner bits away
    return path


def private_file(path: str | Path) -> Path:
    """``path`` created empty and 0600 if it does not exist yet (an existing file keeps its mode)."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        pass
    return path


def make_private(folder: str | Path, changed_since: float) -> None:
    """Group and other permissions taken off what a library wrote under ``folder`` since
    ``changed_since`` (its status-change time, so not what the user had there before), for
    libraries that take a folder and write their own files in it (Qdrant's local mode)."""
    for root, dirs, names in os.walk(folder):
        for name in (*dirs, *names):
            path = Path(root, name)
            try:
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_ctime < changed_since:
                    continue
                if stat.S_IMODE(info.st_mode) & 0o077:
                    os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
            except FileNotFoundError:
                continue
