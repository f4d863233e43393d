"""Bad input and injection: fuzz every column type and every query argument.

Only rom exceptions (``rom.exceptions.ORMError`` subclasses, plus the plain exceptions the
spec documents for specific calls) may escape -- never a ``redis.ResponseError`` or a Lua
error.  Values full of key, glob, JSON and Lua pattern syntax, NUL bytes, newlines, huge
strings and non-UTF-8 bytes must round-trip, be found by exactly their own value, and never
create keys outside the model or entries verify_indexes objects to.  The scripts Redis runs
are always rom's packaged ones: values reach Lua only through ARGV.

CI runs about 200 cases; ``ROM_LONG=1`` runs more than 10,000.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import flush
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rom
from rom import util
from rom.encoding import dt2ts
from rom.query import NOT_NULL

LONG = os.environ.get("ROM_LONG", "") not in ("", "0")
ROM_DIR = Path(rom.__file__).parent


def fuzz_settings(ci: int, long: int) -> settings:
    return settings(
        max_examples=long if LONG else ci,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


# -- strategies --------------------------------------------------------------------------------

SPECIAL = [
    *":{}*?[]\\\0\n\r\t %.-^$()+!\"',",
    "a",
    "b",
    "Z",
    "é",
    "日",
    "\x7f",
    "\x80",
    "\uffff",
    "😀",
    "%z",
    "%d+",
]
special_text = st.lists(st.sampled_from(SPECIAL), max_size=10).map("".join)
huge_text = st.sampled_from(["x" * 100_000, "日:{}*" * 20_000])
texts = st.one_of(special_text, st.text(max_size=20), huge_text)
binaries = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"\xff\xfe\x00:{}*?[]", bytes(range(256)), b"\xc3\x28", b"\x80" * 5000]),
)
zones = st.sampled_from([datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=-7))])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**300), 2**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    texts,
    binaries,
    st.datetimes(),
    st.datetimes(timezones=zones),
    st.dates(),
    st.times(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.tuples(scalars, scalars),
    st.dictionaries(st.text(max_size=4), st.integers() | special_text, max_size=3),
    st.sets(st.integers(), max_size=2),
    st.just(NOT_NULL),
    st.just(object()),
)


def everything_model() -> Any:
    """A model with every column type, indexed every way rom allows."""

    class Everything(rom.Model):
        i = rom.Integer(index=True)
        iu = rom.Integer(unique=True)
        f = rom.Float(index=True)
        d = rom.Decimal(index=True)
        b = rom.Boolean(index=True)
        dt = rom.DateTime(index=True)
        da = rom.Date(index=True)
        t = rom.Time(index=True)
        s = rom.String(index=True, keygen=rom.IDENTITY_STRING, prefix=True, suffix=True)
        su = rom.String(unique=True)
        tx = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        ti = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True, suffix=True)
        tu = rom.Text(unique=True)
        ts = rom.Text(index=True, keygen=rom.SIMPLE_CI, prefix=True)
        j = rom.Json()

    return Everything


COLUMNS = ["i", "iu", "f", "d", "b", "dt", "da", "t", "s", "su", "tx", "ti", "tu", "ts", "j"]
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
#: values each column accepts, chosen to be awkward (syntax characters, extremes)
GOOD = {
    "i": st.integers() | st.integers(-(2**300), 2**300) | st.booleans(),
    "iu": st.integers(-(2**100), 2**100),
    "f": finite | st.integers(-(2**60), 2**60),
    "d": st.decimals(allow_nan=False, allow_infinity=False) | st.integers(),
    "b": st.booleans(),
    "dt": st.datetimes() | st.datetimes(timezones=zones),
    "da": st.dates(),
    "t": st.times(),
    "s": binaries,
    "su": binaries,
    "tx": texts,
    "ti": texts,
    "tu": texts,
    "ts": texts,
    "j": st.lists(json_values, max_size=3) | st.dictionaries(texts, json_values, max_size=3),
}
rows = st.fixed_dictionaries({}, optional=GOOD)
garbage = st.none() | st.tuples(st.sampled_from(COLUMNS), values, st.booleans())

#: plain exceptions the spec documents for constructing/assigning a column value
DOCUMENTED_VALUE_ERRORS = (UnicodeEncodeError,)


def allowed(err: BaseException, documented: tuple[type[BaseException], ...] = ()) -> bool:
    """A rom exception that does not carry a Redis or Lua error, or a documented one."""
    if isinstance(err, rom.ORMError):
        text = str(err)
        return not any(s in text for s in ("Redis refused", "user_script", "ERR ", "WRONGTYPE"))
    return isinstance(err, documented)


def check_keyspace(conn: Any, model: Any) -> None:
    """Every key belongs to the model and verify_indexes finds nothing wrong."""
    stray = [k for k in conn.keys("*") if not k.startswith(model._namespace.encode() + b":")]
    assert stray == []
    report = util.verify_indexes(model)
    assert report.problems == 0, (report.summary(), report.examples)


# -- the package source ------------------------------------------------------------------------


def test_no_pickle_eval_or_exec_in_the_package():
    """rom never unpickles, evals or execs anything, and its Lua never compiles code."""
    python_calls = re.compile(r"(?<![\w.])(eval|exec|compile)\s*\(|\bpickle\b|\bmarshal\b")
    lua_calls = re.compile(r"\b(loadstring|load|dofile|loadfile)\s*\(")
    found = []
    for path in ROM_DIR.rglob("*.py"):
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if python_calls.search(line):
                found.append(f"{path.name}:{n}: {line.strip()}")
    for path in ROM_DIR.rglob("*.lua"):
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if lua_calls.search(line.split("--", 1)[0]):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == []


def test_the_source_check_can_fail(tmp_path):
    """The patterns of the source check do match what they are meant to catch."""
    python_calls = re.compile(r"(?<![\w.])(eval|exec|compile)\s*\(|\bpickle\b|\bmarshal\b")
    assert python_calls.search("x = eval(text)")
    assert python_calls.search("import pickle")
    assert not python_calls.search("conn.eval(source, 0)")


def packaged_scripts() -> tuple[set[str], set[bytes]]:
    sources = {p.read_text("utf-8") for p in (ROM_DIR / "lua").glob("*.lua")}
    return {hashlib.sha1(s.encode()).hexdigest() for s in sources}, {s.encode() for s in sources}


@pytest.fixture
def script_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes]]:
    """Records every EVAL / EVALSHA sent: (command, script or sha)."""
    seen: list[tuple[str, bytes]] = []

    def spy(original: Any) -> Any:
        def pack(self: Any, *args: Any) -> Any:
            name = args[0] if isinstance(args[0], str) else args[0].decode()
            if name.upper() in ("EVAL", "EVALSHA"):
                body = args[1] if isinstance(args[1], bytes) else str(args[1]).encode()
                seen.append((name.upper(), body))
            return original(self, *args)

        return pack

    for packer in (redis.connection.HiredisRespSerializer, redis.connection.PythonRespSerializer):
        monkeypatch.setattr(packer, "pack", spy(packer.pack))
    return seen


# -- columns -----------------------------------------------------------------------------------


def same_value(attr: str, mine: Any, loaded: Any) -> bool:
    """Whether a loaded value is the value that was saved (per column semantics)."""
    if attr in ("f",):
        return float(mine) == loaded
    if attr == "dt":
        return abs(dt2ts(mine) - dt2ts(loaded)) <= 2e-6 * max(1.0, abs(dt2ts(mine)) / 1e9)
    if attr == "da":
        return loaded == (mine.date() if isinstance(mine, datetime.datetime) else mine)
    if attr == "t":
        return loaded == mine.replace(tzinfo=None)
    if attr == "j":
        return json.dumps(loaded, sort_keys=True) == json.dumps(mine, sort_keys=True)
    return bool(loaded == mine)


@given(data=rows, bad=garbage)
@fuzz_settings(ci=120, long=6000)
def test_every_column_type(conn, script_spy, data, bad):
    """Awkward values of every column type round-trip exactly and are found by their own
    value; any value for any column (given to the constructor or assigned later) gives a
    rom exception or such a save."""
    flush(util.CONNECTION)
    rom.session.rollback()
    Everything = (
        everything_model()
        if "Everything" not in rom.columns.MODELS
        else (rom.columns.MODELS["Everything"])
    )
    if bad is not None and not bad[2]:
        data = {**data, bad[0]: bad[1]}
    try:
        entity = Everything(**data)
    except BaseException as err:
        assert bad is not None, repr(err)
        assert allowed(err, (*DOCUMENTED_VALUE_ERRORS, AttributeError)), repr(err)
        return
    if bad is not None and bad[2]:
        try:
            setattr(entity, bad[0], bad[1])
        except BaseException as err:
            assert allowed(err), repr(err)
    try:
        entity.save()
    except BaseException as err:
        assert bad is not None, repr(err)
        assert allowed(err), repr(err)
        check_keyspace(conn, Everything)
        assert not conn.exists(f"Everything:{entity.id}")  # nothing partial
        return
    rom.session.rollback()
    raw = conn.hgetall(f"Everything:{entity.id}")
    loaded = Everything._from_hash(raw, add=False)
    for attr in COLUMNS:
        mine, back = entity._data.get(attr), loaded._data.get(attr)
        assert (mine is None) == (back is None), attr
        if mine is not None:
            assert same_value(attr, mine, back), (attr, mine, back)
    for attr in ("iu", "su", "tu"):
        value = entity._data.get(attr)
        if value is not None and value != "" and value != b"":
            found = Everything.get_by(**{attr: value})
            assert found is not None and found.id == entity.id, attr
    if entity.ti:
        assert [x.id for x in Everything.query.filter(ti=entity.ti).all()] == [entity.id]
        assert entity.id in {x.id for x in Everything.query.startswith(ti=entity.ti).all()}
        assert entity.id in {x.id for x in Everything.query.endswith(ti=entity.ti).all()}
    if entity.s:
        assert [x.id for x in Everything.query.filter(s=entity.s).all()] == [entity.id]
    check_keyspace(conn, Everything)
    shas, sources = packaged_scripts()
    for command, body in script_spy:
        assert (body.decode() in shas) if command == "EVALSHA" else (body in sources)


# -- queries -----------------------------------------------------------------------------------


def search_model() -> Any:
    class Doc(rom.Model):
        n = rom.Integer(index=True)
        tag = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True, suffix=True)
        words = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        code = rom.Text(unique=True)
        raw = rom.String(index=True, keygen=rom.IDENTITY_STRING)
        geo_index = [rom.GeoIndex("here", lambda d: {"lon": 1.0, "lat": 2.0})]

    return Doc


names = st.one_of(
    st.sampled_from(["n", "tag", "words", "code", "raw", "id", "here", "-n", "n:x", "tag:"]),
    special_text,
)
limits = st.one_of(st.integers(-5, 5), st.none(), st.floats(), special_text, st.booleans())


def like_regex(pattern: str) -> re.Pattern[bytes]:
    """The meaning of a like() pattern over prefix entries, as a bytes regex."""
    wild = {"?": b".?", "*": b".*?", "+": b".+", "!": b"."}
    out = b"".join(wild.get(ch) or re.escape(ch.encode("utf-8")) for ch in pattern)
    return re.compile(out, re.DOTALL)


def run(documented: tuple[type[BaseException], ...], call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, or ``None`` after an allowed exception."""
    try:
        return call(*args, **kwargs)
    except BaseException as err:
        assert allowed(err, documented), repr(err)
        return None


