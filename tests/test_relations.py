"""Relationship columns and on_delete rules, applied as one atomic write (API.md §3.6, §4.6)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import CLUSTER, TaggedClient, make_client, tag

import rom
from rom import relations, util, writer
from rom.scripts import get_script


def dump(conn):
    """Every key of the database with its serialized value and TTL."""
    return {k: (conn.dump(k), conn.pttl(k)) for k in conn.keys("*")}


def load_scripts(conn):
    """Load write.lua so that round-trip counts do not include the first NOSCRIPT."""
    conn.script_load(get_script("write").source)


def second_client(server_url):
    """Another client of the test server, naming keys like ``conn`` does."""
    client = make_client(server_url)
    return TaggedClient(client) if CLUSTER else client


def keys_of(*entities):
    """The sorted entity keys as rom writes them (``{ns}:pk`` on a cluster)."""
    return sorted(tag(f"{type(e)._namespace}:{e.id}") for e in entities)


class WriteCalls:
    """Records the write.lua calls (one entry per call: the entity keys it writes)."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = writer.Batch.run

        def run(batch, conn):
            self.calls.append(sorted(batch.keys[p["k"] - 1] for p in batch.plans))
            return original(batch, conn)

        monkeypatch.setattr(writer.Batch, "run", run)


@pytest.fixture
def write_calls(monkeypatch):
    """Record every write.lua call."""
    return WriteCalls(monkeypatch)


def chain_models(rule_b="cascade", rule_c="cascade"):
    class A(rom.Model):
        name = rom.Text(index=True, keygen=rom.FULL_TEXT)
        bs = rom.OneToMany("B")

    class B(rom.Model):
        a = rom.ManyToOne("A", on_delete=rule_b)
        n = rom.Integer(index=True, default=0)
        cs = rom.OneToMany("C")

    class C(rom.Model):
        b = rom.ManyToOne("B", on_delete=rule_c)
        tag = rom.Text(unique=True)

    return A, B, C


def build_chain(A, B, C, width=2):
    a = A(name="root entity")
    bs = [B(a=a, n=i) for i in range(width)]
    cs = [C(b=b, tag=f"t{i}{j}") for i, b in enumerate(bs) for j in range(width)]
    rom.session.commit()
    rom.session.rollback()
    return a.id, [b.id for b in bs], [c.id for c in cs]


# -- cascade ----------------------------------------------------------------------------------


def test_cascade_chain_deletes_everything(conn):
    """A cascade through two levels removes every entity, index and unique entry."""
    A, B, C = chain_models()
    aid, bids, cids = build_chain(A, B, C)
    A.get(aid).delete()
    assert sorted(conn.keys("*")) == [b"A:id:", b"B:id:", b"C:id:"]
    assert B.get(bids) == [] and C.get(cids) == []


def test_cascade_is_a_single_write_call(conn, round_trips, write_calls):
    """The whole cascade is written by one script call after two reads per level; on a
    cluster (one slot per model) by one call per model, deepest level first."""
    A, B, C = chain_models()
    aid, bids, cids = build_chain(A, B, C)
    a = A.get(aid)
    load_scripts(conn)
    round_trips.reset()
    write_calls.calls.clear()
    a.delete()
    a_keys = [tag(f"A:{aid}")]
    b_keys = sorted(tag(f"B:{i}") for i in bids)
    c_keys = sorted(tag(f"C:{i}") for i in cids)
    # level 0: ZRANGEBYSCORE + HGETALL of the Bs; level 1: same for the Cs; then the writes
    if CLUSTER:
        assert write_calls.calls == [c_keys, b_keys, a_keys]
        assert round_trips.count == 4 + 3
    else:
        assert write_calls.calls == [sorted(a_keys + b_keys + c_keys)]
        assert round_trips.count == 4 + 1
    assert sorted(conn.keys("*")) == [b"A:id:", b"B:id:", b"C:id:"]


