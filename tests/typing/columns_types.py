"""What checkers infer for every column type: instance access, class access, assignment."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable
from typing import Any

from typing_extensions import assert_type

import rom


class Document:
    """An object of another ORM, referenced with ``ForeignModel``."""

    id = 1

    @classmethod
    def get(cls, ident: int | str) -> Document | None:
        return cls()


class Account(rom.Model):
    """Every column type, required, optional and defaulted."""

    email = rom.Text(required=True, unique=True, keygen=rom.IDENTITY_CI)
    nick = rom.Text()
    bio = rom.Text(default="")
    visits = rom.Integer(default=0, index=True)
    age = rom.Integer()
    rank = rom.Integer(required=True)
    ratio = rom.Float()
    weight = rom.Float(default=lambda: 1.0)
    balance = rom.Decimal(required=True)
    credit = rom.Decimal()
    active = rom.Boolean(default=False, index=True)
    admin = rom.Boolean()
    created = rom.DateTime(default=datetime.datetime.now, index=True)
    seen = rom.DateTime()
    stamp = rom.SaferDateTime(required=True)
    checked = rom.SaferDateTime()
    born = rom.Date()
    joined = rom.Date(default=datetime.date.today)
    alarm = rom.Time()
    opens = rom.Time(required=True)
    avatar = rom.String()
    token = rom.String(required=True)
    settings = rom.Json()
    extra = rom.Json(default=dict)
    friend = rom.ManyToOne("Account", on_delete="set null")
    partner = rom.OneToOne("Account", on_delete="no action", unique=True)
    fans = rom.OneToMany("Account", "friend")
    domain = rom.IndexOnly("email", keygen=rom.FULL_TEXT)
    names = rom.IndexOnly(keygen2=lambda attr, data: [str(data.get("nick"))])
    inbox = rom.UnsafeColumn()
    document = rom.ForeignModel(Document)


class Post(rom.Model):
    """Relationship columns annotated for precise types."""

    author: rom.ManyToOne[Account] = rom.ManyToOne("Account", on_delete="cascade", required=True)
    editor: rom.ManyToOne[Account | None] = rom.ManyToOne("Account", on_delete="set null")
    replies: rom.OneToMany[Post] = rom.OneToMany("Post", "parent")
    parent: rom.ManyToOne[Post | None] = rom.ManyToOne("Post", on_delete="no action")
    uid = rom.PrimaryKey(index=True)
    source: rom.ForeignModel[Document | None] = rom.ForeignModel(Document)


def instance_access(a: Account, p: Post) -> None:
    """Reading a column of an entity gives its value type, ``| None`` unless required or
    defaulted."""
    assert_type(a.id, int)
    assert_type(a.email, str)
    assert_type(a.nick, str | None)
    assert_type(a.bio, str)
    assert_type(a.visits, int)
    assert_type(a.age, int | None)
    assert_type(a.rank, int)
    assert_type(a.ratio, float | None)
    assert_type(a.weight, float)
    assert_type(a.balance, decimal.Decimal)
    assert_type(a.credit, decimal.Decimal | None)
    assert_type(a.active, bool)
    assert_type(a.admin, bool | None)
    assert_type(a.created, datetime.datetime)
    assert_type(a.seen, datetime.datetime | None)
    assert_type(a.stamp, datetime.datetime)
    assert_type(a.checked, datetime.datetime | None)
    assert_type(a.born, datetime.date | None)
    assert_type(a.joined, datetime.date)
    assert_type(a.alarm, datetime.time | None)
    assert_type(a.opens, datetime.time)
    assert_type(a.avatar, bytes | None)
    assert_type(a.token, bytes)
    assert_type(a.settings, Any)
    assert_type(a.extra, Any)
    assert_type(a.friend, Any)
    assert_type(a.partner, Any)
    assert_type(a.fans, list[Any])
    assert_type(a.domain, None)
    assert_type(a.names, None)
    assert_type(a.inbox.rpush, Callable[..., Any])  # any Redis command, key first
    assert_type(a.document, Any)
    assert_type(p.uid, int)
    assert_type(p.source, Document | None)
    assert_type(p.author, Account)
    assert_type(p.editor, Account | None)
    assert_type(p.replies, list[Post])
    assert_type(p.parent, Post | None)


def class_access() -> None:
    """On the class a column attribute is the column object (for checkers and editors)."""
    assert_type(Account.id, rom.PrimaryKey[int])
    assert_type(Account.email, rom.Text[str])
    assert_type(Account.nick, rom.Text[str | None])
    assert_type(Account.visits, rom.Integer[int])
    assert_type(Account.age, rom.Integer[int | None])
    assert_type(Account.ratio, rom.Float[float | None])
    assert_type(Account.balance, rom.Decimal[decimal.Decimal])
    assert_type(Account.active, rom.Boolean[bool])
    assert_type(Account.created, rom.DateTime[datetime.datetime])
    assert_type(Account.checked, rom.SaferDateTime[datetime.datetime | None])
    assert_type(Account.born, rom.Date[datetime.date | None])
    assert_type(Account.opens, rom.Time[datetime.time])
    assert_type(Account.avatar, rom.String[bytes | None])
    assert_type(Account.settings, rom.Json[Any])
    assert_type(Account.friend, rom.ManyToOne[Any])
    assert_type(Account.partner, rom.OneToOne[Any])
    assert_type(Account.fans, rom.OneToMany[Any])
    assert_type(Account.domain, rom.IndexOnly[None])
    assert_type(Account.inbox, rom.UnsafeColumn)
    assert_type(Account.document, rom.ForeignModel[Any])
    assert_type(Post.uid, rom.PrimaryKey[int])
    assert_type(Post.author, rom.ManyToOne[Account])


def good_assignments(a: Account, p: Post, other: Account) -> None:
    """Assigning the value type (or ``None`` to an optional column) is accepted."""
    a.email = "ann@example.com"
    a.nick = None
    a.visits = 3
    a.ratio = 2  # an int is a float for checkers, and Float keeps ints (rom 1.x)
    a.balance = decimal.Decimal("1.50")
    a.active = True
    a.created = datetime.datetime(2024, 1, 1)
    a.born = datetime.date(2000, 1, 1)
    a.alarm = datetime.time(7, 30)
    a.avatar = b"\x89PNG"
    a.settings = {"theme": "dark"}
    a.friend = other
    p.author = other
    p.editor = None
    del a.nick
    a.inbox.rpush("hello")


def bad_assignments(a: Account, p: Post) -> None:
    """A value of the wrong type is flagged (at runtime some of these would be converted)."""
    a.visits = "5"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.rank = 1.5  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.email = None  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.nick = 5  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.ratio = "1.5"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.balance = 1.5  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.active = "yes"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.created = 0.0  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.born = "2000-01-01"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.alarm = 3600  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.avatar = "text"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.token = None  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.domain = "x"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    a.id = "7"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    p.author = None  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    p.author = p  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    p.source = a  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]


def bad_definitions() -> None:
    """A default of the wrong type is flagged (the runtime would convert ``'0'``)."""
    rom.Integer(default="0")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    rom.ManyToOne()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