def executed(query: Any) -> None:
    """Run a query every way; only allowed exceptions may escape."""
    for result in (query.all, query.count, query.first):
        run((), result)


@pytest.mark.filterwarnings("ignore:Ordering by column:UserWarning")  # rom warns, as 1.x
@given(
    tags=st.lists(special_text, max_size=6),
    ops=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "filter",
                    "startswith",
                    "endswith",
                    "like",
                    "order_by",
                    "limit",
                    "get_by",
                    "near",
                    "select",
                    "cached",
                    "oracle",
                ]
            ),
            names,
            values,
            limits,
            limits,
        ),
        max_size=6,
    ),
)
@fuzz_settings(ci=80, long=5000)
def test_every_query_argument(conn, script_spy, tags, ops):
    """Any query argument: a rom exception (or a documented ValueError) or a right answer."""
    flush(util.CONNECTION)
    rom.session.rollback()
    Doc = search_model() if "Doc" not in rom.columns.MODELS else rom.columns.MODELS["Doc"]
    stored: dict[int, str] = {}
    for i, tag in enumerate(tags):
        doc = Doc(n=i, tag=tag, words=tag, code=tag or None, raw=tag.encode("utf-8"))
        try:
            doc.save()
            stored[doc.id] = tag
        except rom.UniqueKeyViolation:
            pass
    rom.session.rollback()
    query = Doc.query
    for op, name, value, a, b in ops:
        if op == "filter":
            query = run((), query.filter, **{name: value}) or query
        elif op in ("startswith", "endswith", "like"):
            query = run((), getattr(query, op), **{name: value}) or query
        elif op == "order_by":
            query = run((), query.order_by, name) or query
        elif op == "limit":
            query = run((), query.limit, a, b) or query
        elif op == "get_by":
            run((), Doc.get_by, **{name: value})
            run((), Doc.get_by, **{name: value, "_limit": a})
        elif op == "near":
            near = run((ValueError,), query.near, name, a, b, value, name)
            if near is not None:
                executed(near)
        elif op == "select":
            selected = run((), query.select, name, value)
            if selected is not None:
                executed(selected)
        elif op == "cached":
            key = run((), query.cached_result, a)
            if key is not None:
                conn.delete(key)
        elif isinstance(value, str) and stored:
            # right answers for values full of syntax: equality, prefixes, suffixes, like
            pick = stored[sorted(stored)[len(value) % len(stored)]]
            part = pick[: len(value) % (len(pick) + 1)]
            assert {x.id for x in Doc.query.filter(tag=pick).all()} == {
                k
                for k, v in stored.items()
                if v and v == pick  # '' has no index entry
            }
            assert {x.id for x in Doc.query.startswith(tag=part).all()} == {
                k for k, v in stored.items() if v and v.startswith(part)
            }
            assert {x.id for x in Doc.query.endswith(tag=part).all()} == {
                k for k, v in stored.items() if v and v.endswith(part)
            }
            pattern = part + value[:3]
            regex = like_regex(pattern)
            assert {x.id for x in Doc.query.like(tag=pattern).all()} == {
                k for k, v in stored.items() if v and regex.match(v.encode("utf-8"))
            }, pattern
            found = Doc.get_by(code=pick) if pick else None
            assert (found.id if found else None) == (
                next((k for k, v in stored.items() if v == pick), None) if pick else None
            )
        executed(query)
    check_keyspace(conn, Doc)
    shas, sources = packaged_scripts()
    for command, body in script_spy:
        assert (body.decode() in shas) if command == "EVALSHA" else (body in sources)


@given(value=values)
@fuzz_settings(ci=30, long=1000)
def test_model_get_ids(conn, value):
    """Model.get with any id: entities, None, or what int() raises for a non-id."""
    rom.session.rollback()
    Doc = search_model() if "Doc" not in rom.columns.MODELS else rom.columns.MODELS["Doc"]
    # ids go through int(): ValueError, TypeError or (infinite numbers) OverflowError
    run((ValueError, TypeError, OverflowError), Doc.get, value)


# -- bugs the fuzzing found (in rom/query.py) --------------------------------------------------


def test_select_rejects_non_text_columns(conn):
    """select() with something that is not a column name raises QueryError."""
    Doc = search_model()
    with pytest.raises(rom.QueryError):
        Doc.query.select("n", ["tag"])


def test_cached_result_rejects_infinite_timeouts(conn):
    """cached_result() with an infinite timeout raises QueryError."""
    Doc = search_model()
    with pytest.raises(rom.QueryError):
        Doc.query.filter(n=(1, 2)).cached_result(float("inf"))
