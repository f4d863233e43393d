"""Column definitions, conversions and storage (API.md §3, STORAGE.md §3.2)."""

from __future__ import annotations

import datetime
import decimal
import warnings

import pytest

import rom
from rom import columns

UTC = datetime.timezone.utc


def kg(value):
    """A custom list keygen."""
    return [str(value)] if value is not None else None


def kg2(attr, data):
    """A custom keygen2."""
    return [str(data.get("a"))]


def keyspace(conn):
    """Every key and its content, to compare before/after a failed operation."""
    out = {}
    for key in conn.keys("*"):
        kind = conn.type(key)
        if kind == b"hash":
            out[key] = conn.hgetall(key)
        elif kind == b"set":
            out[key] = conn.smembers(key)
        elif kind == b"zset":
            out[key] = conn.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = conn.get(key) if kind == b"string" else kind
    return out


# -- definition-time rules (API.md §3.2) ---------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rom.Integer(keygen=kg), "Explicit keygen"),
        (lambda: rom.Text(keygen2=kg2), "Explicit keygen"),
        (lambda: rom.Column(keygen=kg), "Explicit keygen"),  # rule 1 before rule 2
        (lambda: rom.Column(), "_allowed"),
        (lambda: rom.Column(unique=True), "_allowed"),  # rule 2 before rule 3
        (lambda: rom.Json(unique=True), "Unique columns can only be strings or integers"),
        (lambda: rom.Decimal(unique=True), "Unique columns can only be strings or integers"),
        (lambda: rom.DateTime(unique=True), "Unique columns can only be strings or integers"),
        (lambda: rom.Time(unique=True), "Unique columns can only be strings or integers"),
        # rule 3 before rule 4
        (lambda: rom.Json(unique=True, keygen=kg, keygen2=kg2), "Unique columns"),
        (lambda: rom.Integer(index=True, keygen=kg, keygen2=kg2), "one of keygen or keygen2"),
        (lambda: rom.Json(index=True), "must provide keygen"),
        (lambda: rom.Text(index=True), "FULL_TEXT, SIMPLE, SIMPLE_CI, IDENTITY, IDENTITY_CI"),
        (lambda: rom.String(index=True), "CASE_INSENSITIVE"),
        (lambda: rom.Text(index=True, prefix=True), "keygen"),
    ],
)
def test_definition_errors(make, message):
    """Invalid column definitions raise ColumnError, checked in rom's order."""
    with pytest.raises(rom.ColumnError, match=message):
        make()


def test_valid_definitions_and_default_keygens():
    """Valid definitions get rom's default keygens (rules 5, 6 and 8)."""
    from rom import keygens

    assert rom.Boolean(index=True)._keygen is keygens._boolean_keygen
    assert rom.Integer(index=True)._keygen is keygens._numeric_keygen
    assert rom.DateTime(index=True)._keygen is keygens._numeric_keygen
    assert rom.Integer(prefix=True)._keygen is rom.FULL_TEXT
    assert rom.Json(index=True, keygen2=kg2)._keygen is kg2
    assert rom.Text(index=True, keygen2=kg2)._keygen is kg2
    assert rom.Json(index=True, keygen=kg)._keygen is kg
    assert rom.Integer(unique=True, keygen=kg)._keygen is kg
    assert rom.Text(index=True, keygen=rom.FULL_TEXT)._keygen is rom.FULL_TEXT
    assert rom.Integer()._keygen is None
    for make in (rom.Integer, rom.Text, rom.String, rom.Boolean):
        make(unique=True)  # bool counts as an integer type


def test_prefix_without_keygen_gets_whole_value_keygen():
    """prefix/suffix on a String/Text without keygen use the whole value (issue #2 quick start)."""
    assert rom.Text(suffix=True)._keygen is rom.IDENTITY
    assert rom.String(prefix=True)._keygen is rom.IDENTITY_STRING


def test_keygen_names_are_kept():
    """The column keeps the keygen function itself, so its __name__ is rom's."""
    col = rom.Text(index=True, keygen=rom.SIMPLE_CI)
    assert col._keygen.__name__ == "SIMPLE_CI"


