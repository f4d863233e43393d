"""What checkers infer for Model methods: construction, get, get_by, copy, writes."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from typing_extensions import assert_type

import rom


class User(rom.Model):
    """A model with a unique and an indexed column."""

    email = rom.Text(required=True, unique=True, keygen=rom.IDENTITY_CI, prefix=True, suffix=True)
    score = rom.Integer(default=0, index=True)


class Session(rom.Model):
    """A model with entity expiry."""

    _ttl = 3600.0
    user: rom.ManyToOne[User] = rom.ManyToOne("User", on_delete="cascade", required=True)


def construct() -> None:
    """``Model(**kwargs)`` takes any column names (unknown ones fail at runtime)."""
    user = User(email="ann@example.com", score=3)
    assert_type(user, User)
    assert_type(user.id, int)
    assert_type(User(email="bob@example.com", no_such_column=1), User)


def get(ids: list[int]) -> None:
    """``get(id)`` is an entity or ``None``; ``get([ids])`` is a list."""
    assert_type(User.get(1), User | None)
    assert_type(User.get("1"), User | None)
    assert_type(User.get(b"1"), User | None)
    assert_type(User.get(ids), list[User])
    assert_type(User.get((1, 2)), list[User])
    assert_type(User.get({1, 2}), list[User])
    assert_type(User.get(frozenset({1})), list[User])
    assert_type(Session.get(1), Session | None)
    User.get(None)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


def get_by() -> None:
    """``get_by`` is ``Any``: one entity, ``None`` or a list, depending on the column."""
    assert_type(User.get_by(email="ann@example.com"), Any)
    assert_type(User.get_by(score=(1, None), _limit=(0, 10)), Any)


def entity_methods(user: User, other: User, session: Session) -> None:
    """Writes, copies and expiry keep the entity's own type."""
    assert_type(user.save(), int)
    assert_type(user.save(full=True, force=True), int)
    assert_type(user.copy(), User)
    assert_type(user.update(score=4), User)
    assert_type(user.update("ann@example.org", 5), User)
    assert_type(user.to_dict(), dict[str, Any])
    assert_type(user.refresh(force=True), None)
    assert_type(user.delete(), None)
    assert_type(user.transfer(other, "score", 1, session, "user"), None)
    assert_type(session.expire(60), None)
    assert_type(session.expire_at(1_900_000_000), None)
    assert_type(session.persist(), None)
    assert_type(session.ttl(), float | None)
    assert_type(session.user, User)
    user.save(full="yes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def scans() -> None:
    """``does_not_startwith`` / ``does_not_endwith`` iterate over entities."""
    assert_type(User.does_not_startwith("email", ["a", "b"]), Iterator[User])
    assert_type(User.does_not_endwith("email", "@example.com"), Iterator[User])


def session_api(user: User) -> None:
    """The session's unit-of-work methods."""
    assert_type(rom.session.commit(), int)
    assert_type(rom.session.flush(full=True), int)
    assert_type(rom.session.save(user), int)
    assert_type(rom.session.delete(user), None)
    assert_type(rom.session.refresh(user, force=True), None)
    assert_type(rom.session.rollback(), None)


def util_names() -> None:
    """rom 1.x names re-exported by ``rom.util``, ``rom.columns`` and ``rom.model``."""
    assert_type(rom.util.dt2ts(datetime.datetime(2024, 1, 1)), float)
    assert_type(rom.util.ts2dt(0.0), datetime.datetime)
    assert_type(rom.columns.session, rom.util.Session)
    assert_type(rom.model.session, rom.util.Session)
    assert_type(rom.util.session, rom.util.Session)
