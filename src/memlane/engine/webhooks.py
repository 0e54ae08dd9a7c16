"""A project's webhooks, as the engine offers them: create / list / update / delete (mem0's
names and shapes), their deliveries and attempts, and what a deliverer needs (claim, finish).

Events are mem0's: ``memory_add``, ``memory_update``, ``memory_delete`` (mem0's older spelling
``memory:add`` is read as ``memory_add``). Each delivery is signed: the header
``X-Memlane-Signature: sha256=<hex>`` carries the HMAC-SHA256 of the raw request body keyed
with the webhook's ``secret``; ``verify_signature`` checks one. The queue itself lives in the
store (memlane.stores.webhooks), the SSRF guard in memlane.engine.webhook_targets.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from typing import Any, Sequence

from memlane.config import WebhooksConfig
from memlane.engine.validation import check_encodable, check_limit
from memlane.engine.webhook_targets import vet
from memlane.errors import ConfigError, NotFoundError, ValidationError
from memlane.records import utc_now
from memlane.stores.webhooks import EVENT_TYPES, Delivery, Webhook, WebhookQueue

#: the event types a webhook may subscribe to
EVENTS = tuple(EVENT_TYPES.values())
#: the header that carries a delivery's signature, and the others a delivery sends
SIGNATURE_HEADER = "X-Memlane-Signature"
EVENT_HEADER = "X-Memlane-Event"
DELIVERY_HEADER = "X-Memlane-Delivery"
ATTEMPT_HEADER = "X-Memlane-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_NAME_CHARS = 200
DELIVERY_STATUSES = ("pending", "delivered", "dead")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Memlane-Signature`` value of ``body``: ``sha256=`` and the HMAC's hex digest."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (a received ``X-Memlane-Signature``) signs ``body`` (the raw bytes, as
    received, before any JSON parsing) with ``secret``; in constant time."""
    return bool(header) and hmac.compare_digest(sign(secret, body), str(header).strip())


def check_event_types(value: Any) -> list[str]:
    """mem0's event names, each once; None is every event."""
    if value is None:
        return list(EVENTS)
    if not isinstance(value, list) or not value:
        raise ValidationError(f"event_types must be a non-empty list of {', '.join(EVENTS)}", param="event_types",
                              code="invalid_event_types")
    out: list[str] = []
    for index, item in enumerate(value):
        name = item.replace(":", "_") if isinstance(item, str) else item
        if name not in EVENTS:
            raise ValidationError(f"event_types[{index}] is {item!r}; memlane sends {', '.join(EVENTS)} (mem0's memory:add"
                                  " spelling works too)", param="event_types", code="invalid_event_types")
        if name not in out:
            out.append(name)
    return out


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise ValidationError(f"name must be a non-empty string of at most {MAX_NAME_CHARS} characters", param="name",
                              code="invalid_webhook_name")
    check_encodable(value, "name")
    return value.strip()


def _check_active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"is_active must be true or false, got {value!r}", param="is_active")
    return value


