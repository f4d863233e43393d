"""The query planner compiled without a server (peewee-style), the GeneralIndex executor,
and round trips: first(), one-page all() and count() are one round trip each."""

from __future__ import annotations

import json
import re

import pytest

import rom
from rom import QueryError
from rom.encoding import _prefix_score
from rom.index import (
    GeneralIndex,
    Geofilter,
    Pattern,
    Prefix,
    Suffix,
    compile_query,
    like_pattern,
)
from rom.keys import KeySpace

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def make_post():
    class Post(rom.Model):
        title = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        name = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True, suffix=True)
        score = rom.Integer(index=True)
        flag = rom.Boolean(index=True)
        geo_index = [rom.GeoIndex("loc", lambda d: {"lon": 0, "lat": 0})]

    return Post


# -- compile only ----------------------------------------------------------------------------
def test_plan_of_tokens_ranges_and_order(round_trips):
    """Filters compile to index keys and steps; nothing is sent to Redis."""
    Post = make_post()
    round_trips.reset()
    plan = (
        Post.query.filter(title="Hello", score=(1, None), flag=True)
        .order_by("-score")
        ._plan("count")
    )
    assert round_trips.count == 0
    assert re.match(rf"^Post:{UUID}$", plan.keys[0])
    assert re.match(rf"^Post:{UUID}$", plan.keys[1])
    assert plan.keys[0] != plan.keys[1]
    assert plan.keys[2:] == ["Post:title:hello:idx", "Post:score:idx", "Post:flag:True:idx"]
    assert plan.spec["f"] == [
        {"t": "s", "k": 3},
        {"t": "r", "k": 4, "lo": "1", "hi": "+inf"},
        {"t": "s", "k": 5},
    ]
    assert plan.spec["o"] == {"k": 4, "d": -1}
    assert plan.spec["m"] == "count"
    assert plan.spec["p"] == "Post:"
    assert "x" not in plan.spec
    assert json.loads(plan.args[0]) == plan.spec


def test_plan_of_lists_dates_and_not_null(round_trips):
    """Lists become unions of token keys; endpoints become score texts."""
    Post = make_post()
    plan = Post.query.filter(name=["b", "a", "b"], score=(None, 2.5))._plan("ids")
    assert plan.keys[2:] == ["Post:name:b:idx", "Post:name:a:idx", "Post:score:idx"]
    assert plan.spec["f"] == [
        {"t": "u", "k": [3, 4]},
        {"t": "r", "k": 5, "lo": "-inf", "hi": "2.5"},
    ]
    plan = Post.query.filter(name=["only"])._plan("ids")
    assert plan.spec["f"] == [{"t": "s", "k": 3}]
    assert round_trips.count == 0


def test_plan_of_prefix_suffix_and_like(round_trips):
    """Prefix scans carry exact score bounds; suffixes are reversed; like is translated."""
    Post = make_post()
    plan = Post.query.startswith(title="Ab").endswith(name="xyz").like(name="a.b*")._plan()
    assert plan.keys[2:] == ["Post:title:pre", "Post:name:suf", "Post:name:pre"]
    pre, suf, like = plan.spec["f"]
    assert pre == {
        "t": "p",
        "k": 3,
        "s": "ab",
        "lo": repr(_prefix_score("ab")),
        "hi": repr(_prefix_score("ab", next=True)),
    }
    assert suf["s"] == "zyx" and suf["t"] == "p"
    assert like["t"] == "l" and like["s"] == "^a%.b.-"
    assert like["lo"] == repr(_prefix_score("a.b"))
    empty = Post.query.startswith(title="")._plan().spec["f"][0]
    assert empty["hi"] == "+inf"
    assert empty["lo"] == repr(_prefix_score(""))
    long = Post.query.startswith(name="abcdefghij")._plan().spec["f"][0]
    assert long["lo"] == repr(_prefix_score("abcdefg"))
    assert long["hi"] == repr(_prefix_score("abcdefg", next=True))
    assert round_trips.count == 0


def test_like_pattern_translation():
    """like() patterns: wildcards translated, every other character literal."""
    assert like_pattern("*frank*@") == ("", "^.-frank.-%@")
    assert like_pattern("AB?c!d+e*") == ("AB", "^AB.?c.d.+e.-")
    assert like_pattern("-().%[^$") == ("-().%[^$", "^%-%(%)%.%%%[%^%$")
    assert like_pattern("é\0x") == ("é\0x", "^é%zx")
    assert like_pattern("") == ("", "^")


def test_plan_of_geo_select_page_and_expiry(round_trips, monkeypatch):
    """Geo steps, selected fields, page windows and the expiry index are planned."""
    Post = make_post()
    plan = Post.query.near("loc", 1.5, 2, 10, "KM", count=3).select("name")._plan()
    assert plan.keys[2:] == ["Post:loc:geo"]
    assert plan.spec["f"] == [
        {"t": "g", "k": 3, "lon": "1.5", "lat": "2.0", "r": "10.0", "u": "km", "n": 3}
    ]
    assert plan.spec["c"] == ["id", "name"]
    page = Post.query.filter(flag=False).limit(5, 10)._plan()
    assert (page.spec["off"], page.spec["stop"], page.spec["w"], page.spec["keep"]) == (5, 15, 1, 0)
    monkeypatch.setattr(Post, "_has_expiry", True)
    plan = Post.query.filter(flag=True)._plan("count")
    assert plan.keys[-1] == "Post::expire"
    assert plan.spec["x"] == {"k": len(plan.keys)}  # "now" is the server's clock
    explicit = compile_query(KeySpace("Post"), ["flag:True"], expiry=("Post::expire", 5.5))
    assert explicit.spec["x"] == {"k": 4, "now": "5.5"}
    assert round_trips.count == 0


