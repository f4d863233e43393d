"""Query builder and executor (API.md §6).

A :class:`Query` is immutable: every method returns a new one.  Executing it runs one Lua
call per page (``rom/lua/query.lua``): the filters are intersected on the server, smallest
first, the result is ordered and paged, and the page's entity data comes back in the same
reply.  So ``first()``, ``count()`` and ``all()`` of one page are one round trip each, and
each page sees one consistent snapshot of the data.

Example::

    q = Post.query.filter(title='redis', score=(10, None)).order_by('-score')
    top = q.limit(0, 20).all()
    n = q.count()
    rows = Post.query.startswith(title='red').select('title', ff=_tuple_data_factory).all()

Entity expiry hook: when a model has a truthy ``_has_expiry`` attribute, every query also
passes the model's expiry index (``KeySpace.expiry()``: a zset pk -> unix expiry time) and
the current time; entities whose expiry time has passed are left out of results and counts
(bare ``count()`` stays rom's id-counter estimate).
"""

from __future__ import annotations

import datetime
import decimal
import json
import warnings
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from redis.exceptions import RedisError

from .columns import Json, ManyToOne, OneToMany, String, Text, UnsafeColumn, _Ref
from .encoding import _prefix_score, _to_score, to_text
from .exceptions import InvalidColumnValue, QueryError
from .index import Geofilter, Pattern, Plan, Prefix, Suffix, compile_query, run_plan
from .keygens import LOWERCASE_KEYGEN_NAMES, SORT_KEYGEN_NAMES
from .keys import KeySpace
from .session import session
from .writer import run_script

if TYPE_CHECKING:
    from .model import Model

__all__ = [
    "ALLOWED_DIST",
    "NOT_NULL",
    "NUMERIC_TYPES",
    "Query",
    "_dict_data_factory",
    "_list_data_factory",
    "_namedtuple_data_factory",
    "_tuple_data_factory",
    "session",
]

#: ``filter(col=NOT_NULL)``: any value (only ManyToOne/OneToOne columns); identity matters
NOT_NULL = (None, None)
NUMERIC_TYPES = (
    int,
    float,
    decimal.Decimal,
    datetime.datetime,
    datetime.date,
    datetime.time,
)
ALLOWED_DIST = ("m", "km", "mi", "ft")

#: the model a query returns (``Any`` after :meth:`Query.select`: rows, not entities)
M = TypeVar("M", bound="Model")

#: entities per round trip of ``all()`` (iteration uses ``pagesize``)
ALL_PAGESIZE = 1000
#: ids a bare iteration examines per round trip at most
_BARE_BLOCK = 1000


def _dict_data_factory(columns: Sequence[str]) -> Callable[[list[Any]], dict[str, Any]]:
    """Row factory of ``select()``: ``{column: value}`` (the default)."""
    names = list(columns)

    def make(values: list[Any]) -> dict[str, Any]:
        return dict(zip(names, values, strict=False))

    return make


def _list_data_factory(columns: Sequence[str]) -> Callable[[list[Any]], list[Any]]:
    """Row factory of ``select()``: the list of values."""

    def make(values: list[Any]) -> list[Any]:
        return values

    return make


