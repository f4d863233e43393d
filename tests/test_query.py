"""Every query form against a real Redis: filters, prefix/suffix/pattern scans, ordering,
limits, counts, select, iteration, caching, deletes, get_by and the documented errors."""

from __future__ import annotations

import datetime
import decimal
import re
import warnings

import pytest

import rom
from rom import NOT_NULL, QueryError
from rom.query import (
    _dict_data_factory,
    _list_data_factory,
    _namedtuple_data_factory,
    _tuple_data_factory,
)

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def temp_keys(conn, ns):
    """Temporary query keys ``<ns>:<uuid4>`` currently in the database."""
    pattern = re.compile(rf"^({re.escape(ns)}|{{{re.escape(ns)}}}):{UUID}$")
    found = [k.decode() if isinstance(k, bytes) else k for k in conn.keys("*")]
    return [k for k in found if pattern.match(k)]


def ids(results):
    return [e.id for e in results]


def make_post():
    class Post(rom.Model):
        title = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        name = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True, suffix=True)
        sort = rom.Text(index=True, keygen=rom.SIMPLE_CI, prefix=True)
        score = rom.Integer(index=True)
        rating = rom.Float(index=True)
        flag = rom.Boolean(index=True)
        plain = rom.Integer()
        body = rom.Text()

    return Post


def seed_posts(Post):
    rows = [
        dict(title="Hello World", name="alpha", sort="Banana", score=3, rating=1.5, flag=True),
        dict(title="hello redis", name="beta", sort="apple", score=1, rating=2.5, flag=False),
        dict(title="Redis rocks", name="gamma", sort="Cherry", score=2, rating=0.5, flag=True),
        dict(title="café society", name="delta", sort="apple", score=3, flag=False),
        dict(title="nothing here", name="épée", sort="date", score=None, rating=9.0, flag=True),
    ]
    for _ in range(7):  # ids 6..12, so text order of ids differs from numeric order
        rows.append(dict(title="filler words", name="zeta", sort="zz", score=5, flag=False))
    out = [Post(**row) for row in rows]
    rom.session.commit()
    rom.session.rollback()
    return out


# -- filter ----------------------------------------------------------------------------------
def test_token_filter_returns_pk_text_order(conn):
    """A single token filter returns pks ordered as decimal text (API §6.5)."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(title="filler").all()) == [10, 11, 12, 6, 7, 8, 9]
    assert ids(Post.query.filter(title="hello").all()) == [1, 2]


def test_full_text_filter_lowercases_and_matches_unicode(conn):
    """FULL_TEXT filters are lowercased; unicode tokens work; no match gives []."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(title="HELLO").all()) == [1, 2]
    assert ids(Post.query.filter(title="CAFÉ").all()) == [4]
    assert ids(Post.query.filter(title="café".encode("latin-1")).all()) == [4]
    assert Post.query.filter(title="missing").all() == []
    assert Post.query.filter(title="missing").count() == 0
    assert Post.query.filter(title="missing").first() is None


def test_identity_filter_is_exact_and_case_sensitive(conn):
    """IDENTITY tokens match the whole value exactly."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(name="épée").all()) == [5]
    assert Post.query.filter(name="ALPHA").all() == []
    assert Post.query.filter(name="alp").all() == []


def test_list_filter_is_or(conn):
    """A list of tokens matches entities having any of them; one item acts as a token."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(name=["alpha", "gamma", "nope"]).all()) == [1, 3]
    assert ids(Post.query.filter(name=["beta"]).all()) == [2]
    assert Post.query.filter(name=["alpha", "beta"]).count() == 2


def test_bool_filter(conn):
    """Booleans are matched as 'True'/'False' tokens."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(flag=True).all()) == [1, 3, 5]
    assert Post.query.filter(flag=False).count() == 9


def test_numeric_equality_and_ranges(conn):
    """Numbers mean equality; tuples are inclusive ranges with open ends; order by value."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(score=3).all()) == [1, 4]
    assert ids(Post.query.filter(score=(2, 3)).all()) == [3, 1, 4]
    assert ids(Post.query.filter(score=(None, 2)).all()) == [2, 3]
    assert ids(Post.query.filter(score=(4, None)).all()) == [10, 11, 12, 6, 7, 8, 9]
    assert Post.query.filter(score=(None, None)).count() == 11
    assert ids(Post.query.filter(rating=(1.0, "2.5")).all()) == [1, 2]
    assert ids(Post.query.filter(rating=decimal.Decimal("0.5")).all()) == [3]
    assert Post.query.filter(score=(3, 2)).all() == []
    assert Post.query.filter(score=(float("-inf"), float("inf"))).count() == 11


