"""Expiring entities: never visible after their time, index data swept, uniques freed."""

from __future__ import annotations

import time

import pytest

import rom
from rom import expiry


def make_model(ttl=None):
    class Token(rom.Model):
        _ttl = ttl
        name = rom.Text(unique=True, index=True, keygen=rom.IDENTITY, prefix=True)
        n = rom.Integer(index=True)

    return Token


def dump(conn):
    return sorted(k for k in conn.keys("*") if not k.endswith(b":id:"))


def test_model_default_ttl_applies_to_new_entities(conn):
    """A model with _ttl gives new entities that lifetime (server clock)."""
    Token = make_model(ttl=30)
    token = Token(name="a", n=1)
    assert token.ttl() == 30.0  # pending until the first save
    token.save()
    assert 29 < token.ttl() <= 30
    token.n = 2
    token.save()  # updates keep the expiry
    assert 28 < token.ttl() <= 30


def test_expired_entity_is_invisible_to_get(conn):
    """get and get_by return nothing for an expired entity, even before a sweep."""
    Token = make_model()
    token = Token(name="a", n=1)
    token.save()
    token.expire(0.2)
    assert Token.get(token.id) is token
    time.sleep(0.3)
    assert Token.get(token.id) is None  # the session copy is dropped too
    rom.session.rollback()
    assert Token.get(token.id) is None
    assert Token.get([token.id]) == []
    assert Token.get_by(name="a") is None
    assert conn.exists(f"Token:{token.id}")  # not swept yet


def test_expired_entity_is_invisible_to_queries(conn):
    """Queries and counts leave expired entities out from the moment they expire."""
    Token = make_model()
    keep, gone = Token(name="keep", n=1), Token(name="gone", n=1)
    rom.session.commit()
    gone.expire(0.2)
    assert Token.query.filter(n=1).count() == 2
    time.sleep(0.3)
    assert Token.query.filter(n=1).count() == 1
    assert [t.id for t in Token.query.filter(n=(0, 5)).all()] == [keep.id]
    assert Token.query.startswith(name="go").all() == []


def test_sweep_removes_all_data_and_index_entries(conn):
    """expire_sweep deletes expired entities with every index and unique entry."""
    Token = make_model()
    keep = Token(name="keep", n=1)
    keep.save()
    before = dump(conn)
    for i in range(5):
        t = Token(name=f"t{i}", n=i)
        t.save()
        t.expire(0.1)
    time.sleep(0.2)
    assert rom.util.expire_sweep(Token) == 5
    after = dump(conn)
    assert after == before  # the emptied expiry index is gone too
    assert conn.zcard("Token::expire") == 0
    assert conn.hgetall("Token:name:uidx") == {b"keep": str(keep.id).encode()}


def test_unique_value_free_after_expiry(conn):
    """A unique value whose holder expired can be taken at once, before any sweep."""
    Token = make_model()
    old = Token(name="x")
    old.save()
    old.expire(0.1)
    with pytest.raises(rom.UniqueKeyViolation):
        Token(name="x").save()
    time.sleep(0.2)
    new = Token(name="x")
    new.save()
    assert Token.get_by(name="x").id == new.id


def test_saving_an_expired_entity_raises_deleted(conn):
    """An update of an expired entity is refused like one of a deleted entity."""
    Token = make_model()
    token = Token(name="a", n=1)
    token.save()
    token.expire(0.1)
    time.sleep(0.2)
    token.n = 5
    with pytest.raises(rom.EntityDeletedError):
        token.save()
    token.save(force=True)  # recreates it, without expiry
    assert token.ttl() is None
    assert Token.get(token.id).n == 5


def test_persist_and_extend(conn):
    """persist() removes the expiry, expire()/expire_at() move it."""
    Token = make_model(ttl=0.2)
    token = Token(name="a")
    token.save()
    token.persist()
    assert token.ttl() is None
    token.expire_at(time.time() + 100)
    assert 98 < token.ttl() <= 100
    token.expire(0.1)
    time.sleep(0.2)
    with pytest.raises(rom.EntityDeletedError):
        token.ttl()
    with pytest.raises(rom.EntityDeletedError):
        token.expire(10)  # too late: it is gone


def test_writes_sweep_opportunistically(conn):
    """A write that sees expired entries removes them in the same operation."""
    Token = make_model()
    for i in range(3):
        t = Token(name=f"t{i}")
        t.save()
        t.expire(0.1)
    time.sleep(0.2)
    Token(name="new").save()
    assert conn.zcard("Token::expire") == 0
    assert conn.hlen("Token:name:uidx") == 1


def test_delete_clears_expiry_entry(conn):
    """Deleting an expiring entity removes its expiry entry too."""
    Token = make_model(ttl=100)
    token = Token(name="a")
    token.save()
    token.delete()
    assert dump(conn) == []


def test_expiry_needs_opt_in(conn):
    """Models without _ttl refuse expiry calls; _ttl must be a positive number."""

    class Plain(rom.Model):
        n = rom.Integer()

    with pytest.raises(rom.InvalidOperation):
        Plain(n=1).expire(5)
    with pytest.raises(rom.ORMError):

        class Bad(rom.Model):
            _ttl = -1

    assert expiry.expire_sweep(Plain) == 0


def test_sweep_skips_extended_entities(conn):
    """An entity extended after it was due is not removed by the sweep."""
    Token = make_model()
    token = Token(name="a")
    token.save()
    token.expire(0.05)
    time.sleep(0.1)
    conn.zadd("Token::expire", {str(token.id): time.time() + 100})
    assert rom.util.expire_sweep(Token) == 0
    assert conn.exists(f"Token:{token.id}")


def test_expiry_set_before_the_first_save(conn):
    """expire()/persist() on a new entity apply at its first save, overriding _ttl."""
    Token = make_model(ttl=1000)
    soon = Token(name="soon")
    soon.expire(0.2)
    assert soon.ttl() == 0.2
    never = Token(name="never")
    never.persist()
    assert never.ttl() is None
    rom.session.commit()
    assert 0 < soon.ttl() <= 0.2
    assert never.ttl() is None
    assert conn.zscore("Token::expire", str(never.id)) is None
    time.sleep(0.3)
    assert Token.get(soon.id) is None
    assert Token.get(never.id) is never


def test_expiry_rejects_bad_arguments(conn):
    """A missing or NaN expiry is a ValueError; a deleted entity refuses expiry calls."""
    Token = make_model()
    token = Token(name="a")
    token.save()
    with pytest.raises(ValueError):
        token.expire(float("nan"))
    with pytest.raises((ValueError, TypeError)):
        token.expire_at(None)
    token.delete()
    with pytest.raises(rom.EntityDeletedError):
        token.expire(5)
