"""Hypothesis state machine: random model operations checked against a Python model.

After every step the whole keyspace must mean exactly what the Python model says: the same
entities with the same stored values, the unique index mapping each value to its owner,
``verify_indexes`` finding no problem, and every query answering what the model answers.
``ROM_LONG=1`` runs many more and longer examples.
"""

from __future__ import annotations

import os
from typing import Any

from conftest import flush
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import rom
from rom import util

LONG = os.environ.get("ROM_LONG", "") not in ("", "0")
SETTINGS = settings(
    max_examples=300 if LONG else 40,
    stateful_step_count=50 if LONG else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# words with characters that mean something in key names, glob patterns, JSON, Lua
# patterns or text; names are made of them so that queries often hit
VOCABULARY = [
    "alpha",
    "Beta",
    "a:b",
    "x{y}",
    "st*r",
    "q?",
    "[z]",
    "é",
    "日本",
    "n\0l",
    "new\nline",
    "100%",
    "a.b",
    "-",
    "^$",
    "back\\slash",
    "AB",
    "ab",
]
words = st.sampled_from(VOCABULARY) | st.text(alphabet="abAB:*?[]{}%.\0", max_size=4)
names = st.none() | st.lists(words, max_size=4).map(" ".join)
codes = st.none() | st.sampled_from(["", "a", "b", "A", "a:b", "{x}", "*", "?[z]", "é", "n\0l"])
nums = st.none() | st.integers(-(10**9), 10**9)
ranges = st.tuples(st.integers(-(10**9), 10**9), st.integers(0, 10**9))


def record_model() -> Any:
    class Rec(rom.Model):
        num = rom.Integer(index=True)
        code = rom.Text(unique=True)
        name = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)

    return Rec


