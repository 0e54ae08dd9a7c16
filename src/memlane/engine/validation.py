"""The checks every way in shares: the client, the server's memlane, mem0 and chat routes, import,
exchanges and the CLI all reach the engine through these, so a limit that holds on one holds on
all of them.

What is checked, and why:

- **Scope ids**: at most ``MAX_SCOPE_ID_CHARS``, not blank, no control characters (C0, DEL, C1),
  line or paragraph separators or lone surrogates. The store's scope key joins the three ids
  with ``\\x1f``; with control characters refused, no id can contain it, so two scopes never
  share a key (user ``a\\x1f`` + agent ``b`` vs user ``a`` + agent ``\\x1fb``).
- **Text** that becomes a memory: a string of at most ``server.max_memory_chars`` characters
  (every later chat of its scope sends it upstream), encodable as UTF-8.
- **Anything else that is stored or sent on** (metadata, chat messages): encodable as UTF-8. A
  lone surrogate (``"\\ud800"``, which JSON allows as an escape) cannot be written to a store,
  an embedder or a model server; refused here it is a 400 naming the field instead of a 5xx
  from wherever it first meets an encoder.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any, Mapping

from memlane.errors import ScopeError, ValidationError
from memlane.query.filters import SCOPE_FIELDS, Filter, parse_filters, split_scope
from memlane.records import Scope

#: longest user/agent/run id (ids are keys, not documents)
MAX_SCOPE_ID_CHARS = 256
_NOT_IN_IDS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def check_scope_id(field: str, value: Any) -> str | None:
    """A scope id as given, or None; ``ValidationError``/``ScopeError`` naming ``field`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}", param=field)
    if value == "":
        raise ScopeError(f"{field} must not be empty", param=field)
    if not value.strip():
        raise ScopeError(f"{field} must not be blank (got {len(value)} whitespace characters)", param=field)
    if len(value) > MAX_SCOPE_ID_CHARS:
        raise ValidationError(f"{field} is {len(value)} characters long; scope ids are at most {MAX_SCOPE_ID_CHARS}", param=field)
    bad = _NOT_IN_IDS.search(value)
    if bad:
        raise ValidationError(f"{field} must not contain control characters, line separators or lone surrogates "
                              f"(found U+{ord(bad.group()):04X} at position {bad.start()})", param=field)
    return value


def resolve_scope(
    user_id: str | None, agent_id: str | None, run_id: str | None, filters: Mapping[str, Any] | None, *, required: str | None
) -> tuple[Scope, Filter | None]:
    """Merge keyword scope ids with those given inside ``filters`` (mem0 2.x style)."""
    from_filters, rest = split_scope(filters)
    given = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
    for field in SCOPE_FIELDS:
        value = check_scope_id(field, given[field])
        other = check_scope_id(field, from_filters.get(field))
        if value is not None and other is not None and other != value:
            raise ScopeError(f"{field} is {value!r} but filters say {other!r}", param=field)
        given[field] = value or other
    scope = Scope(**given)
    if required and scope.is_empty():
        raise ScopeError(
            f"{required} needs a scope: pass at least one of user_id, agent_id or run_id "
            '(as keyword arguments or inside filters, e.g. filters={"user_id": "alice"})',
            param="user_id",
        )
    check_encodable(rest, "filters")
    return scope, parse_filters(rest)


def check_limit(limit: Any, name: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"{name} must be a positive integer, got {limit!r}", param=name)
    return limit


def resolve_limit(limit: Any, top_k: Any, default: int) -> int:
    """``limit`` and mem0's ``top_k`` are two names for one setting: one of them, checked."""
    if limit is not None and top_k is not None and limit != top_k:
        raise ValidationError("limit and top_k are two names for one setting; pass one", param="limit")
    if limit is None and top_k is not None:
        return check_limit(top_k, "top_k")
    return check_limit(limit if limit is not None else default)


def check_max_limit(n: int, maximum: int, *, top_k: bool = False) -> int:
    """The one documented maximum of ``limit``/``top_k`` (``server.max_limit``, 1,000 by
    default) in every face: the server refuses more, and so does the engine, rather than one
    face answering what the other refuses (or cutting silently what was asked for)."""
    if n > maximum:
        name = "top_k" if top_k else "limit"
        raise ValidationError(f"{name} must be at most {maximum} (server.max_limit), got {n}", param=name)
    return n


def check_timestamp(timestamp: Any) -> str | None:
    """When a conversation happened, as memlane stores times (ISO 8601 UTC, microseconds).
    Accepts what mem0's Platform ``add`` takes (Unix seconds), ISO 8601 text or a datetime;
    text or a datetime without a zone is read as UTC."""
    if timestamp is None:
        return None
    if isinstance(timestamp, bool):
        raise ValidationError("timestamp must be Unix seconds, ISO 8601 text or a datetime, not a boolean", param="timestamp")
    try:
        if isinstance(timestamp, (int, float)):
            when = _dt.datetime.fromtimestamp(float(timestamp), _dt.timezone.utc)
        elif isinstance(timestamp, str):
            when = _dt.datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
        elif isinstance(timestamp, _dt.datetime):
            when = timestamp
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValidationError(f"timestamp {timestamp!r:.80} is not Unix seconds, ISO 8601 text or a datetime", param="timestamp") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


def check_expiration_date(value: Any, field: str = "expiration_date") -> str | None:
    """When a memory stops being recalled, as memlane stores it: a date (``YYYY-MM-DD`` text or
    a ``date``, as mem0's Platform takes it: the memory is kept through that whole day, UTC) or
    a datetime (ISO 8601 text or a ``datetime``; without a zone, UTC). None: it never expires.
    A date in the past is taken (an import, or a memory that should not be recalled at all)."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        when = value
    elif isinstance(value, _dt.date):
        return value.isoformat()
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if len(text) == 10:
                return _dt.date.fromisoformat(text).isoformat()
            when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{field} {value!r:.80} is not a date (YYYY-MM-DD) or an ISO 8601 datetime", param=field) from None
    else:
        raise ValidationError(f"{field} must be a date (YYYY-MM-DD) or an ISO 8601 datetime, got {type(value).__name__}", param=field)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    try:
        return when.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")
    except OverflowError:
        raise ValidationError(f"{field} {value!r:.80} is out of range", param=field) from None


def check_flag(value: Any, field: str, *, optional: bool = False) -> bool | None:
    """A true/false option (``None`` allowed when ``optional``), else a 400 naming it."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be true or false, got {value!r:.80}", param=field)
    return value


def check_metadata(metadata: Any, max_bytes: int | None = None) -> dict[str, Any]:
    """An object, encodable, and (given ``max_bytes``) no larger than that as JSON."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata must be an object, got {type(metadata).__name__}", param="metadata")
    size = check_encodable(metadata, "metadata")
    if max_bytes is not None and size > max_bytes:
        raise ValidationError(f"metadata is larger than {max_bytes} bytes (server.max_metadata_bytes)", param="metadata",
                              code="metadata_too_large")
    return dict(metadata)


def check_text(text: Any, field: str, max_chars: int) -> str:
    """Text that becomes a memory: a string, at most ``max_chars`` long, encodable."""
    if not isinstance(text, str):
        raise ValidationError(f"{field} must be a string, got {type(text).__name__}", param=field)
    if len(text) > max_chars:
        raise ValidationError(f"{field} is {len(text)} characters long; a memory is at most {max_chars} "
                              "(server.max_memory_chars)", param=field, code="text_too_long")
    _encodable_text(text, field)
    return text


def _encodable_text(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{field} is not valid Unicode text: a lone surrogate U+{ord(text[exc.start]):04X} at "
                              f"position {exc.start} (an unpaired \\ud800-\\udfff escape)", param=field) from None


def check_encodable(value: Any, field: str) -> int:
    """Refuse a lone surrogate anywhere in a JSON-like value (keys too); returns its size as
    compact UTF-8 JSON. Non-JSON leaves (a datetime in metadata) count as their ``str``."""
    if value is None:
        return 0
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(f"{field} is not valid Unicode text: it holds a lone surrogate (an unpaired "
                              "\\ud800-\\udfff escape)", param=field) from None