def test_cascade_within_one_model_is_one_call_everywhere(conn, round_trips, write_calls):
    """A cascade through one model's self-references is one script call, on a cluster too."""

    class Node(rom.Model):
        parent = rom.ManyToOne("Node", on_delete="cascade")
        label = rom.Text(unique=True)

    root = Node(label="root")
    children = [Node(parent=root, label=f"c{i}") for i in range(2)]
    grandchildren = [Node(parent=c, label=f"g{c.label}{i}") for c in children for i in range(2)]
    rom.session.commit()
    load_scripts(conn)
    round_trips.reset()
    write_calls.calls.clear()
    root.delete()
    assert write_calls.calls == [keys_of(root, *children, *grandchildren)]
    # two levels read (ZRANGEBYSCORE + HGETALL), a third that finds nothing, the write
    assert round_trips.count == 2 * 2 + 1 + 1
    assert sorted(conn.keys("*")) == [b"Node:id:"]


def test_unreferenced_delete_is_one_round_trip(conn, round_trips):
    """A model referenced only with 'no action' deletes in one round trip."""

    class T(rom.Model):
        x = rom.Integer()

    class R(rom.Model):
        t = rom.ManyToOne("T", on_delete="no action")

    t = T(x=1)
    r = R(t=t)
    rom.session.commit()
    load_scripts(conn)
    round_trips.reset()
    t.delete()
    assert round_trips.count == 1
    assert conn.hget(f"R:{r.id}", "t") == str(t.id).encode()
    rom.session.rollback()
    assert R.get(r.id).t is None  # a dangling reference reads as None


def test_cascaded_hooks_are_not_called(conn):
    """Only the entity delete() was called on gets its hooks."""
    calls = []

    class P(rom.Model):
        def _before_delete(self):
            calls.append(("before", "P"))

        def _after_delete(self):
            calls.append(("after", "P"))

    class Q(rom.Model):
        p = rom.ManyToOne("P", on_delete="cascade")

        def _before_delete(self):
            calls.append(("before", "Q"))

        def _after_delete(self):
            calls.append(("after", "Q"))

    p = P()
    q = Q(p=p)
    rom.session.commit()
    p.delete()
    assert calls == [("before", "P"), ("after", "P")]
    assert not conn.exists(f"Q:{q.id}")


def test_cascade_updates_the_session(conn):
    """Cascaded session entities are forgotten and marked deleted."""
    A, B, C = chain_models()
    a = A(name="x")
    b = B(a=a)
    c = C(b=b, tag="t")
    rom.session.commit()
    a.delete()
    assert a._deleted and b._deleted and c._deleted
    assert rom.session.get(b._pk) is None and rom.session.get(c._pk) is None
    with pytest.raises(rom.EntityDeletedError):
        b.save()


def test_cascade_deletes_unsafe_column_keys(conn):
    """UnsafeColumn keys of cascaded entities go with them, in the same call."""

    class Owner(rom.Model):
        pass

    class Item(rom.Model):
        owner = rom.ManyToOne("Owner", on_delete="cascade")
        log = rom.UnsafeColumn()

    o = Owner()
    item = Item(owner=o)
    rom.session.commit()
    item.log.rpush("x", "y")
    assert conn.exists(f"Item:{item.id}:log")
    o.delete()
    assert not conn.exists(f"Item:{item.id}:log")
    assert not conn.exists(f"Item:{item.id}")


# -- set null / set default -----------------------------------------------------------------


def test_set_null_removes_the_field(conn):
    """'set null' removes the stored id (rom 1.x left it) and the index entry."""
    A, B, C = chain_models(rule_b="set null")
    aid, bids, cids = build_chain(A, B, C)
    A.get(aid).delete()
    for bid in bids:
        stored = conn.hgetall(f"B:{bid}")
        assert b"a" not in stored
        assert stored[b"id"] == str(bid).encode()
        assert B.get(bid).a is None
    assert not conn.exists("B:a:idx")
    assert conn.zcard("B:n:idx") == len(bids)
    assert len(C.get(cids)) == len(cids)


