"""on_delete rules and atomic transfers (API.md §4.3, §4.6; STORAGE.md §9).

Deleting with on_delete rules
-----------------------------
:func:`delete_with_rules` first *plans* the whole delete without writing anything: starting
from the entity it walks the references to it breadth-first (``MODELS_REFERENCED``, under
the referenced model's class name *and* its namespace), reading each level's referencing
entities with one pipelined ``ZRANGEBYSCORE`` on their score indexes and one pipelined
``HGETALL``.  The plan holds a delete for the entity and every ``'cascade'`` referrer, a
save for every ``'set null'`` / ``'set default'`` referrer (the field is removed, not left
behind as rom 1.x did), and a reference check for every index it read.  A ``'restrict'``
reference from an entity that survives the delete raises :class:`~rom.RestrictError` before
anything is written (a restrict reference held by an entity this same delete removes, e.g.
a self-reference, does not block).  Self-references and cycles end because every
``<namespace>:<pk>`` is visited once.

When every key involved lives on one connection (and, on Redis Cluster, in one hash slot)
the plan is written by **one** ``write.lua`` call: the reference checks, every race and
unique check, then every delete and save.  A client killed at any point leaves either
nothing or everything written.  If a referrer appeared or disappeared after planning, the
script writes nothing and the delete is planned again.

Deletes spanning several connections or cluster slots cannot be one script.  They are
written one call per (level, connection/slot) group, **deepest level first** (the referrers
of a level are nulled or deleted before the level itself) and the entity itself last; each
call still checks its references atomically.  A crash midway therefore leaves no
reference to a deleted entity (only nulled or cascaded referrers of entities that still
exist), and calling ``delete()`` again re-plans from what is stored and finishes the job.
Across groups a referrer created concurrently between two calls can still end up pointing
at a deleted entity, and a restrict reference that appears midway stops the delete after
the deeper levels were written.

Cascaded entities' hooks are not called.  Entities of the session that a cascade deleted
are forgotten and marked deleted; referrers in the session that were nulled (or set to the
default) get the new value.

Transfers
---------
:func:`transfer` runs ``transfer.lua``: the "already sent" and "not enough credit" checks,
both balances, the transaction marker, and (an improvement over rom 1.x) the score and
boolean index entries of those columns with their ``-index-data-`` bookkeeping, all in one
atomic call.  Balances are written as text their column type loads: exact integer text for
:class:`~rom.Integer` (magnitudes below 2**53), shortest round-trip text for
:class:`~rom.Float` and :class:`~rom.Decimal`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal as _Decimal
from typing import Any

from . import writer
from .columns import (
    MODELS,
    MODELS_REFERENCED,
    Boolean,
    Column,
    Decimal,
    Float,
    Integer,
    ManyToOne,
)
from .encoding import to_text
from .exceptions import (
    DataRaceError,
    EntityDeletedError,
    InvalidColumnValue,
    ORMError,
    RestrictError,
)
from .keygens import _boolean_keygen, _numeric_keygen
from .keys import is_cluster
from .session import session

__all__ = ["delete_with_rules", "transfer"]


#: how often a delete is planned again when its references changed under it
_MAX_ATTEMPTS = 8


# -- on_delete ------------------------------------------------------------------------------


def _referrers(model: Any) -> list[tuple[Any, str, str]]:
    """``(referencing model, attribute, rule)`` for every ManyToOne/OneToOne to ``model``.

    References are registered under the name they were written with, so both the class
    name and the namespace are looked up ([BUG] 5 of rom 1.x).
    """
    out: list[tuple[Any, str, str]] = []
    seen: set[tuple[str, str]] = set()
    names = [model.__name__]
    if model._namespace != model.__name__:
        names.append(model._namespace)
    for name in names:
        for ns, attr, rule in MODELS_REFERENCED.get(name, ()):
            if (ns, attr) in seen:
                continue
            seen.add((ns, attr))
            ref_model = MODELS.get(ns)
            if ref_model is not None:
                out.append((ref_model, attr, rule))
    return out


def _group_key(model: Any) -> tuple[int, str]:
    """Which single script call can hold this model's keys: (connection, cluster slot tag)."""
    conn = model._connection
    return id(conn), model._keyspace(conn).prefix if is_cluster(conn) else ""