def test_several_filters_are_anded(conn):
    """Filters in one call and chained calls are all required."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(title="hello", flag=True).all()) == [1]
    assert ids(Post.query.filter(title="redis").filter(score=(2, None)).all()) == [3]
    assert Post.query.filter(title="redis", name="alpha").all() == []
    q = Post.query.filter(flag=False).filter(score=(1, 3)).filter(title=["café", "hello"])
    assert sorted(ids(q.all())) == [2, 4]


def test_dates_times_and_decimals(conn):
    """Date, DateTime, Time and Decimal values filter by their scores."""

    class Event(rom.Model):
        at = rom.DateTime(index=True)
        day = rom.Date(index=True)
        tm = rom.Time(index=True)
        amount = rom.Decimal(index=True)

    base = datetime.datetime(2020, 1, 1, 12, 0, 0)
    for i in range(4):
        Event(
            at=base + datetime.timedelta(days=i),
            day=(base + datetime.timedelta(days=i)).date(),
            tm=datetime.time(i, 30),
            amount=decimal.Decimal(f"{i}.25"),
        ).save()
    assert ids(Event.query.filter(at=(base + datetime.timedelta(days=2), None)).all()) == [3, 4]
    assert ids(Event.query.filter(day=datetime.date(2020, 1, 2)).all()) == [2]
    assert ids(Event.query.filter(tm=(datetime.time(1), datetime.time(2, 30))).all()) == [2, 3]
    assert ids(Event.query.filter(amount=(decimal.Decimal("1.25"), 2.5)).all()) == [2, 3]
    assert ids(Event.query.order_by("-at").limit(0, 2).all()) == [4, 3]


def test_sub_index_and_token_from_dict_keygen(conn):
    """Dict keygens give sub-indexes ('col:sub') and tokens, queried by name."""

    def kg(value):
        return {"": value["n"], "double": value["n"] * 2, value["tag"]: None}

    class Doc(rom.Model):
        data = rom.Json(index=True, keygen=kg)

    for n, tag in [(1, "x"), (2, "y"), (3, "x")]:
        Doc(data={"n": n, "tag": tag}).save()
    assert ids(Doc.query.filter(**{"data:double": (3, 6)}).all()) == [2, 3]
    assert ids(Doc.query.filter(data="x").all()) == [1, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ids(Doc.query.order_by("-data:double").all()) == [3, 2, 1]


def test_relation_filters_and_not_null(conn):
    """ManyToOne columns filter by id, id ranges and NOT_NULL; entities are refused."""

    class Author(rom.Model):
        name = rom.Text()

    class Book(rom.Model):
        author = rom.ManyToOne("Author", on_delete="no action")
        n = rom.Integer(index=True)

    a1, a2 = Author(name="a"), Author(name="b")
    rom.session.commit()
    Book(author=a1, n=1).save()
    Book(author=a2, n=2).save()
    Book(n=3).save()
    assert ids(Book.query.filter(author=a1.id).all()) == [1]
    assert ids(Book.query.filter(author=NOT_NULL).all()) == [1, 2]
    assert ids(Book.query.filter(author=(a2.id, None)).all()) == [2]
    assert ids(Book.query.filter(n=(None, None)).all()) == [1, 2, 3]
    with pytest.raises(QueryError):
        Book.query.filter(author=a1)
    with pytest.raises(QueryError):
        Book.query.filter(n=NOT_NULL)


def test_string_column_bytes_and_text(conn):
    """String columns match bytes (Latin-1) and str values alike, incl. non-ASCII."""

    class Blob(rom.Model):
        words = rom.String(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        ident = rom.String(index=True, keygen=rom.IDENTITY_STRING_CI)
        exact = rom.String(index=True, keygen=rom.IDENTITY_STRING)

    Blob(words=b"Caf\xe9 BAR", ident=b"AbC\xc9", exact=b"X\xffY").save()
    Blob(words=b"other", ident=b"zzz", exact=b"plain").save()
    assert ids(Blob.query.filter(words=b"CAF\xc9").all()) == [1]
    assert ids(Blob.query.filter(words="café").all()) == [1]
    assert ids(Blob.query.startswith(words=b"caf").all()) == [1]
    assert ids(Blob.query.endswith(words="é").all()) == [1]
    assert ids(Blob.query.filter(ident=b"ABC\xc9").all()) == [1]  # bug 16: lowercased
    assert ids(Blob.query.filter(ident="abcÉ").all()) == [1]
    assert ids(Blob.query.filter(exact=b"X\xffY").all()) == [1]
    assert ids(Blob.query.filter(exact="X\xffY").all()) == [1]
    assert Blob.query.filter(exact=b"x\xffy").all() == []


def test_index_only_column(conn):
    """IndexOnly columns are queried by their own name."""

    class Person(rom.Model):
        first = rom.Text()
        io = rom.IndexOnly("first", keygen=rom.IDENTITY_CI, prefix=True)

    Person(first="Ann").save()
    Person(first="Bob").save()
    assert ids(Person.query.filter(io="ANN").all()) == [1]
    assert ids(Person.query.startswith(io="b").all()) == [2]


# -- startswith / endswith / like ------------------------------------------------------------
def make_word():
    class Word(rom.Model):
        w = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True, suffix=True)

    return Word


def add_words(Word, words):
    for word in words:
        Word(w=word)
    rom.session.commit()
    rom.session.rollback()


def words_of(results):
    return sorted(e.w for e in results)


def test_startswith_and_endswith(conn):
    """Prefix and suffix scans match byte-wise, case-sensitively for IDENTITY."""
    Word = make_word()
    add_words(Word, ["apple", "apply", "Apple", "banana", "app", "snapple"])
    assert words_of(Word.query.startswith(w="app").all()) == ["app", "apple", "apply"]
    assert words_of(Word.query.startswith(w="apple").all()) == ["apple"]
    assert words_of(Word.query.endswith(w="pple").all()) == ["Apple", "apple", "snapple"]
    assert Word.query.startswith(w="zz").all() == []
    assert Word.query.startswith(w="app").count() == 3
    assert Word.query.endswith(w="").count() == 6


def test_startswith_longer_than_seven_bytes(conn):
    """Prefixes past the 7-byte score precision are compared byte-wise."""
    Word = make_word()
    add_words(Word, ["abcdefgh1", "abcdefgX", "abcdefg", "abcdefgh"])
    assert words_of(Word.query.startswith(w="abcdefgh").all()) == ["abcdefgh", "abcdefgh1"]
    assert words_of(Word.query.startswith(w="abcdefg").all()) == [
        "abcdefg",
        "abcdefgX",
        "abcdefgh",
        "abcdefgh1",
    ]
    assert words_of(Word.query.like(w="abcdefgh*").all()) == ["abcdefgh", "abcdefgh1"]


def test_empty_prefix_scans_every_entry_including_high_utf8(conn):
    """startswith('') and like('*') find entries whose first byte is above 0xC3 (bug 15)."""
    Word = make_word()
    words = ["жук", "中文", "😀x", "ÿes", "plain", "Ώ"] + [f"w{i}" for i in range(300)]
    add_words(Word, words)
    assert Word.query.startswith(w="").count() == len(words)
    found = words_of(Word.query.like(w="*").all())
    assert found == sorted(words)
    assert words_of(Word.query.endswith(w="").filter(w=["жук", "中文", "😀x"]).all()) == sorted(
        ["жук", "中文", "😀x"]
    )
    assert words_of(Word.query.startswith(w="中").all()) == ["中文"]
    assert words_of(Word.query.like(w="*文").all()) == ["中文"]


def test_like_specials_are_literal(conn):
    """like() treats - ( ) . % [ ^ $ literally (bug 13)."""
    Word = make_word()
    specials = ["a.com", "abcom", "x-y", "x(y)", "50%", "50x", "[a]", "^up", "$5", "a$b"]
    add_words(Word, specials)
    assert words_of(Word.query.like(w="*.com").all()) == ["a.com"]
    assert words_of(Word.query.like(w="x-y").all()) == ["x-y"]
    assert words_of(Word.query.like(w="x(y)").all()) == ["x(y)"]
    assert words_of(Word.query.like(w="50%").all()) == ["50%"]
    assert words_of(Word.query.like(w="[a]").all()) == ["[a]"]
    assert words_of(Word.query.like(w="^u*").all()) == ["^up"]
    assert words_of(Word.query.like(w="$5").all()) == ["$5"]
    assert words_of(Word.query.like(w="*$b").all()) == ["a$b"]


def test_like_exact_short_literal_prefix(conn):
    """An entry equal to the literal prefix is found, also for uppercase (bug 14)."""
    Word = make_word()
    add_words(Word, ["AB", "ABC", "XAB", "ABCDEFGHIJ", "ABCDEFGX"])
    assert words_of(Word.query.like(w="AB*").all()) == ["AB", "ABC", "ABCDEFGHIJ", "ABCDEFGX"]
    assert words_of(Word.query.like(w="ABCDEFGH*").all()) == ["ABCDEFGHIJ"]
    assert words_of(Word.query.like(w="*AB").all()) == [
        "AB",
        "ABC",
        "ABCDEFGHIJ",
        "ABCDEFGX",
        "XAB",
    ]


def test_like_wildcards(conn):
    """? is zero or one byte, ! exactly one, + one or more; the end is open."""
    Word = make_word()
    add_words(Word, ["abd", "abcd", "abccd", "ac", "abc", "oint"])
    assert words_of(Word.query.like(w="ab?d").all()) == ["abcd", "abd"]
    assert words_of(Word.query.like(w="a!c").all()) == ["abc", "abccd", "abcd"]
    assert words_of(Word.query.like(w="a+c").all()) == ["abc", "abccd", "abcd"]
    assert words_of(Word.query.like(w="oin").all()) == ["oint"]


def test_like_never_matches_the_pk_part(conn):
    """Patterns see only the entry, not the '\\0<pk>' suffix of index members."""
    Word = make_word()
    add_words(Word, ["ab"] + [f"x{i}" for i in range(12)])
    assert Word.query.like(w="ab!").all() == []
    assert Word.query.like(w="ab+").all() == []
    assert Word.query.like(w="*1").count() == 3  # x1, x10, x11 (entity 1 is "ab")


def test_case_insensitive_prefix(conn):
    """SIMPLE_CI prefix entries are lowercased, and so are the query values."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.startswith(sort="APP").all()) == [2, 4]
    assert ids(Post.query.startswith(sort="ch").all()) == [3]
    assert ids(Post.query.like(sort="B*A").all()) == [1]


def test_prefix_filters_combine_with_others(conn):
    """Prefix, suffix and pattern filters intersect with token and range filters."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.startswith(title="red").filter(score=(2, 3)).all()) == [3]
    assert ids(Post.query.endswith(title="ld").filter(flag=True).all()) == [1]
    assert ids(Post.query.like(title="*ock*").filter(title="redis").all()) == [3]
    assert Post.query.startswith(title="hel").endswith(name="ta").count() == 1


# -- ordering and limits ---------------------------------------------------------------------
def test_order_by_ascending_descending_and_ties(conn):
    """order_by orders by score, ties by pk as text, also descending; it wins over filters."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.order_by("score").all()) == [2, 3, 1, 4, 10, 11, 12, 6, 7, 8, 9]
    assert ids(Post.query.order_by("-score").all()) == [10, 11, 12, 6, 7, 8, 9, 1, 4, 3, 2]
    assert ids(Post.query.filter(rating=(0, 10)).order_by("-score").all()) == [1, 3, 2]
    assert ids(Post.query.filter(title="hello").order_by("-rating").all()) == [2, 1]
    assert ids(Post.query.order_by("sort").filter(flag=False).all())[:2] == [2, 4]


def test_order_by_excludes_entities_without_value(conn):
    """Entities missing from the order index are not in results nor in count()."""
    Post = make_post()
    seed_posts(Post)
    assert 5 not in ids(Post.query.order_by("score").all())
    assert Post.query.filter(flag=True).order_by("score").count() == 2
    assert Post.query.order_by("rating").count() == 4


def test_order_by_on_non_score_indexes(conn):
    """Ordering by a token index or an unindexed number gives no results; a String/Text
    column without index is a QueryError (bug 17); a non-sort keygen warns."""
    Post = make_post()
    seed_posts(Post)
    with pytest.warns(UserWarning):
        q = Post.query.order_by("title")
    assert q.all() == []
    assert q.count() == 0
    assert Post.query.order_by("plain").all() == []
    assert Post.query.order_by("-plain").first() is None
    with pytest.raises(QueryError):
        Post.query.order_by("body")
    with pytest.raises(QueryError):
        Post.query.order_by("nope")
    with pytest.raises(QueryError):
        Post.query.order_by("-")


def test_limit_offsets(conn):
    """limit pages the ordered result; offsets past the end give []; negative acts as 0."""
    Post = make_post()
    seed_posts(Post)
    q = Post.query.order_by("score")
    assert ids(q.limit(0, 3).all()) == [2, 3, 1]
    assert ids(q.limit(3, 2).all()) == [4, 10]
    assert ids(q.limit(-5, 2).all()) == [2, 3]
    assert q.limit(11, 5).all() == []
    assert q.limit(100, 5).first() is None
    assert q.limit(2, 0).all() == []
    assert q.limit(10, 100).count() == 11  # count ignores the limit
    assert ids(Post.query.filter(title="filler").limit(5, 10).all()) == [8, 9]
    assert ids(Post.query.filter(title="filler").limit(2, 1).all()) == [12]
    assert Post.query.filter(title="filler").limit(2, 1).first().id == 12


def test_limit_and_paging_with_iter_result(conn):
    """iter_result pages honour the limit across page boundaries."""
    Post = make_post()
    seed_posts(Post)
    q = Post.query.order_by("-score").limit(2, 7)
    expected = ids(q.all())
    assert len(expected) == 7
    assert ids(q.iter_result(pagesize=2)) == expected
    assert ids(q.iter_result(pagesize=1)) == expected


# -- bare queries ----------------------------------------------------------------------------
def test_bare_query_without_pk_index_probes_ids(conn):
    """A bare query walks ids 1..counter, skipping deleted and never-saved ones."""
    Post = make_post()
    seed_posts(Post)
    Post(title="unsaved")  # allocates id 13, never saved
    rom.session.rollback()
    Post.get(4).delete()
    expected = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]
    assert ids(Post.query.all()) == expected
    assert ids(Post.query.iter_result(pagesize=3)) == expected
    assert ids(Post.query.limit(2, 3).all()) == [3, 5, 6]
    assert Post.query.limit(20, 3).all() == []
    assert Post.query.first().id == 1
    assert Post.query.limit(3, 1).first().id == 5
    assert Post.query.count() == 13  # the id counter: rom's documented estimate
    assert Post.query.limit(10, 100).count() == 3
    assert Post.query.limit(2, 4).count() == 4