def test_cluster_plans_use_the_hash_tag():
    """On a cluster every key of a plan carries the model's hash tag."""
    plan = compile_query(
        KeySpace("Post", cluster=True), ["title:a", ("score", 1, 2), Prefix("name", "x")], "-score"
    )
    assert all(k.startswith("{Post}:") for k in plan.keys)


def test_general_index_rejects_unknown_filters(conn, round_trips):
    """GeneralIndex refuses unknown filter items with QueryError before any round trip."""
    gi = GeneralIndex("Post")
    round_trips.reset()
    for bad in [object(), ("a", 1), "notoken", [], [1], ("a", "x", 1), {"a": 1}, 5]:
        with pytest.raises(QueryError):
            gi.search(conn, [bad], None)
        with pytest.raises(QueryError):
            gi.count(conn, [bad])
    with pytest.raises(QueryError):
        gi.search(conn, [Geofilter("loc", 0, 0, 1, "yd", None)], None)
    with pytest.raises(QueryError):
        gi.search(conn, ["a:b"], None, timeout=0)
    assert round_trips.count == 0


# -- GeneralIndex against Redis --------------------------------------------------------------
def test_general_index_search_and_count(conn):
    """search() returns ids (paged) or a cached key name; count() counts."""
    Post = make_post()
    for i in range(5):
        Post(title=f"word{i % 2} common", name=f"n{i}", score=i).save()
    gi = Post._gindex
    conn = Post._connection  # the client itself (a cluster client on a cluster)
    assert gi.search(conn, ["title:common"], "-score") == [b"5", b"4", b"3", b"2", b"1"]
    assert gi.search(conn, ["title:common"], "score", offset=1, count=2) == [b"2", b"3"]
    assert gi.search(conn, [("score", 1, 3)], None, count=0) == []
    assert gi.search(conn, [Prefix("name", "n")], None) == [b"1", b"2", b"3", b"4", b"5"]
    assert gi.search(conn, [Suffix("name", "3n")], None) == [b"4"]
    assert gi.search(conn, [Pattern("name", "n!")], None, offset=4) == [b"5"]
    assert gi.search(conn, [["title:word0", "title:word1"]], None, count=1) == [b"1"]
    assert gi.count(conn, ["title:word1"]) == 2
    assert gi.count(conn, []) == 0
    key = gi.search(conn, ["title:word0"], "score", timeout=5)
    assert key.endswith(tuple("0123456789abcdef"))
    assert conn.zrange(key, 0, -1) == [b"1", b"3", b"5"]
    assert 0 < conn.ttl(key) <= 5


# -- round trips -----------------------------------------------------------------------------
def test_one_round_trip_per_query(conn, round_trips):
    """first(), one-page all(), count(), cached_result() and each page are 1 round trip."""
    Post = make_post()
    for i in range(6):
        Post(title="hello world" if i % 2 else "hello", name=f"n{i}", score=i, flag=bool(i % 2))
    rom.session.commit()
    rom.session.rollback()
    q = Post.query.filter(title="hello").filter(score=(1, None)).order_by("-score")
    q.first(), q.all(), q.count(), Post.query.all(), Post.query.count()  # load the scripts
    list(q.iter_result(pagesize=2))

    checks = {
        "first": lambda: q.first(),
        "all": lambda: q.all(),
        "count": lambda: q.count(),
        "startswith all": lambda: Post.query.startswith(name="n").like(title="h*").all(),
        "select first": lambda: q.select("name").first(),
        "order only all": lambda: Post.query.order_by("score").all(),
        "bare all": lambda: Post.query.all(),
        "bare first": lambda: Post.query.first(),
        "bare count": lambda: Post.query.count(),
        "cached": lambda: q.cached_result(5),
        "near": lambda: Post.query.near("loc", 0, 0, 1, "km").all(),
    }
    for name, run in checks.items():
        rom.session.rollback()
        round_trips.reset()
        run()
        assert round_trips.count == 1, name
    round_trips.reset()
    assert len(list(q.iter_result(pagesize=2))) == 5
    assert round_trips.count == 3  # pages of 2, 2, 1
    round_trips.reset()
    assert len(list(Post.query.iter_result(pagesize=4))) == 6
    assert round_trips.count == 2


def test_queries_stay_in_the_model_slot(conn, monkeypatch):
    """With the cluster key layout every query script's KEYS share the model's hash slot,
    and results are the same."""
    from redis.cluster import key_slot

    import rom.model
    from rom import keys, scripts

    monkeypatch.setattr(keys, "is_cluster", lambda c: True)
    monkeypatch.setattr(rom.model, "is_cluster", lambda c: True)
    calls = []
    original = scripts.Script.__call__

    def record(self, c, keys=(), args=()):
        calls.append((self.name, list(keys)))
        return original(self, c, keys, args)

    monkeypatch.setattr(scripts.Script, "__call__", record)
    Post = make_post()
    for i in range(4):
        Post(title="hello", name=f"n{i}", score=i)
    rom.session.commit()
    rom.session.rollback()
    calls.clear()
    assert [p.id for p in Post.query.filter(title="hello").order_by("-score").all()] == [4, 3, 2, 1]
    assert Post.query.startswith(name="n").count() == 4
    assert Post.query.near("loc", 0, 0, 1, "km").count() == 4
    assert [p.id for p in Post.query.all()] == [1, 2, 3, 4]
    assert Post.query.filter(score=(1, 2)).first().id == 2
    assert len(list(Post.query.order_by("score").iter_result(pagesize=1))) == 4
    slot = key_slot(b"{Post}")
    assert {name for name, _ in calls} == {"query", "query_bare"}
    for name, called in calls:
        assert {key_slot(k.encode()) for k in called} == {slot}, (name, called)