def _session_key(model: Any, pk: object) -> str:
    return f"{model._namespace}:{pk}"


class _Read:
    """One reference index read: the referrers of ``target`` through ``model.attr``."""

    __slots__ = ("attr", "conn", "depth", "key", "members", "model", "pk", "rule", "target")

    def __init__(self, model: Any, attr: str, rule: str, target: Any, depth: int) -> None:
        tmodel = type(target)
        self.target: str = target._pk
        self.pk = str(target._data[tmodel._pkey])
        self.model = model
        self.attr = attr
        self.rule = rule
        self.depth = depth
        self.conn = model._connection
        self.key: str = model._keyspace(self.conn).score(attr)
        self.members: list[str] = []


class _Update:
    """A referrer whose reference columns are nulled or set to their default."""

    __slots__ = ("depth", "entity", "values")

    def __init__(self, entity: Any, depth: int) -> None:
        self.entity = entity
        self.depth = depth
        #: attribute -> (old target pk, new value)
        self.values: dict[str, tuple[str, Any]] = {}


class _Plan:
    """Everything one delete writes, and the reference reads it relies on."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.deletes: dict[str, tuple[Any, int]] = {root._pk: (root, 0)}
        self.updates: dict[str, _Update] = {}
        self.reads: list[_Read] = []
        self.restricted: list[tuple[_Read, str]] = []


def _by_conn(reads: Iterable[_Read]) -> list[tuple[Any, list[_Read]]]:
    groups: dict[int, tuple[Any, list[_Read]]] = {}
    for read in reads:
        groups.setdefault(id(read.conn), (read.conn, []))[1].append(read)
    return list(groups.values())


def _load(reads: list[_Read], plan: _Plan, loaded: dict[str, Any]) -> None:
    """Read the members of every index in ``reads`` and the hashes of new referrers."""
    for conn, group in _by_conn(reads):
        pipe = conn.pipeline(transaction=False)
        for read in group:
            pipe.zrangebyscore(read.key, read.pk, read.pk)
        for read, members in zip(group, writer.run_pipeline(pipe), strict=True):
            read.members = [to_text(m) for m in members]
    wanted: dict[str, tuple[Any, str]] = {}
    for read in reads:
        for member in read.members:
            key = _session_key(read.model, member)
            if key in loaded or key in plan.deletes:
                continue
            wanted[key] = (read.model, member)
    by_conn: dict[int, tuple[Any, list[tuple[str, Any, str]]]] = {}
    for key, (model, member) in wanted.items():
        conn = model._connection
        by_conn.setdefault(id(conn), (conn, []))[1].append((key, model, member))
    for conn, items in by_conn.values():
        pipe = conn.pipeline(transaction=False)
        for _key, model, member in items:
            pipe.hgetall(model._keyspace(conn).entity(member))
        for (key, model, _member), raw in zip(items, writer.run_pipeline(pipe), strict=True):
            # an index entry without its hash (deleted outside rom) is not a referrer
            loaded[key] = model._from_hash(raw, add=False) if raw else None


def _default(model: Any, attr: str) -> Any:
    col = model._columns[attr]
    value = col._default_value()
    if value is None:
        return None
    return col._validate(value)


def _make_plan(root: Any) -> _Plan:
    """Walk the references breadth-first and decide what the delete writes (reads only)."""
    plan = _Plan(root)
    loaded: dict[str, Any] = {}
    level = [root]
    depth = 0
    while level:
        reads: list[_Read] = []
        for target in level:
            for ref_model, attr, rule in _referrers(type(target)):
                if rule != "no action":
                    reads.append(_Read(ref_model, attr, rule, target, depth + 1))
        if not reads:
            break
        _load(reads, plan, loaded)
        plan.reads.extend(reads)
        next_level: list[Any] = []
        for read in reads:
            for member in read.members:
                key = _session_key(read.model, member)
                if read.rule == "restrict":
                    if key in plan.deletes or loaded.get(key) is not None:
                        plan.restricted.append((read, key))
                    continue
                if key in plan.deletes:
                    continue
                entity = loaded.get(key)
                if entity is None:
                    continue
                if read.rule == "cascade":
                    plan.deletes[key] = (entity, depth + 1)
                    next_level.append(entity)
                    continue
                update = plan.updates.get(key)
                if update is None:
                    update = plan.updates[key] = _Update(entity, depth + 1)
                value = None if read.rule == "set null" else _default(read.model, read.attr)
                update.values[read.attr] = (read.pk, value)
        level = next_level
        depth += 1
    for read, key in plan.restricted:
        if key not in plan.deletes:
            raise RestrictError(
                f"Cannot delete entity {read.target}: foreign references from "
                f"{read.model.__name__}.{read.attr} exist (e.g. {key})"
            )
    for key in list(plan.updates):
        if key in plan.deletes:
            del plan.updates[key]
    for update in plan.updates.values():
        for attr, (_pk, value) in update.values.items():
            update.entity._data[attr] = value
    return plan


def _forget_deleted(entity: Any, root: Any) -> None:
    entity._deleted = True
    entity._modified = True
    if entity is root:
        return
    known = session.get(entity._pk)
    if known is not None and known is not entity:
        known._deleted = True
        known._modified = True
        known._last = {}
        session.forget(known)


def _sync_update(update: _Update) -> None:
    """Give a session entity the values a 'set null'/'set default' wrote to Redis."""
    fresh = update.entity
    known = session.get(fresh._pk)
    if known is None or known is fresh:
        return
    last = dict(known._last)
    for attr, (old_pk, value) in update.values.items():
        col = type(known)._columns[attr]
        current = known._data.get(attr)
        if isinstance(col, ManyToOne) and str(col._ref_id(current)) == old_pk:
            known._data[attr] = value
        stored = fresh._last.get(attr)
        if stored is None:
            last.pop(attr, None)
        else:
            last[attr] = stored
    known._last = last
    known._last_bk = fresh._last_bk
    known._last_legacy = False


def _write_group(conn: Any, states: list[Any], reads: list[_Read], plan: _Plan) -> None:
    def refs(batch: writer.Batch) -> None:
        for read in reads:
            batch.ref_check(read.key, read.pk, read.members)

    if not states:  # only reference checks in this group (several connections/slots)
        batch = writer.Batch()
        refs(batch)
        result = batch.run(conn)
        if to_text(result[0]) == "changed":
            raise writer.ReferencesChanged(int(result[1]))
        return
    writer.execute(conn, states, refs=refs if reads else None)
    for state in states:
        entity = state.entity
        if isinstance(state, writer.DeleteState):
            _forget_deleted(entity, plan.root)
        else:
            update = plan.updates.get(entity._pk)
            if update is not None:
                _sync_update(update)


def _write(plan: _Plan) -> None:
    """Write the plan: one call when possible, else deepest level first per group."""
    items: list[tuple[int, Any, Any]] = []  # (depth, model, state)
    for entity, depth in plan.deletes.values():
        items.append((depth, type(entity), writer.DeleteState(entity)))
    for update in plan.updates.values():
        items.append((update.depth, type(update.entity), writer.SaveState(update.entity)))
    groups = {_group_key(model) for _d, model, _s in items}
    groups.update(_group_key(read.model) for read in plan.reads)
    if len(groups) == 1:
        conn = type(plan.root)._connection
        _write_group(conn, [s for _d, _m, s in items], plan.reads, plan)
        return
    buckets: dict[tuple[int, tuple[int, str]], tuple[Any, list[Any], list[_Read]]] = {}
    for depth, model, state in items:
        bucket = buckets.setdefault((depth, _group_key(model)), (model._connection, [], []))
        bucket[1].append(state)
    for read in plan.reads:
        bucket = buckets.setdefault(
            (read.depth, _group_key(read.model)), (read.model._connection, [], [])
        )
        bucket[2].append(read)
    for (_depth, _group), (conn, states, reads) in sorted(
        buckets.items(), key=lambda item: -item[0][0]
    ):
        _write_group(conn, states, reads, plan)


def delete_with_rules(entity: Any) -> None:
    """Delete ``entity`` and apply the ``on_delete`` rules of every reference to it.

    Reads the references level by level (two pipelined round trips per level), then writes
    the whole delete in one atomic call when every key is on one connection and slot (see
    the module documentation for the multi-server order).  Concurrent changes to the
    references make the write refuse; the delete is then planned again.

    :param entity: a saved entity (``Model.delete`` calls this; hooks are its business)
    :raises RestrictError: a surviving entity references a deleted one with ``'restrict'``
    :raises UniqueKeyViolation: a ``'set default'`` value is owned by another entity
    :raises ORMError: the references kept changing for every attempt
    """
    if not _referrers(type(entity)):
        writer.delete_entity(entity)
        return
    last: Exception | None = None
    for _ in range(_MAX_ATTEMPTS):
        plan = _make_plan(entity)
        try:
            _write(plan)
        except (writer.ReferencesChanged, DataRaceError, EntityDeletedError) as err:
            last = err  # a referrer changed between planning and writing: plan again
            continue
        return
    raise ORMError(
        f"Could not delete {entity._pk}: the entities referencing it keep changing"
    ) from last


# -- transfer -------------------------------------------------------------------------------

_NUMBER_COLUMNS = (Integer, Float, Decimal)
_MAX_EXACT = 2**53


def _score_only(col: Any) -> bool:
    """The column's only index is the default numeric score index."""
    return (
        col._keygen is _numeric_keygen
        and not col._keygen2
        and not (col._prefix or col._suffix or col._unique)
    )