# -- attribute semantics (API.md §3.3) -----------------------------------------------------


def make_all_model():
    class All(rom.Model):
        i = rom.Integer()
        f = rom.Float()
        d = rom.Decimal()
        b = rom.Boolean()
        dt = rom.DateTime()
        sdt = rom.SaferDateTime()
        da = rom.Date()
        t = rom.Time()
        s = rom.String()
        tx = rom.Text()
        j = rom.Json()

    return All


def test_class_attribute_access_raises():
    """Model.col raises AttributeError; the column object is in _columns."""
    All = make_all_model()
    assert not hasattr(All, "i")
    with pytest.raises(AttributeError):
        All.i
    assert isinstance(All._columns["i"], rom.Integer)


def test_unset_read_none_and_delete_semantics(conn):
    """Unset columns read None; del of an unset column is AttributeError; None clears."""
    All = make_all_model()
    x = All(i=5)
    assert x.f is None
    with pytest.raises(AttributeError):
        del x.f
    x.save()
    assert not x._modified
    x.f = None  # already unset: silently ignored, not a change
    assert not x._modified
    del x.i
    assert x.i is None and x._modified
    assert "i" not in x.to_dict()
    with pytest.raises(AttributeError):
        del x.i
    x.save()
    assert not conn.hexists(f"All:{x.id}", "i")


def test_required_columns(conn):
    """Required columns: MissingColumn at construction, InvalidOperation on clear."""

    class Req(rom.Model):
        a = rom.Integer(required=True)
        b = rom.Integer(required=True, default=None)  # default=None means no default
        c = rom.Integer(required=True, default=7)

    with pytest.raises(rom.MissingColumn, match="b"):
        Req(a=1)
    with pytest.raises(rom.MissingColumn, match="a"):
        Req(a=None, b=2)
    x = Req(a=1, b=2)
    assert x.c == 7
    with pytest.raises(rom.InvalidOperation):
        x.a = None
    with pytest.raises(rom.InvalidOperation):
        del x.c
    assert x.a == 1 and x.c == 7
    # not enforced when loading
    conn.hset("Req:99", mapping={"id": "99"})
    loaded = Req.get(99)
    assert loaded.a is None and loaded.c == 7


def test_defaults_plain_callable_and_mutable(conn):
    """Defaults: callables are called per entity, mutable defaults are copied."""
    counter = iter(range(100))

    class Dflt(rom.Model):
        n = rom.Integer(default=lambda: next(counter))
        j = rom.Json(default={"k": [1]})
        t = rom.Text(default="x")

    a, b = Dflt(), Dflt()
    assert (a.n, b.n) == (0, 1)
    a.j["k"].append(2)
    assert b.j == {"k": [1]}
    assert Dflt(t=None).t == "x"
    # applied when a loaded hash lacks the field
    conn.hset("Dflt:50", mapping={"id": "50"})
    loaded = Dflt.get(50)
    assert loaded.t == "x" and loaded.j == {"k": [1]}


def test_assignment_marks_modified_and_adds_to_session(conn):
    """Assigning a column marks the entity modified and (re-)adds it to the session."""
    All = make_all_model()
    x = All(i=1)
    x.save()
    rom.session.commit()
    assert rom.session.known == {}
    x.i = 2
    assert x._modified
    assert rom.session.known[x._pk] is x


