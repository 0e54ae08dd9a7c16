"""The background learner: works through the store's outbox with ``Memory.learn``.

Failures are retried with exponential backoff and stay visible (``status()``, the log, the
counters); they never reach the chat call that produced the exchange. An exchange that failed
``max_attempts`` times, or failed in a way no retry can fix (the memory model does not exist,
the key is refused), is set aside as dead: kept, counted, re-queueable by hand.

Several worker threads share the outbox, and any number of learners in any number of processes
can share it too: items are leased one scope at a time, and an item leaves the outbox only in
the commit that applies what was learnt from it.

Batches: a claim takes up to ``outbox.batch_size`` waiting exchanges of one scope; those that
can be learnt together (memlane.engine.learning.batch_size_of) are, in one extraction call, one
reconcile call and one commit, and the rest go back to the outbox for the next claim. A batch
that fails is learnt again one exchange at a time, in the same claim, each exchange then retried
or set aside on its own; a batch whose lease was lost is discarded whole. With
``outbox.batch_wait_seconds``, a claim of fewer than ``batch_size`` exchanges whose oldest is
younger than that is held (its scope still leased: one worker waits on it, the others learn
other scopes) for that long, then goes back and is claimed again, so that what arrives meanwhile
joins the batch (a learner that keeps up would otherwise learn each exchange nearly alone, two
LLM calls each); not while a ``flush`` waits, nor for ``HURRY_SECONDS`` after ``hurry()`` (someone
waits for an exchange: the server's ``GET /v1/exchanges/{id}?wait=``, a learner process told by
its server), and a batch already held back is let go at once then. ``status()`` counts ``llm_calls`` (extraction and reconcile calls, repairs included) beside ``exchanges_learnt``:
their ratio is what learning costs per exchange.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import openai

from memlane.config import OutboxConfig
from memlane.engine.learning import CallTally, Learnt, batch_size_of, room_for_more
from memlane.engine.memory import Memory
from memlane.errors import ConfigError, LLMResponseError, ValidationError
from memlane.engine.timing import Timings
from memlane.stores.outbox import LeaseLost, OutboxItem, owner_id

log = logging.getLogger("memlane.learner")

#: Answers of the memory model's server that the same request will get again: retrying only
#: repeats the failure (a 404 model was retried forever, every 2-16 s, before dead letters).
PERMANENT_UPSTREAM = (openai.BadRequestError, openai.AuthenticationError, openai.PermissionDeniedError,
                      openai.NotFoundError, openai.UnprocessableEntityError)


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: a bad payload, missing config, or an upstream 400/401/403/404/422."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ValidationError, ConfigError, *PERMANENT_UPSTREAM)):
            return True
        seen = seen.__cause__
    return False


@dataclass
class LearnerCounters:
    """What a learner has done, counted by all its workers at once: change it only through
    ``add``, ``add_learnt`` and ``add_failure`` (under its lock: a ``+=`` on a field, or a
    dict entry read then written, loses updates when threads switch in between)."""

    learned: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    lease_lost: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    events: dict[str, int] = field(default_factory=lambda: {"ADD": 0, "UPDATE": 0, "DELETE": 0})
    #: extracted facts not learnt, by reason (memlane.engine.fact_check)
    dropped: dict[str, int] = field(default_factory=dict)
    #: commits that learnt several exchanges together
    batches: int = 0
    #: batches that failed and were learnt again one exchange at a time
    batch_fallbacks: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, count: int = 1) -> None:
        """Add to one of the plain counts (``batches``, ``lease_lost``, ...)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def add_learnt(self, events: Iterable[str], dropped: Iterable[str]) -> None:
        """One exchange learnt: its store events (``ADD``...) and its dropped facts' reasons."""
        with self._lock:
            self.learned += 1
            for event in events:
                self.events[event] = self.events.get(event, 0) + 1
            for reason in dropped:
                self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def add_failure(self, error: str, dead: bool) -> None:
        """One failed attempt (``dead``: and its exchange set aside), ``error`` the last error now."""
        with self._lock:
            self.failed_attempts += 1
            self.dead_lettered += int(dead)
            self.last_error = error
            self.last_error_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        """Every count at one moment (copies of the dicts), for ``status()``."""
        with self._lock:
            return {"learned": self.learned, "failed_attempts": self.failed_attempts, "dead_lettered": self.dead_lettered,
                    "lease_lost": self.lease_lost, "last_error": self.last_error, "events": dict(self.events),
                    "dropped": dict(self.dropped), "batches": self.batches, "batch_fallbacks": self.batch_fallbacks}