def test_set_null_updates_session_referrers(conn):
    """A nulled referrer held by the session reads None and saves without a race error."""
    A, B, _C = chain_models(rule_b="set null")
    a = A(name="x")
    b = B(a=a, n=1)
    rom.session.commit()
    a.delete()
    assert b.a is None
    b.n = 5
    b.save()
    assert conn.hgetall(f"B:{b.id}")[b"n"] == b"5"
    assert b"a" not in conn.hgetall(f"B:{b.id}")


def test_set_default_uses_the_default(conn):
    """'set default' stores the column default (a callable is called) and indexes it."""

    class Group(rom.Model):
        name = rom.Text()

    fallback = Group(name="fallback")
    fallback.save()

    class Member(rom.Model):
        group = rom.ManyToOne("Group", on_delete="set default", default=lambda: fallback.id)

    class Plain(rom.Model):
        group = rom.ManyToOne("Group", on_delete="set default")

    g = Group(name="g")
    m = Member(group=g)
    p = Plain(group=g)
    rom.session.commit()
    g.delete()
    assert conn.hget(f"Member:{m.id}", "group") == str(fallback.id).encode()
    assert conn.zscore("Member:group:idx", str(m.id)) == fallback.id
    assert m.group is fallback
    assert b"group" not in conn.hgetall(f"Plain:{p.id}")
    assert p.group is None


def test_set_default_unique_violation_writes_nothing(conn):
    """A 'set default' that would break a unique reference refuses the whole delete."""

    class Seat(rom.Model):
        pass

    spare = Seat()
    spare.save()

    class Guest(rom.Model):
        seat = rom.OneToOne("Seat", on_delete="set default", default=spare.id, unique=True)

    s = Seat()
    Guest(seat=spare)
    Guest(seat=s)
    rom.session.commit()
    before = dump(conn)
    with pytest.raises(rom.UniqueKeyViolation):
        s.delete()
    assert dump(conn) == before


def test_referrer_with_cascade_and_set_null_is_deleted(conn):
    """An entity both cascaded and nulled by one delete is just deleted."""

    class Doc(rom.Model):
        pass

    class Link(rom.Model):
        owner = rom.ManyToOne("Doc", on_delete="cascade")
        seen = rom.ManyToOne("Doc", on_delete="set null")

    d = Doc()
    link = Link(owner=d, seen=d)
    other = Link(owner=Doc(), seen=d)
    rom.session.commit()
    d.delete()
    assert not conn.exists(f"Link:{link.id}")
    assert b"seen" not in conn.hgetall(f"Link:{other.id}")
    assert conn.hget(f"Link:{other.id}", "owner") is not None


# -- restrict -------------------------------------------------------------------------------


def test_restrict_refuses_and_leaves_everything(conn):
    """A restrict reference deep in a cascade refuses before anything is written."""
    A, B, C = chain_models(rule_c="restrict")
    aid, _bids, _cids = build_chain(A, B, C)
    a = A.get(aid)
    before = dump(conn)
    with pytest.raises(rom.RestrictError) as info:
        a.delete()
    assert "C.b" in str(info.value)
    assert dump(conn) == before
    assert not a._deleted and rom.session.get(a._pk) is a


def test_restrict_without_referrers_deletes(conn):
    """A restrict rule with no referrer does not block."""
    A, _B, _C = chain_models(rule_b="restrict")
    a = A(name="lonely")
    a.save()
    a.delete()
    assert not conn.exists(f"A:{a.id}")


