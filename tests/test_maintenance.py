"""Index maintenance utilities of rom.util (API.md §7.5)."""

from __future__ import annotations

import json

import pytest
from conftest import CLUSTER

import rom
from rom import util, writer


def make_model(namespace=None):
    attrs = {
        "name": rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True),
        "email": rom.Text(unique=True),
        "score": rom.Integer(index=True, default=0),
    }
    if namespace:
        attrs["_namespace"] = namespace
    return type("Person", (rom.Model,), attrs)


def index_keys(conn, ns):
    """Every index key of the namespace with its content."""
    out = {}
    for key in conn.keys(f"{ns}:*"):
        text = key.decode() if isinstance(key, bytes) else key
        kind = conn.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "zset":
            out[text] = conn.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[text] = sorted(conn.smembers(key))
        elif kind == "hash" and text.endswith(":uidx"):
            out[text] = conn.hgetall(key)
    return out


def populate(Person, n):
    people = [Person(name=f"Person number{i}", email=f"p{i}@x.org", score=i) for i in range(n)]
    rom.session.commit()
    return people


def drop_indexes(conn, ns):
    for key in list(index_keys(conn, ns)):
        conn.delete(key)


# -- refresh_indices --------------------------------------------------------------------------


def test_refresh_indices_rebuilds_deleted_indexes_across_pages(conn):
    """Every index key is rebuilt, whatever the number of SCAN pages and unrelated keys."""
    Person = make_model()
    populate(Person, 250)
    for i in range(300):
        conn.set(f"noise:{i}", "x")
    expected = index_keys(conn, "Person")
    drop_indexes(conn, "Person")
    assert index_keys(conn, "Person") == {}
    progress = list(util.refresh_indices(Person, block_size=7))
    assert index_keys(conn, "Person") == expected
    assert progress[-1] == (250, 250)
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    assert all(total == 250 for _, total in progress)
    assert len(progress) >= 250 // 10


def test_refresh_indices_without_scan_reports_progress(conn):
    """scan=False walks the ids 1..counter and reports block by block."""
    Person = make_model()
    people = populate(Person, 35)
    conn.delete(f"Person:{people[3].id}")
    drop_indexes(conn, "Person")
    progress = list(util.refresh_indices(Person, block_size=10, scan=False))
    assert progress == [(10, 35), (20, 35), (30, 35), (35, 35)]
    assert conn.zcard("Person:score:idx") == 34
    assert conn.hlen("Person:email:uidx") == 34


def test_refresh_indices_one_write_per_block(conn, monkeypatch):
    """Each block is rebuilt by one atomic write call."""
    Person = make_model()
    populate(Person, 30)
    calls = []
    original = writer.Batch.run

    def run(batch, c):
        calls.append(len(batch.plans))
        return original(batch, c)

    monkeypatch.setattr(writer.Batch, "run", run)
    list(util.refresh_indices(Person, block_size=10, scan=False))
    assert calls == [10, 10, 10]


def test_refresh_indices_does_not_commit_the_session(conn):
    """Unrelated modified entities of the session are not saved (rom 1.x saved them)."""
    Person = make_model()

    class Other(rom.Model):
        value = rom.Integer()

    populate(Person, 3)
    other = Other(value=1)
    other.save()
    other.value = 2
    pending = Other(value=3)
    list(util.refresh_indices(Person))
    assert conn.hget(f"Other:{other.id}", "value") == b"1"
    assert not conn.exists(f"Other:{pending.id}")
    assert other._modified and pending._new


def test_refresh_indices_upgrades_legacy_bookkeeping(conn):
    """Entities with rom < 1.0 bookkeeping get -index-data- and lose the legacy record."""
    Person = make_model()
    people = populate(Person, 5)
    for p in people:
        key = f"Person:{p.id}"
        conn.hset("Person::", str(p.id), conn.hget(key, "-index-data-"))
        conn.hdel(key, "-index-data-")
    rom.session.rollback()
    list(util.refresh_indices(Person))
    assert not conn.exists("Person::")
    assert all(conn.hget(f"Person:{p.id}", "-index-data-") for p in people)


