"""SQL text the store modules build the same way: a list parameter's placeholders, and a
statement narrowed to some rows' ids. Written with ``?`` marks: each module's ``_sql`` turns
them into its driver's."""

from __future__ import annotations

from typing import Any, Sequence


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?``: one placeholder per value (callers never pass an empty list: ``IN ()`` is
    not SQL)."""
    return ", ".join("?" for _ in values)


def narrowed(where: str, params: list[Any], ids: Sequence[str] | None) -> tuple[str, list[Any]] | None:
    """``where`` and its ``params`` limited to the rows ``ids`` names (None: every row it
    matches); None when ``ids`` is empty, so the caller changes nothing (not every row)."""
    if ids is None:
        return where, params
    if not ids:
        return None
    return f"{where} AND id IN ({marks(ids)})", [*params, *ids]