def test_random_operations_match_a_python_model(conn):
    """Creates, updates, deletes, unique swaps and queries keep Redis equal to the model."""
    Rec = record_model()

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            flush(util.CONNECTION)
            rom.session.rollback()
            self.model: dict[int, dict[str, Any]] = {}

        # -- helpers ------------------------------------------------------------------------
        def owner(self, code: str | None, but: int | None = None) -> int | None:
            if not code:
                return None
            for pk, row in self.model.items():
                if pk != but and row["code"] == code:
                    return pk
            return None

        def tokens(self, row: dict[str, Any]) -> set[str]:
            return set(rom.FULL_TEXT(row["name"]) or [])

        def matching(self, test: Any) -> set[int]:
            return {pk for pk, row in self.model.items() if test(row)}

        # -- writes ---------------------------------------------------------------------------
        @initialize(rows=st.lists(st.tuples(nums, codes, names), max_size=8))
        def seed(self, rows: list[tuple[Any, Any, Any]]) -> None:
            """Start from a few entities so that queries and updates have data."""
            for num, code, name in rows:
                self.create(num, code, name)

        @rule(num=nums, code=codes, name=names)
        def create(self, num: int | None, code: str | None, name: str | None) -> None:
            rec = Rec(num=num, code=code, name=name)
            if self.owner(code) is not None:
                try:
                    rec.save()
                    raise AssertionError("a taken unique value was saved")
                except rom.UniqueKeyViolation:
                    assert not conn.exists(f"Rec:{rec.id}")
            else:
                rec.save()
                self.model[rec.id] = {"num": num, "code": code, "name": name}
            rom.session.rollback()

        @precondition(lambda self: self.model)
        @rule(data=st.data(), num=nums, name=names, code=codes)
        def update(self, data: Any, num: Any, name: Any, code: Any) -> None:
            pk = data.draw(st.sampled_from(sorted(self.model)))
            fields = data.draw(st.sets(st.sampled_from(["num", "code", "name"]), min_size=1))
            rec = Rec.get(pk)
            new = dict(self.model[pk])
            for attr in fields:
                value = {"num": num, "name": name, "code": code}[attr]
                setattr(rec, attr, value)
                new[attr] = value
            if "code" in fields and self.owner(new["code"], but=pk) is not None:
                try:
                    rec.save()
                    raise AssertionError("a taken unique value was saved")
                except rom.UniqueKeyViolation:
                    pass
            else:
                rec.save()
                self.model[pk] = new
            rom.session.rollback()

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def delete(self, data: Any) -> None:
            pk = data.draw(st.sampled_from(sorted(self.model)))
            Rec.get(pk).delete()
            del self.model[pk]
            rom.session.rollback()

        @precondition(lambda self: len(self.model) >= 2)
        @rule(data=st.data())
        def swap_codes(self, data: Any) -> None:
            """Two entities exchange unique values in one commit (one atomic call)."""
            a, b = data.draw(
                st.lists(st.sampled_from(sorted(self.model)), min_size=2, max_size=2, unique=True)
            )
            x, y = Rec.get(a), Rec.get(b)
            x.code, y.code = y.code, x.code
            rom.session.commit()
            self.model[a]["code"], self.model[b]["code"] = x.code, y.code
            rom.session.rollback()

        # -- queries ----------------------------------------------------------------------------
        @rule(bounds=ranges)
        def query_range(self, bounds: tuple[int, int]) -> None:
            lo, hi = bounds[0], bounds[0] + bounds[1]
            want = self.matching(lambda r: r["num"] is not None and lo <= r["num"] <= hi)
            found = Rec.query.filter(num=(lo, hi)).order_by("num").all()
            assert {x.id for x in found} == want
            assert [x.num for x in found] == sorted(x.num for x in found)
            assert Rec.query.filter(num=(lo, hi)).count() == len(want)
            rom.session.rollback()

        def draw_word(self, data: Any) -> str:
            """A word of a stored name (in its original case) or a random one."""
            seen = sorted({w for r in self.model.values() for w in (r["name"] or "").split()})
            if seen:
                return str(data.draw(st.sampled_from(seen) | words))
            return str(data.draw(words))

        @rule(data=st.data())
        def query_word(self, data: Any) -> None:
            word = self.draw_word(data)
            want = self.matching(lambda r: word.lower() in self.tokens(r))
            assert {x.id for x in Rec.query.filter(name=word).all()} == want
            rom.session.rollback()

        @rule(data=st.data())
        def query_prefix_suffix(self, data: Any) -> None:
            word = self.draw_word(data)
            cut = data.draw(st.integers(0, len(word)))
            part = data.draw(st.sampled_from([word[:cut], word[cut:]]))
            low = part.lower()
            starts = self.matching(lambda r: any(t.startswith(low) for t in self.tokens(r)))
            ends = self.matching(lambda r: any(t.endswith(low) for t in self.tokens(r)))
            assert {x.id for x in Rec.query.startswith(name=part).all()} == starts
            assert {x.id for x in Rec.query.endswith(name=part).all()} == ends
            rom.session.rollback()

        @rule(code=codes)
        def query_unique(self, code: str | None) -> None:
            owner = self.owner(code)
            found = Rec.get_by(code=code) if code is not None else None
            assert (found.id if found is not None else None) == owner
            rom.session.rollback()

        # -- the whole keyspace ---------------------------------------------------------------
        @invariant()
        def keyspace_matches_the_model(self) -> None:
            entities = {
                int(k.split(b":")[1])
                for k in conn.keys("Rec:*")
                if k.split(b":")[1].isdigit() and len(k.split(b":")) == 2
            }
            assert entities == set(self.model)
            for pk, row in self.model.items():
                stored = {k.decode(): v.decode() for k, v in conn.hgetall(f"Rec:{pk}").items()}
                stored.pop("-index-data-")
                want = {"id": str(pk)}
                want.update({a: str(v) for a, v in row.items() if v is not None})
                assert stored == want
            owners = {k.decode(): int(v) for k, v in conn.hgetall("Rec:code:uidx").items()}
            assert owners == {r["code"]: pk for pk, r in self.model.items() if r["code"]}
            report = util.verify_indexes(Rec)
            assert report.problems == 0, (report.summary(), report.examples)
            numbered = self.matching(lambda r: r["num"] is not None)
            assert {x.id for x in Rec.query.filter(num=(None, None)).all()} == numbered
            assert Rec.query.filter(num=(None, None)).count() == len(numbered)
            for code, pk in owners.items():
                assert Rec.get_by(code=code).id == pk
            rom.session.rollback()

    run_state_machine_as_test(Machine, settings=SETTINGS)