def test_restrict_held_by_an_entity_deleted_too_does_not_block(conn):
    """A restrict reference from an entity removed by the same delete is no obstacle."""

    class Node(rom.Model):
        parent = rom.ManyToOne("Node", on_delete="cascade")
        pinned = rom.ManyToOne("Node", on_delete="restrict")

    root = Node()
    child = Node(parent=root, pinned=root)
    rom.session.commit()
    root.delete()
    assert not conn.exists(f"Node:{root.id}") and not conn.exists(f"Node:{child.id}")

    root = Node()
    rom.session.commit()
    outsider = Node(pinned=root)
    rom.session.commit()
    with pytest.raises(rom.RestrictError):
        root.delete()


# -- self references, cycles, namespaces, pk names ------------------------------------------


def test_self_referencing_tree_cascade(conn):
    """Deleting a node of a self-referencing tree removes exactly its subtree."""

    class Node(rom.Model):
        parent = rom.ManyToOne("Node", on_delete="cascade")
        children = rom.OneToMany("Node", "parent")

    root = Node()
    left, right = Node(parent=root), Node(parent=root)
    grandchildren = [Node(parent=left) for _ in range(3)]
    keep = [Node(parent=right)]
    rom.session.commit()
    left.delete()
    assert [n.id for n in Node.get([n.id for n in grandchildren])] == []
    assert sorted(n.id for n in root.children) == [right.id]
    root.delete()
    assert conn.keys("Node:[0-9]*") == []
    assert not conn.exists("Node:parent:idx")
    assert all(n._deleted for n in keep)


def test_self_reference_to_itself_terminates(conn):
    """An entity referencing itself (cascade) is deleted once."""

    class Node(rom.Model):
        parent = rom.ManyToOne("Node", on_delete="cascade")

    n = Node()
    n.save()
    n.parent = n
    n.save()
    n.delete()
    assert conn.keys("Node:[0-9]*") == []


def test_cycle_between_models_terminates(conn, write_calls):
    """A cascade cycle A -> B -> A ends and deletes every member once, in one call."""

    class Ping(rom.Model):
        pong = rom.ManyToOne("Pong", on_delete="cascade")

    class Pong(rom.Model):
        ping = rom.ManyToOne("Ping", on_delete="cascade")

    pings = [Ping() for _ in range(3)]
    pongs = [Pong(ping=p) for p in pings]
    rom.session.commit()
    for ping, pong in zip(pings, pongs, strict=True):
        ping.pong = pongs[(pongs.index(pong) + 1) % 3]
    rom.session.commit()
    write_calls.calls.clear()
    pings[0].delete()
    assert conn.keys("P*ng:[0-9]*") == []
    if not CLUSTER:
        assert write_calls.calls == [keys_of(*pings, *pongs)]
        return
    # one call per (level, slot), deepest first: the reference check of the level that
    # leads back to pings[0], then each entity of the cycle from the far end
    order = [pongs[1], pings[1], pongs[2], pings[2], pongs[0], pings[0]]
    assert write_calls.calls == [[]] + [keys_of(e) for e in order]


def test_custom_namespace_by_class_name_and_namespace(conn):
    """References to a custom-namespaced model work whether they name the class or the namespace."""

    class Target(rom.Model):
        _namespace = "app:target"
        tid = rom.PrimaryKey()
        by_class = rom.OneToMany("ByClass")
        by_ns = rom.OneToMany("app:by_ns")

    class ByClass(rom.Model):
        target = rom.ManyToOne("Target", on_delete="cascade")

    class ByNs(rom.Model):
        _namespace = "app:by_ns"
        target = rom.ManyToOne("app:target", on_delete="set null")

    t = Target()
    x = ByClass(target=t)
    y = ByNs(target=t)
    rom.session.commit()
    rom.session.rollback()
    t = Target.get(t.tid)
    assert [e.id for e in t.by_class] == [x.id]
    assert [e.id for e in t.by_ns] == [y.id]
    t.delete()
    assert not conn.exists(f"app:target:{t.tid}")
    assert not conn.exists(f"ByClass:{x.id}")
    assert conn.hgetall(f"app:by_ns:{y.id}") and b"target" not in conn.hgetall(f"app:by_ns:{y.id}")


