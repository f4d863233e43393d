"""Turn entities into write plans and run them as single atomic Lua calls (STORAGE.md §7).

The client computes the entity's new stored texts, its index entries and the difference to
the index entries recorded in the stored bookkeeping (``-index-data-``).  The script
``write.lua`` checks races, uniqueness and that the bookkeeping it was planned against is
still the stored one, then writes everything.  If another writer changed the bookkeeping
in between (a rare case, e.g. a rom 1.x client), the script writes nothing and returns the
stored record, and the plan is rebuilt once more against it.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from redis.exceptions import ResponseError

from . import expiry
from .encoding import _encode_unique_constraint, _prefix_score, latin1_text, to_text
from .exceptions import (
    ColumnError,
    DataRaceError,
    DurabilityError,
    EntityDeletedError,
    ORMError,
    UniqueKeyViolation,
)
from .keygens import LATIN1_KEYGEN_NAMES, SORT_KEYGEN_NAMES
from .keys import KeySpace, is_cluster
from .scripts import get_script

__all__ = [
    "Batch",
    "DeleteState",
    "IndexEntries",
    "SaveState",
    "delete_entity",
    "delete_many",
    "execute",
    "index_entries",
    "save_entity",
    "save_many",
]

BOOKKEEPING = "-index-data-"
_MAX_REPLANS = 8


class AttrDict(dict[str, Any]):
    """A dict whose items are also attributes (missing ones read as ``None``)."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)


class IndexEntries:
    """The index entries of one entity, in rom's bookkeeping slots."""

    __slots__ = ("geo", "prefix", "scores", "suffix", "tokens")

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.scores: dict[str, str] = {}
        self.prefix: list[tuple[str, str]] = []
        self.suffix: list[tuple[str, str]] = []
        self.geo: dict[str, tuple[str, str]] = {}

    def bookkeeping(self) -> str:
        """The ``-index-data-`` text for these entries (geo names in slot 4)."""
        return json.dumps(
            [
                self.tokens,
                list(self.scores),
                [list(p) for p in self.prefix],
                [list(p) for p in self.suffix],
                list(self.geo),
            ],
            separators=(",", ":"),
        )


def _item_text(item: Any, latin1: bool, col: Any) -> str:
    if isinstance(item, bytes):
        if latin1:
            return latin1_text(item)
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return latin1_text(item)
    if not isinstance(item, str):
        raise ColumnError(
            f"Keygen of column {col._attr!r} returned a non-string item {item!r:.100}"
        )
    try:
        item.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate cannot be part of a key name
        raise ColumnError(
            f"Keygen of column {col._attr!r} returned an item that is not valid text {item!r:.100}"
        ) from err
    return item


def _score(value: Any, col: Any) -> str:
    """Score text for a keygen's number, checked so that Redis cannot refuse it.

    A ZADD refused inside the write script (NaN, or a number beyond the double range such
    as ``1 << 1100`` or ``'1e400'``) would leave the hash written and the indexes not, so
    such values are a :class:`ColumnError` here.  The text sent is canonical (same double).
    """
    try:
        if isinstance(value, str):
            exact = Decimal(value.strip())
        elif isinstance(value, int):  # bool included
            exact = Decimal(int(value))
        elif isinstance(value, Decimal):
            exact = value
        else:
            exact = Decimal(float(value))
        number = float(exact)
        if exact.is_nan():
            raise ValueError("NaN is not a score")
        if exact.is_finite() and (math.isinf(number) or (number == 0 and exact != 0)):
            raise ValueError("out of the range of a double")
    except (TypeError, ValueError, ArithmeticError) as err:
        detail = "not a number" if isinstance(err, InvalidOperation) else str(err)
        raise ColumnError(
            f"Keygen of column {col._attr!r} returned an invalid score {value!r:.100}: {detail}"
        ) from err
    if exact.is_finite() and exact == exact.to_integral_value() and abs(exact) < 2**53:
        return str(int(exact))
    return repr(number)


