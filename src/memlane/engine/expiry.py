"""Expiry at read time: an expired memory is left out of searches, lists and recall unless they
ask for it (``show_expired``), with no background job and nothing deleted (mem0's Platform
semantics: ``get`` by id still returns it, and clearing its ``expiration_date`` brings it back).

The store applies it as one more filter (``Unexpired``), inside its search, before the
candidate cut, so a search asked for ``limit`` memories still gets ``limit`` unexpired ones
however many expired ones would have ranked above them. The filter is added only when the
scope holds an expired memory at all (``MemoryStore.has_expired``, one probe of a partial
index): a scope without one is searched exactly as before, through its in-process vector and
keyword caches with no filter to apply.
"""

from __future__ import annotations

from memlane.engine.validation import check_flag
from memlane.query.filters import Filter, Unexpired, all_of
from memlane.records import Scope, utc_now
from memlane.stores.base import MemoryStore


def visible(store: MemoryStore, scope: Scope, filters: Filter | None, show_expired: bool) -> Filter | None:
    """``filters``, narrowed to the memories not expired now unless ``show_expired``."""
    if check_flag(show_expired, "show_expired"):
        return filters
    now = utc_now()
    if not store.has_expired(scope, now):
        return filters
    return all_of(filters, Unexpired(now))
