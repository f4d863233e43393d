"""Cluster readiness: key layout under hash tags, connection forms and durability."""

from __future__ import annotations

import pytest
import redis
from conftest import CLUSTER
from redis.cluster import key_slot

import rom
from rom import keys, scripts, util


@pytest.fixture
def tagged(monkeypatch):
    """Make rom use the cluster key layout (hash tags) even on a standalone server."""
    if not CLUSTER:
        monkeypatch.setattr(keys, "is_cluster", lambda conn: True)
        import rom.model
        import rom.writer

        monkeypatch.setattr(rom.model, "is_cluster", lambda conn: True)
        monkeypatch.setattr(rom.writer, "is_cluster", lambda conn: False)


@pytest.fixture
def script_keys(monkeypatch):
    """Record the KEYS of every script call."""
    calls = []
    original = scripts.Script.__call__

    def record(self, conn, keys=(), args=()):
        calls.append((self.name, list(keys)))
        return original(self, conn, keys, args)

    monkeypatch.setattr(scripts.Script, "__call__", record)
    return calls


def test_every_script_call_stays_in_the_model_slot(conn, tagged, script_keys):
    """Each save, update, unit of work and delete touches keys of one hash slot only."""

    class Item(rom.Model):
        name = rom.Text(unique=True, index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        n = rom.Integer(index=True)
        other = rom.Integer()
        unique_together = [("n", "other")]
        box = rom.UnsafeColumn()

    a = Item(name="hello world", n=1, other=2)
    a.save()
    a.name = "bye world"
    a.save()
    Item(name="x", n=2)
    Item(name="y", n=3)
    rom.session.commit()
    a.delete()
    slot = key_slot(b"{Item}")
    assert script_keys
    for name, called in script_keys:
        assert called, name
        assert {key_slot(k.encode()) for k in called} == {slot}, (name, called)
        assert all(k.startswith("{Item}:") for k in called)


def test_all_stored_keys_carry_the_model_tag(conn, tagged):
    """Everything rom stores for a model lives under its hash tag."""

    class Thing(rom.Model):
        word = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True)

    Thing(word="a").save()
    Thing(word="b").save()
    raw = conn._client if CLUSTER else conn
    found = raw.keys("*", target_nodes="primaries") if CLUSTER else raw.keys("*")
    assert found
    assert all(k.startswith(b"{Thing}:") for k in found), found


def test_set_durability_waits_for_replicas(conn):
    """With durability on, a write on a server without replicas is reported, not hidden."""

    class Doc(rom.Model):
        n = rom.Integer()

    try:
        util.set_durability(1, timeout=0.05)
        doc = Doc(n=1)
        if CLUSTER:
            doc.save()  # the cluster test setup gives every master a replica
            assert conn.hget(f"Doc:{doc.id}", "n") == b"1"
        else:
            with pytest.raises(rom.exceptions.DurabilityError):
                doc.save()
            assert conn.hget(f"Doc:{doc.id}", "n") == b"1"  # it reached the master
    finally:
        util.set_durability(0)
    assert util.DURABILITY is None
    with pytest.raises(ValueError):
        util.set_durability(-1)


def test_connection_forms():
    """Cluster, Sentinel and URL forms build redis-py's own clients (lazily connected)."""
    previous = util.CONNECTION
    try:
        util.set_connection_settings(url="redis://127.0.0.1:6379/3")
        assert isinstance(util.get_connection(), redis.Redis)
        sentinel_client = util._make_client(sentinels=[("127.0.0.1", 26399)], service_name="m")
        assert isinstance(sentinel_client, redis.Redis)
        assert "Sentinel" in type(sentinel_client.connection_pool).__name__
        client = redis.Redis(host="127.0.0.1", port=6379, db=3)
        util.set_connection_settings(client)
        assert util.get_connection() is client
        util.set_connection_settings(client=client)
        assert util.get_connection() is client
    finally:
        util.CONNECTION = previous
