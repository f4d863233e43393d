"""Data written by rom 1.x is read, updated and deleted correctly, and we write the same
layout byte for byte (STORAGE.md §3, §4, §10).

The rom 1.x side is simulated by writing its keys by hand with redis-py, exactly as
STORAGE.md describes them (cjson-style ``-index-data-`` with ``{}`` for empty slots).
"""

from __future__ import annotations

import json

import pytest

import rom
from rom.util import _prefix_score as ps

HELLO_SCORE = 6.431660051707085e-307  # STORAGE.md §4.4: SIMPLE 'Hello'


def make_post():
    class Post(rom.Model):
        title = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        name = rom.Text(index=True, keygen=rom.SIMPLE, prefix=True, suffix=True)
        n = rom.Integer(index=True)
        flag = rom.Boolean(index=True)
        email = rom.Text(unique=True)
        code = rom.String(unique=True)
        a = rom.Integer()
        b = rom.Text()
        unique_together = [("b", "a")]

    return Post


VALUES_1 = dict(
    title="Hello World",
    name="Hello",
    n=5,
    flag=True,
    email="café@x",
    code=b"\xe9",
    a=5,
    b="café",
)

# rom 1.x's keyspace for VALUES_1 at pk 1 (STORAGE.md §3-4); the bookkeeping is cjson text
ROM1_BOOKKEEPING_1 = (
    '[["title:world","flag:True","title:hello"],["n","name"],'
    '[["title","hello"],["name","Hello"],["title","world"]],'
    '[["name","olleH"],["title","dlrow"],["title","olleh"]],{}]'
)


def rom1_layout_1():
    """Key -> (type, content) of what rom 1.x stores for VALUES_1 (pk 1)."""
    cafe2 = "café".encode().decode("latin-1").encode()  # composite fields: double encoded
    return {
        b"Post:id:": ("string", b"1"),
        b"Post:1": (
            "hash",
            {
                b"id": b"1",
                b"title": b"Hello World",
                b"name": b"Hello",
                b"n": b"5",
                b"flag": b"1",
                b"email": "café@x".encode(),
                b"code": b"\xc3\xa9",
                b"a": b"5",
                b"b": "café".encode(),
            },
        ),
        b"Post:title:hello:idx": ("set", {b"1"}),
        b"Post:title:world:idx": ("set", {b"1"}),
        b"Post:flag:True:idx": ("set", {b"1"}),
        b"Post:n:idx": ("zset", [(b"1", 5.0)]),
        b"Post:name:idx": ("zset", [(b"1", HELLO_SCORE)]),
        b"Post:title:pre": (
            "zset",
            sorted(
                [(b"hello\x001", ps("hello")), (b"world\x001", ps("world"))], key=lambda m: m[1]
            ),
        ),
        b"Post:title:suf": (
            "zset",
            sorted(
                [(b"olleh\x001", ps("olleh")), (b"dlrow\x001", ps("dlrow"))], key=lambda m: m[1]
            ),
        ),
        b"Post:name:pre": ("zset", [(b"Hello\x001", HELLO_SCORE)]),
        b"Post:name:suf": ("zset", [(b"olleH\x001", ps("olleH"))]),
        b"Post:email:uidx": ("hash", {"café@x".encode(): b"1"}),
        b"Post:code:uidx": ("hash", {b"\xc3\xa9": b"1"}),
        b"Post:a:b:uidx": ("hash", {b"\x00\x005\x00\x00\x00caf" + cafe2[3:]: b"1"}),
    }


def bookkeeping_1():
    return [
        ["flag:True", "title:hello", "title:world"],
        ["n", "name"],
        [["name", "Hello"], ["title", "hello"], ["title", "world"]],
        [["name", "olleH"], ["title", "dlrow"], ["title", "olleh"]],
        [],
    ]


