"""mem0 Platform's batch edits, feedback and webhooks as ``Memory`` methods (mixed into it, so
the engine's own module stays about adding, recalling and reading memories).

- ``batch_update(memories)`` / ``batch_delete(memories)``: up to 1,000 memories, all or nothing,
  one transaction (memlane.engine.batch).
- ``feedback(memory_id, feedback, feedback_reason)``: POSITIVE / NEGATIVE / VERY_NEGATIVE (or
  None, withdrawn) with an optional reason, every one kept; ``get_feedback(memory_id)`` lists them.
- ``create_webhook`` / ``get_webhooks`` / ``update_webhook`` / ``delete_webhook`` and
  ``webhook_deliveries``: this store's webhooks (memlane.engine.webhooks); their deliveries are
  queued with each memory change and sent by ``memlane serve``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

from memlane.engine import batch
from memlane.engine.validation import check_encodable
from memlane.engine.webhooks import Webhooks
from memlane.errors import ConfigError, NotFoundError, ValidationError
from memlane.records import utc_now
from memlane.stores.feedback import FEEDBACK_VALUES, FeedbackLog

if TYPE_CHECKING:
    import numpy as np

    from memlane.config import MemlaneConfig
    from memlane.records import MemoryRecord
    from memlane.stores.base import MemoryStore

#: longest feedback reason
MAX_REASON_CHARS = 2000
#: the methods ``AsyncMemory`` mirrors with ``await``
LIFECYCLE_METHODS = ("batch_update", "batch_delete", "feedback", "get_feedback", "create_webhook", "get_webhooks",
                     "update_webhook", "delete_webhook", "webhook_deliveries")


def check_feedback(value: Any) -> str | None:
    """mem0's feedback values, any case; None withdraws a feedback."""
    if value is None:
        return None
    upper = value.upper() if isinstance(value, str) else value
    if upper not in FEEDBACK_VALUES:
        raise ValidationError(f"feedback must be one of {', '.join(FEEDBACK_VALUES)} or null, got {value!r}", param="feedback",
                              code="invalid_feedback")
    return str(upper)


def check_reason(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON_CHARS:
        raise ValidationError(f"feedback_reason must be a string of at most {MAX_REASON_CHARS} characters", param="feedback_reason")
    check_encodable(value, "feedback_reason")
    return value


class LifecycleMethods:
    """Mixed into ``Memory``: what it provides these methods with."""

    if TYPE_CHECKING:
        store: MemoryStore
        config: MemlaneConfig

        def _embed(self, texts: Sequence[str]) -> np.ndarray: ...
        def _require(self, memory_id: str) -> MemoryRecord: ...

    # -- batch edits ----------------------------------------------------------------------------

    def batch_update(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        """Update up to 1,000 memories at once, all or nothing: each ``{"memory_id", "text"?,
        "metadata"?}``. ``{"message", "results": [{"id", "memory", "event", "previous_memory"}]}``."""
        return batch.batch_update(self.store, self._embed, self.config, memories)

    def batch_delete(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        """Delete up to 1,000 memories at once, all or nothing: each ``{"memory_id"}``."""
        return batch.batch_delete(self.store, memories)

    # -- feedback -------------------------------------------------------------------------------

    @property
    def _feedback_log(self) -> FeedbackLog:
        log = getattr(self.store, "feedback", None)
        if log is None:
            raise ConfigError(f"the {type(self.store).__name__} store keeps no feedback", param="vector_store.provider")
        return log  # type: ignore[no-any-return]

    def feedback(self, memory_id: str, feedback: str | None = None, feedback_reason: str | None = None) -> dict[str, Any]:
        """Record feedback on a memory (mem0's ``feedback``): ``{"id", "memory_id", "feedback",
        "feedback_reason", "created_at"}``. Each call adds a row; the latest is the current one."""
        record = self._require(memory_id)
        value, reason = check_feedback(feedback), check_reason(feedback_reason)
        return self._feedback_log.add(record.id, value, reason, utc_now()).to_dict()

    def get_feedback(self, memory_id: str) -> list[dict[str, Any]]:
        """Every feedback given on a memory, oldest first (also after it was deleted)."""
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError("memory_id must be a non-empty string", param="memory_id")
        rows = self._feedback_log.of(memory_id)
        if not rows and self.store.get(memory_id) is None:
            raise NotFoundError(f"memory {memory_id!r} not found", param="memory_id")
        return [r.to_dict() for r in rows]

    # -- webhooks -------------------------------------------------------------------------------

    @functools.cached_property
    def webhooks(self) -> Webhooks:
        """This store's webhooks, checked as ``server.webhooks`` says (memlane.engine.webhooks)."""
        return Webhooks(self.store, self.config.server.webhooks)

    def create_webhook(self, url: str, name: str | None = None, event_types: list[str] | None = None,
                       is_active: bool = True) -> dict[str, Any]:
        """A webhook for this store's memory changes (``memory_add``, ``memory_update``,
        ``memory_delete``; default all). Its ``secret`` signs each delivery."""
        return self.webhooks.create(url=url, name=name, event_types=event_types, is_active=is_active)

    def get_webhooks(self) -> list[dict[str, Any]]:
        return self.webhooks.list()

    def update_webhook(self, webhook_id: str, name: str | None = None, url: str | None = None,
                       event_types: list[str] | None = None, is_active: bool | None = None) -> dict[str, Any]:
        return self.webhooks.update(webhook_id, url=url, name=name, event_types=event_types, is_active=is_active)

    def delete_webhook(self, webhook_id: str) -> dict[str, str]:
        return self.webhooks.delete(webhook_id)

    def webhook_deliveries(self, webhook_id: str | None = None, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Deliveries newest first, each with its attempts."""
        return self.webhooks.deliveries(webhook_id, status=status, limit=limit, attempts=True)


__all__ = ["LIFECYCLE_METHODS", "LifecycleMethods", "check_feedback"]
