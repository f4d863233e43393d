"""The thread-local identity map (API.md §7.4)."""

from __future__ import annotations

import gc
import threading

import pytest

import rom
from rom import util


def make_model():
    class Item(rom.Model):
        name = rom.Text(index=True, keygen=rom.IDENTITY)
        n = rom.Integer(default=0)

    return Item


def in_thread(func):
    """Run ``func`` in a new thread and return its result (re-raising its exception)."""
    out = {}

    def run():
        try:
            out["value"] = func()
        except BaseException as err:  # pragma: no cover - reported below
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_identity_map_per_thread(conn):
    """Each thread has its own identity map; within a thread one object per entity."""
    Item = make_model()
    x = Item(name="a")
    x.save()
    assert Item.get(x.id) is x
    other = in_thread(lambda: (Item.get(x.id), Item.get(x.id), dict(rom.session.known)))
    assert other[0] is not x and other[0] is other[1]
    assert list(other[2]) == [x._pk]
    assert rom.session.known == {x._pk: x}
    assert in_thread(lambda: rom.session.known) == {}


def test_session_state_not_shared_between_threads(conn):
    """A rollback or commit in one thread leaves other threads' maps alone."""
    Item = make_model()
    x = Item(name="a")
    in_thread(rom.session.rollback)
    assert rom.session.get(x._pk) is x
    assert in_thread(rom.session.commit) == 0
    assert not conn.exists(x._pk)
    assert rom.session.commit() == 3


def test_null_session_property(conn):
    """null_session reads the thread's value, else the global default."""
    Item = make_model()
    assert rom.session.null_session is False
    util.use_null_session()
    try:
        assert util.NULL_SESSION is True
        assert rom.session.null_session is True
        assert in_thread(lambda: rom.session.null_session) is True
        rom.session.null_session = False
        assert rom.session.null_session is False
        assert in_thread(lambda: rom.session.null_session) is True
        del rom.session.null_session
        assert rom.session.null_session is True
        x = Item(name="a")
        assert rom.session.get(x._pk) is None
        x.save()
        assert Item.get(x.id) is not x
        assert Item.get(x.id) is not Item.get(x.id)
    finally:
        util.use_rom_session()
    assert util.NULL_SESSION is False
    assert rom.session.null_session is False
    y = Item(name="b")
    assert rom.session.get(y._pk) is y


def test_null_session_keeps_already_cached_entities(conn):
    """Entities cached before use_null_session() stay cached and are still returned."""
    Item = make_model()
    x = Item(name="a")
    x.save()
    rom.session.null_session = True
    try:
        assert Item.get(x.id) is x
    finally:
        del rom.session.null_session


def test_commit_keeps_weak_map(conn):
    """[ODD] commit() empties `known` but still-referenced entities keep their identity."""
    Item = make_model()
    x = Item(name="a")
    assert rom.session.commit() == 3
    assert rom.session.known == {}
    assert Item.get(x.id) is x
    assert rom.session.known == {}  # found in the weak map only
    key = x._pk
    del x
    gc.collect()
    assert rom.session.get(key) is None


def test_rollback_forgets_everything(conn):
    """rollback() empties both maps and writes nothing."""
    Item = make_model()
    x = Item(name="a")
    rom.session.rollback()
    assert rom.session.get(x._pk) is None
    assert rom.session.commit() == 0
    assert not conn.exists(x._pk)


def test_flush_keeps_maps_and_skips_unmodified(conn):
    """flush() saves modified entities and keeps them known; all=True saves every one."""
    Item = make_model()
    a, b = Item(name="a"), Item(name="b")
    assert rom.session.flush() == 6
    assert rom.session.known == {a._pk: a, b._pk: b}
    assert rom.session.flush() == 0
    a.n = 5
    assert rom.session.flush() == 1
    assert rom.session.flush(all=True) == 0
    assert rom.session.flush(all=True, full=True) == 6
    conn.hset(b._pk, "n", "9")
    with pytest.raises(rom.DataRaceError):
        rom.session.flush(all=True, full=True)
    assert rom.session.flush(all=True, force=True) == 6
    assert conn.hget(b._pk, "n") == b"0"