def test_bare_query_with_pk_index(conn):
    """With an indexed pk, bare iteration walks the pk index; offsets past the end give
    nothing (bug 18)."""

    class Item(rom.Model):
        id = rom.PrimaryKey(index=True)
        n = rom.Integer()

    for i in range(5):
        Item(n=i).save()
    Item.get(2).delete()
    assert ids(Item.query.all()) == [1, 3, 4, 5]
    assert ids(Item.query.limit(1, 2).all()) == [3, 4]
    assert Item.query.limit(7, 2).all() == []
    assert Item.query.limit(4, 2).all() == []
    assert ids(Item.query.iter_result(pagesize=1)) == [1, 3, 4, 5]
    assert Item.query.first().id == 1
    assert ids(Item.query.filter(id=(3, None)).all()) == [3, 4, 5]
    assert ids(Item.query.order_by("-id").all()) == [5, 4, 3, 1]


def test_empty_model(conn):
    """Queries over a model without entities return nothing."""
    Post = make_post()
    assert Post.query.all() == []
    assert Post.query.first() is None
    assert Post.query.count() == 0
    assert Post.query.filter(score=(None, None)).all() == []
    assert Post.query.order_by("score").first() is None
    assert Post.query.startswith(title="").count() == 0


# -- first / session -------------------------------------------------------------------------
def test_first_adds_to_session_iteration_does_not(conn):
    """first() keeps the entity in the session; all() and iteration do not (API §7.4)."""
    Post = make_post()
    seed_posts(Post)
    found = Post.query.filter(title="redis").all()
    assert ids(found) == [2, 3]
    assert rom.session.get("Post:2") is None
    first = Post.query.filter(title="redis").first()
    assert rom.session.get("Post:2") is first
    assert Post.get(2) is first
    bare = Post.query.limit(2, 1).first()
    assert rom.session.get(f"Post:{bare.id}") is bare


