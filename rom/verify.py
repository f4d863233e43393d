"""Verify (and repair) a model's indexes against its entities' data (issue #8).

:func:`verify_indexes` (also ``rom.util.verify_indexes`` and ``python -m rom check``)
compares every entity's stored data with every index, unique and bookkeeping entry the
writer keeps for it, and every member of every index key of the model with the entity it
names.  What an entity *should* have is computed with the writer's own functions
(:func:`rom.writer.index_entries`, ``rom.writer._unique_values``), so the check can never
disagree with what a save writes.

Nothing here blocks Redis for long: keys are found with ``SCAN`` (never ``KEYS``), index
members are read with ``SSCAN``/``ZSCAN``/``HSCAN`` page by page, and entities are loaded
one page per round trip.  A repair re-saves each damaged entity with a full index rebuild
(one atomic write each, retried when a live writer changes it meanwhile) and removes
orphaned members in small batches through ``rom/lua/verify_repair.lua``, which re-checks,
atomically, that each member is still an orphan before removing it.  Running a check or a
repair against a database in use is therefore safe.

What is reported (:class:`VerifyReport`):

* ``orphans`` -- index members naming an entity that does not exist, or an entity that
  neither records the entry in its bookkeeping nor should have it by its data; unique
  fields owned by an entity whose data has another value; UnsafeColumn keys and legacy
  (rom < 1.0) records of deleted entities; expiry entries of deleted entities.
* ``missing`` -- entries an entity should have (by its data) that the index lacks.
* ``mismatched`` -- a score or geo position that differs from the data, a unique value
  owned by another entity, bookkeeping (``-index-data-``) that does not match the data,
  and entity hashes that cannot be loaded at all.
* ``expired_pending`` -- entities whose expiry time has passed but which the sweeper has
  not removed yet (normal between sweeps; not counted as a problem, removed by a repair).

Only keys named after the model's own columns, unique constraints and geo indexes are
walked; keys of other models whose namespace starts with ``<namespace>:`` are skipped.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import writer
from .columns import MODELS
from .encoding import _prefix_score
from .exceptions import DataRaceError, EntityDeletedError, ORMError, UniqueKeyViolation
from .keys import KeySpace, is_cluster
from .maintenance import _glob_escape, _sync_session, show_progress

__all__ = ["VerifyReport", "index_stats", "verify_indexes"]

#: examples kept in a report
MAX_EXAMPLES = 10
#: attempts to re-save an entity that live writers keep changing
_MAX_ATTEMPTS = 8
#: geo positions come back from Redis' 52-bit geohash: allow this many degrees of error
_GEO_TOLERANCE = 1e-4
_BK = writer.BOOKKEEPING

_TYPES = {"token": "set", "score": "zset", "pre": "zset", "suf": "zset", "geo": "zset"}
_TYPES.update(uidx="hash", legacy="hash", expire="zset")


@dataclass
class VerifyReport:
    """What :func:`verify_indexes` found (and repaired) for one model.

    :ivar model: the model's name
    :ivar entities: entity hashes examined
    :ivar orphans: index members, unique fields and keys that belong to no entity
    :ivar missing: entries an entity should have that are absent
    :ivar mismatched: wrong scores, wrong unique owners, bookkeeping not matching the data,
        unreadable entities
    :ivar expired_pending: expired entities not swept yet (not a problem)
    :ivar repaired: fixes made by ``repair=True`` (orphans removed, entities re-saved,
        expired entities swept)
    :ivar unrepaired: damaged entities a repair could not fix (e.g. two entities holding
        the same unique value, or data that cannot be loaded)
    :ivar examples: up to ``MAX_EXAMPLES`` short descriptions of what was found
    """

    model: str
    entities: int = 0
    orphans: int = 0
    missing: int = 0
    mismatched: int = 0
    expired_pending: int = 0
    repaired: int = 0
    unrepaired: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        """``orphans + missing + mismatched`` (0 for a consistent model)."""
        return self.orphans + self.missing + self.mismatched

    def summary(self) -> str:
        """One line with every number."""
        return (
            f"{self.model}: entities={self.entities} orphans={self.orphans} "
            f"missing={self.missing} mismatched={self.mismatched} "
            f"expired_pending={self.expired_pending} repaired={self.repaired} "
            f"unrepaired={self.unrepaired} problems={self.problems}"
        )

    def _note(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)


@dataclass
class _IndexKey:
    name: bytes
    kind: str
    item: str
    size: int


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")


def _text(value: Any) -> str | None:
    """UTF-8 text of a reply item, ``None`` when it is not UTF-8."""
    try:
        return _as_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _key_text(key: Any) -> str:
    """A key name as text (the model's keys are UTF-8: they passed :meth:`_Check.classify`)."""
    return key.decode("utf-8") if isinstance(key, bytes) else str(key)


def _pk_of(member: Any) -> str | None:
    """The pk a key part or member names: canonical decimal digits (``'012'`` is not one)."""
    raw = _as_bytes(member)
    if raw.isdigit() and raw.isascii() and len(raw) < 30 and (raw == b"0" or raw[:1] != b"0"):
        return raw.decode()
    return None


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _expected_slots(entries: writer.IndexEntries) -> list[set[Any]]:
    return [
        set(entries.tokens),
        set(entries.scores),
        set(entries.prefix),
        set(entries.suffix),
        set(entries.geo),
    ]


def _recorded_slots(text: str | None) -> list[set[Any]]:
    slots = writer.parse_bookkeeping(text)
    return [
        {t for t in slots[0] if isinstance(t, str)},
        {n for n in slots[1] if isinstance(n, str)},
        {(p[0], p[1]) for p in slots[2] if isinstance(p, list) and len(p) == 2},
        {(p[0], p[1]) for p in slots[3]},
        {g for g in slots[4] if isinstance(g, str)},
    ]


def _valid_bookkeeping(text: str | None) -> bool:
    if text is None:
        return True
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


class _Check:
    """State of one verify (and repair) run over one model."""

    def __init__(self, model: Any, repair: bool, block_size: int) -> None:
        self.model = model
        self.conn = model._connection
        self.cluster = is_cluster(self.conn)
        self.ks: KeySpace = model._keyspace(self.conn)
        self.block = max(int(block_size), 1)
        self.repair = repair
        self.report = VerifyReport(model.__name__)
        self.pkattr: str = model._pkey
        self.head = _as_bytes(self.ks.prefix) + b":"
        self.node = self.conn.get_node_from_key(self.ks.entity(0)) if self.cluster else None
        self.damaged: set[int] = set()
        self.columns = set(model._columns)
        self.numeric = {
            attr
            for attr, col in model._indexed_columns
            if getattr(col._keygen, "__name__", "") == "_numeric_keygen"
        }
        self.unique_deps: dict[str, list[str]] = {}
        stored = [a for a, _c in model._stored_columns]
        for name in model._unique:
            deps = stored if model._columns[name]._virtual else [name]
            self.unique_deps[name] = sorted({self.pkattr, *deps})
        for group in model._cunique:
            self.unique_deps[":".join(group)] = sorted({self.pkattr, *group})
        # keys of other models whose namespace extends ours (``ns:sub``) are not ours
        self.foreign: list[bytes] = []
        for other in set(MODELS.values()):
            if other is model or not hasattr(other, "_keyspace"):
                continue
            prefix = _as_bytes(other._keyspace(self.conn).prefix) + b":"
            if prefix.startswith(self.head) and prefix != self.head:
                self.foreign.append(prefix)
        self.removals: list[list[Any]] = []
        self.batch = writer.Batch()

    # -- Redis access ----------------------------------------------------------------------
    def pipeline(self) -> Any:
        return self.conn.pipeline(transaction=False)

    def scan(self, pattern: str) -> Iterator[bytes]:
        if self.cluster:
            found = self.conn.scan_iter(match=pattern, count=self.block, target_nodes=self.node)
        else:
            found = self.conn.scan_iter(match=pattern, count=self.block)
        for key in found:
            yield _as_bytes(key)

    def now(self) -> float:
        if self.cluster:
            reply = self.conn.execute_command("TIME", target_nodes=self.node)
        else:
            reply = self.conn.time()
        return int(reply[0]) + int(reply[1]) / 1e6

    def members(self, key: _IndexKey) -> Iterator[list[Any]]:
        """Pages of a set's members, a zset's members or a hash's (field, value) items."""
        kind = _TYPES[key.kind]
        cursor: Any = 0
        while True:
            if kind == "set":
                cursor, items = self.conn.sscan(key.name, cursor, count=self.block)
                page = list(items)
            elif kind == "zset":
                cursor, pairs = self.conn.zscan(key.name, cursor, count=self.block)
                page = [m for m, _s in pairs]
            else:
                cursor, data = self.conn.hscan(key.name, cursor, count=self.block)
                page = list(data.items())
            if page:
                yield page
            if int(cursor) == 0:
                return

    # -- finding the model's keys ----------------------------------------------------------
    def classify(self, rest: bytes) -> tuple[str, str] | None:
        """``(kind, item)`` of a key after ``<prefix>:``, or ``None`` if it is not ours."""
        text = _text(rest)
        if text is None:
            return None
        if text == ":":
            return "legacy", ""
        if text == ":expire":
            return "expire", ""
        if text.endswith(":idx"):
            item = text[:-4]
            if item.split(":", 1)[0] in self.columns:
                return "idx", item
            return None
        for suffix in (":pre", ":suf"):
            if text.endswith(suffix) and text[:-4] in self.columns:
                return suffix[1:], text[:-4]
        if text.endswith(":geo") and text[:-4] in self.model._geo:
            return "geo", text[:-4]
        if text.endswith(":uidx"):
            name = text[:-5]
            if name and all(part in self.columns for part in name.split(":")):
                return "uidx", name
            return None
        pk, sep, attr = text.partition(":")
        if sep and _pk_of(pk) and attr in self.model._unsafe_columns:
            return "unsafe", pk
        return None

    def collect(self) -> tuple[list[int], list[_IndexKey]]:
        """Every entity id and index key of the model (SCAN in pages, then TYPE/size)."""
        pks: set[int] = set()
        seen: set[bytes] = set()
        keys: list[_IndexKey] = []
        page: list[tuple[bytes, str, str]] = []
        for key in self.scan(_glob_escape(self.ks.prefix) + ":*"):
            if not key.startswith(self.head) or any(key.startswith(f) for f in self.foreign):
                continue
            rest = key[len(self.head) :]
            pk = _pk_of(rest)
            if pk is not None:
                pks.add(int(pk))
                continue
            if key in seen:
                continue
            seen.add(key)
            guess = self.classify(rest)
            if guess is not None:
                page.append((key, *guess))
                if len(page) >= self.block:
                    keys += self.typed(page)
                    page = []
        keys += self.typed(page)
        return sorted(pks), keys

    def typed(self, page: list[tuple[bytes, str, str]]) -> list[_IndexKey]:
        if not page:
            return []
        pipe = self.pipeline()
        for key, _kind, _item in page:
            pipe.type(key)
        types = [_text(t) for t in pipe.execute()]
        found: list[_IndexKey] = []
        for (key, kind, item), rtype in zip(page, types, strict=True):
            if kind == "idx":
                kind = {"set": "token", "zset": "score"}.get(rtype or "", "")
            if kind == "unsafe":
                if rtype != "none":
                    found.append(_IndexKey(key, kind, item, 1))
            elif kind and _TYPES[kind] == rtype:
                found.append(_IndexKey(key, kind, item, 0))
        pipe = self.pipeline()
        sized = [k for k in found if k.kind != "unsafe"]
        for k in sized:
            {"set": pipe.scard, "zset": pipe.zcard, "hash": pipe.hlen}[_TYPES[k.kind]](k.name)
        for k, size in zip(sized, pipe.execute(), strict=True):
            k.size = int(size)
        return found

    # -- entities ---------------------------------------------------------------------------
    def expected(self, raw: dict[Any, Any]) -> tuple[Any, writer.IndexEntries, dict[str, str]]:
        """The loaded entity, the index entries and unique values its data gives."""
        entity = self.model._from_hash(raw, add=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entries = writer.index_entries(self.model, entity._data)
            uniques = writer._unique_values(self.model, entity._last, entity._data)
        return entity, entries, uniques

    def check_entities(self, pks: list[int]) -> None:
        model, ks, report = self.model, self.ks, self.report
        pipe = self.pipeline()
        for pk in pks:
            pipe.hgetall(ks.entity(pk))
            pipe.hget(ks.legacy(), pk)
            if model._has_expiry:
                pipe.zscore(ks.expiry(), pk)
        replies = pipe.execute(raise_on_error=False)
        step = 3 if model._has_expiry else 2
        now = self.now() if model._has_expiry else 0.0
        probes: list[tuple[int, str, str, Any]] = []
        pipe = self.pipeline()
        for i, pk in enumerate(pks):
            raw, legacy = replies[i * step], replies[i * step + 1]
            name = ks.entity(pk)
            if isinstance(raw, Exception) or isinstance(legacy, Exception):
                report.entities += 1
                report.mismatched += 1
                report.unrepaired += 1
                report._note(f"{name} is not a hash: {raw}")
                continue
            if not raw:
                continue  # deleted since the SCAN
            report.entities += 1
            if model._has_expiry:
                at = replies[i * step + 2]
                if at is not None and float(at) <= now:
                    report.expired_pending += 1
            try:
                entity, entries, uniques = self.expected(raw)
            except Exception as err:  # unloadable data or a failing keygen
                report.mismatched += 1
                report.unrepaired += 1
                report._note(f"{name} cannot be loaded or indexed: {err}")
                continue
            if str(entity._data.get(self.pkattr)) != str(pk):
                report.mismatched += 1
                report.unrepaired += 1
                report._note(f"{name} holds primary key {entity._data.get(self.pkattr)!r}")
                continue
            stored = _text(legacy) if legacy is not None else entity._last_bk
            if not _valid_bookkeeping(stored) or _recorded_slots(stored) != _expected_slots(
                entries
            ):
                report.mismatched += 1
                self.damaged.add(pk)
                report._note(f"{name} bookkeeping does not match its data")
            spk = str(pk)
            for token in entries.tokens:
                probes.append((pk, "member", f"token {ks.token(token)}", None))
                pipe.sismember(ks.token(token), spk)
            for sname, score in entries.scores.items():
                want = {float(score)}
                text = entity._last.get(sname)
                if text is not None and sname in self.numeric:
                    # a numeric column's score is its stored number; the loaded value may
                    # have lost precision (a Date holding a time, far DateTimes), and then
                    # the score of either form is what rom writes
                    want.add(float(text))
                probes.append((pk, "score", f"score {ks.score(sname)}", want))
                pipe.zscore(ks.score(sname), spk)
            for kind, pairs, key_of in (
                ("prefix", entries.prefix, ks.prefix_index),
                ("suffix", entries.suffix, ks.suffix_index),
            ):
                for attr, value in pairs:
                    probes.append(
                        (pk, "score", f"{kind} {key_of(attr)} {value!r}", {_prefix_score(value)})
                    )
                    pipe.zscore(key_of(attr), f"{value}\0{spk}")
            for gname, (lon, lat) in entries.geo.items():
                probes.append((pk, "geo", f"geo {ks.geo(gname)}", (float(lon), float(lat))))
                pipe.geopos(ks.geo(gname), spk)
            for uname, value in uniques.items():
                probes.append((pk, "unique", f"unique {ks.unique(uname)} {value!r}", spk))
                pipe.hget(ks.unique(uname), value)
        if not probes:
            return
        for (pk, how, what, want), got in zip(
            probes, pipe.execute(raise_on_error=False), strict=True
        ):
            problem = self.compare(how, want, got)
            if problem is None:
                continue
            if problem == "missing":
                report.missing += 1
            else:
                report.mismatched += 1
            self.damaged.add(pk)
            report._note(f"{ks.entity(pk)}: {problem} {what}")

    @staticmethod
    def compare(how: str, want: Any, got: Any) -> str | None:
        """``None`` when a probe's answer is right, else ``'missing'`` or a description."""
        if isinstance(got, Exception):
            return "unreadable"
        if how == "member":
            return None if got else "missing"
        if how == "geo":
            point = got[0] if got else None
            if point is None:
                return "missing"
            lon, lat = float(point[0]), float(point[1])
            if abs(lon - want[0]) > _GEO_TOLERANCE or abs(lat - want[1]) > _GEO_TOLERANCE:
                return "wrong position"
            return None
        if got is None:
            return "missing"
        if how == "unique":
            return None if _as_bytes(got) == want.encode() else "owned by another entity"
        return None if float(got) in want else "wrong score"

    # -- index members ----------------------------------------------------------------------
    def remove(self, op: str, key: Any, member: Any, checks: list[tuple[Any, Any, Any]]) -> None:
        """Queue a removal that happens only if every ``(key, field, value)`` still holds."""
        batch = self.batch
        item: list[Any] = [op, batch.key(_key_text(key)), member, len(checks)]
        for ckey, cfield, value in checks:
            item += [batch.key(_key_text(ckey)), cfield, "0" if value is None else "1", value or ""]
        self.removals.append(item)
        if len(self.removals) >= self.block:
            self.flush()

    def flush(self) -> None:
        """Run the queued removals: one short script call."""
        if not self.removals:
            return
        args = [a for item in self.removals for a in item]
        done = writer.run_script(self.conn, "verify_repair", self.batch.keys, args)
        self.report.repaired += int(done)
        self.removals = []
        self.batch = writer.Batch()

    def orphan(self, key: _IndexKey, member: Any, why: str) -> None:
        self.report.orphans += 1
        self.report._note(f"orphan in {_as_bytes(key.name)!r}: {_as_bytes(member)!r} ({why})")

    def entity_checks(self, pk: str, state: tuple[Any, Any, Any]) -> list[tuple[Any, Any, Any]]:
        ent = self.ks.entity(pk)
        legacy = self.ks.legacy()
        return [(ent, self.pkattr, state[0]), (ent, _BK, state[1]), (legacy, pk, state[2])]

    def states(self, pks: set[str]) -> dict[str, tuple[Any, Any, Any]]:
        """``(pk field, bookkeeping, legacy record)`` of entities, as stored now."""
        order = sorted(pks)
        pipe = self.pipeline()
        for pk in order:
            pipe.hmget(self.ks.entity(pk), [self.pkattr, _BK])
            pipe.hget(self.ks.legacy(), pk)
        replies = pipe.execute(raise_on_error=False)
        out: dict[str, tuple[Any, Any, Any]] = {}
        for i, pk in enumerate(order):
            fields, legacy = replies[2 * i], replies[2 * i + 1]
            if isinstance(fields, Exception) or isinstance(legacy, Exception):
                continue  # not a hash: reported by the entity walk, never touched here
            out[pk] = (fields[0], fields[1], legacy)
        return out

    def loaded(self, pks: set[str]) -> dict[str, tuple[dict[Any, Any], Any]]:
        """``(raw hash, (entries, uniques) or None)`` of entities (``{}`` when missing)."""
        order = sorted(pks)
        pipe = self.pipeline()
        for pk in order:
            pipe.hgetall(self.ks.entity(pk))
        out: dict[str, tuple[dict[Any, Any], Any]] = {}
        for pk, raw in zip(order, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(raw, Exception):
                continue
            try:
                _entity, entries, uniques = self.expected(raw) if raw else (None, None, None)
                out[pk] = (raw, (entries, uniques) if raw else None)
            except Exception:  # reported by the entity walk
                out[pk] = (raw, None)
        return out

    def check_members(self, key: _IndexKey, page: list[Any]) -> None:
        slot = {"token": 0, "score": 1, "pre": 2, "suf": 3, "geo": 4}.get(key.kind)
        parsed: list[tuple[Any, str | None, Any]] = []
        for member in page:
            if key.kind in ("pre", "suf"):
                value, sep, tail = _as_bytes(member).rpartition(b"\0")
                text = _text(value) if sep else None
                pk = _pk_of(tail) if sep else None
                parsed.append((member, pk, (key.item, text) if text is not None else None))
            else:
                parsed.append((member, _pk_of(member), key.item))
        states = self.states({pk for _m, pk, _e in parsed if pk is not None})
        suspects: set[str] = set()
        for _member, pk, entry in parsed:
            state = states.get(pk) if pk is not None else None
            if pk is None or state is None or key.kind == "expire" or entry is None:
                continue
            if state[0] is None and state[1] is None:
                continue  # missing entity
            stored = _text(state[2]) if state[2] is not None else _text(state[1])
            if slot is not None and entry not in _recorded_slots(stored)[slot]:
                suspects.add(pk)
        loaded = self.loaded(suspects) if suspects else {}
        op = "SREM" if key.kind == "token" else "ZREM"
        for member, pk, entry in parsed:
            if pk is None:
                self.orphan(key, member, "not an entity id")
                if self.repair:
                    self.remove(op, key.name, member, [])
                continue
            state = states.get(pk)
            if state is None:
                continue
            if state[0] is None and state[1] is None:
                why = "no such entity"
            elif key.kind == "expire":
                continue
            elif pk in suspects:
                _raw, expected = loaded.get(pk, ({}, None))
                if expected is None:
                    continue  # unloadable or deleted meanwhile: the entity walk reports it
                assert slot is not None
                if entry is not None and entry in _expected_slots(expected[0])[slot]:
                    continue  # the entity walk reports its bookkeeping; a re-save records it
                why = "not recorded for the entity"
            elif entry is None:
                why = "not a valid entry"
            else:
                continue
            self.orphan(key, member, why)
            if self.repair:
                self.remove(op, key.name, member, self.entity_checks(pk, state))

    def check_unique(self, key: _IndexKey, page: list[tuple[Any, Any]]) -> None:
        owners = {pk for _f, owner in page if (pk := _pk_of(owner)) is not None}
        loaded = self.loaded(owners)
        deps = self.unique_deps.get(key.item)
        for fld, owner in page:
            pk = _pk_of(owner)
            checks: list[tuple[Any, Any, Any]] = [(key.name, fld, owner)]
            if pk is None:
                why = "owner is not an entity id"
            elif pk not in loaded:
                continue
            else:
                raw, expected = loaded[pk]
                ent = self.ks.entity(pk)
                if not raw:
                    why = "no such entity"
                    checks += [(ent, self.pkattr, None), (ent, _BK, None)]
                elif deps is None:
                    why = "the model has no such unique index"
                elif expected is None:
                    continue  # unloadable: reported by the entity walk
                elif expected[1].get(key.item) == _text(fld):
                    continue
                else:
                    why = f"entity {pk} has another value"
                    fields = {_text(k): v for k, v in raw.items()}
                    checks += [(ent, d, fields.get(d)) for d in deps]
            self.orphan(key, fld, why)
            if self.repair:
                self.remove("HDEL", key.name, fld, checks)

    def check_legacy(self, key: _IndexKey, page: list[tuple[Any, Any]]) -> None:
        pks = {pk for f, _r in page if (pk := _pk_of(f)) is not None}
        states = self.states(pks)
        for fld, record in page:
            pk = _pk_of(fld)
            checks: list[tuple[Any, Any, Any]] = [(key.name, fld, record)]
            if pk is not None:
                state = states.get(pk)
                if state is None or state[0] is not None or state[1] is not None:
                    continue
                ent = self.ks.entity(pk)
                checks += [(ent, self.pkattr, None), (ent, _BK, None)]
            self.orphan(key, fld, "legacy record of a missing entity")
            if self.repair:
                self.remove("HDEL", key.name, fld, checks)

    def check_unsafe(self, keys: list[_IndexKey]) -> None:
        states = self.states({k.item for k in keys})
        for key in keys:
            state = states.get(key.item)
            if state is None or state[0] is not None or state[1] is not None:
                continue
            self.orphan(key, key.name, "UnsafeColumn key of a missing entity")
            if self.repair:
                self.remove("DEL", key.name, "", self.entity_checks(key.item, state))

    # -- repair -----------------------------------------------------------------------------
    def resave(self, pk: int) -> None:
        """Re-save one damaged entity with every index entry rebuilt (one atomic write)."""
        model, conn, report = self.model, self.conn, self.report
        for _ in range(_MAX_ATTEMPTS):
            raw = conn.hgetall(self.ks.entity(pk))
            if not raw:
                return  # deleted meanwhile: nothing left to repair
            try:
                entity = model._from_hash(raw, add=False)
            except ORMError as err:
                report.unrepaired += 1
                report._note(f"{self.ks.entity(pk)} cannot be repaired: {err}")
                return
            state = writer.SaveState(entity, full=True)
            old = dict(entity._last)
            try:
                writer.execute(conn, [state])
            except DataRaceError:
                continue  # a live writer changed it: reload and rebuild again
            except EntityDeletedError:
                return  # deleted or expired meanwhile
            except UniqueKeyViolation as err:
                report.unrepaired += 1
                report._note(f"{self.ks.entity(pk)} cannot be repaired: {err}")
                return
            _sync_session(state, old)
            report.repaired += 1
            return
        report.unrepaired += 1
        report._note(f"{self.ks.entity(pk)} keeps changing; not repaired")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> Iterator[tuple[int, int]]:
        """Do the check (and repair), yielding ``(progress, total)`` after each page."""
        pks, keys = self.collect()
        total = len(pks) + sum(k.size for k in keys)
        done = 0
        yield done, total
        for block in _chunks(pks, self.block):
            self.check_entities(block)
            done += len(block)
            yield done, total
        for key in keys:
            if key.kind == "unsafe":
                continue
            for page in self.members(key):
                if key.kind == "uidx":
                    self.check_unique(key, page)
                elif key.kind == "legacy":
                    self.check_legacy(key, page)
                else:
                    self.check_members(key, page)
                done += len(page)
                yield done, max(total, done)
        unsafe = [k for k in keys if k.kind == "unsafe"]
        for block in _chunks(unsafe, self.block):
            self.check_unsafe(block)
            done += len(block)
            yield done, max(total, done)
        if self.repair:
            self.flush()
            damaged = sorted(self.damaged)
            total = max(total, done) + len(damaged)
            for pk in damaged:
                self.resave(pk)
                done += 1
                yield done, total
            if self.report.expired_pending:
                from .expiry import expire_sweep

                self.report.repaired += expire_sweep(self.model)
        yield max(total, done), max(total, done)


def verify_indexes(
    model: Any, repair: bool = False, progress: bool = False, block_size: int = 100
) -> VerifyReport:
    """Compare ``model``'s index, unique and bookkeeping entries with its entities' data.

    Example::

        report = rom.util.verify_indexes(User)
        if report.problems:
            print(report.summary(), *report.examples, sep='\\n')
            rom.util.verify_indexes(User, repair=True)

    :param model: the model class
    :param repair: remove orphans (each re-checked atomically before removal), re-save every
        damaged entity with a full index rebuild, and sweep expired entities
    :param progress: print progress with an ETA (:func:`rom.util.show_progress`)
    :param block_size: keys, members and entities per SCAN page and per round trip
    :returns: a :class:`VerifyReport`; its counts describe what was found before repairing
    """
    check = _Check(model, repair, block_size)
    steps = check.run()
    if progress:
        show_progress(steps)
    else:
        for _ in steps:
            pass
    return check.report


def index_stats(model: Any, block_size: int = 100) -> dict[str, int]:
    """Counts of ``model``'s keys: entities, index keys and members per kind, id counter.

    Only SCAN and size commands (SCARD, ZCARD, HLEN, ...) are used: cheap on a live server.
    """
    check = _Check(model, False, block_size)
    pks, keys = check.collect()
    conn = model._connection
    stats: dict[str, int] = {
        "entities": len(pks),
        "id_counter": int(conn.get(check.ks.counter(model._pkey)) or 0),
    }
    for kind in ("token", "score", "pre", "suf", "geo", "uidx", "expire", "legacy", "unsafe"):
        mine = [k for k in keys if k.kind == kind]
        if mine:
            stats[f"{kind}_keys"] = len(mine)
            stats[f"{kind}_members"] = sum(k.size for k in mine)
    return stats
