"""The public names of rom 1.1.2 (API.md §1, §2, §3.1, §7.7) are all importable."""

from __future__ import annotations

import datetime
import decimal
import importlib
import inspect

import pytest
import redis

import rom
import rom.columns
import rom.exceptions
import rom.index
import rom.model
import rom.query
import rom.util


def _names(text: str) -> list[str]:
    return sorted(name.strip() for name in text.replace("\n", " ").split(",") if name.strip())


ROM_ALL = _names(
    """Boolean, CASE_INSENSITIVE, COLUMN_TYPES, ClassProperty, Column, ColumnError,
    DataRaceError, Date, DateTime, Decimal, EntityDeletedError, FULL_TEXT, Float, ForeignModel,
    GeneralIndex, GeoIndex, IDENTITY, IDENTITY_CI, IDENTITY_STRING, IDENTITY_STRING_CI,
    IndexOnly, Integer, InvalidColumnValue, InvalidOperation, Json, MODELS, MODELS_REFERENCED,
    ManyToOne, MissingColumn, Model, NOT_NULL, NUMERIC_TYPES, ORMError, OneToMany, OneToOne,
    Pattern, Prefix, PrimaryKey, Query, QueryError, RestrictError, SIMPLE, SIMPLE_CI,
    SKIP_ON_DELETE, SaferDateTime, String, Suffix, Text, Time, UniqueKeyViolation,
    UnsafeColumn, VERSION, columns, exceptions, index, model, query, session, util"""
)

EXCEPTIONS_ALL = _names(
    """BulkError, ColumnError, DataRaceError, EntityDeletedError, InvalidColumnValue,
    InvalidOperation, MissingColumn, ORMError, QueryError, RestrictError, UniqueKeyViolation"""
)

COLUMNS_ALL = _names(
    """Boolean, Column, Date, DateTime, Decimal, Float, ForeignModel, IndexOnly, Integer, Json,
    MODELS, MODELS_REFERENCED, ManyToOne, ON_DELETE, OneToMany, OneToOne, PrimaryKey,
    SaferDateTime, String, Text, Time, UnsafeColumn, _Column"""
)

UTIL_ALL = _names(
    """CASE_INSENSITIVE, CONNECTION, ClassProperty, EntityLock, FULL_TEXT, IDENTITY,
    IDENTITY_CI, IDENTITY_STRING, IDENTITY_STRING_CI, Lock, NO_SCRIPT_MESSAGES, NULL_SESSION,
    REDIS_URI, SIMPLE, SIMPLE_CI, STRING_INDEX_KEYGENS, STRING_INDEX_KEYGENS_STR,
    STRING_SORT_KEYGENS, STRING_SORT_KEYGENS_STR, Session, __doc__, _connect, _epoch, _epochd,
    _script_load, _string_keygen, clean_old_index, clean_unsafe_cols, get_connection,
    refresh_all_indexes, refresh_indices, session, set_connection_settings, show_progress,
    use_null_session, use_rom_session"""
)


def test_rom_all_is_exactly_the_spec_list():
    """rom.__all__ holds exactly rom 1.1.2's names."""
    assert sorted(rom.__all__) == ROM_ALL
    assert len(set(rom.__all__)) == len(rom.__all__)


def test_every_rom_name_is_bound():
    """Every name of rom.__all__ is an attribute of the package."""
    missing = [name for name in ROM_ALL if not hasattr(rom, name)]
    assert missing == []


def test_star_import_binds_submodules():
    """`from rom import *` binds the submodules and session, as rom's own tests rely on."""
    namespace: dict[str, object] = {}
    exec("from rom import *", namespace)
    for name in ("columns", "exceptions", "index", "model", "query", "util"):
        assert namespace[name] is importlib.import_module(f"rom.{name}")
    assert namespace["session"] is rom.session
    assert namespace["Model"] is rom.Model
    assert namespace["Text"] is rom.Text
    assert set(ROM_ALL) <= set(namespace)


def test_private_helpers_stay_importable():
    """The private helpers rom 1.x re-exported from the package are still reachable."""
    from rom import (
        _connect,
        _encode_unique_constraint,
        _ModelMetaclass,
        _prefix_score,
        _script_load,
    )

    assert _ModelMetaclass is type(rom.Model)
    assert _prefix_score is rom.util._prefix_score
    assert _connect is rom.util._connect


def test_exceptions_all():
    """rom.exceptions.__all__ is the spec list (UnsafeError exists but is not exported)."""
    assert sorted(rom.exceptions.__all__) == EXCEPTIONS_ALL
    assert "UnsafeError" not in rom.exceptions.__all__
    assert issubclass(rom.exceptions.UnsafeError, rom.ColumnError)
    for name in EXCEPTIONS_ALL:
        assert inspect.isclass(getattr(rom.exceptions, name))


