"""Value encodings shared by columns, keygens and indexes (STORAGE.md §1, §3, §4.6-4.7).

These are pure functions: every byte they produce must match what rom 1.x writes, because
data written by either side has to stay readable, queryable and race-checkable by the other.
"""

from __future__ import annotations

import datetime
import math
import struct
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_PREFIX_SCORE",
    "_bigint_to_float",
    "_encode_unique_constraint",
    "_prefix_score",
    "_to_score",
    "dt2ts",
    "latin1_text",
    "score_text",
    "t2ts",
    "to_text",
    "ts2dt",
    "ts2t",
]

_epoch = datetime.datetime(1970, 1, 1)
_epochd = _epoch.date()
_UTC = datetime.timezone.utc


def to_text(value: bytes | str) -> str:
    """Decode a Redis reply item (bytes, or str under ``decode_responses=True``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def latin1_text(value: bytes) -> str:
    """Map bytes to text one code point per byte (rom's "Latin-1→UTF-8 transcoding")."""
    return value.decode("latin-1")


def dt2ts(value: datetime.datetime | datetime.date) -> float:
    """Seconds since 1970-01-01 of a naive datetime or a date (its midnight)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC).replace(tzinfo=None)
        delta = value - _epoch
    else:
        delta = datetime.datetime(value.year, value.month, value.day) - _epoch
    return delta.days * 86400 + delta.seconds + delta.microseconds / 1e6


def ts2dt(value: float) -> datetime.datetime:
    """Naive UTC datetime for seconds since 1970-01-01 (``utcfromtimestamp`` semantics)."""
    return datetime.datetime.fromtimestamp(float(value), _UTC).replace(tzinfo=None)


def t2ts(value: datetime.time) -> float:
    """Seconds since midnight of a time (tzinfo ignored)."""
    return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6


def ts2t(value: float) -> datetime.time:
    """Time for seconds since midnight, rounded to the nearest microsecond.

    rom 1.x truncates here and loses 1 µs on about half of all values; rounding reads the
    same stored text back exactly.
    """
    total_us = round(float(value) * 1_000_000)
    total_us = min(max(total_us, 0), 86400 * 1_000_000 - 1)
    seconds, us = divmod(total_us, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return datetime.time(hours, minutes, seconds, us)


def score_text(value: Any) -> str:
    """Text Redis parses as a sorted-set score: ``repr`` of floats, ``str`` of others."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _to_score(v: Any, s: bool = False) -> Any:
    """Numeric score of a value (dates and times become seconds); ``s=True`` gives its text."""
    if isinstance(v, (datetime.datetime, datetime.date)):
        v = dt2ts(v)
    elif isinstance(v, datetime.time):
        v = t2ts(v)
    elif isinstance(v, (str, bytes)):
        v = float(v)
    if s:
        return score_text(v)
    return v


def _bigint_to_float(v: int) -> float:
    """The IEEE-754 double whose bit pattern is ``v + 2**52`` (exact, order-preserving)."""
    return float(struct.unpack("<d", struct.pack("<Q", (v + (1 << 52)) & 0xFFFFFFFFFFFFFFFF))[0])


def _prefix_score(v: str | bytes, next: bool = False) -> float:
    """Order-preserving score of the first 7 bytes of ``v`` (STORAGE.md §4.7)."""
    if isinstance(v, str):
        v = v.encode("utf-8")
    n = 0
    for byte in v[:7]:
        n = n * 258 + byte + 1
    if next:
        n += 1
    if len(v) < 7:
        n *= 258 ** (7 - len(v))
    return _bigint_to_float(n)


MAX_PREFIX_SCORE = _prefix_score("\xff" * 7, next=True)


def _encode_unique_constraint(data: Any) -> str:
    """Field text of a composite unique index: the stored texts of the (sorted) columns."""
    pieces = [b"\0\0" + (d if isinstance(d, bytes) else str(d).encode("utf-8")) for d in data]
    return b"\0".join(pieces).decode("latin-1")


def is_finite_number(value: Any) -> bool:
    """True unless ``value`` is a NaN (which Redis cannot use as a score)."""
    if isinstance(value, float):
        return not math.isnan(value)
    if isinstance(value, Decimal):
        return not value.is_nan()
    return True