def test_refresh_indices_session_copy_can_still_save(conn):
    """A session entity whose stored data was rebuilt saves afterwards without a race."""
    Person = make_model()
    (p,) = populate(Person, 1)
    conn.hset(f"Person:{p.id}", "score", "True")  # rom 1.x wrote bools like this
    p.refresh(force=True)
    list(util.refresh_indices(Person))
    assert conn.hget(f"Person:{p.id}", "score") == b"1"
    p.name = "renamed"
    p.save()
    assert conn.hget(f"Person:{p.id}", "name") == b"renamed"


def test_refresh_indices_decode_responses_and_colon_namespace(decoded_conn):
    """SCAN mode works with decode_responses=True and a namespace containing ':'."""
    Person = make_model("app:person")
    populate(Person, 25)
    expected = index_keys(decoded_conn, "app:person")
    drop_indexes(decoded_conn, "app:person")
    assert list(util.refresh_indices(Person, block_size=10))[-1] == (25, 25)
    assert index_keys(decoded_conn, "app:person") == expected


def test_refresh_all_indexes(conn, capsys):
    """Every model is refreshed once, base Model excluded, with progress lines."""
    Person = make_model("people")

    class Pet(rom.Model):
        age = rom.Integer(index=True)

    populate(Person, 3)
    Pet(age=2)
    rom.session.commit()
    drop_indexes(conn, "people")
    conn.delete("Pet:age:idx")
    util.refresh_all_indexes()
    out = capsys.readouterr().out
    assert out.count("updating people") == 1 and out.count("updating Pet") == 1
    assert "updating Model" not in out
    assert conn.zcard("people:score:idx") == 3 and conn.zcard("Pet:age:idx") == 1


# -- clean_old_index --------------------------------------------------------------------------


def make_legacy(conn, Person, people):
    """Turn the people's bookkeeping into rom < 1.0 records in Person::."""
    for p in people:
        key = f"Person:{p.id}"
        record = json.loads(conn.hget(key, "-index-data-"))[:4]
        conn.hset("Person::", str(p.id), json.dumps(record))
        conn.hdel(key, "-index-data-")


def test_clean_old_index_removes_entries_of_missing_entities(decoded_conn):
    """Records of deleted entities lose their index entries; live ones are kept."""
    conn = decoded_conn
    Person = make_model()
    people = populate(Person, 12)
    make_legacy(conn, Person, people)
    gone, kept = people[:8], people[8:]
    for p in gone:
        conn.delete(f"Person:{p.id}")
    progress = list(util.clean_old_index(Person, block_size=3))
    assert progress[-1][0] == progress[-1][1]
    assert sorted(conn.hkeys("Person::")) == sorted(str(p.id) for p in kept)
    assert sorted(conn.zrange("Person:score:idx", 0, -1)) == sorted(str(p.id) for p in kept)
    assert conn.smembers("Person:name:person:idx") == {str(p.id) for p in kept}
    for member in conn.zrange("Person:name:pre", 0, -1):
        assert member.split("\0")[1] in {str(p.id) for p in kept}
    assert sorted(conn.hvals("Person:email:uidx")) == sorted(str(p.id) for p in kept)


def test_clean_old_index_without_hscan_warns_and_keeps_unique(conn):
    """force_hscan=None skips the unique cleanup with a UserWarning."""
    Person = make_model()
    people = populate(Person, 3)
    conn.delete(f"Person:{people[0].id}")
    with pytest.warns(UserWarning):
        list(util.clean_old_index(Person, force_hscan=None))
    assert conn.hlen("Person:email:uidx") == 3
    list(util.clean_old_index(Person))
    assert conn.hlen("Person:email:uidx") == 2


# -- clean_unsafe_cols ------------------------------------------------------------------------


def unsafe_model(namespace):
    return type("Box", (rom.Model,), {"_namespace": namespace, "items": rom.UnsafeColumn()})