# -- conversions (API.md §3.4) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "value", "expected"),
    [
        ("i", "5", 5),
        ("i", 5.7, 5),
        ("i", b"12", 12),
        ("i", True, 1),
        ("i", 1 << 256, 1 << 256),
        ("f", "1.5", 1.5),
        ("f", decimal.Decimal("1.5"), 1.5),
        ("f", 5, 5),
        ("d", 1.1, decimal.Decimal(1.1)),  # noqa: RUF032 - exact expansion wanted
        ("d", "2.50", decimal.Decimal("2.50")),
        ("d", 3, decimal.Decimal(3)),
        ("b", "0", True),
        ("b", "yes", True),
        ("b", "", False),
        ("b", 0, False),
        ("b", [], False),
        ("dt", 0, datetime.datetime(1970, 1, 1)),
        ("dt", "1577934245.6", datetime.datetime(2020, 1, 2, 3, 4, 5, 600000)),
        ("dt", -315521754.4, datetime.datetime(1960, 1, 2, 3, 4, 5, 600000)),
        ("da", 86400, datetime.date(1970, 1, 2)),
        ("da", datetime.datetime(2020, 1, 2, 3, 4), datetime.datetime(2020, 1, 2, 3, 4)),
        ("t", 3723.4, datetime.time(1, 2, 3, 400000)),
        ("t", "86399.999992", datetime.time(23, 59, 59, 999992)),
        ("tx", b"caf\xc3\xa9", "café"),
        ("j", '{"a": 1}', {"a": 1}),
        ("j", b"[1, 2]", [1, 2]),
        ("j", (1, 2), (1, 2)),
    ],
)
def test_assignment_conversions(attr, value, expected):
    """Assigned values are converted to the column type (table of API.md §3.4)."""
    All = make_all_model()
    x = All()
    setattr(x, attr, value)
    got = getattr(x, attr)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("i", "x"),
        ("i", "5.7"),
        ("i", float("inf")),
        ("i", []),
        ("f", "abc"),
        ("f", float("nan")),
        ("f", [1]),
        ("d", "abc"),
        ("d", decimal.Decimal("NaN")),
        ("d", [1]),
        ("dt", "yesterday"),
        ("dt", datetime.date(2020, 1, 1)),
        ("dt", float("inf")),
        ("sdt", 5),
        ("sdt", "1577934245.6"),
        ("sdt", datetime.date(2020, 1, 1)),
        ("da", "x"),
        ("t", "x"),
        ("t", datetime.datetime(2020, 1, 1)),
        ("s", "abc"),
        ("s", 5),
        ("tx", b"\xff"),
        ("tx", "\ud800"),
        ("tx", 5),
        ("j", "5"),
        ("j", 5),
        ("j", "not json"),
        ("j", {1, 2}),
    ],
)
def test_assignment_rejects_bad_values(attr, value):
    """Unconvertible values raise InvalidColumnValue naming the column; the value is kept."""
    All = make_all_model()
    x = All()
    with pytest.raises(rom.InvalidColumnValue, match=repr(attr)):
        setattr(x, attr, value)
    assert getattr(x, attr) is None
    if (attr, value) != ("s", "abc"):  # the constructor Latin-1-encodes str for String
        with pytest.raises(rom.InvalidColumnValue, match=repr(attr)):
            All(**{attr: value})


def test_construction_and_reload_round_trip(conn):
    """Every type keeps its value through save and reload."""
    All = make_all_model()
    values = dict(
        i=-(1 << 70),
        f=1e100,
        d=decimal.Decimal("-2.50"),
        b=True,
        dt=datetime.datetime(1901, 12, 13, 20, 45, 52, 1),
        sdt=datetime.datetime(2038, 1, 19, 3, 14, 8, 999999),
        da=datetime.date(1969, 12, 31),
        t=datetime.time(0, 0, 0, 1),
        s=bytes(range(256)),
        tx="snow ☃ \x00 nul",
        j={"z": [1, {"y": None}], "a": "é"},
    )
    x = All(**values)
    x.save()
    rom.session.rollback()
    y = All.get(x.id)
    assert y is not x
    for attr, value in values.items():
        assert getattr(y, attr) == value, attr
        assert type(getattr(y, attr)) is type(value), attr


