"""The background deliverer of ``memlane serve``: POSTs each queued webhook delivery, signed,
and records every attempt (memlane.engine.webhooks, memlane.stores.webhooks).

It never runs in a request: chats and writes only queue a row in their own transaction, and
this thread pool does the network. Each worker takes the oldest due delivery of a webhook that
has none in flight (so a slow receiver holds one worker, never the others' deliveries), sends
it with ``server.webhooks.timeout_seconds``, and records the answer: a 2xx delivers it; anything
else (another status, a redirect, a timeout, a refused connection) is a failed attempt, due
again after an exponential backoff until ``max_attempts``, then dead.

What a receiver gets (docs/webhooks.md): ``POST`` of the JSON body, with
``X-Memlane-Signature: sha256=<HMAC-SHA256 of the raw body, keyed with the webhook's secret>``,
``X-Memlane-Event`` (``memory_add`` ...), ``X-Memlane-Delivery`` and ``Idempotency-Key`` (the
same on every attempt; also ``idempotency_key`` in the body), ``X-Memlane-Attempt`` and
``X-Memlane-Project``. Redirects are not followed.

Targets are checked again before each attempt (memlane.engine.webhook_targets) and the request
goes to the very address that was checked: the URL's host is replaced by it, with the name kept
in ``Host`` and as the TLS server name (certificates are verified against the name).

Which projects: those loaded in this process, and at start every project with an active key
(plus ``default``), so deliveries queued before a restart go out without waiting for a request.
Stopping finishes the attempts in flight and gives back every lease, so the next server (or
another worker) takes them at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from memlane import __version__
from memlane.config import WebhooksConfig
from memlane.engine.webhook_targets import Target, vet
from memlane.engine.webhooks import (ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign)
from memlane.errors import MemlaneError

log = logging.getLogger("memlane.webhooks")

PROJECT_HEADER = "X-Memlane-Project"


def pinned_request(target: Target) -> tuple[str, dict[str, str], dict[str, Any], tuple[str, str] | None]:
    """``(url, headers, extensions, auth)`` that reach ``target`` at the first address it was
    vetted at: the host replaced by that address, the name kept in ``Host`` and (https) as the
    TLS server name. Without vetted addresses (private targets allowed) the URL as it is."""
    parts = urlsplit(target.url)
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    hostport = parts.netloc.rsplit("@", 1)[-1]
    if not target.addresses:
        url = urlunsplit((parts.scheme, hostport, parts.path or "/", parts.query, ""))
        return url, {}, {}, auth
    address = target.addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    extensions: dict[str, Any] = {}
    if target.scheme == "https" and address != target.host:
        extensions["sni_hostname"] = target.host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), {"Host": hostport}, extensions, auth


class WebhookDeliverer:
    """Delivers every loaded project's webhooks until ``stop``."""

    def __init__(self, projects: Any, settings: WebhooksConfig, *, known_projects: Callable[[], Iterable[str]] = tuple) -> None:
        self.projects = projects
        self.settings = settings
        self._known_projects = known_projects
        #: who holds a lease: this host, process and deliverer
        self.owner = f"{socket.gethostname()}:{os.getpid()}:webhooks-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._slots = threading.Semaphore(settings.workers)
        #: made by ``start`` (an app that never starts, like one built for its OpenAPI document, holds none)
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        self._failing: dict[str, float] = {}  # project -> when its last claim error was logged
        self.counts = {"delivered": 0, "failed": 0, "dead": 0}

    def start(self) -> WebhookDeliverer:
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="memlane-webhook")
        self._http = httpx.Client(timeout=self.settings.timeout_seconds, follow_redirects=False, trust_env=False,
                                  headers={"User-Agent": f"memlane-webhooks/{__version__}"})
        self._thread = threading.Thread(target=self._run, name="memlane-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the attempts in flight (each bounded by the timeout), give the leases back."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return
        self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for name, _ in self.projects.loaded():
            try:
                self.projects.engine(name).webhooks.release(self.owner)
            except Exception as exc:  # noqa: BLE001 - their leases expire instead
                log.warning("could not give back the webhook leases of project %s: %s", name, exc)
        if self._http is not None:
            self._http.close()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------------

    def _run(self) -> None:
        for name in self._known_projects():  # deliveries queued before this server started
            if self._stop.is_set():
                return
            try:
                self.projects.engine(name)
            except Exception as exc:  # noqa: BLE001 - that project's deliveries wait for its first request
                log.warning("project %s could not be opened for its webhooks: %s", name, exc)
        while not self._stop.is_set():
            claimed = self._claim_round()
            if not claimed:
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()

    def _claim_round(self) -> bool:
        """Hand a due delivery of each project to a free worker, round after round; False once
        nothing is due (or no worker is free: a finishing worker wakes the loop)."""
        claimed = False
        for name, _ in self.projects.loaded():
            if self._stop.is_set():
                break
            if not self._slots.acquire(blocking=False):
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()
                return claimed
            try:
                engine = self.projects.engine(name)
                delivery = engine.webhooks.claim(self.owner)
            except Exception as exc:  # noqa: BLE001 - a store that is down: try again next poll
                self._slots.release()
                if time.monotonic() - self._failing.get(name, float("-inf")) > 60:
                    self._failing[name] = time.monotonic()
                    log.warning("cannot read the webhook queue of project %s: %s", name, exc)
                continue
            if delivery is None:
                self._slots.release()
                continue
            claimed = True
            assert self._pool is not None
            self._pool.submit(self._deliver, name, engine, delivery)
        return claimed

    def _deliver(self, project: str, engine: Any, delivery: Any) -> None:
        try:
            status_code, error, duration_ms = self.send(project, delivery)
            outcome = engine.webhooks.finish(delivery, status_code=status_code, error=error, duration_ms=duration_ms)
            self.counts["delivered" if outcome == "delivered" else "dead" if outcome == "dead" else "failed"] += 1
            if outcome == "dead":
                log.warning("webhook delivery %s (%s) to %s is dead after %d attempts: %s", delivery.id, delivery.event, delivery.url,
                            delivery.attempts + 1, error)
        except Exception as exc:  # noqa: BLE001 - the lease expires and the delivery is tried again
            log.warning("recording webhook delivery %s failed: %s", delivery.id, exc)
        finally:
            self._slots.release()
            self._wake.set()

    def send(self, project: str, delivery: Any) -> tuple[int | None, str | None, float]:
        """One attempt: ``(status code or None, error or None, milliseconds)``."""
        body = delivery.body.encode("utf-8")
        try:
            target = vet(delivery.url, allow_private=self.settings.allow_private)
        except MemlaneError as exc:
            return None, exc.message, 0.0
        url, host, extensions, auth = pinned_request(target)
        headers = {
            "Content-Type": "application/json", SIGNATURE_HEADER: sign(delivery.secret or "", body), EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id, IDEMPOTENCY_HEADER: delivery.id, ATTEMPT_HEADER: str(delivery.attempts + 1),
            PROJECT_HEADER: project, **host,
        }
        started = time.monotonic()
        assert self._http is not None, "start the deliverer first"
        try:
            response = self._http.post(url, content=body, headers=headers, extensions=extensions, auth=auth)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, (time.monotonic() - started) * 1000
        elapsed = (time.monotonic() - started) * 1000
        if 200 <= response.status_code < 300:
            return response.status_code, None, elapsed
        detail = response.text[:200].strip() if response.status_code < 300 or response.status_code >= 400 else \
            f"redirect to {response.headers.get('location', '?')} (not followed)"
        return response.status_code, f"HTTP {response.status_code}" + (f": {detail}" if detail else ""), elapsed


__all__ = ["PROJECT_HEADER", "WebhookDeliverer", "pinned_request"]