_Part = tuple[list[str], dict[str, str], list[tuple[str, str]], list[tuple[str, str]]]


def _column_entries(attr: str, col: Any, data: dict[str, Any]) -> tuple[_Part, bool]:
    """Index entries of one column, (tokens, scores, prefix, suffix), and whether they may
    be cached (not when a warning must repeat on every save, as in rom)."""
    tokens: list[str] = []
    scores: dict[str, str] = {}
    prefix: list[tuple[str, str]] = []
    suffix: list[tuple[str, str]] = []
    if col._keygen2:
        result = col._keygen(attr, data)
    else:
        value = data.get(attr)
        if value is None:
            return (tokens, scores, prefix, suffix), True
        result = col._keygen(value)
    if not result:
        return (tokens, scores, prefix, suffix), True
    if isinstance(result, (list, tuple, set)):
        latin1 = col._keygen_name() in LATIN1_KEYGEN_NAMES
        items = [_item_text(item, latin1, col) for item in result]
        if col._index:
            tokens.extend(f"{attr}:{item}" for item in items)
        if col._prefix:
            prefix.extend((attr, item) for item in items)
        if col._suffix:
            suffix.extend((attr, item[::-1]) for item in items)
    elif isinstance(result, dict):
        if col._index:
            for key, val in result.items():
                if key == "":
                    scores[attr] = _score(val, col)
                elif val is None or val == "":
                    tokens.append(f"{attr}:{key}")
                else:
                    scores[f"{attr}:{key}"] = _score(val, col)
        if col._prefix or col._suffix:
            name = col._keygen_name()
            value = data.get(attr)
            if name in SORT_KEYGEN_NAMES and value:
                text = latin1_text(value) if isinstance(value, bytes) else str(value)
                if name != "SIMPLE":
                    text = text.lower()
                if col._prefix:
                    prefix.append((attr, text))
                if col._suffix:
                    suffix.append((attr, text[::-1]))
            else:
                warnings.warn(
                    "Prefix indexes are currently not enabled for non-standard keygen functions",
                    stacklevel=5,
                )
                return (tokens, scores, prefix, suffix), False
    else:
        raise ColumnError(
            f"Don't know how to turn {result!r:.100} into a sequence of keys (column {attr!r})"
        )
    return (tokens, scores, prefix, suffix), True


def index_entries(
    model: Any,
    data: dict[str, Any],
    texts: dict[str, str] | None = None,
    cache: dict[str, tuple[str, _Part]] | None = None,
) -> IndexEntries:
    """Compute every index entry of an entity from its Python values (API.md §8.2).

    With ``texts`` (the stored texts of ``data``) and a ``cache`` dict kept on the entity,
    the entries of a plain-keygen column whose stored text did not change are reused.
    """
    out = IndexEntries()
    for attr, col in model._indexed_columns:
        text = texts.get(attr) if texts is not None and not col._keygen2 else None
        hit = cache.get(attr) if cache is not None and text is not None else None
        if hit is not None and hit[0] == text:
            part = hit[1]
        else:
            part, cacheable = _column_entries(attr, col, data)
            if cache is not None and text is not None and cacheable:
                cache[attr] = (text, part)
        tokens, scores, prefix, suffix = part
        out.tokens.extend(tokens)
        out.scores.update(scores)
        out.prefix.extend(prefix)
        out.suffix.extend(suffix)
    for name, geo in model._geo.items():
        point = geo.callback(AttrDict(data))
        if isinstance(point, list):
            if not point:
                continue
            point = point[-1]
        if not isinstance(point, dict):
            raise TypeError(f"Geo callback {name!r} must return a dict or a list of dicts")
        if "lon" not in point or "lat" not in point:
            raise ORMError(f"Geo callback {name!r} returned a dict without 'lon' and 'lat'")
        try:
            lon, lat = float(point["lon"]), float(point["lat"])
        except (TypeError, ValueError) as err:
            raise ORMError(f"Geo callback {name!r} returned invalid coordinates") from err
        if not (-180 <= lon <= 180 and -85.05112878 <= lat <= 85.05112878):
            raise ORMError(f"Geo callback {name!r} returned coordinates out of range")
        out.geo[name] = (repr(lon), repr(lat))
    return out


