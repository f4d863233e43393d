"""Round trips per operation (issue #2): one exchange with Redis per save, delete and get."""

from __future__ import annotations

import datetime

import pytest

import rom


def make_model():
    class Rich(rom.Model):
        email = rom.Text(required=True, unique=True, suffix=True)
        title = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)
        sort = rom.Text(index=True, keygen=rom.SIMPLE_CI, prefix=True, suffix=True)
        n = rom.Integer(index=True, default=0)
        flag = rom.Boolean(index=True)
        at = rom.DateTime(index=True, default=datetime.datetime(2020, 1, 1))
        a = rom.Integer()
        b = rom.Text()
        unique_together = [("a", "b")]

    return Rich


@pytest.fixture
def Rich(conn):
    """A model with every kind of index, its scripts already loaded on the server."""
    model = make_model()
    warm = model(email="warm@up", title="warm up", a=0, b="warm")
    warm.save()
    warm.n = 1
    warm.save()
    warm.delete()
    rom.session.rollback()
    return model


def test_new_entity_construct_and_save(Rich, round_trips):
    """Constructing (INCR) and saving (one script call) a new entity: 2 round trips."""
    round_trips.reset()
    x = Rich(email="a@b", title="Hello World", sort="Ann", flag=True, a=1, b="x")
    assert round_trips.count == 1
    x.save()
    assert round_trips.count == 2


def test_update_is_one_round_trip(Rich, round_trips):
    """An update touching indexed, unique and plain columns is 1 round trip."""
    x = Rich(email="a@b", title="Hello World", sort="Ann", a=1, b="x")
    x.save()
    x.title = "Goodbye"
    x.email = "c@d"
    x.n = 5
    x.a = 2
    round_trips.reset()
    assert x.save() == 4
    assert round_trips.count == 1
    round_trips.reset()
    assert x.save() == 0
    assert round_trips.count == 1


def test_get_one_and_many(Rich, round_trips):
    """get(id) and get([ids]) are one round trip each; known entities cost nothing."""
    ids = [Rich(email=f"u{i}@x", title="t").id for i in range(20)]
    rom.session.commit()
    rom.session.rollback()
    round_trips.reset()
    assert Rich.get(ids[0]).id == ids[0]
    assert round_trips.count == 1
    round_trips.reset()
    assert [e.id for e in Rich.get(ids[1:])] == ids[1:]
    assert round_trips.count == 1
    round_trips.reset()
    assert len(Rich.get(ids)) == 20
    assert round_trips.count == 0


def test_delete_is_one_round_trip(Rich, conn, round_trips):
    """delete() is one round trip and leaves only the id counter."""
    x = Rich(email="a@b", title="Hello World", sort="Ann", flag=False, a=1, b="x")
    x.save()
    round_trips.reset()
    x.delete()
    assert round_trips.count == 1
    assert conn.keys("*") == [b"Rich:id:"]


def test_get_by_unique(Rich, round_trips):
    """get_by on a unique column: at most 2 round trips (HGET + HGETALL), 1 when known."""
    x = Rich(email="a@b")
    x.save()
    rom.session.rollback()
    round_trips.reset()
    found = Rich.get_by(email="a@b")
    assert found.id == x.id
    assert round_trips.count <= 2
    round_trips.reset()
    assert Rich.get_by(email="a@b") is found
    assert round_trips.count == 1


def test_commit_of_many_is_one_round_trip(Rich, round_trips):
    """session.commit() of N new entities: N INCRs at construction, then 1 round trip."""
    round_trips.reset()
    for i in range(25):
        Rich(email=f"e{i}@x", title=f"title {i}", n=i, a=i, b="b")
    assert round_trips.count == 25
    round_trips.reset()
    assert rom.session.commit() == 25 * len(Rich._columns)
    assert round_trips.count == 1


def test_refresh_is_one_round_trip(Rich, round_trips):
    """refresh() is one HGETALL."""
    x = Rich(email="a@b")
    x.save()
    round_trips.reset()
    x.refresh()
    assert round_trips.count == 1
