"""session.commit() writes a group of entities as one atomic unit of work."""

from __future__ import annotations

import pytest

import rom


def make_model():
    class Account(rom.Model):
        name = rom.Text(required=True, unique=True)
        balance = rom.Integer(index=True, default=0)

    return Account


def test_commit_is_one_round_trip(conn, round_trips):
    """Ten new entities are written by one Lua call."""
    Account = make_model()
    Account(name="warm-up").save()  # first use of the script on this server loads it
    for i in range(10):
        Account(name=f"a{i}", balance=i)
    round_trips.reset()
    assert rom.session.commit() == 10 * len(Account._columns)
    assert round_trips.count == 1
    assert conn.zcard("Account:balance:idx") == 11


def test_commit_all_or_nothing_on_unique_violation(conn):
    """One unique violation in a commit leaves every entity of it unwritten."""
    Account = make_model()
    Account(name="taken").save()
    good = Account(name="fresh", balance=5)
    bad = Account(name="taken")
    with pytest.raises(rom.UniqueKeyViolation):
        rom.session.commit()
    assert not conn.exists(f"Account:{good.id}")
    assert not conn.exists(f"Account:{bad.id}")
    assert conn.hgetall("Account:name:uidx") == {b"taken": b"1"}
    assert good._new and bad._new


def test_commit_all_or_nothing_on_race(conn):
    """A data race on one entity aborts the whole commit."""
    Account = make_model()
    a, b = Account(name="a"), Account(name="b")
    rom.session.commit()
    a.balance = 1
    b.balance = 2
    conn.hset(f"Account:{b.id}", "balance", "99")
    with pytest.raises(rom.DataRaceError):
        rom.session.flush()
    assert conn.hget(f"Account:{a.id}", "balance") == b"0"


def test_unique_values_can_swap_in_one_commit(conn):
    """Two entities exchanging unique values in one commit do not collide."""
    Account = make_model()
    a, b = Account(name="x"), Account(name="y")
    rom.session.commit()
    a.name, b.name = "y", "x"
    rom.session.flush()
    assert conn.hgetall("Account:name:uidx") == {b"y": str(a.id).encode(), b"x": str(b.id).encode()}


def test_hooks_run_around_the_group(conn):
    """Before-hooks of all entities run before the write, after-hooks after it."""
    calls = []

    class Hooked(rom.Model):
        n = rom.Integer()

        def _before_insert(self):
            calls.append(("before", self.n, conn.exists(f"Hooked:{self.id}")))

        def _after_insert(self):
            calls.append(("after", self.n, conn.exists(f"Hooked:{self.id}")))

    Hooked(n=1)
    Hooked(n=2)
    rom.session.commit()
    assert calls == [("before", 1, 0), ("before", 2, 0), ("after", 1, 1), ("after", 2, 1)]