def _old_bookkeeping(entity: Any) -> list[list[Any]]:
    """The parsed bookkeeping the entity last saw (parsed once per stored text)."""
    text = entity._last_bk
    cached = vars(entity).get("_bk_parsed")
    if cached is not None and cached[0] == text:
        slots: list[list[Any]] = cached[1]
        return slots
    slots = parse_bookkeeping(text)
    entity._bk_parsed = (text, slots)
    return slots


def parse_bookkeeping(text: str | None) -> list[list[Any]]:
    """The five slots of a stored ``-index-data-`` (or legacy) record, tolerating rom 1.x."""
    slots: list[list[Any]] = [[], [], [], [], []]
    if not text:
        return slots
    try:
        raw = json.loads(text)
    except ValueError:
        return slots
    if not isinstance(raw, list):
        return slots
    for i, part in enumerate(raw[:5]):
        if isinstance(part, list):
            slots[i] = part
    # rom 1.1.2 records geo names as bare strings in slot 3
    geo = [p for p in slots[3] if isinstance(p, str)]
    slots[3] = [p for p in slots[3] if isinstance(p, list) and len(p) == 2]
    slots[4] = [p for p in slots[4] if isinstance(p, str)] + geo
    return slots


def run_pipeline(pipe: Any) -> list[Any]:
    """Run a read pipeline; a Redis refusal (e.g. a key of the wrong type) is an ORMError."""
    try:
        return list(pipe.execute())
    except ResponseError as err:
        raise ORMError(f"Redis refused a read: {err}") from err