def test_stored_texts(conn):
    """Each type is stored as rom 1.x's exact text (STORAGE.md §3.2)."""
    All = make_all_model()
    x = All(
        i=1 << 256,
        f=1e100,
        d=decimal.Decimal("1E+2"),
        b=True,
        dt=datetime.datetime(1960, 1, 2, 3, 4, 5, 600001),
        da=datetime.datetime(2020, 1, 2, 12),
        t=datetime.time(1, 2, 3, 400000),
        s=b"\x00\xff",
        tx="café",
        j=[{"b": 1, "a": [1.5, "\u20ac"]}],
    )
    x.save()
    raw = conn.hgetall(f"All:{x.id}")
    assert raw[b"i"] == str(1 << 256).encode()
    assert raw[b"f"] == b"1e+100"
    assert raw[b"d"] == b"1E+2"
    assert raw[b"b"] == b"1"
    assert raw[b"dt"] == b"-315521754.399999"
    assert raw[b"da"] == b"1577966400.0"
    assert raw[b"t"] == b"3723.4"
    assert raw[b"s"] == b"\x00\xc3\xbf"
    assert raw[b"tx"] == "café".encode()
    assert raw[b"j"] == b'[{"a": [1.5, "\\u20ac"], "b": 1}]'
    x.b = False
    x.save()
    assert conn.hget(f"All:{x.id}", "b") == b""


def test_integer_bool_is_stored_as_digit_and_rom_bools_load(conn):
    """Integer stores bools as '1'/'0' and loads the 'True'/'False' rom 1.1.2 wrote (bug 1)."""

    class Num(rom.Model):
        n = rom.Integer(index=True)

    x = Num(n=True)
    assert x.n == 1 and type(x.n) is int
    x.save()
    assert conn.hget(f"Num:{x.id}", "n") == b"1"
    x.n = False
    x.save()
    assert conn.hget(f"Num:{x.id}", "n") == b"0"
    assert conn.zscore("Num:n:idx", x.id) == 0.0
    conn.hset("Num:20", mapping={"id": "20", "n": "True"})
    conn.hset("Num:21", mapping={"id": "21", "n": "False"})
    assert [e.n for e in Num.get([20, 21])] == [1, 0]


def test_float_keeps_ints_until_reload(conn):
    """[ODD] a Float holding an int stays an int in memory, stored as '5', reloads as 5.0."""

    class Fl(rom.Model):
        f = rom.Float()

    x = Fl(f=5)
    assert x.f == 5 and type(x.f) is int
    x.save()
    assert conn.hget(f"Fl:{x.id}", "f") == b"5"
    rom.session.rollback()
    y = Fl.get(x.id)
    assert y.f == 5.0 and type(y.f) is float


def test_decimal_from_float_is_exact():
    """Decimal accepts floats with their exact binary expansion."""

    class Dec(rom.Model):
        d = rom.Decimal()

    assert Dec(d=1.1).d == decimal.Decimal(1.1)  # noqa: RUF032
    assert str(Dec(d="2.50").d) == "2.50"


def test_aware_datetimes_become_naive_utc(conn):
    """Aware datetimes are converted to naive UTC (rom 1.x failed at save)."""

    class Ev(rom.Model):
        at = rom.DateTime(index=True)
        day = rom.Date()

    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    x = Ev(at=datetime.datetime(2020, 1, 1, 2, 0, tzinfo=plus2))
    assert x.at == datetime.datetime(2020, 1, 1, 0, 0)
    assert x.at.tzinfo is None
    x.day = datetime.datetime(2020, 1, 1, 1, 0, tzinfo=plus2)
    assert x.day == datetime.datetime(2019, 12, 31, 23, 0)
    x.save()
    assert conn.hget(f"Ev:{x.id}", "at") == b"1577836800.0"
    assert conn.hget(f"Ev:{x.id}", "day") == b"1577833200.0"
    assert conn.zscore("Ev:at:idx", x.id) == 1577836800.0


def test_time_loads_rounded_not_truncated(conn):
    """Time reloads every microsecond exactly (bug 2: rom truncated)."""

    class Tm(rom.Model):
        t = rom.Time()

    bad = []
    for us in range(999_900, 1_000_000):
        value = datetime.time(23, 59, 59, us)
        x = Tm(t=value)
        x.save()
        rom.session.rollback()
        if Tm.get(x.id).t != value:
            bad.append(us)
    assert bad == []
    # rom-written, non-rounded texts load to the nearest microsecond
    conn.hset("Tm:900", mapping={"id": "900", "t": "3723.4000004"})
    assert Tm.get(900).t == datetime.time(1, 2, 3, 400000)