def test_clean_unsafe_cols_across_pages_and_models(conn):
    """Orphaned UnsafeColumn keys are deleted on every page and for every model given."""
    Box = unsafe_model("box")
    Crate = type("Crate", (rom.Model,), {"_namespace": "app:crate", "log": rom.UnsafeColumn()})
    boxes = [Box() for _ in range(40)]
    crates = [Crate() for _ in range(3)]
    rom.session.commit()
    for b in boxes:
        b.items.sadd("x")
    for c in crates:
        c.log.rpush("y")
    for b in boxes[:25]:
        conn.delete(f"box:{b.id}")
    conn.delete(f"app:crate:{crates[0].id}")
    conn.set("box:7:idx", "not an unsafe key")
    examined, deleted = util.clean_unsafe_cols(Box, Crate, block_size=5)
    assert deleted == 26
    # box: 15 hashes, 40 item keys, the id counter, box:7:idx; crate: 2 hashes, 3 logs, counter
    assert examined == (15 + 40 + 1 + 1) + (2 + 3 + 1)
    assert sorted(conn.keys("box:*:items")) == sorted(
        f"box:{b.id}:items".encode() for b in boxes[25:]
    )
    assert conn.keys("app:crate:*:log") and not conn.exists(f"app:crate:{crates[0].id}:log")
    assert conn.exists("box:7:idx")
    assert util.clean_unsafe_cols(Box, Crate) == (examined - 26, 0)


def test_clean_unsafe_cols_decode_responses(decoded_conn):
    """clean_unsafe_cols works with decode_responses=True."""
    Box = unsafe_model("box")
    a, b = Box(), Box()
    rom.session.commit()
    a.items.sadd("x")
    b.items.sadd("x")
    decoded_conn.delete(f"box:{a.id}")
    assert util.clean_unsafe_cols(Box)[1] == 1
    assert decoded_conn.keys("box:*:items") == [f"box:{b.id}:items"]


def test_clean_unsafe_cols_needs_models(conn):
    """Calling it without models is a ValueError."""
    with pytest.raises(ValueError, match="missing models"):
        util.clean_unsafe_cols()


# -- Redis Cluster ----------------------------------------------------------------------------


def namespaces_on_every_primary(conn):
    """One namespace per primary whose slot that primary owns (three names standalone)."""
    if not CLUSTER:
        return ["m0", "m1", "m2"]
    client = conn._client
    wanted = {node.name for node in client.get_primaries()}
    chosen = {}
    for i in range(1000):
        node = client.get_node_from_key(f"{{m{i}}}").name
        if node in wanted and node not in chosen:
            chosen[node] = f"m{i}"
        if len(chosen) == len(wanted):
            break
    assert len(chosen) == len(wanted)
    return sorted(chosen.values())


def test_scans_reach_the_slot_of_every_model(conn):
    """refresh_indices and clean_unsafe_cols find the keys of models on every primary."""
    names = namespaces_on_every_primary(conn)
    models = [
        type(
            f"M{i}",
            (rom.Model,),
            {"_namespace": ns, "n": rom.Integer(index=True), "box": rom.UnsafeColumn()},
        )
        for i, ns in enumerate(names)
    ]
    entities = {m: [m(n=i) for i in range(12)] for m in models}
    rom.session.commit()
    for model, items in entities.items():
        for e in items:
            e.box.sadd("x")
        conn.delete(f"{model._namespace}:n:idx")
        conn.delete(f"{model._namespace}:{items[0].id}")
    for model in models:
        assert list(util.refresh_indices(model, block_size=5))[-1] == (12, 12)
        assert conn.zcard(f"{model._namespace}:n:idx") == 11
    examined, deleted = util.clean_unsafe_cols(*models, block_size=4)
    assert deleted == len(models)
    # per model: 11 hashes, 12 unsafe keys, the id counter, the score index
    assert examined == len(models) * (11 + 12 + 1 + 1)


# -- show_progress ----------------------------------------------------------------------------


def test_show_progress_format(capsys):
    """Progress lines end in \\r, are throttled, and a newline ends the output."""
    util.show_progress((i, 1000) for i in range(1, 1001))
    out = capsys.readouterr().out
    assert out.endswith("\r\n")
    lines = out[:-1].split("\r")[:-1]
    assert 1 <= len(lines) <= 3
    assert lines[-1].startswith("100.0% complete, ")
    for line in lines:
        parts = line.split(", ")
        assert parts[0].endswith("% complete")
        assert parts[1].endswith(" seconds elapsed") and parts[2].endswith(" seconds remaining")