def write_layout(conn, layout):
    """Write a key -> (type, content) layout by hand, as another client would."""
    for key, (kind, content) in layout.items():
        if kind == "string":
            conn.set(key, content)
        elif kind == "hash":
            conn.hset(key, mapping=content)
        elif kind == "set":
            conn.sadd(key, *content)
        elif kind == "zset":
            conn.zadd(key, {m: s for m, s in content})
        else:  # pragma: no cover - test data error
            raise AssertionError(kind)


def read_layout(conn):
    """The whole keyspace as key -> (type, content), with -index-data- parsed and sorted."""
    out = {}
    for key in conn.keys("*"):
        kind = conn.type(key).decode()
        if kind == "string":
            out[key] = (kind, conn.get(key))
        elif kind == "hash":
            out[key] = (kind, conn.hgetall(key))
        elif kind == "set":
            out[key] = (kind, conn.smembers(key))
        else:
            out[key] = (kind, conn.zrange(key, 0, -1, withscores=True))
    return out


def split_bookkeeping(layout, key):
    """Remove -index-data- from the hash at ``key`` and return it parsed, slots sorted."""
    fields = layout[key][1]
    raw = fields.pop(b"-index-data-")
    slots = json.loads(raw)
    assert isinstance(slots, list) and len(slots) == 5, raw
    return [sorted(s) if isinstance(s, list) else s for s in slots]


# -- we write what rom 1.x writes ------------------------------------------------------------


def test_we_write_rom1_layout(conn):
    """A save produces exactly rom 1.x's keys, members, scores and hash texts."""
    Post = make_post()
    Post(**VALUES_1).save()
    layout = read_layout(conn)
    assert split_bookkeeping(layout, b"Post:1") == bookkeeping_1()
    assert layout == rom1_layout_1()
    assert conn.zscore("Post:name:pre", b"Hello\x001") == HELLO_SCORE
    assert repr(conn.zscore("Post:name:idx", 1)) == "6.431660051707085e-307"


def test_our_bookkeeping_is_valid_rom1_bookkeeping(conn):
    """-index-data- is a 5-slot JSON array that Redis' cjson (rom 1.x's reader) decodes."""
    Post = make_post()
    Post(**VALUES_1).save()
    raw = conn.hget("Post:1", "-index-data-")
    decoded = conn.eval(
        "local d = cjson.decode(ARGV[1]) "
        "return {#d, #d[1], #d[2], #d[3], #d[4], d[3][1][1], d[1][1]}",
        0,
        raw,
    )
    assert decoded[:5] == [5, 3, 2, 3, 3]


# -- reading, updating and deleting rom 1.x data ---------------------------------------------


def test_load_rom1_entity(conn):
    """An entity written by rom 1.x loads with the right values."""
    Post = make_post()
    layout = rom1_layout_1()
    layout[b"Post:1"][1][b"-index-data-"] = ROM1_BOOKKEEPING_1.encode()
    write_layout(conn, layout)
    post = Post.get(1)
    for attr, value in VALUES_1.items():
        assert getattr(post, attr) == value, attr
    assert Post.get_by(email="café@x") is post
    assert Post.get_by(code=b"\xe9") is post