def _plain(col: Any) -> bool:
    return not (col._index or col._prefix or col._suffix or col._unique)


def _amount_text(value: Any, integer: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, _Decimal)):
        raise ValueError(f"the transfer amount must be a number, not {value!r:.100}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("the transfer amount must be finite")
    if value <= 0:
        raise ValueError("the transfer amount must be positive")
    if integer:
        if value != int(value):
            raise ValueError("an Integer column can only transfer whole amounts")
        if abs(int(value)) >= _MAX_EXACT:
            raise ValueError("the transfer amount is too large for exact arithmetic")
        return str(int(value))
    return repr(number)


def transfer(
    entity: Any,
    other: Any,
    attr: str,
    value: Any,
    txn_model: Any,
    txn_attr: str,
    decimal_places: int = 0,
    refresh_entities: bool = True,
    refresh_index: bool = True,
) -> None:
    """Move ``value`` of numeric column ``attr`` from ``entity`` to ``other`` and set
    ``txn_model.<txn_attr>`` to 1, in one atomic Lua call (API.md §4.3).

    The call refuses (writing nothing) when the transaction marker is already set or the
    source holds less than ``value``.  Score indexes of ``attr`` and ``txn_attr`` (and a
    default boolean index of ``txn_attr``) are updated in the same call.  Afterwards the
    three entities are reloaded when ``refresh_entities`` or ``refresh_index``; other
    indexes that may depend on these columns (custom keygens, ``IndexOnly``, geo) are
    rebuilt by re-saving the entities with ``full=True`` when ``refresh_index``, as rom
    1.x does for every index.

    :param decimal_places: floor both new balances to this many decimals (binary floats)
    :raises ValueError: different connections (or cluster slots), an entity new, modified
        or deleted, ``value <= 0``, ``decimal_places < 0``, a non-numeric column,
        transferring to itself, ``"already sent"``, ``"not enough credit"``
    :raises EntityDeletedError: one of the entities no longer exists in Redis
    """
    entities = (entity, other, txn_model)
    conn = type(entity)._connection
    if any(type(e)._connection is not conn for e in entities):
        raise ValueError("transfer needs the three entities to share one connection object")
    for e in entities:
        if e._new or e._modified or e._deleted:
            raise ValueError(f"cannot transfer with a new, modified or deleted entity ({e._pk})")
    if decimal_places < 0:
        raise ValueError("decimal_places must be >= 0")
    cols = [type(entity)._columns.get(attr), type(other)._columns.get(attr)]
    for col in cols:
        if not isinstance(col, _NUMBER_COLUMNS):
            raise ValueError(f"transfer needs an Integer, Float or Decimal column, not {attr!r}")
    tcol = type(txn_model)._columns.get(txn_attr)
    if (
        not isinstance(tcol, Column)
        or tcol._virtual
        or tcol._relation
        or txn_attr == type(txn_model)._pkey
    ):
        raise ValueError(f"{type(txn_model).__name__} has no column {txn_attr!r} to mark")
    integer = [isinstance(col, Integer) for col in cols]
    if integer[0] != integer[1]:
        raise ValueError("transfer between an Integer and a non-Integer column")
    amount = _amount_text(value, integer[0])
    keyspaces = [type(e)._keyspace(conn) for e in entities]
    pks = [str(e._data[type(e)._pkey]) for e in entities]
    keys = [ks.entity(pk) for ks, pk in zip(keyspaces, pks, strict=True)]
    if keys[0] == keys[1]:
        raise ValueError("cannot transfer from an entity to itself")
    if is_cluster(conn) and len({ks.prefix for ks in keyspaces}) > 1:
        raise ValueError("on Redis Cluster the three entities must share one model namespace")
    keys += [ks.legacy() for ks in keyspaces]

    def key_index(name: str) -> int:
        if name not in keys:
            keys.append(name)
        return keys.index(name) + 1

    covered = True
    scores = [0, 0, 0]
    for i, col in enumerate(cols):
        if _score_only(col):
            scores[i] = key_index(keyspaces[i].score(attr))
        elif not _plain(col):
            covered = False
    try:
        txn_text = tcol._to_redis(tcol._validate(1))
    except InvalidColumnValue:
        txn_text = "1"

    token_rm: list[Any] = []
    token_add: list[Any] = []
    if isinstance(tcol, _NUMBER_COLUMNS) and _score_only(tcol):
        scores[2] = key_index(keyspaces[2].score(txn_attr))
    elif isinstance(tcol, Boolean) and tcol._keygen is _boolean_keygen and not tcol._keygen2:
        token_rm = [key_index(keyspaces[2].token(f"{txn_attr}:False")), f"{txn_attr}:False"]
        token_add = [key_index(keyspaces[2].token(f"{txn_attr}:True")), f"{txn_attr}:True"]
        covered = covered and not (tcol._prefix or tcol._suffix or tcol._unique)
    elif not _plain(tcol):
        covered = False
    for e in entities:
        model = type(e)
        if model._geo or any(c._keygen2 for _a, c in model._indexed_columns):
            covered = False  # their index entries may depend on the transferred columns
    spec = {
        "a": attr,
        "t": txn_attr,
        "v": amount,
        "dp": int(decimal_places),
        "int": 1 if integer[0] else 0,
        "dot": [1 if isinstance(c, Float) else 0 for c in cols],
        "txt": txn_text,
        "pk": pks,
        "sc": scores,
        "tr": token_rm,
        "ta": token_add,
    }
    result = writer.run_script(conn, "transfer", keys, [json.dumps(spec, separators=(",", ":"))])
    _transfer_result(result, entities, pks)
    if refresh_entities or refresh_index:
        _reload(conn, entities, keys[:3])
    if refresh_index and not covered:
        writer.save_many(list({id(e): e for e in entities}.values()), full=True)


def _transfer_result(result: Sequence[Any], entities: Sequence[Any], pks: list[str]) -> None:
    if int(result[0]) == 1:
        return
    reason = to_text(result[1])
    if reason == "deleted":
        n = int(result[2]) - 1
        ns = entities[n]._namespace
        raise EntityDeletedError(f"Entity {ns}:{pks[n]} was deleted", ns, pks[n])
    if reason == "not a number":
        n = int(result[2]) - 1
        raise InvalidColumnValue(f"Stored value of {entities[n]._pk} is not a number")
    if reason == "out of range":
        raise ValueError("transfer result out of the exactly representable range")
    raise ValueError(reason)


def _reload(conn: Any, entities: Sequence[Any], keys: list[str]) -> None:
    """Reload the entities of a transfer in one round trip."""
    distinct: dict[int, tuple[Any, str]] = {}
    for e, key in zip(entities, keys, strict=True):
        distinct.setdefault(id(e), (e, key))
    pipe = conn.pipeline(transaction=False)
    for _e, key in distinct.values():
        pipe.hgetall(key)
    for (e, _key), raw in zip(distinct.values(), writer.run_pipeline(pipe), strict=True):
        if raw:
            e._init_loaded(raw)
            e.__dict__.pop("_unsafe", None)