def test_time_tzinfo_is_not_stored(conn):
    """A Time's tzinfo is ignored in storage."""

    class Tm(rom.Model):
        t = rom.Time()

    x = Tm(t=datetime.time(1, 2, 3, tzinfo=UTC))
    x.save()
    assert conn.hget(f"Tm:{x.id}", "t") == b"3723.0"
    rom.session.rollback()
    assert Tm.get(x.id).t == datetime.time(1, 2, 3)


def test_safer_datetime_default_and_none(conn):
    """SaferDateTime applies its default and allows None when not required (bug 3)."""
    when = datetime.datetime(2001, 2, 3, 4, 5, 6)

    class Safe(rom.Model):
        a = rom.SaferDateTime(default=lambda: when)
        b = rom.SaferDateTime()
        c = rom.SaferDateTime(required=True, default=when)

    x = Safe()
    assert (x.a, x.b, x.c) == (when, None, when)
    x.save()
    copy = x.copy()
    assert copy.b is None and copy.a == when
    with pytest.raises(rom.InvalidColumnValue, match="'b'"):
        x.b = 981173106.0
    with pytest.raises(rom.InvalidColumnValue, match="'b'"):
        Safe(b="981173106.0")
    rom.session.rollback()
    conn.hset(f"Safe:{x.id}", "b", "981173106.0")
    assert Safe.get(x.id).b == when

    class SafeReq(rom.Model):
        a = rom.SaferDateTime(required=True)

    with pytest.raises(rom.MissingColumn):
        SafeReq()


def test_string_columns(conn):
    """String: str at construction (Latin-1), only bytes afterwards, binary round trip."""

    class Bin(rom.Model):
        s = rom.String()

    assert Bin(s="caf\xe9").s == b"caf\xe9"
    with pytest.raises(rom.InvalidColumnValue, match="'s'"):
        Bin(s="\u0100")
    x = Bin(s=b"\x00\xff\x80abc")
    with pytest.raises(rom.InvalidColumnValue, match="'s'"):
        x.s = "abc"
    assert x.s == b"\x00\xff\x80abc"
    x.save()
    assert conn.hget(f"Bin:{x.id}", "s") == b"\x00\xc3\xbf\xc2\x80abc"
    assert x.save() == 0  # unchanged bytes are not counted as a change
    rom.session.rollback()
    assert Bin.get(x.id).s == b"\x00\xff\x80abc"


def test_text_columns(conn):
    """Text keeps str, decodes UTF-8 bytes, rejects undecodable data and lone surrogates."""

    class Tx(rom.Model):
        t = rom.Text()

    assert Tx(t=b"\xe2\x98\x83").t == "☃"
    with pytest.raises(rom.InvalidColumnValue, match="'t'"):
        Tx(t="\udcff")
    x = Tx(t="\x00\u20ac")
    x.save()
    assert conn.hget(f"Tx:{x.id}", "t") == b"\x00\xe2\x82\xac"


def test_json_columns(conn):
    """Json: sorted-key text, str parsed, scalars rejected, tuples reload as lists."""

    class Doc(rom.Model):
        j = rom.Json()

    x = Doc(j={"b": (1, 2), "a": {"d": 1, "c": None}})
    x.save()
    assert conn.hget(f"Doc:{x.id}", "j") == b'{"a": {"c": null, "d": 1}, "b": [1, 2]}'
    rom.session.rollback()
    assert Doc.get(x.id).j == {"a": {"c": None, "d": 1}, "b": [1, 2]}
    assert Doc(j='["x"]').j == ["x"]
    for bad in ("5", 5, '"text"', None.__class__):
        with pytest.raises(rom.InvalidColumnValue, match="'j'"):
            Doc(j=bad)


