"""User-written column types type-check and keep precise attribute types."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from typing_extensions import assert_type

import rom

T = TypeVar("T")


class Upper(rom.Text[str]):
    """A required-or-defaulted text column stored upper-cased (concrete type argument)."""

    def _check(self, value: Any) -> Any:
        return str(super()._check(value)).upper()


class MaybeUpper(rom.Text[T]):
    """A generic subclass: the type argument comes from an annotation where it is used."""

    def _check(self, value: Any) -> Any:
        return str(super()._check(value)).upper()


class Point(rom.Column[tuple[float, float] | None]):
    """A column of a new type: its own ``_allowed`` and conversions."""

    _allowed: ClassVar[tuple[type, ...]] = (tuple,)

    def _convert(self, value: Any) -> tuple[float, float]:
        x, y = str(value).split(",")
        return float(x), float(y)

    def _to_redis(self, value: Any) -> str:
        return f"{value[0]!r},{value[1]!r}"


class Tagged(rom.Column[T]):
    """A generic subclass of ``Column`` itself."""

    _allowed: ClassVar[tuple[type, ...]] = (str,)

    def _convert(self, value: Any) -> str:
        return str(value)


class Shop(rom.Model):
    """A model using the custom columns."""

    code = Upper(required=True, unique=True)
    label: MaybeUpper[str | None] = MaybeUpper()
    title = MaybeUpper[str](default="")
    where = Point()
    tag: Tagged[str | None] = Tagged(index=True, keygen=rom.FULL_TEXT)


def use(shop: Shop) -> None:
    """Custom columns read and assign with their own value types."""
    assert_type(shop.code, str)
    assert_type(shop.label, str | None)
    assert_type(shop.title, str)
    assert_type(shop.where, tuple[float, float] | None)
    assert_type(shop.tag, str | None)
    assert_type(Shop.code, Upper)
    assert_type(Shop.where, Point)
    shop.where = (1.0, 2.0)
    shop.label = None
    shop.where = "1,2"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    shop.code = None  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