@pytest.mark.parametrize(
    ("name", "parent"),
    [
        ("ORMError", Exception),
        ("UniqueKeyViolation", "ORMError"),
        ("InvalidOperation", "ORMError"),
        ("QueryError", "InvalidOperation"),
        ("RestrictError", "InvalidOperation"),
        ("DataRaceError", "InvalidOperation"),
        ("EntityDeletedError", "InvalidOperation"),
        ("ColumnError", "ORMError"),
        ("MissingColumn", "ColumnError"),
        ("InvalidColumnValue", "ColumnError"),
        ("UnsafeError", "ColumnError"),
        ("BulkError", "ORMError"),
    ],
)
def test_exception_hierarchy(name, parent):
    """Each exception derives directly from the parent API.md §2 names."""
    cls = getattr(rom.exceptions, name)
    base = parent if isinstance(parent, type) else getattr(rom.exceptions, parent)
    assert cls.__bases__ == (base,)
    assert cls.__init__ is Exception.__init__
    if hasattr(rom, name):
        assert getattr(rom, name) is cls


def test_columns_all_and_helpers():
    """rom.columns.__all__ and its unexported helpers (API.md §3.1)."""
    assert sorted(rom.columns.__all__) == COLUMNS_ALL
    for name in COLUMNS_ALL:
        assert hasattr(rom.columns, name), name
    assert rom.columns.ON_DELETE == ("no action", "restrict", "cascade", "set null", "set default")
    assert rom.columns.SKIP_ON_DELETE is rom.SKIP_ON_DELETE
    assert rom.columns.NULL is not rom.columns.NO_ACTION_DEFAULT
    assert rom.columns.is_numeric((int,)) and not rom.columns.is_numeric((str,))
    assert rom.columns.is_string((bytes,)) and not rom.columns.is_string((float, int))
    assert not hasattr(rom.columns, "FULL_TEXT")
    for cls in rom.columns.COLUMN_TYPES:
        assert issubclass(cls, rom.columns._Column)
    assert rom.columns.SaferDateTime in rom.columns.COLUMN_TYPES
    assert rom.columns.UnsafeColumn in rom.columns.COLUMN_TYPES
    assert issubclass(rom.UnsafeColumn, rom.columns._Column)
    assert not issubclass(rom.UnsafeColumn, rom.Column)


def test_util_all_names_importable():
    """Every name of rom.util.__all__ (API.md §7.7) exists, plus the converters of §7.2."""
    assert sorted(rom.util.__all__) == UTIL_ALL
    for name in UTIL_ALL:
        assert hasattr(rom.util, name), name
    for name in ("dt2ts", "ts2dt", "t2ts", "ts2t", "_prefix_score", "_to_score"):
        assert callable(getattr(rom.util, name)), name
    assert callable(rom.util._bigint_to_float)
    assert callable(rom.util._encode_unique_constraint)
    assert rom.util.NO_SCRIPT_MESSAGES == ["NOSCRIPT", "No matching script."]
    assert rom.util._string_keygen is rom.FULL_TEXT
    assert rom.util._epoch == datetime.datetime(1970, 1, 1)
    assert rom.util._epochd == datetime.date(1970, 1, 1)
    namespace: dict[str, object] = {}
    exec("from rom.util import *", namespace)
    assert namespace["session"] is rom.session


def test_keygen_constants():
    """The keygen tuples and their descriptive strings (API.md §7.2)."""
    u = rom.util
    assert u.STRING_INDEX_KEYGENS == (
        u.FULL_TEXT,
        u.SIMPLE,
        u.SIMPLE_CI,
        u.IDENTITY,
        u.IDENTITY_CI,
        u.CASE_INSENSITIVE,
    )
    assert u.STRING_INDEX_KEYGENS_STR == (
        "FULL_TEXT, SIMPLE, SIMPLE_CI, IDENTITY, IDENTITY_CI, CASE_INSENSITIVE"
    )
    assert u.STRING_SORT_KEYGENS == (u.SIMPLE, u.SIMPLE_CI, u.CASE_INSENSITIVE)
    assert u.STRING_SORT_KEYGENS_STR == "SIMPLE, SIMPLE_CI, CASE_INSENSITIVE"
    assert u.CASE_INSENSITIVE is not u.SIMPLE_CI
    assert u.CASE_INSENSITIVE.__name__ == "CASE_INSENSITIVE"
    for name in ("FULL_TEXT", "SIMPLE", "SIMPLE_CI", "IDENTITY", "IDENTITY_CI"):
        assert getattr(rom, name) is getattr(u, name)
        assert getattr(u, name).__name__ == name


