"""Index filter types and the query executor (API.md §8.1)."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from .encoding import MAX_PREFIX_SCORE

__all__ = ["GeneralIndex", "GeoIndex", "Geofilter", "MAX_PREFIX_SCORE", "Pattern", "Prefix", "Suffix"]

Prefix = namedtuple("Prefix", "attr prefix")
Suffix = namedtuple("Suffix", "attr suffix")
Pattern = namedtuple("Pattern", "attr pattern")
Geofilter = namedtuple("Geo", "name lon lat radius measure count")
GeoIndex = namedtuple("GeoIndex", "name callback")


class GeneralIndex:
    """Runs filter lists of one model namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"GeneralIndex({self.namespace!r})"

    def _unused(self) -> Any:  # placeholder removed when the executor lands
        return None