def test_update_rom1_entity_replaces_its_index_entries(conn):
    """Updating rom 1.x data removes every old entry it recorded and writes the new ones."""
    Post = make_post()
    layout = rom1_layout_1()
    layout[b"Post:1"][1][b"-index-data-"] = ROM1_BOOKKEEPING_1.encode()
    write_layout(conn, layout)
    post = Post.get(1)
    post.update(title="Goodbye World", name="Hi", n=6, flag=False, email="e@x", code=b"z", a=7)
    assert post.save() == 7
    got = read_layout(conn)
    assert split_bookkeeping(got, b"Post:1") == [
        ["flag:False", "title:goodbye", "title:world"],
        ["n", "name"],
        [["name", "Hi"], ["title", "goodbye"], ["title", "world"]],
        [["name", "iH"], ["title", "dlrow"], ["title", "eybdoog"]],
        [],
    ]
    cafe2 = "café".encode().decode("latin-1").encode()
    assert got == {
        b"Post:id:": ("string", b"1"),
        b"Post:1": (
            "hash",
            {
                b"id": b"1",
                b"title": b"Goodbye World",
                b"name": b"Hi",
                b"n": b"6",
                b"flag": b"",
                b"email": b"e@x",
                b"code": b"z",
                b"a": b"7",
                b"b": "café".encode(),
            },
        ),
        b"Post:title:goodbye:idx": ("set", {b"1"}),
        b"Post:title:world:idx": ("set", {b"1"}),
        b"Post:flag:False:idx": ("set", {b"1"}),
        b"Post:n:idx": ("zset", [(b"1", 6.0)]),
        b"Post:name:idx": ("zset", [(b"1", ps("Hi"))]),
        b"Post:title:pre": (
            "zset",
            sorted(
                [(b"goodbye\x001", ps("goodbye")), (b"world\x001", ps("world"))], key=lambda m: m[1]
            ),
        ),
        b"Post:title:suf": (
            "zset",
            sorted(
                [(b"eybdoog\x001", ps("eybdoog")), (b"dlrow\x001", ps("dlrow"))], key=lambda m: m[1]
            ),
        ),
        b"Post:name:pre": ("zset", [(b"Hi\x001", ps("Hi"))]),
        b"Post:name:suf": ("zset", [(b"iH\x001", ps("iH"))]),
        b"Post:email:uidx": ("hash", {b"e@x": b"1"}),
        b"Post:code:uidx": ("hash", {b"z": b"1"}),
        b"Post:a:b:uidx": ("hash", {b"\x00\x007\x00\x00\x00caf" + cafe2[3:]: b"1"}),
    }


def test_delete_rom1_entity_leaves_only_the_counter(conn):
    """Deleting rom 1.x data removes the hash and every recorded index and unique entry."""
    Post = make_post()
    layout = rom1_layout_1()
    layout[b"Post:1"][1][b"-index-data-"] = ROM1_BOOKKEEPING_1.encode()
    write_layout(conn, layout)
    conn.set("unrelated", "x")
    Post.get(1).delete()
    assert sorted(conn.keys("*")) == [b"Post:id:", b"unrelated"]


def test_rom1_writes_after_our_load_are_cleaned(conn):
    """If rom 1.x re-indexed the entity after we loaded it, its entries are removed too."""
    Post = make_post()
    post = Post(**VALUES_1)
    post.save()
    # a rom 1.x client saves title='Zebra' (same other values) in between
    conn.srem("Post:title:hello:idx", 1)
    conn.srem("Post:title:world:idx", 1)
    conn.sadd("Post:title:zebra:idx", 1)
    conn.zrem("Post:title:pre", b"hello\x001", b"world\x001")
    conn.zrem("Post:title:suf", b"olleh\x001", b"dlrow\x001")
    conn.zadd("Post:title:pre", {b"zebra\x001": ps("zebra")})
    conn.zadd("Post:title:suf", {b"arbez\x001": ps("arbez")})
    conn.hset(
        "Post:1",
        mapping={
            "title": "Zebra",
            "-index-data-": '[["title:zebra","flag:True"],["n","name"],'
            '[["title","zebra"],["name","Hello"]],[["title","arbez"],["name","olleH"]],{}]',
        },
    )
    post.n = 8
    post.save()
    assert conn.smembers("Post:title:zebra:idx") == {b"1"}  # title unchanged by us
    post.title = "Yak"
    with pytest.raises(rom.DataRaceError):
        post.save()  # the title we would overwrite changed
    post.save(force=True)
    assert not conn.exists("Post:title:zebra:idx")
    assert conn.zrange("Post:title:pre", 0, -1) == [b"yak\x001"]
    assert conn.zrange("Post:title:suf", 0, -1) == [b"kay\x001"]


