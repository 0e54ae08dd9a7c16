"""Reranking a search's fused top candidates with the configured reranker, without ever failing
the search.

The ``reranker.config.top_n`` best fused candidates (at least the search's limit) go to the
reranker, which scores each in [0, 1]; they are re-ordered by that score (ties keep the fused
order) and carry it as their ``score``, with the fused one kept as ``hybrid_score`` (see
``SearchHit``). The call runs on a small thread pool so that a search waits at most the
reranker's ``timeout``: a reranker that raises, hangs or answers nonsense leaves the fused order
and scores as they were. Each fallback is counted (``stats``, the server's
``memlane_rerank_fallbacks``) and logged, once per burst: the first failure is logged at
once, later ones at most every ``LOG_EVERY_SECONDS`` with how many there were since.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, Callable, Hashable, Mapping

from memlane.engine.ranking import Ranked
from memlane.errors import MemlaneError
from memlane.records import MemoryRecord
from memlane.rerankers.base import Reranker

log = logging.getLogger("memlane.rerank")

LOG_EVERY_SECONDS = 60.0
#: reranker calls in flight at once; more wait their turn (within their own timeout)
WORKERS = 4


class Reranking:
    """The configured reranker as a search step; ``stats()`` says how it went."""

    def __init__(self, reranker: Reranker, name: str) -> None:
        self.reranker = reranker
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="memlane-rerank")
        self._lock = threading.Lock()
        self._reranked = 0
        self._fallbacks = 0
        self._last_error: str | None = None
        self._logged_at: float | None = None
        self._unlogged = 0

    def window(self, limit: int) -> int:
        """How many fused candidates a search with this limit sends."""
        return max(int(self.reranker.top_n), limit)

    def apply(self, query: str, ranked: list[Ranked], records: Mapping[Hashable, MemoryRecord], limit: int) -> list[Ranked]:
        """``ranked`` with its first ``window(limit)`` re-ordered and re-scored by the reranker;
        on any failure, ``ranked`` unchanged. ``records`` must hold the window's records (one
        missing from it stays where it was)."""
        head = [r for r in ranked[: self.window(limit)] if r.key in records]
        if not head:
            return ranked
        texts = [records[r.key].memory for r in head]
        started = time.monotonic()
        try:
            future = self._pool.submit(self.reranker.rerank, query, texts)
            scores = future.result(timeout=float(self.reranker.timeout))
            if len(scores) != len(head):
                raise ValueError(f"it answered {len(scores)} scores for {len(head)} memories")
        except FutureTimeout:
            future.cancel()
            self._failed(f"no answer within {float(self.reranker.timeout):g} s")
            return ranked
        except MemlaneError as exc:
            self._failed(exc.message)
            return ranked
        except Exception as exc:  # noqa: BLE001 - a plugin's reranker may raise anything; recall goes on
            self._failed(f"{type(exc).__name__}: {exc}")
            return ranked
        with self._lock:
            self._reranked += 1
        rescored = [replace(r, score=float(s), hybrid=r.score) for r, s in zip(head, scores)]
        order = sorted(range(len(head)), key=lambda i: (-rescored[i].score, i))
        moved = {r.key for r in head}
        log.debug("reranked %d candidates in %.1f ms", len(head), (time.monotonic() - started) * 1000)
        return [rescored[i] for i in order] + [r for r in ranked if r.key not in moved]

    def _failed(self, why: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._fallbacks += 1
            self._last_error = why
            quiet = self._logged_at is not None and now - self._logged_at < LOG_EVERY_SECONDS
            if quiet:
                self._unlogged += 1
                return
            since, self._unlogged, self._logged_at = self._unlogged, 0, now
        more = f" ({since} more since the last report)" if since else ""
        log.warning("reranker %r failed; searches keep the fused order: %s%s", self.name, why, more)

    def stats(self) -> dict[str, Any]:
        """``reranked`` (searches the reranker ordered), ``rerank_fallbacks`` (searches that
        kept the fused order because it failed or timed out) and ``last_rerank_error``."""
        with self._lock:
            return {"reranked": self._reranked, "rerank_fallbacks": self._fallbacks, "last_rerank_error": self._last_error}

    def warm_up(self) -> None:
        warm: Callable[[], None] | None = getattr(self.reranker, "warm_up", None)
        if warm is not None:
            warm()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        close: Callable[[], None] | None = getattr(self.reranker, "close", None)
        if close is not None:
            close()