def test_restrict_on_custom_pk_name(conn):
    """A referenced model whose pk is not 'id' is looked up by its pk (rom 1.x used .id)."""

    class Account(rom.Model):
        number = rom.PrimaryKey()

    class Entry(rom.Model):
        account = rom.ManyToOne("Account", on_delete="restrict")

    acct = Account()
    Entry(account=acct)
    rom.session.commit()
    with pytest.raises(rom.RestrictError):
        acct.delete()


def test_one_to_one_unique_cascade_and_set_null(conn):
    """A unique OneToOne releases its unique entry when nulled or cascaded."""

    class Person(rom.Model):
        pass

    class Passport(rom.Model):
        holder = rom.OneToOne("Person", on_delete="cascade", unique=True)

    class Badge(rom.Model):
        holder = rom.OneToOne("Person", on_delete="set null", unique=True)

    p = Person()
    passport, badge = Passport(holder=p), Badge(holder=p)
    rom.session.commit()
    assert conn.hget("Passport:holder:uidx", str(p.id)) == str(passport.id).encode()
    p.delete()
    assert not conn.exists("Passport:holder:uidx") and not conn.exists("Badge:holder:uidx")
    assert not conn.exists(f"Passport:{passport.id}")
    assert conn.exists(f"Badge:{badge.id}")


def test_orphan_index_entry_is_ignored(conn):
    """An index entry whose referrer hash was deleted outside rom is not a referrer."""
    A, B, _C = chain_models(rule_b="restrict")
    a = A(name="x")
    b = B(a=a)
    rom.session.commit()
    conn.delete(f"B:{b.id}")
    a.delete()
    assert not conn.exists(f"A:{a.id}")


def test_bulk_delete_refuses_models_with_relations(conn):
    """session.delete refuses entities of models that take part in relations."""
    A, _B, _C = chain_models()
    a = A(name="x")
    rom.session.commit()
    with pytest.raises(rom.ORMError):
        rom.session.delete(a)
    assert conn.exists(f"A:{a.id}")


# -- lazy loading and OneToMany -------------------------------------------------------------


def test_loading_does_not_load_references(conn, round_trips):
    """Loading an entity leaves its references unloaded until they are read."""
    A, B, C = chain_models()
    aid, bids, cids = build_chain(A, B, C, width=1)
    round_trips.reset()
    c = C.get(cids[0])
    assert round_trips.count == 1
    assert rom.session.get(f"B:{bids[0]}") is None
    b = c.b
    assert round_trips.count == 2 and b.id == bids[0]
    assert c.b is b and round_trips.count == 2
    assert b.a.id == aid and round_trips.count == 3


def test_one_to_many_lists_referrers_in_pk_text_order(conn):
    """OneToMany returns the referrers as a list ordered by pk text ('10' before '2')."""
    A, B, _C = chain_models()
    a = A(name="x")
    other = A(name="y")
    bs = [B(a=a) for _ in range(11)]
    B(a=other)
    rom.session.commit()
    rom.session.rollback()
    got = A.get(a.id).bs
    assert [b.id for b in got] == sorted((b.id for b in bs), key=str)
    assert A.get(other.id).bs[0].a.id == other.id
    with pytest.raises(rom.InvalidOperation):
        a.bs = []


# -- concurrency and atomicity --------------------------------------------------------------


def intrude_before_first_write(monkeypatch, action):
    """Run ``action`` once, between the planning of a delete and its write."""
    original = writer.execute
    state = {"done": False, "calls": 0}

    def execute(conn, states, refs=None):
        if refs is not None:
            state["calls"] += 1
            if not state["done"]:
                state["done"] = True
                action()
        return original(conn, states, refs)

    monkeypatch.setattr(writer, "execute", execute)
    return state


