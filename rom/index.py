"""Index filter types and the query planner/executor (API.md §8.1, STORAGE.md §8).

A query is a list of filters over one model's indexes.  :func:`compile_query` turns it into
a :class:`Plan`: the KEYS and the JSON argument of one call of ``rom/lua/query.lua``, which
estimates every filter's size, evaluates them smallest first into a temporary sorted set,
applies the ordering, and answers a count, a list of ids, a cached result key or a page of
entity data, all in one atomic step (one snapshot, one round trip).

Filter items (rom 1.x's ``GeneralIndex`` format):

* ``'col:token'`` -- the entity has that token (set ``<ns>:col:token:idx``);
* ``[ 'col:t1', 'col:t2', ...]`` -- any of the tokens (OR);
* ``('col', lo, hi)`` -- inclusive score range, ``None`` = open end;
* :class:`Prefix`, :class:`Suffix` (already reversed), :class:`Pattern` -- prefix index scans;
* :class:`Geofilter` -- radius search in a geo index.
"""

from __future__ import annotations

import json
import math
from collections import namedtuple
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .encoding import MAX_PREFIX_SCORE, _prefix_score, score_text
from .exceptions import QueryError
from .keys import KeySpace, is_cluster
from .writer import run_script

__all__ = [
    "MAX_PREFIX_SCORE",
    "GeneralIndex",
    "GeoIndex",
    "Geofilter",
    "Pattern",
    "Plan",
    "Prefix",
    "Suffix",
    "compile_query",
    "like_pattern",
    "run_plan",
]

Prefix = namedtuple("Prefix", "attr prefix")
Suffix = namedtuple("Suffix", "attr suffix")
Pattern = namedtuple("Pattern", "attr pattern")
Geofilter = namedtuple("Geo", "name lon lat radius measure count")  # type: ignore[name-match]
GeoIndex = namedtuple("GeoIndex", "name callback")

#: like() wildcards and their Lua pattern items
_WILDCARDS = {"?": ".?", "*": ".-", "+": ".+", "!": "."}
#: rom 1.x names of internals (API §8.1); the work is done by rom/lua/query.lua
SPECIAL = frozenset(_WILDCARDS)
_MIN_SCORE = repr(_prefix_score(""))


def like_pattern(pattern: str) -> tuple[str, str]:
    """The literal prefix and the anchored Lua pattern of a ``like()`` pattern.

    Wildcards: ``?`` zero or one byte, ``*`` zero or more (shortest), ``+`` one or more,
    ``!`` exactly one.  Every other character is literal (ASCII punctuation is escaped with
    ``%``, NUL becomes ``%z``), fixing rom 1.x's broken escaping (API §6.3, bugs 13/14).

    :returns: ``(literal, lua_pattern)``; ``literal`` is the text before the first wildcard
    """
    out = ["^"]
    literal: list[str] = []
    in_literal = True
    for ch in pattern:
        item = _WILDCARDS.get(ch)
        if item is not None:
            in_literal = False
            out.append(item)
            continue
        if in_literal:
            literal.append(ch)
        if ch == "\0":
            out.append("%z")
        elif ord(ch) < 128 and not ch.isalnum():
            out.append("%" + ch)
        else:
            out.append(ch)
    return "".join(literal), "".join(out)


def _prefix_bounds(prefix: str) -> tuple[str, str]:
    """Score range ``[lo, hi)`` of the prefix-index entries that may start with ``prefix``.

    Scores only see 7 bytes, so longer prefixes are checked byte-wise by the script.  An
    empty prefix scans to ``+inf``: rom 1.x's ``MAX_PREFIX_SCORE`` misses entries whose
    first byte is above 0xC3 (bug 15).
    """
    raw = prefix.encode("utf-8")[:7]
    if not raw:
        return _MIN_SCORE, "+inf"
    return repr(_prefix_score(raw)), repr(_prefix_score(raw, next=True))


def _bound(value: Any, open_end: str) -> str:
    """Score text of a range endpoint (``None`` = open)."""
    if value is None:
        return open_end
    if isinstance(value, bool):
        raise QueryError(f"Invalid range endpoint {value!r}")
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        if isinstance(value, Decimal) and value.is_nan():
            raise QueryError("NaN is not a valid range endpoint")
        return score_text(value)
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise QueryError(f"Invalid range endpoint {value!r:.100}") from err
    if math.isnan(number):
        raise QueryError("NaN is not a valid range endpoint")
    return repr(number)


class Plan:
    """One compiled ``query.lua`` call: KEYS (``[T, U, index keys...]``) and the plan.

    ``spec`` is the plan document (see the header of ``rom/lua/query.lua``); ``args`` is
    what the script receives in ARGV.
    """

    __slots__ = ("_index", "keys", "spec")

    def __init__(self, temp: str, scratch: str) -> None:
        self.keys: list[str] = [temp, scratch]
        self._index: dict[str, int] = {}
        self.spec: dict[str, Any] = {"f": []}

    @property
    def temp(self) -> str:
        """Name of the temporary result key T."""
        return self.keys[0]

    def key(self, name: str) -> int:
        """1-based KEYS position of ``name`` (added once)."""
        pos = self._index.get(name)
        if pos is None:
            self.keys.append(name)
            pos = self._index[name] = len(self.keys)
        return pos

    @property
    def args(self) -> list[str]:
        """ARGV of the call."""
        return [json.dumps(self.spec, ensure_ascii=False, separators=(",", ":"))]

    def __repr__(self) -> str:
        return f"<Plan keys={self.keys!r} spec={self.spec!r}>"