def test_results_reuse_session_objects(conn):
    """Entities already in the session are returned as those objects, also if modified."""
    Post = make_post()
    seed_posts(Post)
    known = Post.get(1)
    known.body = "local change"
    found = Post.query.filter(title="hello").all()
    assert found[0] is known
    assert found[0].body == "local change"
    assert Post.query.first() is known
    assert next(iter(Post.query)) is known


# -- count -----------------------------------------------------------------------------------
def test_counts(conn):
    """count() counts matches of every filter kind and ignores the limit."""
    Post = make_post()
    seed_posts(Post)
    assert Post.query.filter(title="filler").count() == 7
    assert Post.query.filter(score=(1, 3)).count() == 4
    assert Post.query.filter(name=["alpha", "beta", "zeta"]).count() == 9
    assert Post.query.startswith(name="a").count() == 1
    assert Post.query.like(title="*e*").count() == 12
    assert Post.query.filter(title="filler").limit(0, 2).count() == 7
    assert Post.query.filter(title="filler", flag=True).count() == 0


# -- select ----------------------------------------------------------------------------------
def test_select_factories_and_decoding(conn):
    """select() yields rows through the data factories, decoded or raw."""
    Post = make_post()
    seed_posts(Post)
    q = Post.query.filter(title="hello")
    assert q.select("name", "score").all() == [
        {"name": "alpha", "score": 3},
        {"name": "beta", "score": 1},
    ]
    assert q.select(["name"], include_pk=True, ff=_list_data_factory).all() == [
        ["alpha", 1],
        ["beta", 2],
    ]
    assert q.select("score", ff=_tuple_data_factory).all() == [(3,), (1,)]
    rows = q.select("name", "rating", ff=_namedtuple_data_factory).all()
    assert rows[0].name == "alpha" and rows[0].rating == 1.5
    assert type(rows[0]).__name__ == "name_rating"
    assert q.select("score", "rating", decode=False).all() == [
        {"score": "3", "rating": "1.5"},
        {"score": "1", "rating": "2.5"},
    ]
    assert q.select("id", "body").all() == [{"id": 1, "body": None}, {"id": 2, "body": None}]
    assert rom.session.get("Post:1") is None
    assert Post.query.filter(flag=True).select("name").first() == {"name": "alpha"}  # bug 19
    assert Post.query.select("name").first() == {"name": "alpha"}
    assert Post.query.select("name").limit(3, 2).all() == [{"name": "delta"}, {"name": "épée"}]
    assert Post.query.select("score").count() == 12
    assert q.select("name", ff=_dict_data_factory).first() == {"name": "alpha"}


