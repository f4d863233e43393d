"""Random entities and random query chains agree with a plain-Python oracle."""

from __future__ import annotations

import re

from conftest import flush
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rom
from rom.keygens import FULL_TEXT

VOCAB = ["red", "Redis", "apple", "app", "café", "ωmega", "a.b", "x-y", "50%", "中文", "ab"]
TAGS = ["Alpha", "alpine", "beta", "Ωmega", "a.b", "x-y", "café", "中文", "ALP", "b"]
FLOATS = [-1.5, 0.0, 0.5, 2.25, 1e10]
LIKE_CHARS = ["a", "l", "p", "b", "e", ".", "-", "%", "é", "?", "*", "+", "!"]

entity_st = st.fixed_dictionaries(
    {
        "words": st.one_of(st.none(), st.lists(st.sampled_from(VOCAB), max_size=3)),
        "n": st.one_of(st.none(), st.integers(-3, 3)),
        "f": st.one_of(st.none(), st.sampled_from(FLOATS)),
        "flag": st.one_of(st.none(), st.booleans()),
        "tag": st.one_of(st.none(), st.sampled_from(TAGS)),
    }
)
bound_n = st.one_of(st.none(), st.integers(-4, 4))
bound_f = st.one_of(st.none(), st.sampled_from([*FLOATS, 1.0]))
prefix_st = st.text(alphabet="arepcωa.b中x-", max_size=3)


def _cut(word, i, j, wild, lead):
    """A like() pattern made from a word: a wildcard replacing the bytes i..j."""
    i, j = min(i, len(word)), min(max(i, j), len(word))
    return ("*" if lead else "") + word[:i] + wild + word[j:]


like_st = st.one_of(
    st.builds(
        _cut,
        st.sampled_from(VOCAB + TAGS),
        st.integers(0, 4),
        st.integers(0, 5),
        st.sampled_from(["?", "*", "+", "!", "", "??"]),
        st.booleans(),
    ),
    st.lists(st.sampled_from(LIKE_CHARS), max_size=4).map("".join),
)
op_st = st.one_of(
    st.tuples(st.just("tok"), st.sampled_from([w.lower() for w in VOCAB] + ["zz"])),
    st.tuples(st.just("list"), st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3)),
    st.tuples(st.just("range"), st.just("n"), bound_n, bound_n),
    st.tuples(st.just("range"), st.just("f"), bound_f, bound_f),
    st.tuples(st.just("eq"), st.integers(-3, 3)),
    st.tuples(st.just("flag"), st.booleans()),
    st.tuples(st.just("tag"), st.sampled_from([*TAGS, "zz"])),
    st.tuples(st.just("pre"), st.sampled_from(["words", "tag"]), prefix_st),
    st.tuples(st.just("suf"), st.sampled_from(["words", "tag"]), prefix_st),
    st.tuples(st.just("like"), st.sampled_from(["words", "tag"]), like_st),
    st.tuples(st.just("like"), st.sampled_from(["words", "tag"]), like_st),
)
query_st = st.fixed_dictionaries(
    {
        "ops": st.lists(op_st, min_size=1, max_size=3),
        "order": st.one_of(st.none(), st.tuples(st.sampled_from(["n", "f"]), st.booleans())),
        "limit": st.one_of(st.none(), st.tuples(st.integers(-1, 6), st.integers(0, 6))),
    }
)


def entries(row, col):
    """Prefix/suffix entries of a row's column, as the index holds them."""
    if col == "words":
        return FULL_TEXT(" ".join(row["words"])) or [] if row["words"] else []
    return [row["tag"].lower()] if row["tag"] else []


def like_regex(pattern):
    out = b"^"
    for ch in pattern:
        wild = {"?": b".?", "*": b".*?", "+": b".+", "!": b"."}.get(ch)
        out += wild if wild is not None else re.escape(ch.encode("utf-8"))
    return re.compile(out, re.DOTALL)


def matches(row, op):
    kind = op[0]
    tokens = FULL_TEXT(" ".join(row["words"])) or [] if row["words"] else []
    if kind == "tok":
        return op[1] in tokens
    if kind == "list":
        return any(w.lower() in tokens for w in op[1])
    if kind == "range":
        value = row[op[1]]
        return (
            value is not None
            and (op[2] is None or value >= op[2])
            and (op[3] is None or value <= op[3])
        )
    if kind == "eq":
        return row["n"] == op[1]
    if kind == "flag":
        return row["flag"] is op[1]
    if kind == "tag":
        return row["tag"] is not None and row["tag"].lower() == op[1].lower()
    col, value = op[1], op[2].lower()
    items = entries(row, col)
    if kind == "pre":
        return any(e.encode().startswith(value.encode()) for e in items)
    if kind == "suf":
        return any(e.encode().endswith(value.encode()) for e in items)
    regex = like_regex(value)
    return any(regex.match(e.encode()) for e in items)