def test_json_unserialisable_fails_at_save_writing_nothing(conn):
    """A non-serialisable Json value raises InvalidColumnValue at save; nothing is written."""

    class Doc(rom.Model):
        j = rom.Json()
        n = rom.Integer(index=True)

    ok = Doc(j=[1], n=1)
    ok.save()
    before = keyspace(conn)
    x = Doc(j={"a": object()}, n=5)
    with pytest.raises(rom.InvalidColumnValue, match="'j'"):
        x.save()
    ok.j = [datetime.date.today()]
    with pytest.raises(rom.InvalidColumnValue, match="'j'"):
        ok.save()
    with pytest.raises(rom.InvalidColumnValue):
        rom.session.commit()
    after = keyspace(conn)
    after.pop(b"Doc:id:")
    before.pop(b"Doc:id:")
    assert after == before


def test_bad_stored_data_raises_invalid_column_value(conn):
    """Loading a hash that cannot be converted raises InvalidColumnValue naming the column."""
    All = make_all_model()
    conn.hset("All:1", mapping={"id": "1", "i": "abc"})
    with pytest.raises(rom.InvalidColumnValue, match="'i'"):
        All.get(1)
    conn.hset("All:2", mapping={"i": "5"})
    with pytest.raises(rom.InvalidColumnValue, match="primary key"):
        All.get(2)
    conn.hset("All:3", mapping={"id": "3", "tx": b"\xff"})
    with pytest.raises(rom.InvalidColumnValue):
        All.get(3)


def test_unknown_fields_are_ignored_and_kept(conn):
    """Fields that are not columns are ignored on load and left alone by saves."""
    All = make_all_model()
    conn.hset("All:1", mapping={"id": "1", "i": "3", "legacy": "x"})
    x = All.get(1)
    x.i = 4
    x.save()
    assert conn.hgetall("All:1")[b"legacy"] == b"x"


# -- PrimaryKey (API.md §3.5) --------------------------------------------------------------


def test_primary_key_rules(conn):
    """Custom pk name, counter key, index=True score index, no assignment."""

    class Item(rom.Model):
        key = rom.PrimaryKey(index=True)
        name = rom.Text()

    assert Item._pkey == "key"
    assert list(Item._columns) == ["key", "name"]
    x = Item(name="a")
    assert x.key == 1 and conn.get("Item:key:") == b"1"
    x.save()
    assert conn.zscore("Item:key:idx", "1") == 1.0
    assert conn.hgetall("Item:1")[b"key"] == b"1"
    with pytest.raises(rom.InvalidColumnValue, match="primary key"):
        Item(key=5)
    with pytest.raises(rom.InvalidOperation):
        x.key = 2
    with pytest.raises(rom.InvalidOperation):
        del x.key
    assert Item(key=0).key == 2  # a falsy pk is ignored; a refused construction takes no id
    assert conn.get("Item:key:") == b"2"


def test_implicit_id_is_last():
    """Without a PrimaryKey the metaclass appends `id`."""

    class Plain(rom.Model):
        a = rom.Integer()
        b = rom.Text()

    assert list(Plain._columns) == ["a", "b", "id"]
    assert isinstance(Plain._columns["id"], rom.PrimaryKey)


# -- IndexOnly (API.md §3.7) ---------------------------------------------------------------


def test_index_only_definition():
    """IndexOnly needs column+keygen or keygen2 (ValueError); effective index flag."""
    with pytest.raises(ValueError):
        rom.IndexOnly()
    with pytest.raises(ValueError):
        rom.IndexOnly("a")
    assert rom.IndexOnly("a", kg)._index
    assert rom.IndexOnly(keygen2=kg2)._index
    assert not rom.IndexOnly("a", kg, unique=True)._index
    assert rom.IndexOnly("a", kg, unique=True, prefix=True)._index