def test_select_relations_are_loaded(conn):
    """Decoded select() rows hold referenced entities."""

    class Owner(rom.Model):
        name = rom.Text()

    class Pet(rom.Model):
        owner = rom.ManyToOne("Owner", on_delete="no action")
        n = rom.Integer(index=True)

    owner = Owner(name="o")
    owner.save()
    Pet(owner=owner, n=1).save()
    rows = Pet.query.filter(n=1).select("owner").all()
    assert rows == [{"owner": owner}]
    assert Pet.query.filter(n=1).select("owner", decode=False).all() == [{"owner": "1"}]


def test_select_errors_and_list_not_mutated(conn):
    """select() refuses no, duplicate and unknown columns and leaves the list alone."""
    Post = make_post()
    with pytest.raises(QueryError):
        Post.query.select()
    with pytest.raises(QueryError):
        Post.query.select([])
    with pytest.raises(QueryError):
        Post.query.select("name", "name")
    with pytest.raises(QueryError):
        Post.query.select("nope")
    cols = ["name"]
    Post.query.select(cols, include_pk=True)
    assert cols == ["name"]


# -- iteration, temp keys, cached results ----------------------------------------------------
def test_no_temp_keys_left_behind(conn):
    """all(), first(), count() and exhausted iterations delete their temporary keys (bug 24)."""
    Post = make_post()
    seed_posts(Post)
    q = Post.query.filter(flag=False).order_by("-score")
    q.all()
    q.first()
    q.count()
    list(q.iter_result(pagesize=2))
    list(Post.query.like(title="*o*").filter(score=(1, None)).iter_result(pagesize=3))
    Post.query.order_by("score").all()
    list(Post.query.order_by("score").iter_result(pagesize=2))
    assert temp_keys(conn, "Post") == []