def test_one_session_object_everywhere():
    """rom.session is the same object in every module that exposes it."""
    assert rom.session is rom.util.session
    assert rom.session is rom.columns.session
    assert rom.session is rom.model.session
    assert rom.session is rom.query.session
    assert isinstance(rom.session, rom.util.Session)


def test_query_and_index_names():
    """The query and index names the package re-exports."""
    assert rom.Query is rom.query.Query
    assert rom.NOT_NULL is rom.query.NOT_NULL
    assert rom.NOT_NULL == (None, None)
    for name in ("GeneralIndex", "GeoIndex", "Pattern", "Prefix", "Suffix"):
        assert getattr(rom, name) is getattr(rom.index, name)
    assert rom.index.GeoIndex._fields == ("name", "callback")
    assert rom.index.Prefix._fields == ("attr", "prefix")
    assert rom.index.Suffix._fields == ("attr", "suffix")
    assert rom.index.Pattern._fields == ("attr", "pattern")


def test_version_and_type_lists():
    """VERSION, COLUMN_TYPES (rom's order) and NUMERIC_TYPES (API.md §1.1)."""
    assert rom.VERSION == "1.1.2"
    assert rom.COLUMN_TYPES == [
        rom.Column,
        rom.Integer,
        rom.Boolean,
        rom.Float,
        rom.Decimal,
        rom.DateTime,
        rom.Date,
        rom.Time,
        rom.String,
        rom.Text,
        rom.Json,
        rom.PrimaryKey,
        rom.ManyToOne,
        rom.ForeignModel,
        rom.OneToMany,
        rom.OneToOne,
        rom.IndexOnly,
    ]
    assert rom.NUMERIC_TYPES == (
        int,
        float,
        decimal.Decimal,
        datetime.datetime,
        datetime.date,
        datetime.time,
    )


def test_model_module_names():
    """rom.model keeps Model, the metaclass, AttrDict and _zrange_limit_iterator."""
    assert rom.model.Model is rom.Model
    assert rom.model._ModelMetaclass is rom._ModelMetaclass
    data = rom.model.AttrDict(a=1)
    assert data.a == 1 and data["a"] == 1 and data.missing is None
    assert callable(rom.model._zrange_limit_iterator)
    for name in rom.model.__all__:
        assert hasattr(rom.model, name), name


def test_no_disable_lua_writes():
    """rom._disable_lua_writes (mentioned by rom's README) does not exist (API.md §1.1)."""
    assert not hasattr(rom, "_disable_lua_writes")


def test_zrange_limit_iterator(conn):
    """_zrange_limit_iterator pages through a score range."""
    conn.zadd("z", {f"m{i:03}": i for i in range(25)})
    got = list(rom.model._zrange_limit_iterator(conn, "z", 3, 21, count=4))
    assert got == [f"m{i:03}".encode() for i in range(3, 22)]


def test_script_load_helper(conn):
    """_script_load returns call(conn, keys, args, force_eval) that reloads on NOSCRIPT."""
    import uuid

    source = f"-- {uuid.uuid4()}\nreturn {{KEYS[1], ARGV[1]}}"
    call = rom.util._script_load(source)
    client = getattr(conn, "_client", conn)  # the real client (cluster test view wraps it)
    standalone = isinstance(client, redis.Redis)
    if standalone:
        assert not client.script_exists(call.script.sha)[0]
    assert call(client, ["k"], ["v"]) == [b"k", b"v"]  # EVALSHA -> NOSCRIPT -> EVAL
    if standalone:
        assert client.script_exists(call.script.sha)[0]
    assert call(client, keys=["k"], args=["b"], force_eval=True) == [b"k", b"b"]


def test_packaged_scripts_have_headers():
    """Every packaged Lua script documents its KEYS, ARGV and return value."""
    from importlib import resources

    from rom.scripts import get_script

    names = [
        p.name[:-4]
        for p in resources.files("rom").joinpath("lua").iterdir()
        if p.name.endswith(".lua")
    ]
    assert "write" in names
    for name in names:
        source = get_script(name).source
        head = source[:3000]
        assert "KEYS" in head and "ARGV" in head and "returns" in head, name
    assert get_script("write") is get_script("write")


def test_redis_refusals_become_orm_errors(conn):
    """A script error from Redis is raised as ORMError, not redis.ResponseError."""
    from rom.writer import run_script

    with pytest.raises(rom.ORMError):
        run_script(conn, "write", [], ["not json", "[]"])