def run_script(conn: Any, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run a packaged script, turning Redis refusals into rom exceptions."""
    try:
        return get_script(name)(conn, keys, args)
    except ResponseError as err:
        raise ORMError(f"Redis refused the {name} script: {err}") from err


class ReferencesChanged(Exception):
    """A reference check of a batch failed: the caller must plan again (cascades)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class Batch:
    """KEYS, entity plans and reference checks of one ``write.lua`` call."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._key_index: dict[str, int] = {}
        self.plans: list[dict[str, Any]] = []
        self.refs: list[list[Any]] = []

    def key(self, name: str) -> int:
        """Position (1-based) of ``name`` in KEYS, adding it if needed."""
        index = self._key_index.get(name)
        if index is None:
            self.keys.append(name)
            index = self._key_index[name] = len(self.keys)
        return index

    def ref_check(self, key: str, score: str, members: Iterable[str]) -> None:
        """Require the members of zset ``key`` scored ``score`` to be exactly ``members``."""
        self.refs.append([self.key(key), score, score, *sorted(set(members))])

    def args(self) -> list[str]:
        plans = json.dumps(self.plans, separators=(",", ":"))
        if not self.refs:
            return [plans]
        return [plans, json.dumps(self.refs, separators=(",", ":"))]

    def run(self, conn: Any) -> Any:
        return run_script(conn, "write", self.keys, self.args())


def _index_ops(
    batch: Batch, ks: KeySpace, pk: str, old: list[list[Any]], new: IndexEntries | None, full: bool
) -> dict[str, Any]:
    """Removals of old entries that are gone and additions of new or changed ones."""
    rm_sets: dict[str, list[str]] = {}
    rm_zsets: dict[str, list[str]] = {}
    add_sets: dict[str, list[str]] = {}
    add_zsets: dict[str, list[str]] = {}
    new_tokens = set(new.tokens) if new else set()
    new_scores = new.scores if new else {}
    new_pre = set(new.prefix) if new else set()
    new_suf = set(new.suffix) if new else set()
    new_geo = new.geo if new else {}
    old_tokens = {t for t in old[0] if isinstance(t, str)}
    old_pre = {(p[0], p[1]) for p in old[2] if isinstance(p, list) and len(p) == 2}
    old_suf = {(p[0], p[1]) for p in old[3]}
    for token in old_tokens - new_tokens:
        rm_sets.setdefault(ks.token(token), []).append(pk)
    for name in old[1]:
        if isinstance(name, str) and name not in new_scores:
            rm_zsets.setdefault(ks.score(name), []).append(pk)
    for attr, value in old_pre - new_pre:
        rm_zsets.setdefault(ks.prefix_index(attr), []).append(f"{value}\0{pk}")
    for attr, value in old_suf - new_suf:
        rm_zsets.setdefault(ks.suffix_index(attr), []).append(f"{value}\0{pk}")
    for name in old[4]:
        if name not in new_geo:
            rm_zsets.setdefault(ks.geo(name), []).append(pk)
    for token in new_tokens if full else new_tokens - old_tokens:
        add_sets.setdefault(ks.token(token), []).append(pk)
    for name, score in new_scores.items():
        add_zsets.setdefault(ks.score(name), []).extend((score, pk))
    for attr, value in new_pre if full else new_pre - old_pre:
        add_zsets.setdefault(ks.prefix_index(attr), []).extend(
            (repr(_prefix_score(value)), f"{value}\0{pk}")
        )
    for attr, value in new_suf if full else new_suf - old_suf:
        add_zsets.setdefault(ks.suffix_index(attr), []).extend(
            (repr(_prefix_score(value)), f"{value}\0{pk}")
        )
    ops: dict[str, Any] = {}
    rm: list[list[Any]] = [[batch.key(k), "s", *m] for k, m in rm_sets.items()]
    rm += [[batch.key(k), "z", *m] for k, m in rm_zsets.items()]
    ad: list[list[Any]] = [[batch.key(k), "s", *m] for k, m in add_sets.items()]
    ad += [[batch.key(k), "z", *m] for k, m in add_zsets.items()]
    ad += [[batch.key(ks.geo(n)), "g", lon, lat, pk] for n, (lon, lat) in new_geo.items()]
    if rm:
        ops["rm"] = rm
    if ad:
        ops["ad"] = ad
    return ops


def _unique_values(
    model: Any, texts: dict[str, str], data: dict[str, Any] | None
) -> dict[str, str]:
    """Unique index name -> field value an entity with these stored texts must own."""
    out: dict[str, str] = {}
    for attr in model._unique:
        col = model._columns[attr]
        if col._virtual:  # unique IndexOnly: the first keygen item
            if data is None:
                continue
            result = col._keygen(attr, data)
            if result and not isinstance(result, dict):
                first = next(iter(result))
                if isinstance(first, (bytes, str)):
                    item = _item_text(first, True, col)
                    if item:
                        out[attr] = item
                elif first is not None:
                    out[attr] = str(first)
            continue
        text = texts.get(attr)
        if text is not None and text != "":
            out[attr] = text
    for group in model._cunique:
        values = [texts.get(attr) for attr in group]
        if all(v is not None for v in values):
            out[":".join(group)] = _encode_unique_constraint(values)
    return out


def _model_cache(model: Any) -> dict[str, Any]:
    """Per-model values the writer derives from the definition (computed once)."""
    cache: dict[str, Any] | None = vars(model).get("_writer_cache")
    if cache is None:
        cache = {"sources": _index_sources(model), "unique": _unique_columns(model)}
        cache["unique_sorted"] = sorted(cache["unique"])
        model._writer_cache = cache
    return cache


def _index_sources(model: Any) -> set[str]:
    """Stored columns whose values determine the entity's index and unique entries."""
    cols: set[str] = set()
    whole = bool(model._geo)  # geo callbacks see every value
    for attr, col in model._indexed_columns:
        if col._keygen2:  # keygen2 and IndexOnly see every value
            whole = True
        else:
            cols.add(attr)
    for attr in model._unique:
        if model._columns[attr]._virtual:
            whole = True
        else:
            cols.add(attr)
    for group in model._cunique:
        cols.update(group)
    if whole:
        cols.update(attr for attr, _col in model._stored_columns)
    return cols


def _unique_columns(model: Any) -> set[str]:
    cols = {a for a in model._unique if not model._columns[a]._virtual}
    for group in model._cunique:
        cols.update(group)
    return cols


class _State:
    """What one entity contributes to a batch; rebuilds its plan after a stale answer."""

    entity: Any
    last: dict[str, str]

    def __init__(self, entity: Any) -> None:
        self.entity = entity
        self.model = type(entity)
        self.conn = self.model._connection
        self.ks = self.model._keyspace(self.conn)
        self.pk = str(entity._data[self.model._pkey])
        self.last = dict(entity._last)

    def _common(self, batch: Batch) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "k": batch.key(self.ks.entity(self.pk)),
            "l": batch.key(self.ks.legacy()),
            "pk": self.pk,
        }
        if self.entity._last_bk is not None:
            plan["ob"] = self.entity._last_bk
        if self.entity._last_legacy:
            plan["ol"] = 1
        return plan

    def stale(self, result: Sequence[Any]) -> None:
        """Adopt the stored bookkeeping and values the script reported."""
        stored = result[2]
        self.entity._last_bk = to_text(stored) if stored is not None else None
        self.entity._last_legacy = bool(int(result[3]))
        rest = result[4:]
        for i in range(0, len(rest), 2):
            field = to_text(rest[i])
            value = rest[i + 1]
            if value is None:
                self.last.pop(field, None)
            else:
                self.last[field] = to_text(value)

    def plan(self, batch: Batch) -> dict[str, Any]:
        raise NotImplementedError

    def race(self, cols: list[str]) -> Exception:
        """The exception for a failed race check of ``cols``."""
        raise NotImplementedError

    def done(self) -> None:
        raise NotImplementedError