def intrude_before_first_script(monkeypatch, action):
    """Run ``action`` once, after planning, before the delete's first script call."""
    original = writer.Batch.run
    state = {"done": False}

    def run(batch, conn):
        if not state["done"]:
            state["done"] = True
            action()
        return original(batch, conn)

    monkeypatch.setattr(writer.Batch, "run", run)
    return state


def test_concurrent_new_referrer_forces_a_replan(conn, monkeypatch):
    """A referrer appearing between planning and writing is cascaded after a replan."""
    A, B, C = chain_models()
    aid, _bids, _cids = build_chain(A, B, C, width=1)
    late = {}

    def add_referrer():
        b = B(a=aid, _bypass_session_entirely=True)
        b.save()
        late["id"] = b.id

    state = intrude_before_first_write(monkeypatch, add_referrer)
    A.get(aid).delete()
    # standalone: the one call refuses, the replanned one writes everything.  Cluster (one
    # call per model, deepest first): the C call still holds and is written, the B call's
    # check refuses, the replan writes the Bs (the late one too), then A (no check left).
    assert state["calls"] == (3 if CLUSTER else 2)
    assert not conn.exists(f"B:{late['id']}")
    assert sorted(conn.keys("*")) == [b"A:id:", b"B:id:", b"C:id:"]


def test_concurrent_restrict_referrer_refuses(conn, monkeypatch):
    """A restrict referrer appearing before the first script call (on a cluster the check of
    the deepest level) makes the delete refuse, writing nothing."""
    A, B, C = chain_models(rule_c="restrict")
    a = A(name="x")
    b = B(a=a)
    rom.session.commit()
    snapshot = {}

    def add_referrer():
        C(b=b.id, tag="late", _bypass_session_entirely=True).save()
        snapshot.update(dump(conn))

    intrude_before_first_script(monkeypatch, add_referrer)
    with pytest.raises(rom.RestrictError):
        a.delete()
    assert snapshot and dump(conn) == snapshot


def test_restrict_referrer_after_its_check_is_the_cluster_window(conn, monkeypatch):
    """A restrict referrer created just before the cascade's write refuses it on one server;
    on a cluster, once its level's call passed, it is missed (the documented window)."""
    A, B, C = chain_models(rule_c="restrict")
    a = A(name="x")
    b = B(a=a)
    rom.session.commit()
    snapshot = {}
    late = {}

    def add_referrer():
        c = C(b=b.id, tag="late", _bypass_session_entirely=True)
        c.save()
        late["id"] = c.id
        snapshot.update(dump(conn))

    state = intrude_before_first_write(monkeypatch, add_referrer)
    if not CLUSTER:
        with pytest.raises(rom.RestrictError):
            a.delete()
        assert dump(conn) == snapshot
        return
    a.delete()  # C's (empty) level was checked by the first call; the B call comes after
    assert state["calls"] == 1
    assert not conn.exists(f"A:{a.id}") and not conn.exists(f"B:{b.id}")
    assert conn.hget(f"C:{late['id']}", "b") == str(b.id).encode()
    rom.session.rollback()
    assert C.get(late["id"]).b is None  # the dangling reference reads as None