# -- cjson quirks and legacy formats ---------------------------------------------------------


def test_cjson_escapes_and_raw_utf8(conn):
    """Bookkeeping with raw UTF-8, \\/ escapes and \\u0000 is understood."""

    class Tag(rom.Model):
        t = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)

    conn.set("Tag:id:", 1)
    conn.hset(
        "Tag:1",
        mapping={
            "id": "1",
            "t": "a/b caf\u00e9 x\x00y",
            "-index-data-": '["t:a\\/b","t:caf\u00e9","t:x\\u0000y"],{},[["t","a\\/b"]],{},{}]'.replace(
                '["t:a', '[["t:a', 1
            ),
        },
    )
    conn.sadd("Tag:t:a/b:idx", 1)
    conn.sadd("Tag:t:café:idx", 1)
    conn.sadd(b"Tag:t:x\x00y:idx", 1)
    conn.zadd("Tag:t:pre", {b"a/b\x001": ps("a/b")})
    tag = Tag.get(1)
    assert tag.t == "a/b café x\x00y"
    tag.t = "new"
    tag.save()
    assert sorted(conn.keys("*")) == [b"Tag:1", b"Tag:id:", b"Tag:t:new:idx", b"Tag:t:pre"]
    assert conn.zrange("Tag:t:pre", 0, -1) == [b"new\x001"]


def test_short_and_empty_bookkeeping_arrays(conn):
    """Bookkeeping arrays shorter than 5 slots (and an empty object) are accepted."""

    class Tag(rom.Model):
        t = rom.Text(index=True, keygen=rom.FULL_TEXT)

    conn.hset("Tag:1", mapping={"id": "1", "t": "old", "-index-data-": '[["t:old"]]'})
    conn.sadd("Tag:t:old:idx", 1)
    conn.hset("Tag:2", mapping={"id": "2", "-index-data-": "{}"})
    one, two = Tag.get([1, 2])
    one.t = "new"
    one.save()
    two.t = "two"
    two.save()
    assert not conn.exists("Tag:t:old:idx")
    assert conn.smembers("Tag:t:new:idx") == {b"1"}
    assert json.loads(conn.hget("Tag:2", "-index-data-")) == [["t:two"], [], [], [], []]


def test_legacy_bookkeeping_hash(conn):
    """rom < 1.0 data (<ns>:: record, no -index-data-) is upgraded on save and cleaned on delete."""
    Post = make_post()
    layout = rom1_layout_1()
    write_layout(conn, layout)
    legacy = (
        '[["title:world","flag:True","title:hello"],["n","name"],'
        '[["title","hello"],["name","Hello"],["title","world"]],'
        '[["name","olleH"],["title","dlrow"],["title","olleh"]]]'
    )
    conn.hset("Post::", mapping={"1": legacy, "2": legacy.replace("hello", "other")})
    post = Post.get(1)
    post.title = "Goodbye World"
    post.save()
    assert not conn.hexists("Post::", "1") and conn.hexists("Post::", "2")
    assert not conn.exists("Post:title:hello:idx")
    assert conn.smembers("Post:title:goodbye:idx") == {b"1"}
    assert sorted(json.loads(conn.hget("Post:1", "-index-data-"))[1]) == ["n", "name"]
    rom.session.rollback()
    # a second entity, still in the legacy format, deleted directly
    write_layout(
        conn,
        {b"Post:3": ("hash", {b"id": b"3", b"n": b"4"}), b"Post:n:idx": ("zset", [(b"3", 4.0)])},
    )
    conn.hset("Post::", "3", '[[],["n"],[],[]]')
    Post.get(3).delete()
    assert not conn.hexists("Post::", "3")
    assert conn.zrange("Post:n:idx", 0, -1) == [b"1"]