class SaveState(_State):
    """A save of one entity (API.md §4.3): new texts, index entries and unique values."""

    changes: int

    def __init__(self, entity: Any, full: bool = False, force: bool = False) -> None:
        super().__init__(entity)
        model = self.model
        pkattr = model._pkey
        data = entity._data
        texts: dict[str, str] = {}
        for attr, col in model._stored_columns:
            value = data.get(attr)
            if value is not None:
                texts[attr] = col._to_redis(value)
        texts[pkattr] = self.pk
        self.texts = texts
        self.full = full
        self.as_new = entity._new or force
        last = entity._last
        if self.as_new or full:
            self.changed = dict(texts)
        else:
            self.changed = {a: t for a, t in texts.items() if last.get(a) != t}
        self.removed = [a for a in last if a not in texts and a != BOOKKEEPING]
        if self.as_new or full:
            self.changes = model._column_count
        else:
            self.changes = len(self.changed) + len(self.removed)
        self.data = dict(data)
        # columns whose stored value feeds index or unique entries but that this save does
        # not write: if another writer changed one, the entries follow the stored value
        if self.as_new:
            self.sources: list[str] = []
        else:
            skip = set(self.changed) | set(self.removed) | {pkattr}
            self.sources = sorted(_model_cache(model)["sources"] - skip)
        self._merged: tuple[tuple[str, str | None], ...] = ()
        self._derive(self.data, texts)

    def _derive(self, data: dict[str, Any], texts: dict[str, str]) -> None:
        cache = self.entity.__dict__.setdefault("_index_cache", {})
        entries = self.entries = index_entries(self.model, data, texts, cache)
        # the bookkeeping records index names, not scores: reuse the stored text when the
        # names are those of the last save (an update of a numeric column, say)
        last = vars(self.entity).get("_bk_entries")
        if (
            last is not None
            and last[0] == self.entity._last_bk
            and last[1]
            == (
                entries.tokens,
                list(entries.scores),
                entries.prefix,
                entries.suffix,
                list(entries.geo),
            )
        ):
            self.bookkeeping = last[0]
        else:
            self.bookkeeping = entries.bookkeeping()
        self.new_unique = _unique_values(self.model, texts, data)

    def _merge(self) -> None:
        """Recompute the entries after a stale answer showed other stored source values.

        rom 1.x rebuilt every index entry from the entity's possibly stale values, so an
        unwritten indexed column changed by another client got index entries that no longer
        matched the hash.  Here the entries of such columns follow the stored value (and the
        hash keeps it); columns this save writes are still race-checked as in rom.
        """
        known = self.entity._last
        merged = tuple(
            (a, self.last.get(a)) for a in self.sources if self.last.get(a) != known.get(a)
        )
        if merged == self._merged:
            return
        self._merged = merged
        data, texts = dict(self.data), dict(self.texts)
        for attr, text in merged:
            if text is None:
                data[attr] = None
                texts.pop(attr, None)
                continue
            try:
                data[attr] = self.model._columns[attr]._from_redis(text)
            except (ValueError, TypeError, ArithmeticError, ORMError) as err:
                raise self.race([attr]) from err
            texts[attr] = text
        self._derive(data, texts)

    def plan(self, batch: Batch) -> dict[str, Any]:
        model, ks, entity = self.model, self.ks, self.entity
        pkattr = model._pkey
        if self.sources:
            self._merge()
        plan = self._common(batch)
        hs: list[str] = []
        for attr, text in self.changed.items():
            hs += (attr, text)
        if self.bookkeeping != entity._last_bk or self.as_new or self.full:
            hs += (BOOKKEEPING, self.bookkeeping)
        if hs:
            plan["hs"] = hs
        if self.removed:
            plan["hd"] = self.removed
        unique_cols = _model_cache(model)["unique"]
        if not self.as_new:
            check = set(self.changed) | set(self.removed)
            check.discard(pkattr)
            last = entity._last
            plan["rc"] = [[pkattr, self.pk]] + [[a, last[a]] for a in sorted(check) if a in last]
            if self.sources:
                plan["ex"] = [[a, self.last.get(a)] for a in self.sources]
        elif unique_cols and not entity._new:
            plan["ex"] = [[a, self.last.get(a)] for a in _model_cache(model)["unique_sorted"]]
        if self.new_unique:
            plan["u"] = [[batch.key(ks.unique(n)), v] for n, v in self.new_unique.items()]
        if model._unique or model._cunique:
            old_unique = _unique_values(model, self.last, dict(self.last))
            release = [(n, v) for n, v in old_unique.items() if self.new_unique.get(n) != v]
            if release:
                plan["ur"] = [[batch.key(ks.unique(n)), v] for n, v in release]
        old = _old_bookkeeping(entity)
        plan.update(_index_ops(batch, ks, self.pk, old, self.entries, self.full or self.as_new))
        plan.update(expiry.plan_fields(self, batch, delete=False))
        return plan

    def race(self, cols: list[str]) -> Exception:
        ns = self.ks.namespace
        if self.model._pkey in cols:
            return EntityDeletedError(
                f"Entity {ns}:{self.pk} was deleted by another writer", ns, self.pk
            )
        return DataRaceError(
            f"{ns}:{self.pk} Column(s) {cols!r} updated by another writer, write aborted!",
            ns,
            self.pk,
        )

    def unique(self, i: int) -> Exception:
        name, value = list(self.new_unique.items())[i - 1]
        return UniqueKeyViolation(
            f"Value {value!r} for {self.ks.unique(name)} not distinct (failed for pk={self.pk})",
            self.ks.namespace,
            self.pk,
        )

    def done(self) -> None:
        entity = self.entity
        entries = self.entries
        entity._last = self.texts
        entity._last_bk = self.bookkeeping
        entity._last_legacy = False
        entity._bk_entries = (
            self.bookkeeping,
            (
                entries.tokens,
                list(entries.scores),
                entries.prefix,
                entries.suffix,
                list(entries.geo),
            ),
        )
        entity._bk_parsed = (
            self.bookkeeping,
            [
                list(entries.tokens),
                list(entries.scores),
                [list(p) for p in entries.prefix],
                [list(p) for p in entries.suffix],
                list(entries.geo),
            ],
        )


