"""One engine per project, so a project's key can only ever reach that project's memories.

On the SQLite store each project is its own file beside the configured one (the ``default``
project is the configured file itself, the one the CLI uses): isolation by construction.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from memlane.config import MemlaneConfig, default_db_path
from memlane.errors import ConfigError
from memlane.proxy.client import AsyncMemlane
from memlane.server.keys import DEFAULT_PROJECT, check_project


def project_config(config: MemlaneConfig, project: str) -> MemlaneConfig:
    if project == DEFAULT_PROJECT:
        return config
    if config.vector_store.provider != "sqlite":
        raise ConfigError(f"projects other than {DEFAULT_PROJECT!r} need the sqlite store for now", param="vector_store.provider")
    data = config.model_dump()
    base = Path(data["vector_store"]["config"].get("path") or default_db_path()).expanduser()
    data["vector_store"]["config"]["path"] = str(base.with_name(f"{base.stem}.{check_project(project)}{base.suffix or '.db'}"))
    return MemlaneConfig.model_validate(data)


class Projects:
    def __init__(self, config: MemlaneConfig) -> None:
        self.config = config
        self._clients: dict[str, AsyncMemlane] = {}
        self._lock = threading.Lock()

    def client(self, project: str) -> AsyncMemlane:
        with self._lock:
            if project not in self._clients:
                self._clients[project] = AsyncMemlane(config=project_config(self.config, project))
            return self._clients[project]

    def loaded(self) -> list[tuple[str, AsyncMemlane]]:
        with self._lock:
            return list(self._clients.items())

    async def drain_and_close(self, timeout: float) -> None:
        """Graceful shutdown: give the learners ``timeout`` to empty the outboxes, then close."""
        for _, client in self.loaded():
            await client.flush(timeout=timeout)
            await client.close()

    def snapshot(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        rows = []
        for name, client in self.loaded():
            stats = vars(client.stats)
            try:
                outbox = client.outbox_status()
            except Exception:  # noqa: BLE001 - metrics must render even if a store is down
                outbox = {}
            rows.append((name, stats, outbox))
        return rows


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)