def test_iteration_keeps_result_with_ttl_between_pages(conn):
    """While an iteration is in progress its result key lives with the asked TTL; an
    iteration closed early deletes it."""
    Post = make_post()
    seed_posts(Post)
    it = Post.query.filter(flag=False).iter_result(timeout=7, pagesize=2)
    next(it)
    keys = temp_keys(conn, "Post")
    assert len(keys) == 1
    assert 0 < conn.ttl(keys[0]) <= 7
    rest = list(it)
    assert len(rest) == 8
    assert temp_keys(conn, "Post") == []
    it = Post.query.filter(flag=False).iter_result(pagesize=2)
    next(it)
    assert len(temp_keys(conn, "Post")) == 1
    it.close()
    assert temp_keys(conn, "Post") == []


def test_iteration_skips_entities_deleted_meanwhile(conn):
    """Entities deleted between pages are skipped."""
    Post = make_post()
    seed_posts(Post)
    it = Post.query.filter(title="filler").iter_result(pagesize=2)
    assert ids([next(it), next(it)]) == [10, 11]
    Post.get(6).delete()
    Post.get(12).delete()
    assert ids(it) == [7, 8, 9]


def test_cached_result(conn):
    """cached_result keeps ids -> scores (negated for descending order) with a TTL."""
    Post = make_post()
    seed_posts(Post)
    key = Post.query.filter(flag=True).order_by("-score").cached_result(10)
    assert re.match(rf"^(Post|{{Post}}):{UUID}$", key)
    assert 0 < conn.ttl(key) <= 10
    assert conn.zrange(key, 0, -1, withscores=True) == [(b"1", -3.0), (b"3", -2.0)]
    key = Post.query.filter(score=(1, 2)).limit(0, 1).cached_result(5)
    assert conn.zcard(key) == 2
    with pytest.raises(QueryError):
        Post.query.filter(flag=True).cached_result(0)
    with pytest.raises(QueryError):
        Post.query.cached_result(10)


