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
import warnings
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from redis.exceptions import ResponseError

from .encoding import _encode_unique_constraint, _prefix_score, latin1_text, score_text, to_text
from .exceptions import (
    ColumnError,
    DataRaceError,
    EntityDeletedError,
    ORMError,
    UniqueKeyViolation,
)
from .keygens import LATIN1_KEYGEN_NAMES, SORT_KEYGEN_NAMES
from .keys import KeySpace
from .scripts import get_script

__all__ = ["IndexEntries", "delete_many", "index_entries", "save_entity", "save_many"]

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
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        if latin1:
            return latin1_text(item)
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return latin1_text(item)
    raise ColumnError(f"Keygen of column {col._attr!r} returned a non-string item {item!r:.100}")


def _score(value: Any, col: Any) -> str:
    try:
        number = float(value) if not isinstance(value, (int, Decimal)) else value
        if isinstance(number, bool):
            number = int(number)
        if isinstance(number, float) and math.isnan(number):
            raise ValueError("NaN")
        if isinstance(number, Decimal) and number.is_nan():
            raise ValueError("NaN")
    except (TypeError, ValueError) as err:
        raise ColumnError(
            f"Keygen of column {col._attr!r} returned an invalid score {value!r:.100}"
        ) from err
    if isinstance(value, str):
        return value.strip()
    return score_text(number)


def index_entries(model: Any, data: dict[str, Any]) -> IndexEntries:
    """Compute every index entry of an entity from its Python values (API.md §8.2)."""
    out = IndexEntries()
    for attr, col in model._indexed_columns:
        if col._keygen2:
            result = col._keygen(attr, data)
        else:
            value = data.get(attr)
            if value is None:
                continue
            result = col._keygen(value)
        if not result:
            continue
        if isinstance(result, (list, tuple, set)):
            latin1 = col._keygen_name() in LATIN1_KEYGEN_NAMES
            items = [_item_text(item, latin1, col) for item in result]
            if col._index:
                out.tokens.extend(f"{attr}:{item}" for item in items)
            if col._prefix:
                out.prefix.extend((attr, item) for item in items)
            if col._suffix:
                out.suffix.extend((attr, item[::-1]) for item in items)
        elif isinstance(result, dict):
            if col._index:
                for key, val in result.items():
                    if key == "":
                        out.scores[attr] = _score(val, col)
                    elif val is None or val == "":
                        out.tokens.append(f"{attr}:{key}")
                    else:
                        out.scores[f"{attr}:{key}"] = _score(val, col)
            if col._prefix or col._suffix:
                name = col._keygen_name()
                value = data.get(attr)
                if name in SORT_KEYGEN_NAMES and value:
                    text = latin1_text(value) if isinstance(value, bytes) else str(value)
                    if name != "SIMPLE":
                        text = text.lower()
                    if col._prefix:
                        out.prefix.append((attr, text))
                    if col._suffix:
                        out.suffix.append((attr, text[::-1]))
                else:
                    warnings.warn(
                        "Prefix indexes are currently not enabled for non-standard keygen "
                        "functions",
                        stacklevel=4,
                    )
        else:
            raise ColumnError(
                f"Don't know how to turn {result!r:.100} into a sequence of keys "
                f"(column {attr!r})"
            )
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


class _Plan:
    """Accumulates KEYS and the JSON plan of one write.lua call."""

    def __init__(self, ks: KeySpace, pk: str) -> None:
        self.ks = ks
        self.pk = pk
        self.keys: list[str] = [ks.entity(pk), ks.legacy()]
        self._key_index: dict[str, int] = {}
        self.body: dict[str, Any] = {}

    def key(self, name: str) -> int:
        index = self._key_index.get(name)
        if index is None:
            self.keys.append(name)
            index = self._key_index[name] = len(self.keys)
        return index

    def index_ops(self, old: list[list[Any]], new: IndexEntries | None, full: bool) -> None:
        """Removals of old entries that are gone and additions of new or changed ones."""
        ks, pk = self.ks, self.pk
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
        rm: list[list[Any]] = [[self.key(k), "s", *m] for k, m in rm_sets.items()]
        rm += [[self.key(k), "z", *m] for k, m in rm_zsets.items()]
        ad: list[list[Any]] = [[self.key(k), "s", *m] for k, m in add_sets.items()]
        ad += [[self.key(k), "z", *m] for k, m in add_zsets.items()]
        ad += [[self.key(ks.geo(n)), "g", lon, lat, pk] for n, (lon, lat) in new_geo.items()]
        if rm:
            self.body["rm"] = rm
        if ad:
            self.body["ad"] = ad

    def run(self, conn: Any) -> Any:
        args = [self.pk, json.dumps(self.body, separators=(",", ":"))]
        return run_script(conn, "write", self.keys, args)