def _tuple_data_factory(columns: Sequence[str]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """Row factory of ``select()``: a tuple of values."""
    return tuple


def _namedtuple_data_factory(columns: Sequence[str]) -> Callable[[list[Any]], Any]:
    """Row factory of ``select()``: a namedtuple named after the columns joined by ``_``
    (field names with leading underscores stripped)."""
    row = namedtuple("_".join(columns), [c.lstrip("_") for c in columns])  # type: ignore[misc]

    def make(values: list[Any]) -> Any:
        return row(*values)

    return make


_Select = namedtuple("_Select", "columns include_pk decode ff")


# -- filter value normalisation -------------------------------------------------------------
def _keygen_name(model: Any, base: str) -> str:
    col = model._columns[base]
    name = col._keygen_name() if hasattr(col, "_keygen_name") else ""
    return str(name)


def _index_text(model: Any, base: str, value: str | bytes) -> str:
    """The index text of a filter value: bytes are Latin-1 text (STORAGE §4.1); values are
    lowercased for case-insensitive keygens (including ``IDENTITY_STRING_CI``, bug 16)."""
    name = _keygen_name(model, base)
    if name in ("IDENTITY_STRING", "IDENTITY_STRING_CI"):
        raw: bytes | None
        if isinstance(value, bytes):
            raw = value
        else:
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                raw = None
        if raw is not None:
            if name == "IDENTITY_STRING_CI":
                raw = raw.lower()
            return raw.decode("latin-1")
        return value if isinstance(value, str) else value.decode("latin-1")
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if name in LOWERCASE_KEYGEN_NAMES:
        text = text.lower()
    return text


def _token(model: Any, base: str, value: Any) -> str:
    """Token text of a filter value or list item."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (str, bytes)):
        return _index_text(model, base, value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    raise QueryError(f"Sorry, we don't know how to filter {base!r} by {value!r:.100}")


def _endpoint(value: Any) -> Any:
    """Score of a range endpoint (``None`` stays open)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise QueryError(f"Invalid range endpoint {value!r}")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return _to_score(value)
    if isinstance(value, (int, float, decimal.Decimal)):
        if isinstance(value, float) and value != value:
            raise QueryError("NaN is not a valid range endpoint")
        if isinstance(value, decimal.Decimal) and value.is_nan():
            raise QueryError("NaN is not a valid range endpoint")
        return value
    if isinstance(value, (str, bytes)):
        try:
            number = float(value)
        except ValueError as err:
            raise QueryError(f"Invalid range endpoint {value!r:.100}") from err
        if number != number:
            raise QueryError("NaN is not a valid range endpoint")
        return number
    raise QueryError(f"Invalid range endpoint {value!r:.100}")


def _pattern_text(model: Any, attr: str, value: Any, what: str) -> str:
    if isinstance(value, (str, bytes)):
        return _index_text(model, attr, value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
        return str(value)
    raise QueryError(f"Cannot use {what!r} on {attr!r} with {value!r:.100}")


def _pairs(data: list[Any]) -> dict[Any, Any]:
    return dict(zip(data[::2], data[1::2], strict=False))


class Query(Generic[M]):
    """An immutable query over one model (API.md §6); build it from ``Model.query``.

    :param model: the model class
    :param filters: filter items in :class:`rom.index.GeneralIndex` format
    :param order_by: ``'col'``, ``'-col'`` or ``None``
    :param limit: ``(offset, count)`` or ``None``
    :param select: the column selection made by :meth:`select`, or ``None``

    Example::

        Post.query.filter(tags='redis').order_by('-created').limit(0, 10).all()
        Post.query.filter(score=(10, None)).count()
    """

    __slots__ = ("_filters", "_limit", "_model", "_order_by", "_select")

    def __init__(
        self,
        model: type[M],
        filters: Sequence[Any] = (),
        order_by: str | None = None,
        limit: tuple[int, int | None] | None = None,
        select: Any = None,
    ) -> None:
        self._model = model
        self._filters = tuple(filters)
        self._order_by = order_by
        self._limit = limit
        self._select = select

    def __repr__(self) -> str:
        return (
            f"<Query {self._model.__name__} filters={list(self._filters)!r} "
            f"order_by={self._order_by!r} limit={self._limit!r}>"
        )

    def replace(self, **kwargs: Any) -> Query[M]:
        """A copy with any of ``model, filters, order_by, limit, select`` replaced."""
        data: dict[str, Any] = {
            "model": self._model,
            "filters": self._filters,
            "order_by": self._order_by,
            "limit": self._limit,
            "select": self._select,
        }
        for key, value in kwargs.items():
            if key not in data:
                raise TypeError(f"replace() got an unexpected keyword argument {key!r}")
            data[key] = value
        return Query(**data)

    # -- building ---------------------------------------------------------------------------
    def _column(self, attr: str, what: str) -> Any:
        base = attr.split(":", 1)[0]
        col = self._model._columns.get(base)
        if col is None:
            raise QueryError(f"Cannot use {what!r} clause on a non-existent column {attr!r}")
        return base, col

    def filter(self, **kwargs: Any) -> Query[M]:
        """Only entities matching every condition (API.md §6.3).

        Values: a token (str/bytes), a list of tokens (any of them), a number, date or time
        (equality), a ``(lo, hi)`` range (``None`` = open end), a bool, or :data:`NOT_NULL`
        (ManyToOne/OneToOne columns).  ``'col:sub'`` names address keygen sub-indexes.

        :raises QueryError: unknown or unindexed column, or a value of an unknown form
        """
        model = self._model
        filters = list(self._filters)
        for attr, value in kwargs.items():
            base, col = self._column(attr, "filter")
            if base not in model._index:
                raise QueryError(
                    f"You cannot filter on column {attr!r}, which was defined with 'index=False'"
                )
            if isinstance(value, bool):
                filters.append(f"{attr}:{_token(model, base, value)}")
            elif value is NOT_NULL:
                if not isinstance(col, ManyToOne):
                    raise QueryError(
                        f"NOT_NULL can only be used on ManyToOne/OneToOne columns, not {attr!r}"
                    )
                filters.append((attr, None, None))
            elif isinstance(value, NUMERIC_TYPES):
                score = _endpoint(value)
                filters.append((attr, score, score))
            elif isinstance(value, tuple):
                if len(value) != 2:
                    raise QueryError(
                        f"Range queries must include exactly two endpoints, got {value!r:.100}"
                    )
                filters.append((attr, _endpoint(value[0]), _endpoint(value[1])))
            elif isinstance(value, (str, bytes)):
                filters.append(f"{attr}:{_index_text(model, base, value)}")
            elif isinstance(value, list) and value:
                filters.append([f"{attr}:{_token(model, base, item)}" for item in value])
            else:
                raise QueryError(f"Sorry, we don't know how to filter {attr!r} by {value!r:.100}")
        return self.replace(filters=tuple(filters))

    def _prefix_filter(self, kwargs: dict[str, Any], what: str) -> Query[M]:
        model = self._model
        filters = list(self._filters)
        allowed = model._suffix if what == "endswith" else model._prefix
        flag = "suffix" if what == "endswith" else "prefix"
        for attr, value in kwargs.items():
            self._column(attr, what)
            if attr not in allowed:
                raise QueryError(f"Cannot use {what!r} on column {attr!r} without {flag}=True")
            text = _pattern_text(model, attr, value, what)
            if what == "startswith":
                filters.append(Prefix(attr, text))
            elif what == "endswith":
                filters.append(Suffix(attr, text[::-1]))
            else:
                filters.append(Pattern(attr, text))
        return self.replace(filters=tuple(filters))

    def startswith(self, **kwargs: Any) -> Query[M]:
        """Entities with a prefix-index entry of ``col`` starting with the value
        (``prefix=True`` columns; ``''`` matches every entry)."""
        return self._prefix_filter(kwargs, "startswith")

    def endswith(self, **kwargs: Any) -> Query[M]:
        """Entities with a suffix-index entry of ``col`` ending with the value
        (``suffix=True`` columns)."""
        return self._prefix_filter(kwargs, "endswith")

    def like(self, **kwargs: Any) -> Query[M]:
        """Entities with a prefix-index entry of ``col`` matching the pattern.

        Wildcards: ``?`` zero or one byte, ``*`` any bytes (shortest), ``+`` one or more,
        ``!`` exactly one; every other character is literal.  Anchored at the start, open
        at the end: ``like(email='*@example.')`` matches ``'ann@example.com'``.
        """
        return self._prefix_filter(kwargs, "like")

    def near(
        self,
        name: str,
        lon: float,
        lat: float,
        distance: float,
        measure: str,
        count: int | None = None,
    ) -> Query[M]:
        """Entities within ``distance`` ``measure`` (m, km, mi, ft) of ``(lon, lat)`` in the
        geo index ``name``; with ``count``, only the ``count`` nearest are considered.

        :raises ValueError: unknown geo index, unit or invalid coordinates
        """
        if name not in self._model._geo:
            raise ValueError(f"Unknown geo index {name!r} on {self._model.__name__}")
        unit = str(measure).lower()
        if unit not in ALLOWED_DIST:
            raise ValueError(f"Measure must be one of {ALLOWED_DIST}, got {measure!r}")
        lon_f, lat_f, dist_f = float(lon), float(lat), float(distance)
        if not (-180 <= lon_f <= 180 and -85.05112878 <= lat_f <= 85.05112878):
            raise ValueError(f"Invalid coordinates ({lon!r}, {lat!r})")
        if not dist_f >= 0:
            raise ValueError(f"Invalid distance {distance!r}")
        if count is not None:
            if isinstance(count, bool) or int(count) != count or count < 0:
                raise ValueError(f"Invalid count {count!r}")
            count = int(count)
        geo = Geofilter(name, lon_f, lat_f, dist_f, unit, count)
        return self.replace(filters=(*self._filters, geo))

    def order_by(self, column: str) -> Query[M]:
        """Order by a score index: ``'col'`` ascending, ``'-col'`` descending.

        Entities without an entry in that index are left out; ties are ordered by pk as
        text.  Ordering by an index that is not a score index gives no results.

        :raises QueryError: unknown column, or an unindexed String/Text/Json column
        """
        if not isinstance(column, str) or not column.lstrip("-"):
            raise QueryError(f"Invalid order_by column {column!r:.100}")
        name = column[1:] if column.startswith("-") else column
        base, col = self._column(name, "order_by")
        if isinstance(col, (String, Text, Json)):
            if base not in self._model._index:
                raise QueryError(f"Cannot order by column {base!r}: it has no index")
            if col._keygen_name() not in SORT_KEYGEN_NAMES:
                warnings.warn(
                    f"Ordering by column {base!r} whose keygen is not SIMPLE, SIMPLE_CI or "
                    "CASE_INSENSITIVE gives no useful order",
                    UserWarning,
                    stacklevel=2,
                )
        return self.replace(order_by=column)

    def limit(self, offset: int, count: int | None) -> Query[M]:
        """Only ``count`` results starting at ``offset`` (negative offsets act as 0)."""
        for value in (offset, count):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise QueryError(f"Limit offset and count must be integers, got {value!r:.100}")
        if offset is None:
            raise QueryError("Limit offset must be an integer")
        return self.replace(limit=(offset, count))

    def select(
        self,
        *column_names: Any,
        include_pk: bool = False,
        decode: bool = True,
        ff: Callable[[list[str]], Callable[[list[Any]], Any]] = _dict_data_factory,
    ) -> Query[Any]:
        """Yield rows of column values instead of entities (API.md §6.7).

        The result is typed ``Query[Any]``: its rows are whatever ``ff`` builds.

        :param column_names: column names, or one list/tuple of them
        :param include_pk: append the pk to each row (if not selected already)
        :param decode: convert values to Python types (else the stored text)
        :param ff: row factory, ``ff(columns)`` returns ``make(values)``
        :raises QueryError: no, duplicate or unknown columns
        """
        if len(column_names) == 1 and isinstance(column_names[0], (list, tuple)):
            cols = list(column_names[0])
        else:
            cols = list(column_names)
        if not cols:
            raise QueryError("select() needs at least one column")
        if not all(isinstance(c, str) for c in cols):
            raise QueryError(f"select() takes column names, got {cols!r:.200}")
        if len(set(cols)) != len(cols):
            raise QueryError(f"Duplicate columns in select(): {cols!r}")
        model = self._model
        bad = [
            c
            for c in cols
            if not isinstance(c, str)
            or c not in model._columns
            or isinstance(model._columns[c], (UnsafeColumn, OneToMany))
        ]
        if bad:
            raise QueryError(f"Cannot select columns {bad!r} of {model.__name__}")
        return self.replace(select=_Select(tuple(cols), bool(include_pk), bool(decode), ff))

    # -- planning ---------------------------------------------------------------------------
    def _is_bare(self) -> bool:
        return not self._filters and not self._order_by

    def _window(self) -> tuple[int, int | None]:
        """``(offset, count)`` of the limit; count ``None`` = unlimited."""
        if self._limit is None:
            return 0, None
        offset, count = self._limit
        offset = max(int(offset or 0), 0)
        if count is None:
            return offset, None
        return offset, max(int(count), 0)

    def _keyspace(self, conn: Any) -> KeySpace:
        model = self._model
        if conn is None:
            ks: KeySpace = model._ks[0]
            return ks
        return model._keyspace(conn)

    def _expiry(self, ks: KeySpace) -> tuple[str, float | None] | None:
        """The expiry index to check (with "now" = the server's clock), if the model has one."""
        if getattr(self._model, "_has_expiry", False):
            return ks.expiry(), None
        return None

    def _columns_out(self) -> list[str]:
        sel = self._select
        cols = list(sel.columns)
        pk = self._model._pkey
        if sel.include_pk and pk not in cols:
            cols.append(pk)
        return cols

    def _plan(self, mode: str = "page", conn: Any = None, **fields: Any) -> Plan:
        """The compiled ``query.lua`` call of this query (no server needed without conn).

        :param mode: ``count``, ``ids``, ``cache``, ``page``
        :param fields: extra plan fields (``off``, ``stop``, ``w``, ``keep``, ``ttl``, ``n``)
        """
        ks = self._keyspace(conn)
        plan = compile_query(ks, self._filters, self._order_by, self._expiry(ks))
        plan.spec["m"] = mode
        plan.spec["p"] = ks.entity("")
        if self._select is not None:
            plan.spec["c"] = [self._model._pkey, *self._columns_out()]
        if mode == "page":
            offset, count = self._window()
            plan.spec.update(off=offset, stop=-1 if count is None else offset + count, w=1, keep=0)
        plan.spec.update(fields)
        return plan

    def _next_plan(
        self, ks: KeySpace, temp: str, rank: int, stop: int, want: int, keep: int
    ) -> Plan:
        plan = Plan(temp, ks.temp())
        expiry = self._expiry(ks)
        if expiry is not None:
            plan.spec["x"] = {"k": plan.key(expiry[0])}
        plan.spec.update(m="next", p=ks.entity(""), off=rank, stop=stop, w=want, keep=keep)
        if self._select is not None:
            plan.spec["c"] = [self._model._pkey, *self._columns_out()]
        return plan

    # -- results ----------------------------------------------------------------------------
    def _converter(self) -> Callable[[Any, list[Any]], Any] | None:
        """Row builder for ``select()`` queries (``None`` for entity queries)."""
        sel = self._select
        if sel is None:
            return None
        model = self._model
        cols = self._columns_out()
        make = sel.ff(cols)
        decode = sel.decode

        def convert(ident: Any, values: list[Any]) -> Any:
            out: list[Any] = []
            for attr, raw in zip(cols, values[1:], strict=False):
                if raw is None or raw is False:
                    out.append(None)
                    continue
                text = to_text(raw)
                if not decode:
                    out.append(text)
                    continue
                col = model._columns[attr]
                try:
                    value = col._from_redis(text)
                except (ValueError, TypeError, ArithmeticError, OverflowError) as err:
                    raise InvalidColumnValue(
                        f"Cannot load column {attr!r} of {model.__name__} from {text!r:.100}"
                    ) from err
                if isinstance(value, _Ref):
                    if isinstance(col, ManyToOne):
                        value = col._target().get(value.id)
                    else:
                        value = col._load(value.id)
                out.append(value)
            return make(out)

        return convert

    def _build(self, items: list[Any], add: bool) -> Iterator[M]:
        """Entities (or select rows) of a page reply's ``id, data, ...`` items."""
        convert = self._converter()
        model = self._model
        ns = model._namespace
        for i in range(0, len(items) - 1, 2):
            ident, data = items[i], items[i + 1]
            if convert is not None:
                yield convert(ident, data)
                continue
            obj = session.get(f"{ns}:{int(ident)}")
            if obj is None:
                obj = model._from_hash(_pairs(data), add=add)
                if obj is None:
                    continue
            elif add:
                session.add(obj)
            yield obj

    def _iter_bare(self, pagesize: int, add: bool = False) -> Iterator[M]:
        model = self._model
        conn = model._connection
        ks = model._keyspace(conn)
        pkattr = model._pkey
        offset, count = self._window()
        indexed = pkattr in model._index
        keys = [ks.score(pkattr) if indexed else ks.counter(pkattr)]
        expiry = self._expiry(ks)
        spec: dict[str, Any] = {
            "m": "idx" if indexed else "probe",
            "a": "0",
            "s": offset,
            "p": ks.entity(""),
        }
        if expiry is not None:
            keys.append(expiry[0])
        if self._select is not None:
            spec["c"] = [pkattr, *self._columns_out()]
        remaining = count
        while remaining is None or remaining > 0:
            want = pagesize if remaining is None else min(pagesize, remaining)
            spec.update(w=want, b=_BARE_BLOCK + want)
            reply = run_script(conn, "query_bare", keys, [json.dumps(spec, ensure_ascii=False)])
            spec["a"] = to_text(reply[0])
            spec["s"] = int(reply[1])
            items = reply[3:]
            yield from self._build(items, add)
            if remaining is not None:
                remaining -= len(items) // 2
            if int(reply[2]):
                return

    def _iter_filtered(self, timeout: int, pagesize: int) -> Iterator[M]:
        model = self._model
        conn = model._connection
        ks = model._keyspace(conn)
        offset, count = self._window()
        if count == 0:
            return
        stop = -1 if count is None else offset + count
        plan = self._plan("page", conn, w=pagesize, keep=timeout)
        reply = run_plan(conn, plan)
        kept = int(reply[2])
        try:
            while True:
                yield from self._build(reply[3:], add=False)
                if not kept:
                    return
                rank = int(reply[0])
                reply = run_plan(
                    conn, self._next_plan(ks, plan.temp, rank, stop, pagesize, timeout)
                )
                kept = int(reply[2])
        finally:
            if kept:
                try:
                    conn.delete(plan.temp)
                except RedisError:  # pragma: no cover - best effort; the key has a TTL
                    pass

    def iter_result(
        self, timeout: int = 30, pagesize: int = 100, no_hscan: bool = False
    ) -> Iterator[M]:
        """Iterate over the results, ``pagesize`` per round trip.

        With filters or an order, the matching ids are kept in a temporary key (TTL
        ``timeout`` seconds, refreshed per page, deleted when the iteration ends); entity
        data is read per page.  Without them, ids are walked in ascending order.  Entities
        deleted meanwhile are skipped; entities not already in the session are not added.
        """
        pagesize = max(int(pagesize), 1)
        timeout = max(int(timeout), 1)
        if self._is_bare():
            return self._iter_bare(pagesize)
        return self._iter_filtered(timeout, pagesize)

    def __iter__(self) -> Iterator[M]:
        return self.iter_result()

    def execute(self) -> list[M]:
        """All results as a list (entities, or rows after :meth:`select`)."""
        return list(self.iter_result(pagesize=ALL_PAGESIZE))

    def all(self) -> list[M]:
        """All results as a list (same as :meth:`execute`)."""
        return self.execute()

    def first(self) -> M | None:
        """The first result (added to the session), or ``None``; one round trip."""
        if self._is_bare():
            for obj in self._iter_bare(1, add=True):
                return obj
            return None
        if self._window()[1] == 0:
            return None
        conn = self._model._connection
        reply = run_plan(conn, self._plan("page", conn, w=1, keep=0))
        for obj in self._build(reply[3:], add=True):
            return obj
        return None

    def count(self) -> int:
        """Number of matching entities (the limit is ignored).

        A bare query returns the id counter (ids ever allocated) minus the offset, capped by
        the limit: rom's fast estimate.
        """
        model = self._model
        conn = model._connection
        if self._is_bare():
            raw = conn.get(model._keyspace(conn).counter(model._pkey))
            offset, count = self._window()
            total = max(int(raw or 0) - offset, 0)
            return total if count is None else min(total, count)
        return int(run_plan(conn, self._plan("count", conn)))

    def cached_result(self, timeout: int) -> str:
        """Name of a sorted set holding the matching ids with their scores, expiring after
        ``timeout`` seconds; the caller owns it.

        :raises QueryError: ``timeout < 1`` or a query without filters or order
        """
        try:
            ttl = int(timeout)
        except (TypeError, ValueError, OverflowError) as err:
            raise QueryError(f"Invalid timeout {timeout!r:.100}") from err
        if ttl < 1:
            raise QueryError("Timeout must be at least 1 second")
        if self._is_bare():
            raise QueryError("You are missing filter or order criteria")
        conn = self._model._connection
        plan = self._plan("cache", conn, ttl=ttl)
        run_plan(conn, plan)
        return plan.temp

    def delete(self, blocksize: int = 100) -> None:
        """Delete every matching entity with ``rom.session.delete``, ``blocksize`` at a time.

        :raises QueryError: the model has or is the target of ManyToOne/OneToOne columns
        """
        model = self._model
        if not model._no_fk or model._referenced():
            raise QueryError(
                f"Cannot bulk delete entities of {model.__name__}: it has foreign key relations"
            )
        blocksize = max(int(blocksize), 1)
        chunk: list[Any] = []
        for entity in self.replace(select=None).iter_result(pagesize=blocksize):
            chunk.append(entity)
            if len(chunk) >= blocksize:
                session.delete(*chunk)
                chunk = []
        if chunk:
            session.delete(*chunk)


# -- does_not_startwith / does_not_endwith --------------------------------------------------
def _does_not_match(
    model: Any, attr: str, values: Any, blocksize: int = 100, suffix: bool = False
) -> Iterator[Any]:
    """Entities having a prefix (``suffix=True``: suffix) index entry on ``attr`` that does
    not start (end) with any of ``values`` (API.md §4.4).

    Works per index entry, so an entity may be yielded once per non-matching entry.
    Values up to 7 bytes are excluded by score ranges, longer ones byte-wise; overlapping
    values are fine (bug 20).
    """
    names = model._suffix if suffix else model._prefix
    if attr not in names:
        what = "does_not_endwith" if suffix else "does_not_startwith"
        raise QueryError(f"Cannot use {what!r} on column {attr!r} without the needed index")
    if isinstance(values, (str, bytes)):
        values = [values]
    raws: list[bytes] = []
    for value in values:
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if suffix:
            text = text[::-1]
        raws.append(text.encode("utf-8"))
    return _not_matching(model, attr, raws, max(int(blocksize), 1), suffix)


def _segments(raws: list[bytes]) -> list[tuple[float, float]]:
    """Score segments ``[lo, hi)`` not excluded by the short (<= 7 byte) values."""
    excluded = sorted(
        (_prefix_score(raw), _prefix_score(raw, next=True)) for raw in raws if len(raw) <= 7
    )
    out: list[tuple[float, float]] = []
    lo = float("-inf")
    for a, b in excluded:
        if a > lo:
            out.append((lo, a))
        lo = max(lo, b)
    out.append((lo, float("inf")))
    return out


def _score_arg(value: float) -> str:
    if value == float("inf"):
        return "+inf"
    if value == float("-inf"):
        return "-inf"
    return repr(value)


def _not_matching(
    model: Any, attr: str, raws: list[bytes], blocksize: int, suffix: bool
) -> Iterator[Any]:
    conn = model._connection
    ks = model._keyspace(conn)
    key = ks.suffix_index(attr) if suffix else ks.prefix_index(attr)
    long_values = [raw for raw in raws if len(raw) > 7]
    ns = model._namespace
    for lo, hi in _segments(raws):
        if lo >= hi:
            continue
        rank = 0 if lo == float("-inf") else int(conn.zcount(key, "-inf", "(" + _score_arg(lo)))
        while True:
            block = conn.zrange(key, rank, rank + blocksize - 1, withscores=True)
            if not block:
                break
            rank += len(block)
            pks: list[int] = []
            ended = False
            for member, score in block:
                if score >= hi:
                    ended = True
                    break
                raw = member.encode("utf-8") if isinstance(member, str) else member
                cut = raw.rfind(b"\0")
                if cut < 0 or not raw[cut + 1 :].isdigit():
                    continue
                entry = raw[:cut]
                if any(entry.startswith(v) for v in long_values):
                    continue
                pks.append(int(raw[cut + 1 :]))
            yield from _entities(model, conn, ks, ns, pks)
            if ended or len(block) < blocksize:
                break


def _entities(model: Any, conn: Any, ks: KeySpace, ns: str, pks: list[int]) -> Iterator[Any]:
    """Entities of ``pks`` in order (session objects when known), one round trip."""
    missing = sorted({pk for pk in pks if session.get(f"{ns}:{pk}") is None})
    loaded: dict[int, Any] = {}
    if missing:
        pipe = conn.pipeline(transaction=False)
        for pk in missing:
            pipe.hgetall(ks.entity(pk))
        for pk, raw in zip(missing, pipe.execute(), strict=True):
            if raw:
                loaded[pk] = raw
    for pk in pks:
        obj = session.get(f"{ns}:{pk}")
        if obj is None:
            raw = loaded.get(pk)
            if raw is None:
                continue
            obj = model._from_hash(raw, add=False)
        yield obj