def test_index_only_holds_no_data(conn):
    """IndexOnly: no data, None in to_dict, keygen runs even for None source data."""
    seen = []

    def words(value):
        seen.append(value)
        return ["none"] if value is None else [str(value).lower()]

    class Tagged(rom.Model):
        name = rom.Text()
        low = rom.IndexOnly("name", words)

    with pytest.raises(rom.InvalidColumnValue):
        Tagged(low="x")
    x = Tagged()
    assert x.to_dict() == {"name": None, "low": None, "id": x.id}
    with pytest.raises(rom.InvalidColumnValue):
        x.low = "x"
    x.low = None
    x.save()
    assert seen == [None]
    assert conn.smembers("Tagged:low:none:idx") == {b"1"}
    x.name = "Ann"
    x.save()
    assert not conn.exists("Tagged:low:none:idx")
    assert conn.smembers("Tagged:low:ann:idx") == {b"1"}
    assert b"low" not in conn.hgetall("Tagged:1")
    assert "low" in Tagged._index


def test_unique_index_only(conn):
    """A unique-only IndexOnly keeps the first keygen item in <ns>:<attr>:uidx."""

    def lowered(value):
        return [value.lower()] if value else None

    class Acc(rom.Model):
        email = rom.Text()
        email_ci = rom.IndexOnly("email", lowered, unique=True)

    a = Acc(email="Ann@X.org")
    a.save()
    assert conn.hgetall("Acc:email_ci:uidx") == {b"ann@x.org": b"1"}
    with pytest.raises(rom.UniqueKeyViolation):
        Acc(email="ANN@x.org").save()
    assert Acc.get_by(email_ci="ann@x.org") is a
    assert Acc.get_by(email_ci=b"ann@x.org") is a
    assert Acc.get_by(email_ci="nobody") is None
    a.email = "Bob@X.org"
    a.save()
    assert conn.hgetall("Acc:email_ci:uidx") == {b"bob@x.org": b"1"}
    Acc(email=None).save()  # an empty keygen result is no unique entry (CL 1.1.1)
    a.delete()
    assert not conn.exists("Acc:email_ci:uidx")


# -- UnsafeColumn (API.md §3.8) ------------------------------------------------------------


def test_unsafe_column(conn):
    """UnsafeColumn gives a proxy bound to <ns>:<pk>:<attr>, deleted with the entity."""

    class Box(rom.Model):
        n = rom.Integer()
        items = rom.UnsafeColumn()

    with pytest.raises(AttributeError):
        Box.items
    x = Box(n=1)
    x.save()
    x.items.rpush("a", "b")
    assert conn.lrange("Box:1:items", 0, -1) == [b"a", b"b"]
    assert x.items.llen() == 2
    assert x.items.set("other", "v", skip_key=True)
    assert conn.get("other") == b"v"
    assert x.items is x.items
    assert "items" not in x.to_dict()
    with pytest.raises(AttributeError):
        x.items = [1]
    del x.items
    assert not conn.exists("Box:1:items")
    x.items.sadd("z")
    assert x.save() == 0
    x.delete()
    assert not conn.exists("Box:1:items")
    with pytest.raises(ValueError):
        x.items
    assert Box(n=1).save() == 2  # UnsafeColumns do not count


@pytest.mark.parametrize("name", ["idx", "uidx", "pre", "suf", "geo"])
def test_unsafe_column_reserved_names(name):
    """UnsafeColumn cannot use a name rom uses for index keys (AssertionError)."""
    with pytest.raises(AssertionError):
        type("Bad", (rom.Model,), {name: rom.UnsafeColumn()})


# -- error paths: nothing written ----------------------------------------------------------


