"""Models: the metaclass that registers columns, and the active-record base class.

Example::

    class User(rom.Model):
        email = rom.Text(required=True, unique=True, keygen=rom.IDENTITY_CI, suffix=True)
        visits = rom.Integer(default=0, index=True)

    user = User(email='ann@example.com')   # gets user.id at once
    user.save()                            # one atomic Lua call
    User.get_by(email='ann@example.com')   # -> the same object (identity map)
    User.query.endswith(email='@example.com').all()
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from redis.exceptions import ResponseError

from . import expiry
from .columns import (
    MODELS,
    MODELS_REFERENCED,
    NUMERIC_TYPES,
    SKIP_ON_DELETE,
    Column,
    ForeignModel,
    IndexOnly,
    ManyToOne,
    OneToMany,
    PrimaryKey,
    UnsafeColumn,
    _Column,
    _Ref,
)
from .encoding import latin1_text, to_text
from .exceptions import (
    ColumnError,
    EntityDeletedError,
    InvalidColumnValue,
    InvalidOperation,
    MissingColumn,
    ORMError,
    QueryError,
)
from .index import GeneralIndex, GeoIndex
from .keygens import STRING_SORT_KEYGENS
from .keys import KeySpace, is_cluster
from .session import session as session  # rom.model.session, as in rom 1.x
from .util import ClassProperty, _connect
from .writer import BOOKKEEPING, AttrDict, delete_entity, save_entity

__all__ = ["AttrDict", "Model", "_ModelMetaclass", "_zrange_limit_iterator"]

M = TypeVar("M", bound="Model")

if TYPE_CHECKING:
    from .query import Query

    class _QueryProperty:
        """How checkers see ``Model.query``: ``User.query`` is a ``Query[User]``."""

        def __get__(self, obj: object, owner: type[M]) -> Query[M]: ...


_STRING_SORT_KEYGENS = [kg.__name__ for kg in STRING_SORT_KEYGENS]


#: UnsafeColumn names that would collide with index key suffixes (API.md §3.8)
_UNSAFE_RESERVED = frozenset({"idx", "uidx", "pre", "suf", "geo"})


def _normalize_unique_together(
    name: str, groups: Any, columns: dict[str, Any], pkey: str
) -> set[tuple[str, ...]]:
    if not groups:
        return set()
    groups = list(groups)
    if all(isinstance(g, str) for g in groups):
        groups = [groups]
    out: set[tuple[str, ...]] = set()
    for group in groups:
        cols = tuple(sorted(set(group)))
        if len(cols) < 2:
            raise ColumnError(
                f"Single-column unique constraint {cols!r} should be defined via unique=True"
            )
        if cols in out:
            raise ColumnError(f"Duplicate unique constraint {cols!r} on {name}")
        for col in cols:
            if col not in columns:
                raise ColumnError(
                    f"Unique constraint {cols!r} on {name} names unknown column {col!r}"
                )
            if col == pkey:
                raise ColumnError(
                    f"Unique constraint {cols!r} on {name} cannot include the primary key"
                )
        out.add(cols)
    return out


class _ModelMetaclass(type):
    """Collects a model's columns, checks the definition and registers the model."""

    def __new__(mcs, name: str, bases: tuple[type, ...], dct: dict[str, Any]) -> Any:
        namespace = dct.get("_namespace", name)
        if not isinstance(namespace, str):
            raise ORMError(f"The _namespace attribute of {name} must be a str")
        is_base = not any(isinstance(b, _ModelMetaclass) for b in bases)
        if name in MODELS or namespace in MODELS:
            raise ORMError(
                f"Cannot have two models with the same name ({name}) or namespace ({namespace})"
            )
        columns: dict[str, _Column] = {}
        for base in bases:
            if isinstance(base, _ModelMetaclass) and base.__dict__.get("_namespace") != "Model":
                inherited: dict[str, _Column] = vars(base)["_columns"]
                for attr, col in inherited.items():
                    columns[attr] = _copy.copy(col)
        for attr, value in list(dct.items()):
            if isinstance(value, _Column):
                columns[attr] = value  # an override keeps the inherited column's position
            if isinstance(value, UnsafeColumn) and attr in _UNSAFE_RESERVED:
                # rom 1.x asserts this; raised here so it is not wrapped by __set_name__
                raise AssertionError(f"UnsafeColumn cannot be named {attr!r} on {name}")
        pks = [a for a, c in columns.items() if isinstance(c, PrimaryKey)]
        if len(pks) > 1:
            raise ColumnError(f"Model {name} has more than one primary key: {pks}")
        if not pks:
            if "id" in columns:
                raise ColumnError(f"Model {name} has a non-primary-key column named 'id'")
            columns["id"] = PrimaryKey()
            pks = ["id"]
        for attr, col in columns.items():
            dct[attr] = col
        dct["_namespace"] = namespace
        cls: Any = super().__new__(mcs, name, bases, dct)
        for attr, col in columns.items():
            col._attr = attr
            col._model = cls
        pkey = pks[0]
        cls._columns = columns
        cls._pkey = pkey
        cls._required = {a for a, c in columns.items() if getattr(c, "_required", False)}
        cls._index = {a for a, c in columns.items() if getattr(c, "_index", False)}
        cls._unique = {a for a, c in columns.items() if getattr(c, "_unique", False)}
        cls._prefix = {a for a, c in columns.items() if getattr(c, "_prefix", False)}
        cls._suffix = {a for a, c in columns.items() if getattr(c, "_suffix", False)}
        cls._cunique = _normalize_unique_together(name, dct.get("unique_together"), columns, pkey)
        geo = dct.get("geo_index", [])
        if not isinstance(geo, list) or not all(isinstance(g, GeoIndex) for g in geo):
            raise ORMError(f"geo_index of {name} must be a list of GeoIndex objects")
        cls._geo = {}
        for g in geo:
            if g.name in cls._geo:
                raise ColumnError(f"Duplicate geo index name {g.name!r} on {name}")
            cls._geo[g.name] = g
        cls._gindex = GeneralIndex(namespace)
        cls._no_fk = not any(isinstance(c, ManyToOne) for c in columns.values())
        cls._stored_columns = [
            (a, c) for a, c in columns.items() if isinstance(c, Column) and not c._virtual
        ]
        cls._load_columns = [
            (a, c)
            for a, c in columns.items()
            if isinstance(c, Column) and not isinstance(c, OneToMany)
        ]
        cls._indexed_columns = [
            (a, c)
            for a, c in columns.items()
            if isinstance(c, Column) and c._keygen and (c._index or c._prefix or c._suffix)
        ]
        cls._relations = [(a, c) for a, c in columns.items() if isinstance(c, ManyToOne)]
        cls._unsafe_columns = [a for a, c in columns.items() if isinstance(c, UnsafeColumn)]
        cls._column_count = sum(1 for c in columns.values() if not isinstance(c, UnsafeColumn))
        cls._ks = (KeySpace(namespace), KeySpace(namespace, cluster=True))
        cls._has_expiry = any("_ttl" in vars(b) for b in cls.__mro__)
        if cls._has_expiry:
            ttl = cls._ttl
            if ttl is not None and (
                isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0
            ):
                raise ORMError(f"_ttl of {name} must be a positive number of seconds or None")
        _check_one_to_many(cls)
        MODELS[name] = cls
        MODELS[namespace] = cls
        for attr, col in columns.items():
            if isinstance(col, ManyToOne):
                MODELS_REFERENCED.setdefault(col._ftable, []).append(
                    (namespace, attr, col._on_delete)
                )
        if is_base:
            cls._ks = (KeySpace(namespace), KeySpace(namespace, cluster=True))
        return cls