class Webhooks:
    """The webhooks of one store (one project on the server), checked as ``settings`` say."""

    def __init__(self, store: Any, settings: WebhooksConfig) -> None:
        self._store = store
        self.settings = settings

    @property
    def _queue(self) -> WebhookQueue:
        queue = getattr(self._store, "webhooks", None)
        if queue is None:
            raise ConfigError(f"the {type(self._store).__name__} store keeps no webhooks", param="vector_store.provider")
        return queue  # type: ignore[no-any-return]

    def _require(self, webhook_id: Any) -> Webhook:
        if not isinstance(webhook_id, str) or not webhook_id:
            raise ValidationError("webhook_id must be a non-empty string", param="webhook_id")
        found = self._queue.get(webhook_id)
        if found is None:
            raise NotFoundError(f"webhook {webhook_id!r} not found", param="webhook_id", code="webhook_not_found")
        return found

    def _with_counts(self, hooks: Sequence[Webhook]) -> list[dict[str, Any]]:
        counts = self._queue.counts()
        return [{**h.to_dict(), "deliveries": counts.get(h.id, {"pending": 0, "delivered": 0, "dead": 0})} for h in hooks]

    # -- management -----------------------------------------------------------------------------

    def create(self, *, url: Any, name: Any = None, event_types: Any = None, is_active: Any = True) -> dict[str, Any]:
        """A new webhook; ``secret`` in the answer signs its deliveries (``verify_signature``)."""
        vet(url, allow_private=self.settings.allow_private)
        now = utc_now()
        hook = Webhook(id="wh_" + secrets.token_hex(8), name=_check_name("webhook" if name is None else name), url=str(url),
                       secret="whsec_" + secrets.token_urlsafe(32), event_types=check_event_types(event_types),
                       is_active=_check_active(is_active), created_at=now, updated_at=now)
        return self._queue.create(hook).to_dict()

    def list(self) -> list[dict[str, Any]]:
        """Every webhook, oldest first, with its deliveries counted by status."""
        return self._with_counts(self._queue.list())

    def get(self, webhook_id: str) -> dict[str, Any]:
        return self._with_counts([self._require(webhook_id)])[0]

    def update(self, webhook_id: str, *, url: Any = None, name: Any = None, event_types: Any = None,
               is_active: Any = None) -> dict[str, Any]:
        """Change what is given; a new URL is checked as at create."""
        self._require(webhook_id)
        changes: dict[str, Any] = {}
        if url is not None:
            vet(url, allow_private=self.settings.allow_private)
            changes["url"] = str(url)
        if name is not None:
            changes["name"] = _check_name(name)
        if event_types is not None:
            changes["event_types"] = check_event_types(event_types)
        if is_active is not None:
            changes["is_active"] = _check_active(is_active)
        updated = self._queue.update(webhook_id, changes, utc_now())
        if updated is None:
            raise NotFoundError(f"webhook {webhook_id!r} not found", param="webhook_id", code="webhook_not_found")
        return self._with_counts([updated])[0]

    def delete(self, webhook_id: str) -> dict[str, str]:
        """The webhook and its queued deliveries."""
        self._require(webhook_id)
        self._queue.delete(webhook_id)
        return {"message": "Webhook deleted successfully"}

    # -- deliveries ------------------------------------------------------------------------------

    def deliveries(self, webhook_id: str | None = None, *, status: str | None = None, limit: int = 50,
                   attempts: bool = False) -> list[dict[str, Any]]:
        """Deliveries newest first (of one webhook, in one status), with each attempt when asked."""
        if webhook_id is not None:
            self._require(webhook_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(DELIVERY_STATUSES)}", param="status")
        found = self._queue.deliveries(webhook_id, status, check_limit(limit))
        return [d.to_dict(self._queue.attempts(d.id) if attempts else None) for d in found]

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        """One delivery with its body and every attempt."""
        found = self._queue.delivery(delivery_id) if isinstance(delivery_id, str) and delivery_id else None
        if found is None:
            raise NotFoundError(f"webhook delivery {delivery_id!r} not found", param="delivery_id", code="delivery_not_found")
        return found.to_dict(self._queue.attempts(found.id))

    def requeue(self, delivery_ids: Sequence[str] | None = None) -> int:
        """Dead deliveries (all, or these ids) sent again from their first attempt; how many."""
        return self._queue.requeue(list(delivery_ids) if delivery_ids is not None else None)

    # -- what a deliverer does ------------------------------------------------------------------

    @property
    def lease_seconds(self) -> float:
        """Long enough for one attempt and its bookkeeping."""
        return 2 * self.settings.timeout_seconds + 30.0

    def claim(self, owner: str) -> Delivery | None:
        """The next due delivery, leased to ``owner``, with its URL and secret; None if none."""
        return self._queue.claim(owner, self.lease_seconds)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones: doubling from
        ``retry_base_seconds``, capped at ``retry_max_seconds``, less up to a fifth at random
        (receivers that came back are not hit by every sender at the same instant)."""
        s = self.settings
        delay = min(s.retry_max_seconds, s.retry_base_seconds * (2 ** min(max(attempts - 1, 0), 40)))
        return delay * (1 - random.random() / 5)

    def finish(self, delivery: Delivery, *, status_code: int | None, error: str | None, duration_ms: float) -> str:
        """Record one attempt: a 2xx answer delivers it; otherwise it is due again after the
        backoff, or dead once ``max_attempts`` are spent. Returns the delivery's new status."""
        delivered = status_code is not None and 200 <= status_code < 300 and error is None
        attempts = delivery.attempts + 1
        retry_in = None if delivered or attempts >= self.settings.max_attempts else self.backoff(attempts)
        self._queue.finish(delivery, status_code=status_code, error=error, duration_ms=duration_ms, delivered=delivered,
                           retry_in=retry_in, keep_delivered_seconds=self.settings.delivered_kept_days * 86400)
        return "delivered" if delivered else ("pending" if retry_in is not None else "dead")

    def release(self, owner: str) -> int:
        """Give back ``owner``'s leases (a deliverer stopping): those deliveries are due at once."""
        return self._queue.release(owner)


__all__ = ["DELIVERY_HEADER", "EVENTS", "EVENT_HEADER", "IDEMPOTENCY_HEADER", "SIGNATURE_HEADER", "Webhooks", "check_event_types",
           "sign", "verify_signature"]