class DeleteState(_State):
    """A delete of one entity: its hash, index and unique entries, UnsafeColumn keys."""

    #: set (only) on deletes of an expiry sweep
    sweep: bool

    def plan(self, batch: Batch) -> dict[str, Any]:
        model, ks = self.model, self.ks
        plan = self._common(batch)
        plan["d"] = 1
        unique_cols = _model_cache(model)["unique_sorted"]
        if unique_cols:
            plan["ex"] = [[a, self.last.get(a)] for a in unique_cols]
        old_unique = _unique_values(model, self.last, dict(self.last))
        if old_unique:
            plan["ur"] = [[batch.key(ks.unique(n)), v] for n, v in old_unique.items()]
        plan.update(_index_ops(batch, ks, self.pk, _old_bookkeeping(self.entity), None, False))
        unsafe = [batch.key(ks.unsafe(self.pk, attr)) for attr in model._unsafe_columns]
        if unsafe:
            plan["dk"] = unsafe
        plan.update(expiry.plan_fields(self, batch, delete=True))
        return plan

    def race(self, cols: list[str]) -> Exception:  # deletes carry no race check
        return ORMError(f"unexpected race answer for a delete: {cols!r}")

    def done(self) -> None:
        self.entity._last = {}
        # the hash is gone: a forced re-save must not expect the old bookkeeping
        self.entity._last_bk = None
        self.entity._last_legacy = False


