"""Query builder (API.md §6)."""

from __future__ import annotations

from typing import Any

from .session import session

__all__ = ["NOT_NULL", "Query"]

NOT_NULL = (None, None)


class Query:
    def __init__(self, model: Any, filters: Any = (), order_by: Any = None, limit: Any = None, select: Any = None) -> None:
        self._model = model


_ = session
