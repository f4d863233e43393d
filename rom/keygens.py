"""Index key generators (API.md §7.2, §8.2).

A keygen turns a column value into index entries: a list of tokens (token, prefix and suffix
entries) or a dict (``''`` -> main score, ``k`` -> sub-score, ``k`` -> ``None`` token).  The
built-in ones reproduce rom 1.x's output exactly; their ``__name__`` matters, because
queries lowercase their arguments for the case-insensitive ones.
"""

from __future__ import annotations

import datetime
import string
from decimal import Decimal
from typing import Any

from .encoding import _prefix_score, dt2ts, score_text, t2ts

__all__ = [
    "CASE_INSENSITIVE",
    "FULL_TEXT",
    "IDENTITY",
    "IDENTITY_CI",
    "IDENTITY_STRING",
    "IDENTITY_STRING_CI",
    "SIMPLE",
    "SIMPLE_CI",
    "STRING_INDEX_KEYGENS",
    "STRING_INDEX_KEYGENS_STR",
    "STRING_SORT_KEYGENS",
    "STRING_SORT_KEYGENS_STR",
    "_string_keygen",
]

_PUNCT = string.punctuation


def _text(val: Any) -> str:
    if isinstance(val, bytes):
        return val.decode("latin-1")
    if isinstance(val, str):
        return val
    return str(val)


def FULL_TEXT(val: Any) -> list[str] | None:
    """Words of the value: whitespace-split, lowercased, ASCII punctuation stripped, sorted."""
    if isinstance(val, float):
        val = repr(val)
    elif val is None or val == "":
        return None
    else:
        val = _text(val)
    words = {w for w in (piece.lower().strip(_PUNCT) for piece in val.split()) if w}
    return sorted(words)


def SIMPLE(val: Any) -> dict[str, float] | None:
    """Sort score of the first 7 bytes of the value (case-sensitive)."""
    if not val:
        return None
    return {"": _prefix_score(_text(val))}


def SIMPLE_CI(val: Any) -> dict[str, float] | None:
    """Sort score of the first 7 bytes of the lowercased value."""
    if not val:
        return None
    return SIMPLE(_text(val).lower())


def CASE_INSENSITIVE(val: Any) -> dict[str, float] | None:
    """Same as :func:`SIMPLE_CI` (its older name, kept as a distinct function)."""
    if not val:
        return None
    return SIMPLE(_text(val).lower())


def IDENTITY(val: Any) -> list[Any] | None:
    """The whole value as one token (exact-match index)."""
    if not val:
        return None
    if not isinstance(val, (str, bytes)):
        val = str(val)
    return [val]


def IDENTITY_CI(val: Any) -> list[Any] | None:
    """The whole lowercased value as one token (case-insensitive exact match)."""
    if not val:
        return None
    if not isinstance(val, (str, bytes)):
        val = str(val)
    return IDENTITY(val.lower())


def IDENTITY_STRING(val: Any) -> list[bytes] | None:
    """The whole ``bytes`` value as one token (exact match for ``String`` columns)."""
    if not val:
        return None
    if not isinstance(val, bytes):
        val = _text(val).encode("latin-1")
    return [val]


def IDENTITY_STRING_CI(val: Any) -> list[bytes] | None:
    """The whole ``bytes`` value, ASCII-lowercased, as one token."""
    if not val:
        return None
    if not isinstance(val, bytes):
        val = _text(val).encode("latin-1")
    return [val.lower()]


def _numeric_keygen(val: Any) -> dict[str, str] | None:
    """Default keygen of numeric columns: the value as the main score."""
    if val is None:
        return None
    if isinstance(val, (datetime.datetime, datetime.date)):
        val = dt2ts(val)
    elif isinstance(val, datetime.time):
        val = t2ts(val)
    elif isinstance(val, bool):
        val = int(val)
    elif not isinstance(val, (int, float, Decimal)):
        val = float(val)
    return {"": score_text(val)}


def _boolean_keygen(val: Any) -> list[str]:
    """Default keygen of ``Boolean`` columns: a ``True``/``False`` token."""
    return ["True" if val else "False"]


_string_keygen = FULL_TEXT

STRING_INDEX_KEYGENS = (FULL_TEXT, SIMPLE, SIMPLE_CI, IDENTITY, IDENTITY_CI, CASE_INSENSITIVE)
STRING_INDEX_KEYGENS_STR = "FULL_TEXT, SIMPLE, SIMPLE_CI, IDENTITY, IDENTITY_CI, CASE_INSENSITIVE"
STRING_SORT_KEYGENS = (SIMPLE, SIMPLE_CI, CASE_INSENSITIVE)
STRING_SORT_KEYGENS_STR = "SIMPLE, SIMPLE_CI, CASE_INSENSITIVE"

#: keygen names whose query arguments are lowercased (rom's list plus IDENTITY_STRING_CI).
LOWERCASE_KEYGEN_NAMES = frozenset(
    {"FULL_TEXT", "SIMPLE_CI", "CASE_INSENSITIVE", "IDENTITY_CI", "IDENTITY_STRING_CI"}
)
#: dict keygens whose whole value makes the prefix/suffix entry.
SORT_KEYGEN_NAMES = frozenset({"SIMPLE", "SIMPLE_CI", "CASE_INSENSITIVE"})
#: keygens whose bytes tokens are Latin-1 (not UTF-8) text, matching the query side.
LATIN1_KEYGEN_NAMES = frozenset({"IDENTITY_STRING", "IDENTITY_STRING_CI"})