def run_script(conn: Any, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run a packaged script, turning Redis refusals into rom exceptions."""
    try:
        return get_script(name)(conn, keys, args)
    except ResponseError as err:
        raise ORMError(f"Redis refused the {name} script: {err}") from err


def _unique_values(model: Any, texts: dict[str, str], data: dict[str, Any] | None) -> dict[str, str]:
    """Unique index name -> field value an entity with these stored texts must own."""
    out: dict[str, str] = {}
    for attr in model._unique:
        col = model._columns[attr]
        if col._virtual:  # unique IndexOnly: the first keygen item
            if data is None:
                continue
            result = col._keygen(attr, data)
            if result:
                first = next(iter(result)) if not isinstance(result, dict) else None
                if isinstance(first, bytes):
                    out[attr] = latin1_text(first)
                elif first is not None and first != "":
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


def _unique_columns(model: Any) -> set[str]:
    cols = {a for a in model._unique if not model._columns[a]._virtual}
    for group in model._cunique:
        cols.update(group)
    return cols


def _stored_data(model: Any, last: dict[str, str]) -> dict[str, Any]:
    """The previous data dict handed to unique IndexOnly keygens (raw stored strings)."""
    return dict(last)


def save_entity(entity: Any, full: bool = False, force: bool = False) -> int:
    """Write one entity in one atomic call; returns rom's change count."""
    model = type(entity)
    conn = model._connection
    ks = model._keyspace(conn)
    pkattr = model._pkey
    data = entity._data
    pk = str(data[pkattr])
    for attr, col in model._relations:
        ref = data.get(attr)
        if ref is not None and not isinstance(ref, (str, int)) and getattr(ref, "_new", False):
            ref.save()
    texts: dict[str, str] = {}
    for attr, col in model._stored_columns:
        value = data.get(attr)
        if value is not None:
            texts[attr] = col._to_redis(value)
    texts[pkattr] = pk
    last = entity._last
    as_new = entity._new or force
    if as_new or full:
        changed = dict(texts)
        changes = model._column_count
    else:
        changed = {a: t for a, t in texts.items() if last.get(a) != t}
        changes = 0
    removed = [a for a in last if a not in texts and a != BOOKKEEPING]
    if not (as_new or full):
        changes = len(changed) + len(removed)
    keydata = dict(entity._data)
    entries = index_entries(model, keydata)
    bookkeeping = entries.bookkeeping()
    new_unique = _unique_values(model, texts, keydata)
    unique_cols = _unique_columns(model)
    plan_last = dict(last)
    for _ in range(_MAX_REPLANS):
        plan = _Plan(ks, pk)
        body = plan.body
        hs: list[str] = []
        for attr, text in changed.items():
            hs += (attr, text)
        if bookkeeping != entity._last_bk or as_new or full:
            hs += (BOOKKEEPING, bookkeeping)
        if hs:
            body["hs"] = hs
        if removed:
            body["hd"] = removed
        if not as_new:
            check = set(changed) | set(removed) | unique_cols
            check.discard(pkattr)
            rc = [[pkattr, pk]] + [[a, last[a]] for a in sorted(check) if a in last]
            body["rc"] = rc
        elif unique_cols and not entity._new:
            body["ex"] = [[a, plan_last.get(a)] for a in sorted(unique_cols)]
        old_unique = _unique_values(model, plan_last, _stored_data(model, plan_last))
        if new_unique:
            body["u"] = [[plan.key(ks.unique(n)), v] for n, v in new_unique.items()]
        release = [(n, v) for n, v in old_unique.items() if new_unique.get(n) != v]
        if release:
            body["ur"] = [[plan.key(ks.unique(n)), v] for n, v in release]
        old = parse_bookkeeping(entity._last_bk)
        if entity._last_bk is not None:
            body["ob"] = entity._last_bk
        if entity._last_legacy:
            body["ol"] = 1
        plan.index_ops(old, entries, full or as_new)
        result = plan.run(conn)
        status = to_text(result[0])
        if status == "ok":
            entity._last = texts
            entity._last_bk = bookkeeping
            entity._last_legacy = False
            return changes
        if status == "race":
            cols = [to_text(c) for c in result[1:]]
            if pkattr in cols:
                raise EntityDeletedError(
                    f"Entity {ks.namespace}:{pk} was deleted by another writer", ks.namespace, pk
                )
            raise DataRaceError(
                f"{ks.namespace}:{pk} Column(s) {cols!r} updated by another writer, "
                "write aborted!",
                ks.namespace,
                pk,
            )
        if status == "unique":
            name, value = list(new_unique.items())[int(result[1]) - 1]
            raise UniqueKeyViolation(
                f"Value {value!r} for {ks.unique(name)} not distinct (failed for pk={pk})",
                ks.namespace,
                pk,
            )
        # stale: the stored bookkeeping (or unique values) differ from what we planned on
        _apply_stale(entity, result, plan_last)
    raise ORMError(f"Could not save {ks.namespace}:{pk}: its index data keeps changing")


def _apply_stale(entity: Any, result: Sequence[Any], last: dict[str, str]) -> None:
    stored = result[1]
    entity._last_bk = to_text(stored) if stored is not None else None
    entity._last_legacy = bool(int(result[2]))
    rest = result[3:]
    for i in range(0, len(rest), 2):
        field = to_text(rest[i])
        value = rest[i + 1]
        if value is None:
            last.pop(field, None)
        else:
            last[field] = to_text(value)


def _delete_plan(entity: Any, ks: KeySpace, last: dict[str, str]) -> _Plan:
    model = type(entity)
    pk = str(entity._data[model._pkey])
    plan = _Plan(ks, pk)
    body = plan.body
    body["d"] = 1
    unique_cols = _unique_columns(model)
    if unique_cols:
        body["ex"] = [[a, last.get(a)] for a in sorted(unique_cols)]
    old_unique = _unique_values(model, last, _stored_data(model, last))
    if old_unique:
        body["ur"] = [[plan.key(ks.unique(n)), v] for n, v in old_unique.items()]
    if entity._last_bk is not None:
        body["ob"] = entity._last_bk
    if entity._last_legacy:
        body["ol"] = 1
    plan.index_ops(parse_bookkeeping(entity._last_bk), None, False)
    unsafe = [plan.key(ks.unsafe(pk, attr)) for attr in model._unsafe_columns]
    if unsafe:
        body["dk"] = unsafe
    return plan


def delete_entity(entity: Any) -> None:
    """Delete one entity, its index and unique entries and its UnsafeColumn keys atomically."""
    model = type(entity)
    conn = model._connection
    ks = model._keyspace(conn)
    last = dict(entity._last)
    for _ in range(_MAX_REPLANS):
        result = _delete_plan(entity, ks, last).run(conn)
        if to_text(result[0]) == "ok":
            return
        _apply_stale(entity, result, last)
    raise ORMError(f"Could not delete {entity._pk}: its index data keeps changing")


def delete_many(entities: Iterable[Any]) -> None:
    """Delete entities with one pipelined round trip per connection (plus rare replans)."""
    by_conn: dict[int, tuple[Any, list[Any]]] = {}
    for entity in entities:
        conn = type(entity)._connection
        by_conn.setdefault(id(conn), (conn, []))[1].append(entity)
    for conn, group in by_conn.values():
        script = get_script("write")
        plans = []
        lasts = []
        for entity in group:
            last = dict(entity._last)
            lasts.append(last)
            plans.append(_delete_plan(entity, type(entity)._keyspace(conn), last))
        try:
            script.load(conn)
            pipe = conn.pipeline(transaction=True)
            for plan in plans:
                args = [plan.pk, json.dumps(plan.body, separators=(",", ":"))]
                pipe.evalsha(script.sha, len(plan.keys), *plan.keys, *args)
            results = pipe.execute()
        except ResponseError as err:
            raise ORMError(f"Redis refused the bulk delete: {err}") from err
        for entity, last, result in zip(group, lasts, results):
            if to_text(result[0]) != "ok":
                _apply_stale(entity, result, last)
                entity._last = last
                delete_entity(entity)


def save_many(entities: list[Any], full: bool = False, force: bool = False) -> int:
    """Save entities one by one (hooks included); returns the summed change counts."""
    total = 0
    for entity in entities:
        total += entity.save(full=full, force=force)
    return total