def test_rom1_geo_names_in_slot_3_are_cleaned(conn):
    """Geo names rom 1.1.2 recorded in slot 3 are removed on update and delete (bugs 10, 11)."""
    calls = []

    def where(data):
        calls.append(dict(data))
        if data.lon is None:
            return []
        return {"lon": data.lon, "lat": data.lat}

    class Place(rom.Model):
        lon = rom.Float()
        lat = rom.Float()
        tags = rom.Text(index=True, keygen=rom.FULL_TEXT)
        geo_index = [rom.GeoIndex("basic", where)]

    for pk in (1, 2):
        conn.hset(
            f"Place:{pk}",
            mapping={
                "id": pk,
                "lon": "10.5",
                "lat": "20.25",
                "tags": "channel",
                "-index-data-": '[["tags:channel"],{},{},["basic"],{}]',
            },
        )
        conn.sadd("Place:tags:channel:idx", pk)
        conn.geoadd("Place:basic:geo", (10.5, 20.25, pk))
    one, two = Place.get([1, 2])
    one.lon = None
    one.save()
    assert conn.zrange("Place:basic:geo", 0, -1) == [b"2"]
    assert json.loads(conn.hget("Place:1", "-index-data-")) == [["tags:channel"], [], [], [], []]
    calls.clear()
    two.delete()
    assert calls == []  # geo callbacks are not called on delete
    assert not conn.exists("Place:basic:geo")
    one.lon = 1.0
    one.save()
    assert json.loads(conn.hget("Place:1", "-index-data-"))[4] == ["basic"]
    one.delete()
    assert conn.keys("*") == []  # (the hashes were written by hand: no id counter)


def test_integer_texts_written_by_rom1(conn):
    """Integer fields holding rom 1.x's 'True'/'False' load and are rewritten as digits."""

    class Num(rom.Model):
        n = rom.Integer(index=True)
        m = rom.Integer()

    conn.hset(
        "Num:1",
        mapping={"id": "1", "n": "True", "m": "False", "-index-data-": '[{},["n"],{},{},{}]'},
    )
    conn.zadd("Num:n:idx", {"1": 1})
    x = Num.get(1)
    assert (x.n, x.m) == (1, 0)
    x.save(full=True)
    assert conn.hgetall("Num:1")[b"n"] == b"1"
    assert conn.hgetall("Num:1")[b"m"] == b"0"


def test_unique_fields_written_by_rom1_are_respected(conn):
    """A unique value owned by a rom 1.x-written entity cannot be taken."""
    Post = make_post()
    layout = rom1_layout_1()
    layout[b"Post:1"][1][b"-index-data-"] = ROM1_BOOKKEEPING_1.encode()
    write_layout(conn, layout)
    conn.set("Post:id:", 5)
    for kwargs in ({"email": "café@x"}, {"code": b"\xe9"}, {"a": 5, "b": "café"}):
        dup = Post(**kwargs)
        with pytest.raises(rom.UniqueKeyViolation):
            dup.save()
        assert not conn.exists(f"Post:{dup.id}")
    Post(a=5, b="cafe").save()


def test_rom1_data_with_decode_responses(conn, decoded_conn):
    """rom 1.x data is read, updated and deleted through a decode_responses=True client."""
    Post = make_post()
    layout = rom1_layout_1()
    layout[b"Post:1"][1][b"-index-data-"] = ROM1_BOOKKEEPING_1.encode()
    write_layout(conn, layout)
    post = Post.get(1)
    assert post.code == b"\xe9" and post.email == "café@x"
    assert Post.get_by(code=b"\xe9") is post
    conn.hset("Post:1", "n", "6")
    post.refresh()
    assert post.n == 6
    post.title = "Other"
    post.save()
    assert not conn.exists("Post:title:hello:idx")
    assert conn.smembers("Post:title:other:idx") == {b"1"}
    post.delete()
    assert conn.keys("*") == [b"Post:id:"]
