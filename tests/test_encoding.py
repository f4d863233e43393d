"""Value encodings: prefix scores, timestamps, composite unique fields (STORAGE.md §3-4)."""

from __future__ import annotations

import datetime
import decimal
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rom import encoding, index, util


@pytest.mark.parametrize(
    ("value", "nxt", "n", "score"),
    [
        ("", False, 0, "2.2250738585072014e-308"),
        ("a", False, 28903092412586112, "2.0189796653424533e-306"),
        ("ab", False, 29016263040210144, "2.0547644456479423e-306"),
        ("ab", True, 29017406177862912, "2.0551259080752705e-306"),
        ("Hello", False, 21646939425687288, "6.431660051707085e-307"),
        ("hello", False, 31084683886939896, "2.7088032818150034e-306"),
        ("abcdefg", False, 29016707858160662, "2.054905097979465e-306"),
        ("abcdefgh", False, 29016707858160662, "2.054905097979465e-306"),
    ],
)
def test_prefix_score_table(value, nxt, n, score):
    """_prefix_score reproduces STORAGE.md §4.7's table bit for bit."""
    got = util._prefix_score(value, next=nxt)
    assert repr(got) == score
    assert got == util._bigint_to_float(n)
    bits = struct.unpack("<Q", struct.pack("<d", got))[0]
    assert bits == n + (1 << 52)


def test_prefix_score_bytes_and_str_agree():
    """A str is scored by its UTF-8 bytes."""
    assert util._prefix_score("é") == util._prefix_score(b"\xc3\xa9")
    assert util._prefix_score(b"\x00") > util._prefix_score(b"")


def test_max_prefix_score():
    """MAX_PREFIX_SCORE is the next-score of seven U+00FF characters."""
    assert repr(index.MAX_PREFIX_SCORE) == "1.7174966357818841e-304"
    assert index.MAX_PREFIX_SCORE == util._prefix_score("\xff" * 7, next=True)
    assert util._prefix_score(b"\xc4") > index.MAX_PREFIX_SCORE


@given(st.binary(max_size=9), st.binary(max_size=9))
def test_prefix_score_preserves_order(a, b):
    """Byte-wise order of the first 7 bytes is score order (shorter sorts first)."""
    sa, sb = util._prefix_score(a), util._prefix_score(b)
    if a[:7] < b[:7]:
        assert sa < sb
    elif a[:7] == b[:7]:
        assert sa == sb


@given(st.binary(min_size=0, max_size=6), st.binary(max_size=4))
def test_prefix_next_bounds_all_extensions(prefix, tail):
    """Every string starting with p scores in [score(p), score(p, next=True))."""
    value = prefix + tail
    assert util._prefix_score(prefix) <= util._prefix_score(value)
    assert util._prefix_score(value) < util._prefix_score(prefix, next=True)


def test_bigint_to_float():
    """_bigint_to_float maps n to the double with bit pattern n + 2**52."""
    assert util._bigint_to_float(0) == 2.2250738585072014e-308
    assert util._bigint_to_float(1) > util._bigint_to_float(0)


def test_datetime_converters():
    """dt2ts/ts2dt/t2ts/ts2t follow STORAGE.md §3.2 (naive UTC, pre-1970 negative)."""
    assert util.dt2ts(datetime.datetime(2020, 1, 2, 3, 4, 5, 600000)) == 1577934245.6
    assert repr(util.dt2ts(datetime.datetime(1960, 1, 2, 3, 4, 5, 600001))) == "-315521754.399999"
    assert util.dt2ts(datetime.date(2020, 1, 2)) == 1577923200.0
    assert util.ts2dt(-315521754.399999) == datetime.datetime(1960, 1, 2, 3, 4, 5, 600001)
    assert util.ts2dt(0).tzinfo is None
    assert util.t2ts(datetime.time(1, 2, 3, 400000)) == 3723.4
    assert util.ts2t(3723.4) == datetime.time(1, 2, 3, 400000)
    assert util.ts2t(86399.999992) == datetime.time(23, 59, 59, 999992)
    assert util.ts2t(86399.9999999) == datetime.time(23, 59, 59, 999999)
    aware = datetime.datetime(2020, 1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert util.dt2ts(aware) == 1577836800.0


@given(
    st.datetimes(min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1))
)
def test_datetime_round_trip(value):
    """A datetime survives dt2ts -> repr -> float -> ts2dt (microsecond precision)."""
    assert util.ts2dt(float(repr(util.dt2ts(value)))) == value


@given(st.times())
def test_time_round_trip(value):
    """A time survives t2ts -> repr -> float -> ts2t exactly (rounding, bug 2)."""
    assert util.ts2t(float(repr(util.t2ts(value)))) == value.replace(tzinfo=None)


def test_to_score():
    """_to_score converts dates/times/strings to numbers; s=True gives Redis score text."""
    assert util._to_score(datetime.date(2020, 1, 2)) == 1577923200.0
    assert util._to_score(datetime.time(0, 1)) == 60.0
    assert util._to_score("1.5") == 1.5
    assert util._to_score(5, s=True) == "5"
    assert util._to_score(0.1, s=True) == "0.1"
    assert util._to_score(decimal.Decimal("2.50"), s=True) == "2.50"


def test_encode_unique_constraint():
    """Composite unique fields: \\0\\0-prefixed UTF-8 pieces joined by \\0, Latin-1 text."""
    field = util._encode_unique_constraint(["5", "p"])
    assert field.encode("utf-8") == b"\x00\x005\x00\x00\x00p"
    field = util._encode_unique_constraint(["café", "3"])
    assert field.encode("utf-8") == bytes.fromhex("0000636166c383c2a900000033")


def test_latin1_text_and_to_text():
    """latin1_text maps bytes one code point per byte; to_text decodes UTF-8 replies."""
    assert encoding.latin1_text(b"\xe9t\xe9").encode("utf-8") == b"\xc3\xa9t\xc3\xa9"
    assert encoding.to_text(b"\xc3\xa9") == "é"
    assert encoding.to_text("é") == "é"