def _step(plan: Plan, ks: KeySpace, item: Any) -> dict[str, Any]:
    """The plan step of one filter item (QueryError for anything unknown)."""
    if isinstance(item, (Prefix, Suffix)):
        # a suffix filter is a prefix scan of the reversed entries in the suffix index
        text = item[1]
        index = ks.prefix_index if isinstance(item, Prefix) else ks.suffix_index
        lo, hi = _prefix_bounds(text)
        return {"t": "p", "k": plan.key(index(item.attr)), "lo": lo, "hi": hi, "s": text}
    if isinstance(item, Pattern):
        literal, pattern = like_pattern(item.pattern)
        lo, hi = _prefix_bounds(literal)
        return {
            "t": "l",
            "k": plan.key(ks.prefix_index(item.attr)),
            "lo": lo,
            "hi": hi,
            "s": pattern,
        }
    if isinstance(item, Geofilter):
        if str(item.measure).lower() not in ("m", "km", "mi", "ft"):
            raise QueryError(f"Invalid geo measure {item.measure!r:.100}")
        step: dict[str, Any] = {
            "t": "g",
            "k": plan.key(ks.geo(item.name)),
            "lon": repr(float(item.lon)),
            "lat": repr(float(item.lat)),
            "r": repr(float(item.radius)),
            "u": str(item.measure).lower(),
        }
        if item.count:
            step["n"] = int(item.count)
        return step
    if isinstance(item, str):
        if ":" not in item:
            raise QueryError(f"Invalid filter {item!r:.100}: expected 'column:token'")
        return {"t": "s", "k": plan.key(ks.token(item))}
    if isinstance(item, list):
        if not item or not all(isinstance(t, str) and ":" in t for t in item):
            raise QueryError(f"Invalid list filter {item!r:.100}")
        keys = sorted({plan.key(ks.token(t)) for t in item})
        if len(keys) == 1:
            return {"t": "s", "k": keys[0]}
        return {"t": "u", "k": keys}
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str):
        return {
            "t": "r",
            "k": plan.key(ks.score(item[0])),
            "lo": _bound(item[1], "-inf"),
            "hi": _bound(item[2], "+inf"),
        }
    raise QueryError(f"Unknown filter {item!r:.100}")


def compile_query(
    ks: KeySpace,
    filters: Sequence[Any],
    order_by: str | None = None,
    expiry: tuple[str, float | None] | None = None,
) -> Plan:
    """Plan the filters and ordering of a query over the keys of ``ks``.

    :param expiry: optional ``(expiry_zset_key, now)``: entities whose expiry time is
        ``<= now`` are left out of results and counts (``now=None``: the server's clock)
    :returns: a :class:`Plan` whose ``spec`` still needs the mode (``m``) and paging fields
    """
    plan = Plan(ks.temp(), ks.temp())
    plan.spec["f"] = [_step(plan, ks, item) for item in filters]
    if order_by:
        if not isinstance(order_by, str):
            raise QueryError(f"Invalid order_by {order_by!r:.100}")
        desc = order_by.startswith("-")
        name = order_by[1:] if desc else order_by
        if not name:
            raise QueryError("Empty order_by column name")
        plan.spec["o"] = {"k": plan.key(ks.score(name)), "d": -1 if desc else 1}
    if expiry is not None:
        check: dict[str, Any] = {"k": plan.key(expiry[0])}
        if expiry[1] is not None:
            check["now"] = repr(float(expiry[1]))
        plan.spec["x"] = check
    return plan


def run_plan(conn: Any, plan: Plan) -> Any:
    """Run a compiled plan (one round trip); Redis refusals become rom exceptions."""
    return run_script(conn, "query", plan.keys, plan.args)


class GeneralIndex:
    """Runs filter lists over the indexes of one model namespace (rom 1.x's executor)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"GeneralIndex({self.namespace!r})"

    def _keyspace(self, conn: Any) -> KeySpace:
        return KeySpace(self.namespace, cluster=is_cluster(conn))

    def search(
        self,
        conn: Any,
        filters: Sequence[Any],
        order_by: str | None,
        offset: int | None = None,
        count: int | None = None,
        timeout: int | None = None,
    ) -> Any:
        """Ids matching ``filters`` ordered by ``order_by`` (``'col'``/``'-col'``/None).

        :param offset: ranks to skip; :param count: at most this many ids
        :param timeout: when given, keep the whole result (ids -> scores) in a temporary
            sorted set expiring after ``timeout`` seconds and return its name instead
        :returns: list of ids as Redis returns them, or the result key name
        """
        plan = compile_query(self._keyspace(conn), filters, order_by)
        if timeout is not None:
            ttl = int(timeout)
            if ttl < 1:
                raise QueryError("Timeout must be at least 1 second")
            plan.spec.update(m="cache", ttl=ttl)
            run_plan(conn, plan)
            return plan.temp
        start = max(int(offset or 0), 0)
        plan.spec.update(m="ids", off=start, n=-1 if count is None else max(int(count), 0))
        return run_plan(conn, plan)

    def count(self, conn: Any, filters: Sequence[Any]) -> int:
        """Number of entities matching ``filters``."""
        plan = compile_query(self._keyspace(conn), filters)
        plan.spec["m"] = "count"
        return int(run_plan(conn, plan))