def execute(conn: Any, states: Sequence[_State], refs: Any = None, sweeping: bool = False) -> None:
    """Run ``states`` as one atomic write, replanning after stale answers.

    :param refs: optional callable ``refs(batch)`` adding reference checks (cascades); a
        failed check raises :class:`ReferencesChanged`.
    :param sweeping: the call is an expiry sweep (no further sweep is started from it)
    """
    for _ in range(_MAX_REPLANS + len(states)):
        batch = Batch()
        for state in states:
            batch.plans.append(state.plan(batch))
        if refs is not None:
            refs(batch)
        result = batch.run(conn)
        status = to_text(result[0])
        if status == "ok":
            for state in states:
                state.done()
                if isinstance(state, SaveState):
                    expiry.written(state)
            if states:
                wait_for_replicas(conn, states[0].model, batch.keys[0])
            if len(result) > 1 and int(result[1]) and not sweeping:
                for model in {state.model for state in states if state.model._has_expiry}:
                    expiry.expire_sweep(model, limit=expiry.OPPORTUNISTIC_SWEEP)
            return
        if status == "changed":
            raise ReferencesChanged(int(result[1]))
        state = states[int(result[1]) - 1]
        if status == "race":
            raise state.race([to_text(c) for c in result[2:]])
        if status == "unique":
            assert isinstance(state, SaveState)
            raise state.unique(int(result[2]))
        state.stale(result)
    # other writers kept changing these entities between our plans: a lost race, which
    # callers already handle (retry) for saves
    # the loop ran (at least _MAX_REPLANS times), so ``state`` is bound
    ns, pk = state.ks.namespace, state.pk  # pyright: ignore[reportPossiblyUnboundVariable]
    raise DataRaceError(
        f"{ns}:{pk} index data kept changing under concurrent writers, write aborted!", ns, pk
    )