#: the shortest pause between two claims that found nothing
RESCAN_SECONDS = 0.02
#: how long the whole learner must have found nothing before it lets the memory LLM's client
#: go (``release_idle``: no connection held by an idle learner). Not at every empty claim:
#: under load a learner finds the outbox empty between most arrivals, and rebuilding the
#: client (the openai SDK's, with its TLS context) each time was over half of its CPU per
#: exchange (bench/learning_cpu.py). Under a second, so a server at rest holds none for long.
IDLE_RELEASE_SECONDS = 0.5
#: seconds after ``hurry()`` during which no short batch is held back for more of its scope (a
#: waiter asks again well within it: the server's flush every 0.5 s)
HURRY_SECONDS = 1.0


class Learner:
    def __init__(self, memory: Memory, settings: OutboxConfig) -> None:
        self.memory = memory
        self.settings = settings
        self.owner = owner_id(uuid.uuid4().hex[:8])
        self.counters = LearnerCounters()
        #: told ("learn", seconds) for each exchange learnt (a batch's time, shared out)
        self.timings = Timings()
        #: memory-LLM calls made while learning
        self.llm_calls = CallTally()
        #: told (outbox item id, what changed) after each exchange learnt (the recall log listens)
        self.on_learned: Callable[[str, list[dict[str, Any]]], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._threads: list[threading.Thread] = []
        #: worker threads that have not decided to leave (under ``_lock``: ``start`` counts them,
        #: and a worker leaves only after checking ``_stop`` under it, so none is counted and gone)
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        #: claims whose outcome is not fully recorded yet (the row can be gone before that)
        self._working = 0
        #: callers in ``flush`` now (while any waits, no short batch is held back for more)
        self._flushing = 0
        #: until when (monotonic) someone waits for what is queued (``hurry``)
        self._hurry_until = 0.0
        #: told when a held-back batch should stop waiting (a flush, a hurry, stop)
        self._let_go = threading.Condition()
        #: when a worker last finished a claim that found work (any worker: the learner is idle only when all are)
        self._busy_at = time.monotonic()
        #: worker threads not yet out of ``_run`` (the last one out lets the memory LLM's client go)
        self._running = 0

    def start(self) -> None:
        """Run ``settings.workers`` worker threads (those already running count). After a
        ``stop`` whose join timed out (a worker inside a slow memory call), a worker that has
        not yet left goes on working, and fresh ones make up the number: a start after a stop
        always ends with a working learner, never with the old threads leaving one by one."""
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._stop.clear()
            for number in range(len(self._workers), self.settings.workers):
                thread = threading.Thread(target=self._run, name=f"memlane-learner-{number}", daemon=True)
                self._running += 1
                self._workers.add(thread)
                thread.start()
                self._threads.append(thread)

    def notify(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    def hurry(self) -> None:
        """Someone waits for what is queued now: for ``HURRY_SECONDS`` learn short batches at
        once instead of holding them back for more (``outbox.batch_wait_seconds``)."""
        self._hurry_until = time.monotonic() + HURRY_SECONDS
        self._release_held()
        self._wake.set()

    def _in_a_hurry(self) -> bool:
        return bool(self._flushing) or time.monotonic() < self._hurry_until

    def _release_held(self) -> None:
        with self._let_go:
            self._let_go.notify_all()

    def _hold(self, seconds: float) -> None:
        """Wait up to ``seconds`` for more of a short batch's scope, less once anyone hurries."""
        with self._let_go:
            self._let_go.wait_for(lambda: self._in_a_hurry() or self._stop.is_set(), seconds)

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._release_held()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def backoff(self, attempts: int) -> float:
        return min(self.settings.retry_base_seconds * (2 ** attempts), self.settings.retry_max_seconds)

    def run_once(self) -> bool:
        """Claim and learn one exchange, or several of one scope together; False when nothing was due."""
        with self._lock:
            self._working += 1
        claimed = False
        try:
            self.memory.foreground.wait_idle(self.settings.yield_seconds)  # chats' recalls first
            outbox = self.memory.store.outbox
            items = outbox.claim_batch(self.owner, self.settings.lease_seconds, self.settings.batch_size)
            if not items:
                return False
            claimed = True
            wait = self._gather_wait(items)
            if wait > 0:  # more of this scope may come to go in the same batch: let them, then claim again
                # Held with its lease (never more than half of it): the scope stays leased, so no
                # other worker, here or in another process, claims the same exchanges and holds
                # them too (released first, every worker ended up waiting on one scope's batch
                # while other scopes' exchanges waited with it); what arrives meanwhile waits for
                # the claim below.
                self._hold(min(wait, self.settings.lease_seconds / 2))
                outbox.release(items)
                if self._stop.is_set():
                    return True
                items = outbox.claim_batch(self.owner, self.settings.lease_seconds, self.settings.batch_size)
                if not items:  # another worker took them
                    return True
            together = batch_size_of(items, self.memory.config)
            if together < len(items):  # they wait for the next claim (this scope stays leased till then)
                outbox.release(items[together:])
            if together == 1:
                self._learn(items[0])
            else:
                self._learn_batch(items[:together])
            return True
        finally:
            with self._lock:
                self._working -= 1
                if claimed:
                    self._busy_at = time.monotonic()

    def _gather_wait(self, items: list[OutboxItem]) -> float:
        """How long to let a short claim wait for more of its scope (``outbox.batch_wait_seconds``):
        until its oldest exchange is that old; 0 for a full claim, one that waited long enough,
        and one nothing could join: a retry (an item that failed before is claimed alone), or
        one that leaves no room in the extraction call (``learning.room_for_more``)."""
        wait = self.settings.batch_wait_seconds
        if wait <= 0 or len(items) >= self.settings.batch_size or self._in_a_hurry():
            return 0.0
        if any(item.attempts for item in items) or not room_for_more(items, self.memory.config):
            return 0.0
        # (never more than ``wait``: the enqueuing host's clock may run ahead of this one's)
        return min(wait, max(0.0, min(i.created_at for i in items) + wait - time.time()))

    def _idle_long_enough(self) -> bool:
        """Whether no worker has been at work for ``IDLE_RELEASE_SECONDS`` (and none is now)."""
        return not self._working and time.monotonic() - self._busy_at >= IDLE_RELEASE_SECONDS

    def _learn(self, item: OutboxItem) -> None:
        started = time.perf_counter()
        try:
            (learnt,) = self.memory.learn_batch([item], tally=self.llm_calls)
        except LeaseLost:
            self.counters.add("lease_lost")
            log.warning("outbox item %s was taken over by another worker; this attempt is discarded", item.id)
        except Exception as exc:  # noqa: BLE001 - every failure is retried or set aside, counted and logged
            self._failed(item, exc)
        else:
            self._learnt(item, learnt, time.perf_counter() - started)

    def _learn_batch(self, items: list[OutboxItem]) -> None:
        started = time.perf_counter()
        try:
            learnt = self.memory.learn_batch(items, tally=self.llm_calls)
        except LeaseLost as lost:
            self.counters.add("lease_lost")
            log.warning("outbox item %s of a batch of %d was taken over by another worker; the whole batch is discarded",
                        lost, len(items))
            self.memory.store.outbox.release(items)  # those still ours are claimable again at once
        except Exception as exc:  # noqa: BLE001 - one bad exchange must not fail the others: each goes alone
            self.counters.add("batch_fallbacks")
            log.warning("learning %d exchanges of one scope together failed (%s: %s); learning them one at a time",
                        len(items), type(exc).__name__, exc)
            for item in items:
                self._learn(item)
        else:
            self.counters.add("batches")
            share = (time.perf_counter() - started) / len(items)
            for item, one in zip(items, learnt):
                self._learnt(item, one, share)

    def _learnt(self, item: OutboxItem, learnt: Learnt, seconds: float) -> None:
        self.timings.tell("learn", seconds)
        if self.on_learned is not None:
            self.on_learned(item.id, [*({"event": a.event, "memory": a.record.memory, "id": a.record.id,
                                         "previous": a.previous_memory} for a in learnt.applied if a.event != "NONE"),
                                      *(d.to_dict() for d in learnt.dropped)])
        self.counters.add_learnt((a.event for a in learnt.applied), (d.reason for d in learnt.dropped))

    def _failed(self, item: OutboxItem, exc: Exception) -> None:
        # (this item's own error, not ``counters.last_error``: another worker may have set that since)
        error = f"{type(exc).__name__}: {exc}"
        attempt = item.attempts + 1
        permanent = is_permanent(exc)
        unusable = isinstance(exc, LLMResponseError) and attempt >= self.settings.max_unusable_attempts
        dead = permanent or unusable or attempt >= self.settings.max_attempts
        self.counters.add_failure(error, dead)
        if dead:
            why = ("an error retrying cannot fix" if permanent else
                   f"{attempt} attempts whose answers the memory model got wrong" if unusable else f"{attempt} failed attempts")
            log.error("outbox item %s set aside as dead after %s (memlane outbox requeue puts it back): %s",
                      item.id, why, error)
            self.memory.store.outbox.retry(item.id, error, 0.0, dead=True)
            return
        delay = self.backoff(item.attempts)
        log.warning("learning from outbox item %s failed (attempt %d of %d), retry in %.1fs: %s",
                    item.id, attempt, self.settings.max_attempts, delay, error)
        self.memory.store.outbox.retry(item.id, error, delay)

    def _release_client(self) -> None:
        """Let the memory LLM's client go, with its kept-alive connections (safe while a call is
        in flight: ``release_idle`` then keeps it, and the next call builds a new one)."""
        release = getattr(self.memory.llm, "release_idle", None)
        if release is not None:
            release()

    def _run(self) -> None:
        try:
            self._work()
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())  # (gone already, unless _work raised)
                self._running -= 1
                last = not self._running
            if last:  # stopped: no worker is left to let the client go once idle, so now
                self._release_client()

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._stop.is_set():  # leaving: from here on ``start`` makes up for this thread
                    self._workers.discard(threading.current_thread())
                    return
            try:
                worked = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep the thread alive
                log.warning("outbox unavailable: %s", exc)
                worked = False
            if not worked:  # (after an item this worker simply looks again: it just freed that scope)
                with self._idle:
                    self._idle.notify_all()
                if self._idle_long_enough():  # an idle learner holds no connection to the model server
                    self._release_client()
                # A claim that found nothing passed over the whole backlog waiting behind leased
                # scopes; chats enqueue (and wake us) hundreds of times a second under load, so
                # look again at most every RESCAN_SECONDS.
                self._stop.wait(RESCAN_SECONDS)
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until no live item is left (dead ones do not count); False when ``timeout`` ran out."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing += 1  # someone waits for what is queued: no batch is held back for more
        self._release_held()
        try:
            while True:
                if self.memory.store.outbox.stats()["pending"] == 0 and not self._working:
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self._wake.set()
                with self._idle:
                    self._idle.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic())))
        finally:
            with self._lock:
                self._flushing -= 1

    def status(self) -> dict[str, Any]:
        return {**self.memory.store.outbox.stats(), **self.counter_status()}

    def counter_status(self) -> dict[str, Any]:
        """What this learner has done (no store read): what a learner process publishes."""
        c = self.counters.snapshot()
        return {
            "learned": c["learned"],
            #: the same count, named for ``llm_calls / exchanges_learnt`` (calls per exchange)
            "exchanges_learnt": c["learned"],
            "llm_calls": self.llm_calls.count,
            "batches": c["batches"],
            "batch_fallbacks": c["batch_fallbacks"],
            "failed_attempts": c["failed_attempts"],
            "dead_lettered": c["dead_lettered"],
            "lease_lost": c["lease_lost"],
            "events": c["events"],
            "dropped": c["dropped"],
            "worker_last_error": c["last_error"],
            "worker_alive": any(t.is_alive() for t in self._threads),
        }

    def resume_counters(self, published: dict[str, Any]) -> None:
        """Start counting from what an earlier run published (``counter_status``): a learner
        process restarted after a crash keeps "learnt since the server started" growing."""
        c = self.counters
        self.llm_calls.count = int(published.get("llm_calls") or 0)
        with c._lock:  # (before the workers start, as a rule; still never beside a worker's count)
            c.learned = int(published.get("learned") or 0)
            for name in ("batches", "batch_fallbacks", "failed_attempts", "dead_lettered", "lease_lost"):
                setattr(c, name, int(published.get(name) or 0))
            c.events.update({k: int(v) for k, v in (published.get("events") or {}).items()})
            c.dropped.update({k: int(v) for k, v in (published.get("dropped") or {}).items()})
            c.last_error = published.get("worker_last_error")
