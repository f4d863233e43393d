"""Built-in keygens produce rom 1.x's exact index entries (API.md §8.2)."""

from __future__ import annotations

import datetime
import decimal

import pytest

import rom
from rom import keygens, util


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Hello, World! foo-bar  'quoted' ...", ["foo-bar", "hello", "quoted", "world"]),
        (b"Caf\xe9 BAR", ["bar", "café"]),
        ("ÉTÉ été", ["été"]),
        (0, ["0"]),
        (1.5, ["1.5"]),
        (1e100, ["1e+100"]),
        ("  ", []),
        ("!!! ...", []),
        ("a\tb\nc\u3000d", ["a", "b", "c", "d"]),
        ("«guillemets»", ["«guillemets»"]),
        ("(x) [y] {z}", ["x", "y", "z"]),
    ],
)
def test_full_text(value, expected):
    """FULL_TEXT splits on whitespace, lowercases, strips ASCII punctuation, sorts, dedups."""
    assert util.FULL_TEXT(value) == expected


@pytest.mark.parametrize("value", [None, ""])
def test_full_text_empty(value):
    """FULL_TEXT of None or '' is None."""
    assert util.FULL_TEXT(value) is None


def test_simple():
    """SIMPLE scores the first 7 bytes; falsy values give None."""
    assert util.SIMPLE("Hello") == {"": 6.431660051707085e-307}
    assert util.SIMPLE(b"Hello") == {"": 6.431660051707085e-307}
    assert util.SIMPLE(b"\xe9") == {"": util._prefix_score("\xe9")}
    assert util.SIMPLE(5) == {"": util._prefix_score("5")}
    for falsy in (None, "", b"", 0):
        assert util.SIMPLE(falsy) is None


@pytest.mark.parametrize("keygen", [util.SIMPLE_CI, util.CASE_INSENSITIVE])
def test_simple_ci(keygen):
    """SIMPLE_CI and CASE_INSENSITIVE score the lowercased value."""
    assert keygen("HeLLo") == {"": 2.7088032818150034e-306}
    assert keygen("hello") == util.SIMPLE("hello")
    assert keygen("") is None and keygen(None) is None


def test_identity():
    """IDENTITY returns the whole value (str/bytes as is, others str())."""
    assert util.IDENTITY("Hello There") == ["Hello There"]
    assert util.IDENTITY(b"\xff") == [b"\xff"]
    assert util.IDENTITY(5) == ["5"]
    assert util.IDENTITY("") is None and util.IDENTITY(None) is None and util.IDENTITY(0) is None


def test_identity_ci():
    """IDENTITY_CI returns the whole lowercased value."""
    assert util.IDENTITY_CI("Hello There") == ["hello there"]
    assert util.IDENTITY_CI("ÉTÉ") == ["été"]
    assert util.IDENTITY_CI(b"ABC") == [b"abc"]
    assert util.IDENTITY_CI("") is None


def test_identity_string():
    """IDENTITY_STRING(_CI) return bytes (str is Latin-1 encoded); _CI lowercases ASCII."""
    assert util.IDENTITY_STRING(b"A\xc9") == [b"A\xc9"]
    assert util.IDENTITY_STRING("A\xc9") == [b"A\xc9"]
    assert util.IDENTITY_STRING_CI(b"A\xc9") == [b"a\xc9"]
    assert util.IDENTITY_STRING(b"") is None and util.IDENTITY_STRING_CI(None) is None


def test_numeric_and_boolean_keygens():
    """The default numeric keygen gives the score text; the boolean one a token."""
    assert keygens._numeric_keygen(5) == {"": "5"}
    assert keygens._numeric_keygen(1.5) == {"": "1.5"}
    assert keygens._numeric_keygen(decimal.Decimal("2.50")) == {"": "2.50"}
    assert keygens._numeric_keygen(datetime.datetime(2020, 1, 2, 3, 4, 5, 600000)) == {
        "": "1577934245.6"
    }
    assert keygens._numeric_keygen(datetime.date(2020, 1, 2)) == {"": "1577923200.0"}
    assert keygens._numeric_keygen(datetime.time(1, 2, 3, 400000)) == {"": "3723.4"}
    assert keygens._numeric_keygen(None) is None
    assert keygens._boolean_keygen(True) == ["True"]
    assert keygens._boolean_keygen(0) == ["False"]


def test_keygen_index_entries_in_redis(conn):
    """Each built-in keygen produces the token keys of STORAGE.md §4.1."""

    class K(rom.Model):
        tx = rom.Text(index=True, keygen=rom.FULL_TEXT)
        ide = rom.Text(index=True, keygen=rom.IDENTITY)
        idci = rom.Text(index=True, keygen=rom.IDENTITY_CI)
        ids = rom.String(index=True, keygen=rom.IDENTITY_STRING)
        idsci = rom.String(index=True, keygen=rom.IDENTITY_STRING_CI)
        s = rom.String(index=True, keygen=rom.FULL_TEXT)
        b = rom.Boolean(index=True)
        si = rom.Text(index=True, keygen=rom.SIMPLE)

    x = K(
        tx="Café Society",
        ide="Hello There",
        idci="Hello There",
        ids=b"Caf\xe9",
        idsci=b"Caf\xe9",
        s=b"Caf\xe9",
        b=False,
        si="Hello",
    )
    x.save()
    keys = {k.decode() for k in conn.keys("*")}
    assert keys == {
        "K:1",
        "K:id:",
        "K:tx:café:idx",
        "K:tx:society:idx",
        "K:ide:Hello There:idx",
        "K:idci:hello there:idx",
        "K:ids:Café:idx",
        "K:idsci:café:idx",
        "K:s:café:idx",
        "K:b:False:idx",
        "K:si:idx",
    }
    assert conn.zscore("K:si:idx", 1) == 6.431660051707085e-307
