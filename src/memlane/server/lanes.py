"""Per-project lanes for the server's blocking memory work, so one project cannot stall another.

The engine is synchronous; the server runs its calls in threads. With one shared pool, a
project that sent 8 concurrent ``infer: true`` adds to a slow memory LLM held every thread of
the default pool (6 on 2 cores) while it waited on the model, and another project's
``GET /v1/memories`` waited 13.8 s behind it (40 adds: a timeout, and ``/readyz`` 30 s).

Now each project has two lanes, each with its own few threads and a bounded queue:

- ``quick``: reads and single writes (list, get, search, update, delete, history, exchanges);
- ``slow``: work that waits on the memory LLM or walks a whole scope (``infer`` adds, import,
  export, scope deletes), so it can never occupy the threads that quick calls need.

A call that finds its lane's threads busy waits in the lane's queue (in the event loop, holding
no thread); when the queue is full too it is refused at once with 429 (OpenAI's
``rate_limit_error`` envelope) and a ``Retry-After`` estimated from the lane's recent call times.
Another project's lanes are untouched by any of this. A caller who leaves while queued gives
its place back; a call already running finishes in its thread (threads cannot be interrupted),
and its thread stays counted until then, so the bound holds.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from typing import Any, Callable, TypeVar

from memlane.server.errors import APIError

T = TypeVar("T")

QUICK, SLOW = "quick", "slow"


class ProjectBusy(APIError):
    """429: the project's lane is full (threads busy and queue full); ``retry_after`` seconds."""

    def __init__(self, project: str, lane: str, retry_after: int) -> None:
        super().__init__(429, f"project {project!r} has too many {lane} memory calls running and queued; "
                              f"retry after {retry_after} s (server.project_{'slow_' if lane == SLOW else ''}threads "
                              f"and server.project_queue bound them)", code="project_busy")
        self.project, self.lane, self.retry_after = project, lane, retry_after


class Lane:
    """``threads`` calls run at once, ``queue`` more wait; the rest are refused."""

    def __init__(self, project: str, name: str, threads: int, queue: int) -> None:
        self.project, self.name = project, name
        self.threads, self.queue = threads, queue
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=f"memlane-{name}-{project}"[:40])
        self._running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: seconds a call took, smoothed: what ``Retry-After`` is estimated from
        self._typical = 0.1
        self.rejected = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiting if not w.done())

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the work ahead over the threads doing it."""
        ahead = self._running + self.queued
        return max(1, min(60, math.ceil(self._typical * ahead / self.threads)))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        await self._admit()
        loop = asyncio.get_running_loop()
        started = loop.time()

        def finished(_: Future[Any]) -> None:
            try:
                loop.call_soon_threadsafe(self._release, loop.time() - started)
            except RuntimeError:  # the loop is closed (shutdown): nobody waits any more
                pass

        try:
            job = self._executor.submit(copy_context().run, functools.partial(fn, *args, **kwargs))
        except BaseException:
            self._release(None)
            raise
        job.add_done_callback(finished)  # the thread's end frees the place, not the caller's
        return await asyncio.wrap_future(job)

    async def _admit(self) -> None:
        if self._running < self.threads and not self.queued:
            self._running += 1
            return
        if self.queued >= self.queue:
            self.rejected += 1
            raise ProjectBusy(self.project, self.name, self.retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter  # resolved by _release: a running place is handed over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(None)  # handed a place just as the caller left: pass it on
            elif waiter in self._waiting:  # (_release may have dropped it already)
                self._waiting.remove(waiter)
            raise

    def _release(self, seconds: float | None) -> None:
        if seconds is not None:
            self._typical = 0.8 * self._typical + 0.2 * seconds
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place goes to the next in line; _running unchanged
                return
        self._running -= 1

    def close(self) -> None:
        """Queued calls are not started; running ones finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class ProjectLanes:
    """Each project's quick and slow lane, made on first use."""

    def __init__(self, *, threads: int = 4, slow_threads: int = 4, queue: int = 64) -> None:
        self.threads, self.slow_threads, self.queue = threads, slow_threads, queue
        self._lanes: dict[tuple[str, str], Lane] = {}
        self._lock = threading.Lock()

    def lane(self, project: str, name: str = QUICK) -> Lane:
        with self._lock:
            key = (project, name)
            if key not in self._lanes:
                self._lanes[key] = Lane(project, name, self.slow_threads if name == SLOW else self.threads, self.queue)
            return self._lanes[key]

    def status(self, project: str) -> dict[str, int]:
        """Running, queued and refused calls of a project's lanes (for metrics)."""
        out: dict[str, int] = {}
        for name in (QUICK, SLOW):
            with self._lock:
                lane = self._lanes.get((project, name))
            if lane is not None:
                out.update({f"{name}_running": lane.running, f"{name}_queued": lane.queued, f"{name}_rejected": lane.rejected})
        return out

    def close(self) -> None:
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.close()