def test_session_save(conn):
    """session.save() takes entities and nested lists; non-models raise ORMError."""
    Item = make_model()
    a, b, c = Item(name="a"), Item(name="b"), Item(name="c")
    with pytest.raises(rom.ORMError):
        rom.session.save(a, "not a model")
    assert not conn.exists(a._pk)
    assert rom.session.save([a, (b,)]) == 6
    assert rom.session.save(a, b) == 0
    assert rom.session.save(a, b, all=True) == 0
    assert rom.session.save([[c]], full=True) == 3
    c.delete()
    assert rom.session.save(c) == 0  # deleted entities are skipped
    assert not conn.exists(c._pk)


def test_session_delete(conn):
    """session.delete() deletes in bulk with hooks; force re-runs only _after_delete."""
    calls = []

    class Hooked(rom.Model):
        name = rom.Text(unique=True)

        def _before_delete(self):
            calls.append(("before", self.id))

        def _after_delete(self):
            calls.append(("after", self.id))

    a, b, fresh = Hooked(name="a"), Hooked(name="b"), Hooked(name="c")
    a.save()
    b.save()
    rom.session.delete([a, (b, fresh)])
    assert calls == [
        ("before", 1),
        ("before", 2),
        ("before", 3),
        ("after", 1),
        ("after", 2),
        ("after", 3),
    ]
    assert conn.keys("*") == [b"Hooked:id:"]
    assert a._deleted and b._deleted and fresh._deleted
    assert rom.session.get(a._pk) is None
    calls.clear()
    rom.session.delete(a)
    assert calls == []
    rom.session.delete(a, force=True)
    assert calls == [("after", 1)]
    with pytest.raises(rom.ORMError):
        rom.session.delete(3)


def test_session_delete_refuses_models_with_relations(conn):
    """session.delete() raises ORMError before anything for models with FK relations."""

    class Target(rom.Model):
        n = rom.Integer()

    class Ref(rom.Model):
        t = rom.ManyToOne("Target", on_delete="no action")

    t = Target(n=1)
    t.save()
    r = Ref(t=t)
    r.save()
    for victim in (t, r):
        with pytest.raises(rom.ORMError):
            rom.session.delete(victim)
    assert conn.exists(t._pk) and conn.exists(r._pk)


def test_session_refresh(conn):
    """session.refresh() reloads entities (new ones are just re-added); non-models -> ORMError."""
    Item = make_model()
    a, b = Item(name="a"), Item(name="b")
    rom.session.commit()
    conn.hset(a._pk, "n", "4")
    rom.session.refresh([a])
    assert a.n == 4
    fresh = Item(name="c")
    rom.session.rollback()
    rom.session.refresh(fresh)
    assert rom.session.get(fresh._pk) is fresh
    with pytest.raises(rom.ORMError):
        rom.session.refresh(a, object())
    b.n = 1
    with pytest.raises(rom.InvalidOperation):
        rom.session.refresh(b)
    rom.session.refresh(b, force=True)
    assert b.n == 0


def test_session_refresh_all(conn):
    """refresh_all() reloads every strongly held entity (works as the first call)."""
    Item = make_model()
    a = Item(name="a")
    a.save()
    conn.hset(a._pk, "n", "7")
    rom.session.refresh_all()
    assert a.n == 7
    a.n = 1
    rom.session.refresh_all(force=True)
    assert a.n == 7


def test_lifecycle_adds_to_session(conn):
    """Loading, assigning and deleting a column add the entity to the session."""
    Item = make_model()
    a = Item(name="a")
    a.save()
    rom.session.rollback()
    loaded = Item.get(a.id)
    assert rom.session.known[loaded._pk] is loaded
    rom.session.rollback()
    loaded.n = 3
    assert rom.session.known[loaded._pk] is loaded
    rom.session.rollback()
    del loaded.name
    assert rom.session.known[loaded._pk] is loaded
    assert rom.session.commit() == 2
    assert conn.hgetall(loaded._pk).get(b"name") is None


def test_session_forget_and_add(conn):
    """add() and forget() manage both maps; entities without a pk are ignored."""
    Item = make_model()
    x = Item(name="a")
    rom.session.forget(x)
    assert rom.session.get(x._pk) is None
    rom.session.add(x)
    assert rom.session.get(x._pk) is x
    assert rom.session.wknown[x._pk] is x