# -- delete ----------------------------------------------------------------------------------
def test_query_delete(conn):
    """Query.delete removes matching entities in blocks, with their index entries."""
    Post = make_post()
    seed_posts(Post)
    Post.query.filter(title="filler").delete(blocksize=3)
    assert Post.query.filter(score=5).count() == 0
    assert conn.exists("Post:6") == 0
    assert ids(Post.query.all()) == [1, 2, 3, 4, 5]
    Post.query.delete()
    assert Post.query.all() == []
    assert conn.keys("Post:title:*") == []


def test_query_delete_refuses_relations(conn):
    """Models with or targeted by references cannot be bulk deleted."""

    class Parent(rom.Model):
        n = rom.Integer(index=True)

    class Child(rom.Model):
        parent = rom.ManyToOne("Parent", on_delete="cascade")

    with pytest.raises(QueryError):
        Parent.query.delete()
    with pytest.raises(QueryError):
        Child.query.delete()


# -- get_by ----------------------------------------------------------------------------------
def test_get_by_forms(conn):
    """get_by uses unique indexes, ranges, tokens and _limit; it loads into the session."""

    class User(rom.Model):
        email = rom.String(unique=True)
        n = rom.Integer(index=True, unique=True)
        tag = rom.Text(index=True, keygen=rom.IDENTITY)

    for i in range(4):
        User(email=f"u{i}@x".encode(), n=i, tag="even" if i % 2 == 0 else "odd")
    rom.session.commit()
    rom.session.rollback()
    u = User.get_by(email=b"u1@x")
    assert u.id == 2
    assert User.get_by(email="u1@x") is u  # str accepted for String columns
    assert ids(User.get_by(email=[b"u3@x", b"nope", b"u0@x"])) == [4, 1]
    assert User.get_by(email=b"nope") is None
    assert ids(User.get_by(n=(1, 2), _numeric=True)) == [2, 3]  # bug 12
    assert ids(User.get_by(n=2, _numeric=True)) == [3]
    assert User.get_by(n=2).id == 3
    assert ids(User.get_by(tag="even")) == [1, 3]
    assert ids(User.get_by(tag="odd", _limit=(1, 5))) == [4]
    found = User.get_by(tag="odd")
    assert rom.session.get("User:2") is found[0]
    with pytest.raises(QueryError):
        User.get_by(tag="x", n=1)
    with pytest.raises(QueryError):
        User.get_by(tag="x", _limit=(1,))
    with pytest.raises(QueryError):
        User.get_by(n=(1, 2, 3))
    with pytest.raises(QueryError):
        User.get_by(email=(b"a", b"b"))
    with pytest.raises(QueryError):
        User.get_by(nope=1)


def test_get_by_relation_and_one_to_many_order(conn):
    """OneToMany lists referencing entities ordered by pk text."""

    class Group(rom.Model):
        members = rom.OneToMany("Member")

    class Member(rom.Model):
        group = rom.ManyToOne("Group", on_delete="no action")

    g = Group()
    g.save()
    for _ in range(11):
        Member(group=g)
    rom.session.commit()
    assert ids(g.members) == [1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]
    assert ids(Member.get_by(group=g.id, _limit=(0, 2))) == [1, 10]