def _ref_count(model: Any, target: Any) -> int:
    names = {target.__name__, target._namespace}
    return sum(
        1 for c in model._columns.values() if isinstance(c, ManyToOne) and c._ftable in names
    )


def _check_one_to_many(cls: Any) -> None:
    """rom's definition-time checks that a OneToMany can find its reverse column."""
    for col in cls._columns.values():
        if isinstance(col, OneToMany) and col._column is None:
            other = MODELS.get(col._ftable)
            if other is not None and _ref_count(other, cls) > 1:
                raise ColumnError(
                    f"{cls.__name__} has a OneToMany to {other.__name__}, which has several "
                    "references back; name the column: OneToMany(ftable, column)"
                )
    for col in cls._columns.values():
        if isinstance(col, ManyToOne):
            other = MODELS.get(col._ftable)
            if other is None or _ref_count(cls, other) < 2:
                continue
            for ocol in other._columns.values():
                if (
                    isinstance(ocol, OneToMany)
                    and ocol._column is None
                    and ocol._ftable in (cls.__name__, cls._namespace)
                ):
                    raise ColumnError(
                        f"{other.__name__} has a OneToMany without a column name pointing at "
                        f"{cls.__name__}, which references it more than once"
                    )


class Model(metaclass=_ModelMetaclass):
    """Base class of rom models; subclass it and declare columns as class attributes.

    Constructing an entity allocates its id (``INCR``) and adds it to the session;
    :meth:`save` (or ``rom.session.commit()``) writes it in one atomic Lua call.

    Example::

        class Post(rom.Model):
            title = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)
            score = rom.Integer(index=True, default=0)

        post = Post(title='Hello Redis')
        post.save()
        Post.query.filter(title='redis').order_by('-score').all()
    """

    _namespace: ClassVar[str]
    _columns: ClassVar[dict[str, Any]]
    _pkey: ClassVar[str]
    _required: ClassVar[set[str]]
    _index: ClassVar[set[str]]
    _unique: ClassVar[set[str]]
    _prefix: ClassVar[set[str]]
    _suffix: ClassVar[set[str]]
    _cunique: ClassVar[set[tuple[str, ...]]]
    _geo: ClassVar[dict[str, GeoIndex]]
    _gindex: ClassVar[GeneralIndex]
    _no_fk: ClassVar[bool]
    _stored_columns: ClassVar[list[tuple[str, Any]]]
    _load_columns: ClassVar[list[tuple[str, Any]]]
    _indexed_columns: ClassVar[list[tuple[str, Any]]]
    _relations: ClassVar[list[tuple[str, Any]]]
    _unsafe_columns: ClassVar[list[str]]
    _column_count: ClassVar[int]
    _ks: ClassVar[tuple[KeySpace, KeySpace]]
    _has_expiry: ClassVar[bool]
    _ttl: ClassVar[float | None]

    _data: dict[str, Any]
    _last: dict[str, str]
    _last_bk: str | None
    _last_legacy: bool
    _new: bool
    _modified: bool
    _deleted: bool

    if TYPE_CHECKING:
        # the primary key the metaclass adds as ``id`` when a model declares none (a model
        # naming its own PrimaryKey differently has no ``id`` at runtime)
        id = PrimaryKey()
        query: ClassVar[_QueryProperty]

    def __init__(self, **kwargs: Any) -> None:
        cls = type(self)
        if kwargs.pop("_loading", False):
            bypass = kwargs.pop("_bypass_session_entirely", False)
            self._init_loaded(dict(kwargs))
            if not bypass:
                session.add(self)
            return
        extra_ok = kwargs.pop("_extra_ok", False)
        bypass = kwargs.pop("_bypass_session_entirely", False)
        self._new = True
        self._modified = True
        self._deleted = False
        self._last = {}
        self._last_bk = None
        self._last_legacy = False
        data: dict[str, Any] = {}
        self._data = data
        pkey = cls._pkey
        for attr, col in cls._load_columns:
            value = kwargs.pop(attr, None)
            if attr == pkey:
                if value:
                    raise InvalidColumnValue("Cannot pass primary key on object creation")
                continue
            if isinstance(col, IndexOnly):
                if value is not None:
                    col._construct(value)
                data[attr] = None
                continue
            if value is None:
                value = col._default_value()
                if value is None:
                    if col._required:
                        raise MissingColumn(f"{attr} is required")
                    data[attr] = None
                    continue
            data[attr] = col._construct(value)
        for attr in cls._unsafe_columns:
            kwargs.pop(attr, None)
        if kwargs and not extra_ok:
            raise InvalidColumnValue(f"Extra columns passed but not valid: {sorted(kwargs)!r}")
        data[pkey] = cls._allocate_pk()
        if not bypass:
            session.add(self)

    @classmethod
    def _allocate_pk(cls) -> int:
        conn = cls._connection
        try:
            return int(conn.incr(cls._keyspace(conn).counter(cls._pkey)))
        except ResponseError as err:  # out of memory, read-only replica, wrong type...
            raise ORMError(f"Redis refused a new id for {cls.__name__}: {err}") from err

    @classmethod
    def _keyspace(cls, conn: Any) -> KeySpace:
        """The key builder of this model for ``conn`` (hash-tagged on a cluster)."""
        return cls._ks[1] if is_cluster(conn) else cls._ks[0]

    @classmethod
    def _referenced(cls) -> bool:
        return bool(MODELS_REFERENCED.get(cls.__name__) or MODELS_REFERENCED.get(cls._namespace))

    # -- loading ----------------------------------------------------------------------------
    def _init_loaded(self, fields: dict[Any, Any]) -> None:
        cls = type(self)
        data: dict[str, Any] = {}
        last: dict[str, str] = {}
        try:
            try:  # the usual reply: bytes names and values
                texts = {k.decode(): v.decode() for k, v in fields.items()}
            except AttributeError:  # decode_responses=True, or Lua false/None values
                texts = {
                    to_text(k): to_text(v)
                    for k, v in fields.items()
                    if v is not None and v is not False
                }
        except UnicodeDecodeError as err:
            raise InvalidColumnValue(
                f"Stored data of {cls.__name__} is not UTF-8 text: {err}"
            ) from err
        if cls._pkey not in texts:
            raise InvalidColumnValue(f"Stored data of {cls.__name__} has no primary key")
        for attr, col in cls._load_columns:
            text = texts.get(attr)
            if text is None:
                data[attr] = None if col._virtual else col._default_value()
                continue
            last[attr] = text
            try:
                data[attr] = col._from_redis(text)
            except (ValueError, TypeError, ArithmeticError, OverflowError) as err:
                raise InvalidColumnValue(
                    f"Cannot load column {attr!r} of {cls.__name__} from {text!r:.100}: {err}"
                ) from err
        # only now that everything converted: a failed load leaves the entity unchanged
        self._data = data
        self._last = last
        self._last_bk = texts.get(BOOKKEEPING)
        self._last_legacy = False
        self._new = self._modified = self._deleted = False

    @classmethod
    def _from_hash(cls: type[M], raw: dict[Any, Any], add: bool = True) -> M | None:
        if not raw:
            return None
        obj = cls.__new__(cls)
        obj._init_loaded(raw)
        if add:
            session.add(obj)
        return obj

    # -- state ------------------------------------------------------------------------------
    @property
    def _pk(self) -> str:
        """``'<namespace>:<pk>'``, the entity's session key."""
        return f"{self._namespace}:{self._data.get(self._pkey)}"

    @ClassProperty
    def _connection(cls) -> Any:
        """The connection this model uses (``_conn``, ``CONN`` or the global one)."""
        return _connect(cls)

    if not TYPE_CHECKING:  # typed above: ``User.query`` is a ``Query[User]``

        @ClassProperty
        def query(cls) -> Any:
            """A new :class:`rom.Query` over this model."""
            from .query import Query

            return Query(cls)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._data.get(self._pkey)}>"

    # -- hooks ------------------------------------------------------------------------------
    def _before_insert(self) -> None:
        """Called before a new entity is first saved."""

    def _after_insert(self) -> None:
        """Called after a new entity was first saved."""

    def _before_update(self) -> None:
        """Called before an existing entity is saved."""

    def _after_update(self) -> None:
        """Called after an existing entity was saved."""

    def _before_delete(self) -> None:
        """Called before the entity is deleted (not for cascaded deletes)."""

    def _after_delete(self) -> None:
        """Called after the entity was deleted (not for cascaded deletes)."""

    # -- writing ----------------------------------------------------------------------------
    def save(self, full: bool = False, force: bool = False) -> int:
        """Write the entity, its indexes and unique entries in one atomic call.

        :param full: rewrite (and race-check) every column, not only the changed ones
        :param force: write as if new: no race check (resurrects a deleted entity)
        :returns: the number of changed columns (all columns for a new entity)
        :raises UniqueKeyViolation: a unique value is owned by another entity
        :raises DataRaceError: another writer changed a column this save overwrites
        :raises EntityDeletedError: the entity was deleted in Redis
        """
        if self._deleted and not force:
            raise EntityDeletedError(
                f"Cannot save deleted entity {self._pk} without force=True",
                self._namespace,
                str(self._data.get(self._pkey)),
            )
        new = self._new
        if new:
            self._before_insert()
        else:
            self._before_update()
        changes = save_entity(self, full=full, force=force)
        self._new = self._modified = self._deleted = False
        session.add(self)
        if new:
            self._after_insert()
        else:
            self._after_update()
        return changes

    def delete(self, **kwargs: Any) -> None:
        """Delete the entity with its index, unique and UnsafeColumn data, atomically.

        ``on_delete`` rules of references to this entity are applied first.  Deleting an
        entity that was never saved only forgets it.
        """
        skip = kwargs.get("skip_on_delete_i_really_mean_it") is SKIP_ON_DELETE
        if self._new:
            session.forget(self)
            self._deleted = True
            return
        if not skip:
            self._before_delete()
            from .relations import delete_with_rules

            delete_with_rules(self)
        else:
            delete_entity(self)
        session.forget(self)
        self._deleted = True
        self._modified = True
        if not skip:
            self._after_delete()

    def refresh(self, force: bool = False) -> None:
        """Reload the entity from Redis, discarding local changes (``force=True`` needed
        when it was modified).  Raises :class:`EntityDeletedError` if it no longer exists."""
        if self._deleted:
            return
        if self._new:
            raise InvalidOperation("Cannot refresh an entity that was never saved")
        if self._modified and not force:
            raise InvalidOperation("Cannot refresh a modified entity without force=True")
        cls = type(self)
        conn = cls._connection
        pk = self._data[cls._pkey]
        if cls._has_expiry:
            raw, expires_at = expiry.fetch(cls, conn, [pk])[0]
            self._expires_at = expires_at
        else:
            raw = conn.hgetall(cls._keyspace(conn).entity(pk))
        if not raw:
            self._deleted = True
            session.forget(self)
            raise EntityDeletedError(f"Entity {self._pk} was deleted", self._namespace, str(pk))
        self._init_loaded(raw)
        vars(self).pop("_unsafe", None)

    # -- expiry (models that declare ``_ttl``, see rom.expiry) ------------------------------
    def expire(self, seconds: float) -> None:
        """Make the entity expire ``seconds`` from now (at its first save if it is new)."""
        expiry.expire(self, seconds)

    def expire_at(self, when: Any) -> None:
        """Make the entity expire at ``when``: a unix time or a datetime (naive = UTC)."""
        expiry.expire_at(self, when)

    def persist(self) -> None:
        """Remove the entity's expiry."""
        expiry.persist(self)

    def ttl(self) -> float | None:
        """Seconds until the entity expires, ``None`` if it has no expiry."""
        return expiry.ttl(self)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the column values (references loaded)."""
        out = dict(self._data)
        for attr, _col in self._relations:
            if isinstance(out.get(attr), _Ref):
                out[attr] = getattr(self, attr)
        for attr, col in self._columns.items():
            if isinstance(col, ForeignModel) and isinstance(out.get(attr), _Ref):
                out[attr] = getattr(self, attr)
        return out

    def copy(self: M) -> M:
        """A new, unsaved entity with the same values (and a new id)."""
        data = self.to_dict()
        data.pop(self._pkey, None)
        for attr, col in self._columns.items():
            if isinstance(col, IndexOnly):
                data.pop(attr, None)
        return type(self)(**data)

    def update(self: M, *args: Any, **kwargs: Any) -> M:
        """Assign positional values in column order, then keyword values; does not save."""
        for (attr, col), value in zip(self._columns.items(), args, strict=False):
            if isinstance(col, UnsafeColumn):
                raise AttributeError(f"Cannot assign to UnsafeColumn {attr!r}")
            setattr(self, attr, value)
        for attr, value in kwargs.items():
            setattr(self, attr, value)
        return self

    # -- reading ----------------------------------------------------------------------------
    @overload
    @classmethod
    def get(cls: type[M], ids: int | str | bytes) -> M | None: ...
    @overload
    @classmethod
    def get(
        cls: type[M], ids: list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any]
    ) -> list[M]: ...
    @classmethod
    def get(cls: type[M], ids: Any) -> Any:
        """One entity by id (or ``None``), or a list of entities for a list of ids.

        Entities known to the session are returned as they are; the others are fetched in
        one round trip.
        """
        if not isinstance(ids, (list, tuple, set, frozenset)):
            pk = int(ids)
            obj = cls._known(pk)
            return obj if obj is not None else cls._fetch([pk])[0]
        pks = [int(i) for i in ids]
        found: dict[int, Any] = {}
        missing: list[int] = []
        for pk in pks:
            if pk in found or pk in missing:
                continue
            obj = cls._known(pk)
            if obj is not None:
                found[pk] = obj
            else:
                missing.append(pk)
        if missing:
            for pk, obj in zip(missing, cls._fetch(missing), strict=True):
                if obj is not None:
                    found[pk] = obj
        return [found[pk] for pk in pks if pk in found]

    @classmethod
    def _known(cls, pk: int) -> Any:
        """The session's entity for ``pk`` (dropped if it is known to have expired)."""
        obj = session.get(f"{cls._namespace}:{pk}")
        if obj is not None and cls._has_expiry and expiry.is_expired(obj):
            session.forget(obj)
            return None
        return obj

    @classmethod
    def _fetch(cls: type[M], pks: list[int]) -> list[M | None]:
        """Load ``pks`` from Redis in one round trip (``None`` for missing or expired)."""
        conn = cls._connection
        if cls._has_expiry:
            return expiry.load(cls, conn, pks)
        ks = cls._keyspace(conn)
        if len(pks) == 1:
            return [cls._from_hash(conn.hgetall(ks.entity(pks[0])))]
        pipe = conn.pipeline(transaction=False)
        for pk in pks:
            pipe.hgetall(ks.entity(pk))
        return [cls._from_hash(raw) for raw in pipe.execute()]

    @classmethod
    def _unique_text(cls, attr: str, value: Any) -> str | None:
        col = cls._columns[attr]
        if isinstance(col, IndexOnly):
            if isinstance(value, bytes):
                return latin1_text(value)
            return value if isinstance(value, str) else str(value)
        try:
            return str(col._to_redis(col._construct(value)))
        except (InvalidColumnValue, ORMError):
            return None

    @classmethod
    def get_by(cls, **kwargs: Any) -> Any:
        """Entities by one column: unique columns give one entity (or ``None``); indexed
        columns give a list (``_limit=(offset, count)`` pages it).

        Typed ``Any``: whether it is an entity, ``None`` or a list depends on the column.

        Example: ``User.get_by(email='a@b.c')``, ``Post.get_by(score=(10, None))``.
        """
        limit = kwargs.pop("_limit", None)
        numeric = kwargs.pop("_numeric", False)
        if limit is not None and not (
            isinstance(limit, tuple) and len(limit) == 2 and all(isinstance(x, int) for x in limit)
        ):
            raise QueryError("Limit must be a 2-tuple of (offset, count)")
        if len(kwargs) != 1:
            raise QueryError(
                f"We can only fetch object(s) by exactly one attribute, you provided {len(kwargs)}"
            )
        attr, value = next(iter(kwargs.items()))
        if isinstance(value, tuple) and len(value) != 2:
            raise QueryError("Range queries must include exactly two endpoints")
        base = attr.split(":", 1)[0]
        if attr in cls._unique and not (attr in cls._index and numeric):
            if isinstance(value, tuple):
                raise QueryError(f"Cannot query a unique index with a range: {attr}")
            conn = cls._connection
            key = cls._keyspace(conn).unique(attr)
            if isinstance(value, list):
                texts = [cls._unique_text(attr, v) for v in value]
                asked = [t for t in texts if t is not None]
                ids = conn.hmget(key, asked) if asked else []
                return cls.get([int(i) for i in ids if i is not None])
            text = cls._unique_text(attr, value)
            if text is None:
                return None
            ident = conn.hget(key, text)
            return cls.get(int(ident)) if ident is not None else None
        if base not in cls._index:
            raise QueryError("Cannot query on a column without an index")
        if isinstance(value, NUMERIC_TYPES) and not isinstance(value, bool):
            value = (value, value)
        query = cls.query.filter(**{attr: value})
        if limit:
            query = query.limit(*limit)
        found = query.all()
        for obj in found:  # loading through get_by keeps entities, as get() does
            session.add(obj)
        return found

    @classmethod
    def does_not_startwith(
        cls: type[M], attr: str, values: Any, blocksize: int = 100
    ) -> Iterator[M]:
        """Entities with a prefix-index entry on ``attr`` not starting with any of ``values``."""
        from .query import _does_not_match

        return _does_not_match(cls, attr, values, blocksize, suffix=False)

    @classmethod
    def does_not_endwith(cls: type[M], attr: str, values: Any, blocksize: int = 100) -> Iterator[M]:
        """Entities with a suffix-index entry on ``attr`` not ending with any of ``values``."""
        from .query import _does_not_match

        return _does_not_match(cls, attr, values, blocksize, suffix=True)

    def transfer(
        self,
        other: Any,
        attr: str,
        value: Any,
        txn_model: Any,
        txn_attr: str,
        decimal_places: int = 0,
        refresh_entities: bool = True,
        refresh_index: bool = True,
    ) -> None:
        """Atomically move ``value`` of column ``attr`` from this entity to ``other`` and set
        ``txn_model.<txn_attr>`` to 1 (refused if it is already set)."""
        from .relations import transfer

        transfer(
            self,
            other,
            attr,
            value,
            txn_model,
            txn_attr,
            decimal_places,
            refresh_entities,
            refresh_index,
        )


def _zrange_limit_iterator(
    conn: Any, key: str, vstart: Any, end: Any, count: int = 100
) -> Iterator[Any]:
    """Members of a sorted set with ``vstart <= score <= end``, fetched ``count`` at a time."""
    offset = 0
    while True:
        block = conn.zrangebyscore(key, vstart, end, start=offset, num=count)
        yield from block
        if len(block) < count:
            return
        offset += count