def test_concurrently_changed_referrer_is_not_nulled(conn, monkeypatch, server_url):
    """A referrer that moved to another target before the write keeps its new value."""
    A, B, _C = chain_models(rule_b="set null")
    a, other = A(name="x"), A(name="y")
    b = B(a=a)
    rom.session.commit()
    second = second_client(server_url)

    def move():
        second.hset(f"B:{b.id}", "a", str(other.id))
        second.zadd("B:a:idx", {str(b.id): other.id})

    state = intrude_before_first_write(monkeypatch, move)
    a.delete()
    # the replan has nothing to null: one server checks it with the delete of A; a cluster
    # checks B's (now empty) level alone, then deletes A unchecked
    assert state["calls"] == (1 if CLUSTER else 2)
    assert conn.hget(f"B:{b.id}", "a") == str(other.id).encode()
    assert not conn.exists(f"A:{a.id}")


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, redis, rom
    from rom import util
    from conftest import make_client

    url, cluster, mode, layout, pk = sys.argv[1:6]
    util.CONNECTION = make_client(url, cluster == "1")

    if layout == "chain":
        class A(rom.Model):
            name = rom.Text(index=True, keygen=rom.FULL_TEXT)

        class B(rom.Model):
            a = rom.ManyToOne("A", on_delete="cascade")
            n = rom.Integer(index=True, default=0)

        class C(rom.Model):
            b = rom.ManyToOne("B", on_delete="set null")
            tag = rom.Text(unique=True)

        root = A.get(int(pk))
    else:
        class Node(rom.Model):
            parent = rom.ManyToOne("Node", on_delete="cascade")
            pin = rom.ManyToOne("Node", on_delete="set null")
            tag = rom.Text(unique=True)

        root = Node.get(int(pk))

    original = redis.connection.AbstractConnection.send_packed_command

    def send(self, command, check_health=True):
        data = b"".join(command) if isinstance(command, list) else command
        if b"EVALSHA" in data[:40]:
            if mode == "half":
                self._sock.sendall(data[: len(data) // 2])
            else:
                self._sock.sendall(data)
            os._exit(9)
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send
    root.delete()
    """
)


def tree_model():
    class Node(rom.Model):
        parent = rom.ManyToOne("Node", on_delete="cascade")
        pin = rom.ManyToOne("Node", on_delete="set null")
        tag = rom.Text(unique=True)

    return Node


def build_tree(Node):
    """A root, 3 children with 3 children each, and 3 outside nodes pinning the children."""
    root = Node(tag="root")
    children = [Node(parent=root, tag=f"c{i}") for i in range(3)]
    subtree = [root, *children]
    subtree += [Node(parent=c, tag=f"g{c.tag}{j}") for c in children for j in range(3)]
    watchers = [Node(pin=c, tag=f"w{c.tag}") for c in children]
    rom.session.commit()
    rom.session.rollback()
    return [n.id for n in subtree], [n.id for n in watchers]


def wait_for(condition):
    """Poll ``condition`` for up to a second (the server runs a script once it arrived)."""
    for _ in range(100):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the killed client's last command did not run")


@pytest.mark.parametrize("layout", ["chain", "tree"])
@pytest.mark.parametrize("mode", ["half", "full"])
def test_killed_client_leaves_all_or_nothing(conn, server_url, mode, layout):
    """A client killed while sending a cascade leaves nothing, killed after it everything.

    On a cluster a cascade over three models is one call per model, deepest level first:
    killed after the first call, only the deepest level is written (no dangling reference)
    and deleting again finishes.  A cascade within one model stays one call there too.
    """
    if layout == "chain":
        A, B, C = chain_models(rule_c="set null")
        aid, _bids, cids = build_chain(A, B, C, width=3)
        root_id = aid
    else:
        Node = tree_model()
        subtree, watchers = build_tree(Node)
        root_id = subtree[0]
    load_scripts(conn)
    before = dump(conn)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    path = [os.path.dirname(os.path.dirname(rom.__file__)), tests_dir]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_SCRIPT,
            server_url,
            "1" if CLUSTER else "0",
            mode,
            layout,
            str(root_id),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 9, proc.stderr.decode()
    if mode == "half":
        time.sleep(0.05)
        assert dump(conn) == before
        return
    if layout == "tree":
        wait_for(lambda: not conn.exists(f"Node:{root_id}"))
        assert sorted(conn.keys("Node:[0-9]*")) == sorted(f"Node:{w}".encode() for w in watchers)
        assert all(b"pin" not in conn.hgetall(f"Node:{w}") for w in watchers)
        return
    if CLUSTER:
        wait_for(lambda: all(b"b" not in conn.hgetall(f"C:{cid}") for cid in cids))
        assert conn.exists(f"A:{aid}") and len(conn.keys("B:[0-9]*")) == 3
        rom.session.rollback()
        A.get(aid).delete()  # the retry plans from what is stored and finishes
    else:
        wait_for(lambda: not conn.exists(f"A:{aid}"))
    assert sorted(k for k in conn.keys("*") if not k.startswith(b"C:")) == [b"A:id:", b"B:id:"]
    for cid in cids:
        assert b"b" not in conn.hgetall(f"C:{cid}")


# -- several connections --------------------------------------------------------------------


def two_connection_models(server_url):
    other = make_client(server_url)

    class Folder(rom.Model):
        name = rom.Text()

    class File(rom.Model):
        _conn = other
        folder = rom.ManyToOne("Folder", on_delete="cascade")

    class Note(rom.Model):
        file = rom.ManyToOne("File", on_delete="set null")

    return Folder, File, Note


def test_several_connections_write_deepest_level_first(conn, write_calls, server_url):
    """Models on different connections are written level by level, the entity last."""
    Folder, File, Note = two_connection_models(server_url)
    folder = Folder(name="f")
    files = [File(folder=folder) for _ in range(2)]
    notes = [Note(file=f) for f in files]
    rom.session.commit()
    write_calls.calls.clear()
    folder.delete()
    assert write_calls.calls == [keys_of(*notes), keys_of(*files), keys_of(folder)]
    assert all(b"file" not in conn.hgetall(f"Note:{n.id}") for n in notes)
    assert not conn.keys("File:[0-9]*") and not conn.exists(f"Folder:{folder.id}")


def test_several_connections_crash_then_retry_finishes(conn, monkeypatch, server_url):
    """A multi-connection delete stopped before its last step leaves no dangling reference,
    and deleting again finishes the job."""
    Folder, File, Note = two_connection_models(server_url)
    folder = Folder(name="f")
    f = File(folder=folder)
    note = Note(file=f)
    rom.session.commit()
    original = writer.execute

    def crash_on_root(c, states, refs=None):
        if any(type(s.entity) is Folder for s in states):
            raise ConnectionError("client died")
        return original(c, states, refs)

    monkeypatch.setattr(writer, "execute", crash_on_root)
    with pytest.raises(ConnectionError):
        folder.delete()
    assert conn.exists(f"Folder:{folder.id}")
    assert not conn.exists(f"File:{f.id}")
    assert b"file" not in conn.hgetall(f"Note:{note.id}")
    monkeypatch.setattr(writer, "execute", original)
    folder.delete()
    assert not conn.exists(f"Folder:{folder.id}")


def test_references_that_keep_changing_give_up(conn, monkeypatch):
    """A delete whose references change before every write raises ORMError, writing nothing."""
    A, _B, _C = chain_models()
    a = A(name="x")
    rom.session.commit()

    def always_changed(c, states, refs=None):
        raise writer.ReferencesChanged(1)

    monkeypatch.setattr(writer, "execute", always_changed)
    with pytest.raises(rom.ORMError, match="keep changing"):
        a.delete()
    assert conn.exists(f"A:{a.id}")


def test_decode_responses_cascade(decoded_conn):
    """Cascades work with a decode_responses=True client."""
    A, B, C = chain_models(rule_c="set null")
    aid, bids, cids = build_chain(A, B, C)
    A.get(aid).delete()
    assert B.get(bids) == []
    assert all("b" not in decoded_conn.hgetall(f"C:{cid}") for cid in cids)


_ = (relations, util)


def test_wrong_type_reference_index_is_an_orm_error(conn):
    """A reference index of the wrong Redis type gives ORMError and deletes nothing."""
    A, _B, _C = chain_models()
    a = A(name="x")
    a.save()
    conn.set("B:a:idx", "not a zset")
    with pytest.raises(rom.ORMError):
        a.delete()
    assert conn.exists(f"A:{a.id}")