# -- does_not_startwith / does_not_endwith ---------------------------------------------------
def test_does_not_startwith_and_endwith(conn):
    """Entries not starting/ending with any value are yielded; overlapping values work
    (bug 20)."""
    Word = make_word()
    add_words(Word, ["hello", "help", "hel", "world", "helloworld1", "helloworld2", "x"])
    found = sorted(e.w for e in Word.does_not_startwith("w", ["hel", "hello"]))
    assert found == ["world", "x"]
    found = sorted(e.w for e in Word.does_not_startwith("w", "helloworld1"))
    assert found == ["hel", "hello", "helloworld2", "help", "world", "x"]
    found = sorted(e.w for e in Word.does_not_endwith("w", ["ld", "1", "2"]))
    assert found == ["hel", "hello", "help", "x"]
    found = sorted(e.w for e in Word.does_not_endwith("w", ["lo"], blocksize=1))
    assert found == ["hel", "helloworld1", "helloworld2", "help", "world", "x"]
    assert rom.session.get("Word:1") is None
    assert list(Word.does_not_startwith("w", "")) == []
    with pytest.raises(QueryError):
        Word.does_not_startwith("nope", "a")


def test_does_not_startwith_decode_responses(decoded_conn):
    """does_not_* work with decode_responses=True clients (bug 20)."""
    Word = make_word()
    add_words(Word, ["héllo", "help", "zed"])
    assert sorted(e.w for e in Word.does_not_startwith("w", "hé")) == ["help", "zed"]
    assert sorted(e.w for e in Word.does_not_endwith("w", ["lo", "d"])) == ["help"]


# -- decode_responses ------------------------------------------------------------------------
def test_queries_with_decode_responses(decoded_conn):
    """Every query form works with a decode_responses=True client."""
    Post = make_post()
    seed_posts(Post)
    assert ids(Post.query.filter(title="hello").all()) == [1, 2]
    assert ids(Post.query.startswith(name="é").all()) == [5]
    assert ids(Post.query.like(title="caf*").all()) == [4]
    assert Post.query.filter(score=(1, 3)).count() == 4
    assert Post.query.order_by("-rating").first().id == 5
    assert Post.query.select("name", decode=False).first() == {"name": "alpha"}
    assert ids(Post.query.limit(10, 5).all()) == [11, 12]
    assert Post.query.filter(score=3).cached_result(5)
    assert ids(Post.get_by(score=(3, 3))) == [1, 4]


# -- errors ----------------------------------------------------------------------------------
def test_filter_errors(conn):
    """Invalid filter columns and values raise QueryError, never a Redis error."""
    Post = make_post()
    q = Post.query
    for kwargs in [
        {"nope": 1},
        {"plain": 1},
        {"body": "x"},
        {"score": None},
        {"score": []},
        {"score": {1, 2}},
        {"score": object()},
        {"score": (1, 2, 3)},
        {"score": (1,)},
        {"score": ("a", 2)},
        {"score": (1, object())},
        {"score": (float("nan"), 1)},
        {"name": [None]},
    ]:
        with pytest.raises(QueryError):
            q.filter(**kwargs)
    with pytest.raises(QueryError):
        q.startswith(score="1")
    with pytest.raises(QueryError):
        q.endswith(sort="a")
    with pytest.raises(QueryError):
        q.like(score="1")
    with pytest.raises(QueryError):
        q.startswith(nope="a")
    with pytest.raises(QueryError):
        q.startswith(title=None)
    with pytest.raises(QueryError):
        q.limit("a", 1)
    with pytest.raises(QueryError):
        q.limit(0, 1.5)


def test_query_is_immutable(conn):
    """Every method returns a new Query; replace() swaps parts."""
    Post = make_post()
    seed_posts(Post)
    base = Post.query.filter(title="hello")
    narrowed = base.filter(flag=True)
    assert base.count() == 2 and narrowed.count() == 1
    ordered = base.order_by("-score")
    assert base._order_by is None and ordered._order_by == "-score"
    assert ids(ordered.replace(order_by="score").all()) == [2, 1]
    assert base.replace(filters=()).count() == 12
    with pytest.raises(TypeError):
        base.replace(nope=1)