def apply(query, op):
    kind = op[0]
    if kind == "tok":
        return query.filter(words=op[1])
    if kind == "list":
        return query.filter(words=list(op[1]))
    if kind == "range":
        return query.filter(**{op[1]: (op[2], op[3])})
    if kind == "eq":
        return query.filter(n=op[1])
    if kind == "flag":
        return query.filter(flag=op[1])
    if kind == "tag":
        return query.filter(tag=op[1])
    if kind == "pre":
        return query.startswith(**{op[1]: op[2]})
    if kind == "suf":
        return query.endswith(**{op[1]: op[2]})
    return query.like(**{op[1]: op[2]})


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(entity_st, max_size=14), spec=query_st)
def test_random_queries_match_the_oracle(conn, rows, spec):
    """Results, order and counts of random filter chains equal the oracle's."""
    flush(conn)
    rom.session.rollback()
    Thing = rom.columns.MODELS.get("Thing")
    if Thing is None:

        class Thing(rom.Model):
            words = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
            n = rom.Integer(index=True)
            f = rom.Float(index=True)
            flag = rom.Boolean(index=True)
            tag = rom.Text(index=True, keygen=rom.IDENTITY_CI, prefix=True, suffix=True)

    by_id = {}
    for row in rows:
        data = dict(row, words=" ".join(row["words"]) if row["words"] else None)
        entity = Thing(**data)
        by_id[entity.id] = row
    rom.session.commit()
    rom.session.rollback()

    query = Thing.query
    for op in spec["ops"]:
        query = apply(query, op)
    expected = [pk for pk, row in by_id.items() if all(matches(row, op) for op in spec["ops"])]
    order = spec["order"]
    if order is not None:
        col, desc = order
        query = query.order_by(("-" if desc else "") + col)
        expected = [pk for pk in expected if by_id[pk][col] is not None]
        sign = -1 if desc else 1
        expected.sort(key=lambda pk: (sign * by_id[pk][col], str(pk)))
    assert query.count() == len(expected)
    if spec["limit"] is not None:
        offset, count = spec["limit"]
        query = query.limit(offset, count)
        start = max(offset, 0)
        window = expected[start : start + count] if order is not None else None
        size = len(expected[start : start + count])
    else:
        window = expected if order is not None else None
        size = len(expected)
    got = [e.id for e in query.all()]
    if window is not None:
        assert got == window
    else:
        assert len(got) == size
        assert set(got) <= set(expected)
        if spec["limit"] is None:
            assert sorted(got) == sorted(expected)
    first = query.first()
    if size:
        assert first is not None and first.id in expected
        if window is not None:
            assert first.id == window[0]
    else:
        assert first is None


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    words=st.lists(st.text(alphabet="ab.%é$", max_size=4), min_size=1, max_size=8),
    pattern=st.text(alphabet="ab.%é$?*+!", max_size=5),
    suffix=st.text(alphabet="ab.é", max_size=3),
)
def test_random_patterns_match_the_oracle(conn, words, pattern, suffix):
    """like(), startswith() and endswith() over random entries equal regex/bytes oracles."""
    flush(conn)
    rom.session.rollback()
    Entry = rom.columns.MODELS.get("Entry")
    if Entry is None:

        class Entry(rom.Model):
            w = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True, suffix=True)

    for word in words:
        Entry(w=word)
    rom.session.commit()
    rom.session.rollback()
    stored = [w for w in words if w]  # IDENTITY indexes nothing for ''
    regex = like_regex(pattern)
    want = sorted(w for w in stored if regex.match(w.encode()))
    assert sorted(e.w for e in Entry.query.like(w=pattern).all()) == want
    want = sorted(w for w in stored if w.encode().startswith(suffix.encode()))
    assert sorted(e.w for e in Entry.query.startswith(w=suffix).all()) == want
    want = sorted(w for w in stored if w.endswith(suffix))
    assert sorted(e.w for e in Entry.query.endswith(w=suffix).all()) == want