def wait_for_replicas(conn: Any, model: Any, key: str) -> None:
    """Block until the configured number of replicas acknowledged the write (opt-in).

    The setting is the model's ``_durability = (replicas, timeout_seconds)`` or the global
    one from :func:`rom.util.set_durability`.  Too few acknowledgements raise
    :class:`rom.exceptions.DurabilityError`: the write reached the master but may be lost
    if the master fails before a replica has it.
    """
    setting = getattr(model, "_durability", None)
    if setting is None:
        setting = sys.modules["rom.util"].DURABILITY
    if not setting or not setting[0]:
        return
    replicas, timeout = setting
    millis = max(0, int(timeout * 1000))
    if is_cluster(conn):
        node = conn.get_node_from_key(key)
        acked = conn.execute_command("WAIT", replicas, millis, target_nodes=node)
    else:
        acked = conn.execute_command("WAIT", replicas, millis)
    if int(acked) < replicas:
        raise DurabilityError(
            f"The write to {key} reached {acked} of {replicas} replicas within {timeout}s"
        )


def save_entity(entity: Any, full: bool = False, force: bool = False) -> int:
    """Write one entity in one atomic call; returns rom's change count."""
    model = type(entity)
    for attr, _col in model._relations:
        ref = entity._data.get(attr)
        if ref is not None and getattr(ref, "_new", False) and not ref._deleted:
            ref.save()
    state = SaveState(entity, full=full, force=force)
    execute(state.conn, [state])
    return state.changes


def delete_entity(entity: Any) -> None:
    """Delete one entity, its index and unique entries and its UnsafeColumn keys atomically."""
    state = DeleteState(entity)
    execute(state.conn, [state])


def _group(entities: Iterable[Any]) -> list[tuple[Any, list[Any]]]:
    """Entities grouped by connection, and on a cluster by model (one hash slot each)."""
    groups: dict[tuple[int, str], tuple[Any, list[Any]]] = {}
    for entity in entities:
        model = type(entity)
        conn = model._connection
        slot = model._keyspace(conn).prefix if is_cluster(conn) else ""
        groups.setdefault((id(conn), slot), (conn, []))[1].append(entity)
    return list(groups.values())


def delete_many(entities: Iterable[Any]) -> None:
    """Delete entities atomically per connection (per model on a cluster)."""
    for conn, group in _group(entities):
        execute(conn, [DeleteState(e) for e in group])


def save_many(entities: list[Any], full: bool = False, force: bool = False) -> int:
    """Save entities as one unit of work per connection (per model on a cluster).

    Before-hooks run for every entity, then each group is written in one atomic call (all
    unique and race checks of the group first: all or nothing), then the after-hooks run.
    """
    todo: list[Any] = []
    seen: set[int] = set()

    def add(entity: Any) -> None:
        if id(entity) in seen:
            return
        seen.add(id(entity))
        for attr, _col in type(entity)._relations:
            ref = entity._data.get(attr)
            if ref is not None and getattr(ref, "_new", False) and not ref._deleted:
                add(ref)
        todo.append(entity)

    for entity in entities:
        if entity._deleted and not force:
            raise EntityDeletedError(
                f"Cannot save deleted entity {entity._pk} without force=True",
                entity._namespace,
                str(entity._data.get(entity._pkey)),
            )
        add(entity)
    was_new = {id(e): e._new for e in todo}
    for entity in todo:
        if entity._new:
            entity._before_insert()
        else:
            entity._before_update()
    total = 0
    for conn, group in _group(todo):
        states = [SaveState(e, full=full, force=force) for e in group]
        execute(conn, states)
        for state in states:
            entity = state.entity
            entity._new = entity._modified = entity._deleted = False
            total += state.changes
    from .session import session

    for entity in todo:
        session.add(entity)
        if was_new[id(entity)]:
            entity._after_insert()
        else:
            entity._after_update()
    return total