def test_bad_values_write_nothing(conn):
    """Every bad input is a rom exception naming the column and leaves Redis unchanged."""

    class Strict(rom.Model):
        email = rom.Text(unique=True, required=True)
        n = rom.Integer(index=True)
        tags = rom.Text(index=True, keygen=rom.FULL_TEXT)
        j = rom.Json()

    Strict(email="a@b", n=1, tags="x y").save()
    before = keyspace(conn)
    attempts = [
        lambda: Strict(email="b@b", n="many"),
        lambda: Strict(n=5),
        lambda: Strict(email="b@b", bogus=1),
        lambda: Strict(email="a@b", n=2).save(),
        lambda: Strict(email="c@c", j={"x": {1, 2}}).save(),
    ]
    for attempt in attempts:
        with pytest.raises(rom.ORMError):
            attempt()
    rom.session.rollback()
    after = keyspace(conn)
    # only the id counter may move (ids are allocated at construction)
    assert {k: v for k, v in after.items() if k != b"Strict:id:"} == {
        k: v for k, v in before.items() if k != b"Strict:id:"
    }


def test_keygen_errors_write_nothing(conn):
    """A keygen returning garbage raises ColumnError and writes nothing."""

    class Weird(rom.Model):
        a = rom.Integer(index=True, keygen=lambda v: 5 if v == 1 else [object()])
        b = rom.Integer(index=True, keygen=lambda v: {"": "not a number"})

    for kwargs in ({"a": 1}, {"a": 2}, {"b": 1}):
        x = Weird(**kwargs)
        with pytest.raises(rom.ColumnError, match=r"'[ab]'"):
            x.save()
    assert conn.keys("*") == [b"Weird:id:"]


def test_dict_keygen_prefix_warns(conn):
    """A custom dict keygen with prefix=True warns and indexes no prefix entries."""

    def scores(value):
        return {"": len(value)}

    class Warn(rom.Model):
        t = rom.Text(index=True, prefix=True, keygen=scores)

    x = Warn(t="abc")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x.save()
    assert any("Prefix indexes are currently not enabled" in str(w.message) for w in caught)
    assert conn.zscore("Warn:t:idx", x.id) == 3.0
    assert not conn.exists("Warn:t:pre")


def test_column_repr_and_registry():
    """Columns know their attribute name and model after class creation."""

    class Reg(rom.Model):
        a = rom.Integer()

    col = Reg._columns["a"]
    assert col._attr == "a" and col._model is Reg
    assert columns.MODELS["Reg"] is Reg
    assert sorted(columns.MODELS) == ["Model", "Reg"]


def test_scores_redis_would_refuse_write_nothing(conn):
    """Index scores beyond the double range or NaN are a ColumnError before any write."""

    class Sc(rom.Model):
        n = rom.Integer(index=True)
        d = rom.Decimal(index=True)
        f = rom.Float(index=True)
        k = rom.Text(index=True, keygen=lambda v: {"": v})
        bad = rom.Text(index=True, keygen=lambda v: ["\ud800" + v])

    attempts = [
        {"n": 1 << 1100},
        {"n": -(1 << 1100)},
        {"d": decimal.Decimal("1e400")},
        {"d": decimal.Decimal("1e-400")},
        {"k": "1e999"},
        {"k": "nan"},
        {"k": "twelve"},
        {"bad": "x"},
    ]
    for kwargs in attempts:
        x = Sc(**kwargs)
        with pytest.raises(rom.ColumnError, match=repr(next(iter(kwargs)))):
            x.save()
    assert conn.keys("*") == [b"Sc:id:"]
    ok = Sc(n=1 << 256, d=decimal.Decimal("2.50"), f=float("inf"), k=" 1_000 ")
    ok.save()
    assert conn.zscore("Sc:n:idx", ok.id) == float(1 << 256)
    assert conn.zscore("Sc:d:idx", ok.id) == 2.5
    assert conn.zscore("Sc:f:idx", ok.id) == float("inf")
    assert conn.zscore("Sc:k:idx", ok.id) == 1000.0
    assert conn.hget(f"Sc:{ok.id}", "n") == str(1 << 256).encode()


def test_huge_integers_are_stored_when_not_indexed(conn):
    """An unindexed Integer keeps any size (STORAGE.md §3.2)."""

    class Huge(rom.Model):
        n = rom.Integer()

    x = Huge(n=1 << 1100)
    x.save()
    rom.session.rollback()
    assert Huge.get(x.id).n == 1 << 1100
