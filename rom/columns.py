"""Column types (API.md §3).

A column is a descriptor: ``entity.col`` reads the current value, ``entity.col = v`` converts,
validates and marks the entity modified, ``del entity.col`` clears it.  Each column knows how
to turn its value into the exact text rom 1.x stores (``_to_redis``) and back (``_from_redis``).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, overload

from . import keygens as _keygens
from .encoding import dt2ts, latin1_text, t2ts, ts2dt, ts2t
from .exceptions import ColumnError, InvalidColumnValue, InvalidOperation, ORMError
from .session import session as session  # rom.columns.session, as in rom 1.x

__all__ = [
    "MODELS",
    "MODELS_REFERENCED",
    "ON_DELETE",
    "Boolean",
    "Column",
    "Date",
    "DateTime",
    "Decimal",
    "Float",
    "ForeignModel",
    "IndexOnly",
    "Integer",
    "Json",
    "ManyToOne",
    "OneToMany",
    "OneToOne",
    "PrimaryKey",
    "SaferDateTime",
    "String",
    "Text",
    "Time",
    "UnsafeColumn",
    "_Column",
]

#: the Python type an entity attribute reads as (``str``, ``int | None``, ...)
T = TypeVar("T")
_C = TypeVar("_C", bound="_Column")

#: class name -> model and namespace -> model (both); ``'Model'`` -> the base class.
MODELS: dict[str, Any] = {}
#: referenced model name (as written) -> [(referencing namespace, attribute, on_delete)].
MODELS_REFERENCED: dict[str, list[tuple[str, str, str]]] = {}
ON_DELETE = ("no action", "restrict", "cascade", "set null", "set default")


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __bool__(self) -> bool:
        return False


NULL: Any = _Sentinel("NULL")
NO_ACTION_DEFAULT: Any = _Sentinel("NO_ACTION_DEFAULT")
SKIP_ON_DELETE: Any = object()

NUMERIC_TYPES = (int, float, decimal.Decimal, datetime.datetime, datetime.date, datetime.time)


def is_numeric(allowed: tuple[type, ...]) -> bool:
    """Whether a column allowing ``allowed`` types is numeric (score-indexed)."""
    return any(issubclass(t, NUMERIC_TYPES) for t in allowed if t is not bool)


def is_string(allowed: tuple[type, ...]) -> bool:
    """Whether a column allowing ``allowed`` types holds text or bytes."""
    return any(issubclass(t, (str, bytes)) for t in allowed)


class _Column:
    """Common base of :class:`Column` and :class:`UnsafeColumn`."""

    _attr: str = ""
    _model: Any = None

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr = name


class Column(_Column, Generic[T]):
    """Base of all data columns.

    :param required: a new entity must get a non-``None`` value; it can't be cleared later
    :param default: value (or zero-argument callable) used when none is given
    :param unique: keep a unique index (string and integer columns)
    :param index: keep a queryable index (numbers: score index; strings need ``keygen``)
    :param keygen: ``f(value)`` returning index entries (see :mod:`rom.keygens`)
    :param prefix: keep a prefix index (``Query.startswith``, ``Query.like``)
    :param suffix: keep a suffix index (``Query.endswith``)
    :param keygen2: ``f(attr, data)`` returning index entries from the whole entity

    Example::

        class User(rom.Model):
            email = rom.Text(required=True, unique=True, keygen=rom.IDENTITY_CI, prefix=True)
            score = rom.Integer(default=0, index=True)

    Typing: columns are generic in the type an entity attribute reads as.  Each column type
    has ``__init__`` overloads (for type checkers only) that pick it from the arguments:
    ``rom.Text(required=True)`` and ``rom.Text(default='')`` are ``Text[str]``, a plain
    ``rom.Text()`` is ``Text[str | None]``; so ``user.email`` is ``str`` and ``User.email``
    is the column (for checkers; at runtime class access raises ``AttributeError``).
    Assignment is checked against the same type, which is stricter than the runtime
    conversion (``user.score = '5'`` works but is flagged).

    A custom column subclasses a column type with a concrete type argument
    (``class Upper(rom.Text[str])``, ``class Point(rom.Column[tuple[float, float] | None])``),
    or stays generic and is annotated where it is used
    (``name: Upper[str] = Upper(required=True)``).
    """

    _allowed: ClassVar[tuple[type, ...]] = ()
    _virtual: ClassVar[bool] = False  # stores nothing in the entity hash
    _relation: ClassVar[bool] = False

    def __init__(
        self,
        required: bool = False,
        default: Any = NULL,
        unique: bool = False,
        index: bool = False,
        keygen: Callable[[Any], Any] | None = None,
        prefix: bool = False,
        suffix: bool = False,
        keygen2: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self._required = bool(required)
        self._default = NULL if default is None else default
        self._unique = bool(unique)
        self._index = bool(index)
        self._prefix = bool(prefix)
        self._suffix = bool(suffix)
        self._keygen: Callable[..., Any] | None = None
        self._keygen2 = False
        self._init_keygen(keygen, keygen2)

    # -- definition-time rules (API.md §3.2) -------------------------------------------
    def _init_keygen(
        self, keygen: Callable[..., Any] | None, keygen2: Callable[..., Any] | None
    ) -> None:
        if (keygen or keygen2) and not (
            self._index or self._prefix or self._suffix or self._unique
        ):
            raise ColumnError("Explicit keygen provided, but no index, prefix, suffix or unique")
        allowed = self._allowed
        if not allowed and not self._relation:
            raise ColumnError(f"Missing valid _allowed attribute on {type(self).__name__}")
        # bool counts as an integer type here (API.md §3.2), so Boolean(unique=True) is fine
        integer = any(issubclass(t, int) for t in allowed)
        if self._unique and not (is_string(allowed) or integer or self._relation):
            raise ColumnError("Unique columns can only be strings or integers")
        if keygen and keygen2:
            raise ColumnError("Can only provide one of keygen or keygen2")
        if keygen2:
            self._keygen, self._keygen2 = keygen2, True
            return
        numeric = is_numeric(allowed) or self._relation
        if self._index and not numeric:
            if bool in allowed:
                keygen = keygen or _keygens._boolean_keygen
            elif not keygen and not is_string(allowed):
                raise ColumnError(
                    f"Non-numeric {type(self).__name__} column with index=True must provide keygen"
                )
        if is_string(allowed) and not keygen:
            if self._index:
                raise ColumnError(
                    f"Indexed string columns must provide a keygen argument from: "
                    f"{_keygens.STRING_INDEX_KEYGENS_STR} (or a callable of your own)"
                )
            if self._prefix or self._suffix:
                # rom 1.x refuses this; a whole-value keygen is what prefix/suffix users mean.
                keygen = _keygens.IDENTITY_STRING if bytes in allowed else _keygens.IDENTITY
        if not keygen:
            if self._index:
                keygen = _keygens._numeric_keygen
            elif self._prefix or self._suffix:
                keygen = _keygens.FULL_TEXT
        self._keygen = keygen

    # -- descriptor protocol -----------------------------------------------------------
    @overload
    def __get__(self: _C, obj: None, owner: Any) -> _C: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> T: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self._attr)
        return obj._data.get(self._attr)

    def __set__(self, obj: Any, value: T) -> None:
        attr = self._attr
        if value is None:
            if self._required:
                raise InvalidOperation(f"{attr} is required and cannot be set to None")
            if obj._data.get(attr) is None:
                obj._data.pop(attr, None)
                return
            del obj._data[attr]
        else:
            obj._data[attr] = self._validate(value)
        obj._modified = True
        session.add(obj)

    def __delete__(self, obj: Any) -> None:
        attr = self._attr
        if self._required:
            raise InvalidOperation(f"{attr} is required and cannot be deleted")
        if obj._data.get(attr) is None:
            raise AttributeError(attr)
        del obj._data[attr]
        obj._modified = True
        session.add(obj)

    # -- conversions ---------------------------------------------------------------------
    def _bad(self, value: Any, err: BaseException | None = None) -> InvalidColumnValue:
        detail = f": {err}" if err is not None else ""
        return InvalidColumnValue(
            f"Invalid value for column {self._attr!r} of type {type(self).__name__}: "
            f"{value!r:.200}{detail}"
        )

    def _convert(self, value: Any) -> Any:
        """Turn a non-native value into the column's type (rom's from-storage rule)."""
        raise NotImplementedError

    def _check(self, value: Any) -> Any:
        """Final type check of a converted value."""
        if not isinstance(value, self._allowed):
            raise self._bad(value)
        return value

    def _validate(self, value: Any) -> Any:
        """Convert and check a value assigned by the application."""
        if not isinstance(value, self._allowed) or (
            isinstance(value, bool) and bool not in self._allowed
        ):
            try:
                value = self._convert(value)
            except (ValueError, TypeError, ArithmeticError, OverflowError) as err:
                raise self._bad(value, err) from err
        return self._check(value)

    def _construct(self, value: Any) -> Any:
        """Value given to the model constructor (may be more lenient than assignment)."""
        return self._validate(value)

    def _from_redis(self, text: str) -> Any:
        """Python value of the stored text."""
        return self._convert(text)

    def _to_redis(self, value: Any) -> str:
        """The exact text rom 1.x stores for ``value``."""
        return str(value)

    def _default_value(self) -> Any:
        default = self._default
        if default is NULL:
            return None
        if callable(default):
            return default()
        if isinstance(default, (dict, list, set)):
            return copy.deepcopy(default)
        return default

    def _keygen_name(self) -> str:
        return getattr(self._keygen, "__name__", "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._attr}>"


class Integer(Column[T]):
    """An integer column; ``bool`` values are stored as 1 and 0 (rom 1.x stored 'True')."""

    _allowed = (int,)

    if TYPE_CHECKING:  # int when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Integer[int],
            required: Literal[True],
            default: int | Callable[[], int] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Integer[int],
            required: bool = ...,
            *,
            default: int | Callable[[], int],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Integer[int | None],
            required: bool = ...,
            default: int | Callable[[], int] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> int:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str):
            text = value.strip()
            if text in ("True", "False"):  # written by rom 1.x for bool values
                return int(text == "True")
            try:
                return int(text)
            except ValueError:
                try:  # '5.0', '1e3': integral values written in another notation
                    number = decimal.Decimal(text)
                except decimal.InvalidOperation:
                    number = None
                if number is None or not number.is_finite() or number != int(number):
                    raise
                return int(number)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        return int(value)

    def _from_redis(self, text: str) -> Any:
        try:
            return int(text)  # the stored form; anything else takes the general path
        except ValueError:
            return self._convert(text)

    def _check(self, value: Any) -> Any:
        if type(value) is not int:
            if isinstance(value, int):
                return int(value)
            raise self._bad(value)
        return value


class Float(Column[T]):
    """A float column (ints are kept as ints in memory until reloaded, as in rom)."""

    _allowed = (float, int)

    if TYPE_CHECKING:  # float when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Float[float],
            required: Literal[True],
            default: float | Callable[[], float] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Float[float],
            required: bool = ...,
            *,
            default: float | Callable[[], float],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Float[float | None],
            required: bool = ...,
            default: float | Callable[[], float] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> float:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return float(value)

    def _from_redis(self, text: str) -> Any:
        return float(text)

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool):
            return float(value)
        if not isinstance(value, (int, float)):
            raise self._bad(value)
        if isinstance(value, float) and math.isnan(value):
            raise self._bad(value, ValueError("NaN cannot be stored or indexed"))
        return value

    def _to_redis(self, value: Any) -> str:
        return repr(value)


class Decimal(Column[T]):
    """A :class:`decimal.Decimal` column (ints, strings and floats are converted)."""

    _allowed = (decimal.Decimal,)

    if TYPE_CHECKING:  # decimal.Decimal when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Decimal[decimal.Decimal],
            required: Literal[True],
            default: decimal.Decimal | Callable[[], decimal.Decimal] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Decimal[decimal.Decimal],
            required: bool = ...,
            *,
            default: decimal.Decimal | Callable[[], decimal.Decimal],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Decimal[decimal.Decimal | None],
            required: bool = ...,
            default: decimal.Decimal | Callable[[], decimal.Decimal] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> decimal.Decimal:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"cannot convert {type(value).__name__} to Decimal")
        return decimal.Decimal(value)

    def _check(self, value: Any) -> Any:
        if not isinstance(value, decimal.Decimal):
            raise self._bad(value)
        if value.is_nan():
            raise self._bad(value, ValueError("NaN cannot be stored or indexed"))
        return value


class Boolean(Column[T]):
    """A boolean column, stored as ``'1'`` / ``''``; ``index=True`` gives a token index."""

    _allowed = (bool,)

    if TYPE_CHECKING:  # bool when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Boolean[bool],
            required: Literal[True],
            default: bool | Callable[[], bool] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Boolean[bool],
            required: bool = ...,
            *,
            default: bool | Callable[[], bool],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Boolean[bool | None],
            required: bool = ...,
            default: bool | Callable[[], bool] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> bool:
        return bool(value)

    def _check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise self._bad(value)
        return value

    def _from_redis(self, text: str) -> bool:
        return bool(text)

    def _to_redis(self, value: Any) -> str:
        return "1" if value else ""


def _number(value: Any) -> float:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal, str)):
        raise TypeError(f"expected a number of seconds, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("not a finite number")
    return result


class DateTime(Column[T]):
    """A naive UTC :class:`datetime.datetime`; numbers are seconds since 1970-01-01.

    Aware datetimes are converted to naive UTC (rom 1.x raised ``TypeError`` at save).
    """

    _allowed = (datetime.datetime,)

    if TYPE_CHECKING:  # datetime.datetime when required or defaulted, else `| None`

        @overload
        def __init__(
            self: DateTime[datetime.datetime],
            required: Literal[True],
            default: datetime.datetime | Callable[[], datetime.datetime] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: DateTime[datetime.datetime],
            required: bool = ...,
            *,
            default: datetime.datetime | Callable[[], datetime.datetime],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: DateTime[datetime.datetime | None],
            required: bool = ...,
            default: datetime.datetime | Callable[[], datetime.datetime] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> datetime.datetime:
        return ts2dt(_number(value))

    def _check(self, value: Any) -> Any:
        if not isinstance(value, datetime.datetime):
            raise self._bad(value)
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value

    def _to_redis(self, value: Any) -> str:
        return repr(dt2ts(value))


class SaferDateTime(DateTime[T]):
    """A :class:`DateTime` that accepts only ``datetime`` objects from the application."""

    if TYPE_CHECKING:  # datetime.datetime when required or defaulted, else `| None`

        @overload
        def __init__(
            self: SaferDateTime[datetime.datetime],
            required: Literal[True],
            default: datetime.datetime | Callable[[], datetime.datetime] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: SaferDateTime[datetime.datetime],
            required: bool = ...,
            *,
            default: datetime.datetime | Callable[[], datetime.datetime],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: SaferDateTime[datetime.datetime | None],
            required: bool = ...,
            default: datetime.datetime | Callable[[], datetime.datetime] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _validate(self, value: Any) -> Any:
        if not isinstance(value, datetime.datetime):
            raise self._bad(value)
        return self._check(value)

    def _from_redis(self, text: str) -> datetime.datetime:
        return ts2dt(_number(text))


class Date(Column[T]):
    """A :class:`datetime.date` (a ``datetime`` is accepted and kept as it is)."""

    _allowed = (datetime.date,)

    if TYPE_CHECKING:  # datetime.date when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Date[datetime.date],
            required: Literal[True],
            default: datetime.date | Callable[[], datetime.date] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Date[datetime.date],
            required: bool = ...,
            *,
            default: datetime.date | Callable[[], datetime.date],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Date[datetime.date | None],
            required: bool = ...,
            default: datetime.date | Callable[[], datetime.date] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> datetime.date:
        return ts2dt(_number(value)).date()

    def _to_redis(self, value: Any) -> str:
        return repr(dt2ts(value))

    def _check(self, value: Any) -> Any:
        if not isinstance(value, datetime.date):
            raise self._bad(value)
        if isinstance(value, datetime.datetime) and value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value


class Time(Column[T]):
    """A :class:`datetime.time`; numbers are seconds since midnight; tzinfo is dropped."""

    _allowed = (datetime.time,)

    if TYPE_CHECKING:  # datetime.time when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Time[datetime.time],
            required: Literal[True],
            default: datetime.time | Callable[[], datetime.time] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Time[datetime.time],
            required: bool = ...,
            *,
            default: datetime.time | Callable[[], datetime.time],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Time[datetime.time | None],
            required: bool = ...,
            default: datetime.time | Callable[[], datetime.time] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> datetime.time:
        return ts2t(_number(value))

    def _check(self, value: Any) -> Any:
        if not isinstance(value, datetime.time):
            raise self._bad(value)
        return value

    def _to_redis(self, value: Any) -> str:
        return repr(t2ts(value))


class String(Column[T]):
    """A ``bytes`` column: arbitrary binary data round-trips.

    The constructor also takes ``str`` (Latin-1 encoded); later assignment takes only bytes.
    """

    _allowed = (bytes,)

    if TYPE_CHECKING:  # bytes when required or defaulted, else `| None`

        @overload
        def __init__(
            self: String[bytes],
            required: Literal[True],
            default: bytes | Callable[[], bytes] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: String[bytes],
            required: bool = ...,
            *,
            default: bytes | Callable[[], bytes],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: String[bytes | None],
            required: bool = ...,
            default: bytes | Callable[[], bytes] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> bytes:
        raise TypeError("String columns take bytes")

    def _construct(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return value.encode("latin-1")
            except UnicodeEncodeError as err:
                raise self._bad(value, err) from err
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        return self._validate(value)

    def _check(self, value: Any) -> Any:
        if not isinstance(value, bytes):
            raise self._bad(value)
        return value

    def _from_redis(self, text: str) -> bytes:
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as err:
            raise self._bad(text, err) from err

    def _to_redis(self, value: Any) -> str:
        return latin1_text(value)


class Text(Column[T]):
    """A ``str`` column stored as UTF-8 (``bytes`` are UTF-8 decoded)."""

    _allowed = (str,)

    if TYPE_CHECKING:  # str when required or defaulted, else `| None`

        @overload
        def __init__(
            self: Text[str],
            required: Literal[True],
            default: str | Callable[[], str] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Text[str],
            required: bool = ...,
            *,
            default: str | Callable[[], str],
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        @overload
        def __init__(
            self: Text[str | None],
            required: bool = ...,
            default: str | Callable[[], str] | None = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _convert(self, value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        raise TypeError("Text columns take str (or UTF-8 bytes)")

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise self._bad(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise self._bad(value, err) from err
        return value

    def _from_redis(self, text: str) -> str:
        return text


class Json(Column[T]):
    """A JSON document (dict or list), stored with sorted keys; tuples come back as lists."""

    _allowed = (dict, list, tuple)

    if TYPE_CHECKING:  # Any: a document's shape is the application's business

        def __init__(
            self: Json[Any],
            required: bool = ...,
            default: Any = ...,
            unique: bool = ...,
            index: bool = ...,
            keygen: Callable[[Any], Any] | None = ...,
            prefix: bool = ...,
            suffix: bool = ...,
            keygen2: Callable[[str, dict[str, Any]], Any] | None = ...,
        ) -> None: ...

    def _convert(self, value: Any) -> Any:
        if isinstance(value, (str, bytes)):
            return json.loads(value)
        raise TypeError("Json columns take dict, list or JSON text")

    def _check(self, value: Any) -> Any:
        if not isinstance(value, (dict, list, tuple)):
            raise self._bad(value)
        return value

    def _to_redis(self, value: Any) -> str:
        try:
            return json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as err:
            raise self._bad(value, err) from err


class PrimaryKey(Column[T]):
    """The integer primary key (added as ``id`` when a model declares none)."""

    _allowed = (int,)

    def __init__(self: PrimaryKey[int], index: bool = False) -> None:
        super().__init__(index=index)

    def __set__(self, obj: Any, value: T) -> None:
        raise InvalidOperation("Cannot update primary key value")

    def __delete__(self, obj: Any) -> None:
        raise InvalidOperation("Cannot delete primary key value")

    def _convert(self, value: Any) -> int:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return int(value)

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(value)
        return value


# -- relationships -------------------------------------------------------------------------


class _Ref:
    """A reference loaded from Redis and not yet resolved (relations load lazily)."""

    __slots__ = ("id",)

    def __init__(self, id: int | str) -> None:
        self.id = id  # an int, except for a ForeignModel whose ids are text

    def __repr__(self) -> str:
        return f"<ref {self.id}>"


def _lookup_model(name: str) -> Any:
    model = MODELS.get(name)
    if model is None:
        raise ORMError(f"Missing foreign table {name!r} referenced")
    return model


class ManyToOne(Column[T]):
    """A reference to one entity of the model named ``ftable`` (class name or namespace).

    :param on_delete: one of ``'no action'``, ``'restrict'``, ``'cascade'``, ``'set null'``,
        ``'set default'`` (required)

    The referenced entity is loaded lazily, on first access.  Queries use its id:
    ``Post.query.filter(author=author.id)``.

    Typing: the target is named by a string, which a checker cannot resolve, so the
    attribute reads as ``Any``; annotate the column for a precise type:
    ``author: rom.ManyToOne[User | None] = rom.ManyToOne('User', on_delete='no action')``.
    """

    _allowed = ()
    _relation = True

    def __init__(
        self: ManyToOne[Any],
        ftable: str,
        on_delete: str = NO_ACTION_DEFAULT,
        required: bool = False,
        default: Any = NULL,
    ) -> None:
        if on_delete is NO_ACTION_DEFAULT:
            raise ColumnError("No on_delete action specified")
        if on_delete not in ON_DELETE:
            raise ColumnError(f"on_delete must be one of {ON_DELETE}, got {on_delete!r}")
        if required and on_delete == "set null":
            raise ColumnError("A required reference cannot use on_delete='set null'")
        if required and on_delete == "set default" and default in (NULL, None):
            raise ColumnError("on_delete='set default' on a required column needs a default")
        self._ftable = ftable
        self._on_delete = on_delete
        super().__init__(required=required, default=default, index=True)
        self._keygen = _relation_keygen

    def get_related_model(self) -> Any:
        """The referenced model class, or ``None`` if it is not (yet) defined."""
        return MODELS.get(self._ftable)

    def _target(self) -> Any:
        return _lookup_model(self._ftable)

    @overload
    def __get__(self: _C, obj: None, owner: Any) -> _C: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> T: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self._attr)
        value = obj._data.get(self._attr)
        if isinstance(value, _Ref):
            value = self._target().get(value.id)
            obj._data[self._attr] = value
        return value

    def _validate(self, value: Any) -> Any:
        target = self._target()
        if isinstance(value, target):
            return value
        if isinstance(value, _Ref):
            return value
        try:
            ident = int(value)
        except (TypeError, ValueError) as err:
            raise self._bad(value, err) from err
        found = target.get(ident)
        if found is None and self._required:
            raise self._bad(value, ValueError("no such entity"))
        return found

    def _from_redis(self, text: str) -> Any:
        try:
            return _Ref(int(text))
        except ValueError as err:
            raise self._bad(text, err) from err

    def _to_redis(self, value: Any) -> str:
        if isinstance(value, _Ref):
            return str(value.id)
        return str(value._data[value._pkey])

    def _ref_id(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, _Ref):
            return int(value.id)
        return int(value._data[value._pkey])


def _relation_keygen(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, _Ref):
        return {"": str(value.id)}
    pkey = getattr(value, "_pkey", None)
    if pkey is not None:
        return {"": str(value._data[pkey])}
    return {"": str(value)}


class OneToOne(ManyToOne[T]):
    """Like :class:`ManyToOne`; ``unique=True`` makes each target referenced at most once."""

    def __init__(
        self: OneToOne[Any],
        ftable: str,
        on_delete: str = NO_ACTION_DEFAULT,
        required: bool = False,
        default: Any = NULL,
        unique: bool = False,
    ) -> None:
        super().__init__(ftable, on_delete, required, default)
        self._unique = bool(unique)


class ForeignModel(Column[T]):
    """A reference to an object of another ORM: ``fmodel.get(id)`` loads it, ``.id`` saves it."""

    _allowed = ()
    _relation = True

    def __init__(
        self: ForeignModel[Any], fmodel: Any, required: bool = False, default: Any = NULL
    ) -> None:
        self._fmodel = fmodel
        super().__init__(required=required, default=default, index=True)
        self._keygen = _foreign_keygen

    @overload
    def __get__(self: _C, obj: None, owner: Any) -> _C: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> T: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self._attr)
        value = obj._data.get(self._attr)
        if isinstance(value, _Ref):
            value = self._load(value.id)
            obj._data[self._attr] = value
        return value

    def _load(self, text: Any) -> Any:
        text = str(text)
        return self._fmodel.get(int(text) if text.isdigit() else text)

    def _validate(self, value: Any) -> Any:
        if isinstance(value, self._fmodel):
            return value
        return self._fmodel.get(value)

    def _from_redis(self, text: str) -> Any:
        return _Ref(text)

    def _to_redis(self, value: Any) -> str:
        if isinstance(value, _Ref):
            return str(value.id)
        return str(value.id)


def _foreign_keygen(value: Any) -> Any:
    if not value:
        return []
    ident = value.id
    try:
        return {"": str(float(ident) if not isinstance(ident, int) else ident)}
    except (TypeError, ValueError):
        return []


class OneToMany(Column[list[T]]):
    """The referencing side of a :class:`ManyToOne` / :class:`OneToOne`: a read-only list.

    Typing: reads as ``list[Any]``; annotate for a precise type:
    ``posts: rom.OneToMany[Post] = rom.OneToMany('Post')`` reads as ``list[Post]``.
    """

    _allowed = ()
    _relation = True
    _virtual = True

    def __init__(self: OneToMany[Any], ftable: str, column: str | None = None) -> None:
        if column in ON_DELETE or column is NO_ACTION_DEFAULT:
            raise ColumnError(
                "OneToMany lost its on_delete argument, use ManyToOne(..., on_delete=...)"
            )
        self._ftable = ftable
        self._column = column
        self._required = False
        self._default = NULL
        self._unique = self._index = self._prefix = self._suffix = False
        self._keygen = None
        self._keygen2 = False

    def get_related_model(self) -> Any:
        """The referencing model class, or ``None`` if it is not (yet) defined."""
        return MODELS.get(self._ftable)

    def _reverse_column(self) -> str:
        model = _lookup_model(self._ftable)
        if self._column:
            return self._column
        owner = self._model
        names = {owner._namespace, owner.__name__}
        columns: dict[str, _Column] = model._columns
        for attr, col in columns.items():
            if isinstance(col, ManyToOne) and col._ftable in names:
                return attr
        raise ORMError(
            f"Reverse relationship for OneToMany {self._attr!r} on {owner.__name__} not found"
        )

    @overload
    def __get__(self: _C, obj: None, owner: Any) -> _C: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> list[T]: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self._attr)
        model = _lookup_model(self._ftable)
        attr = self._reverse_column()
        pk = obj._data.get(obj._pkey)
        # get_by(attr=pk) read straight from the score index: ordered by pk text, as in rom
        conn = model._connection
        ids = conn.zrangebyscore(model._keyspace(conn).score(attr), pk, pk)
        return model.get([int(i) for i in ids])

    def __set__(self, obj: Any, value: list[T]) -> None:
        raise InvalidOperation("Cannot assign to a OneToMany column")

    def __delete__(self, obj: Any) -> None:
        raise InvalidOperation("Cannot delete a OneToMany column")


class IndexOnly(Column[T]):
    """A virtual column that only contributes index entries, computed by a keygen.

    Either ``column`` and ``keygen`` (index entries of another column's value) or ``keygen2``
    (entries of the whole entity) must be given.
    """

    _allowed = ()
    _relation = True  # no storage type
    _virtual = True

    def __init__(
        self: IndexOnly[None],
        column: str | None = None,
        keygen: Callable[[Any], Any] | None = None,
        prefix: bool = False,
        suffix: bool = False,
        keygen2: Callable[[str, dict[str, Any]], Any] | None = None,
        index: bool = False,
        unique: bool = False,
    ) -> None:
        if not ((column and keygen) or keygen2):
            raise ValueError("IndexOnly needs either column and keygen, or keygen2")
        if keygen2 is None:
            assert keygen is not None
            source: str = column or ""
            kg = keygen

            def column_keygen2(attr: str, data: dict[str, Any]) -> Any:
                return kg(data.get(source))

            column_keygen2.__name__ = getattr(keygen, "__name__", "keygen2")
            keygen2 = column_keygen2
        self._column = column
        self._required = False
        self._default = NULL
        self._unique = bool(unique)
        self._index = bool(index or prefix or suffix or not unique)
        self._prefix = bool(prefix)
        self._suffix = bool(suffix)
        self._keygen = keygen2
        self._keygen2 = True

    def __set__(self, obj: Any, value: T) -> None:
        if value is not None:
            raise InvalidColumnValue(f"IndexOnly column {self._attr!r} cannot hold data")

    def __delete__(self, obj: Any) -> None:
        pass

    def _construct(self, value: Any) -> Any:
        raise InvalidColumnValue(f"IndexOnly column {self._attr!r} cannot hold data")


class _UnsafeProxy:
    """Calls connection methods with the entity's private key as the first argument."""

    __slots__ = ("_conn", "_key")

    def __init__(self, conn: Any, key: str) -> None:
        self._conn = conn
        self._key = key

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._conn, name)
        key = self._key

        def call(*args: Any, skip_key: bool = False, **kwargs: Any) -> Any:
            if skip_key:
                return method(*args, **kwargs)
            return method(key, *args, **kwargs)

        return call


class UnsafeColumn(_Column):
    """A private Redis key per entity (``<ns>:<pk>:<attr>``) for native structures.

    ``entity.col.rpush('x')`` runs ``RPUSH <ns>:<pk>:col x``; the key is deleted with the
    entity.  Not saved, not indexed, not race-checked.

    Typing: ``entity.col`` is a proxy whose attributes are Redis commands
    (``Callable[..., Any]``).
    """

    _virtual = True
    _RESERVED = frozenset({"idx", "uidx", "pre", "suf", "geo"})

    def __init__(self) -> None:
        self._required = self._unique = self._index = self._prefix = self._suffix = False
        self._keygen = None

    def __set_name__(self, owner: type, name: str) -> None:
        assert name not in self._RESERVED, f"UnsafeColumn cannot be named {name!r}"
        self._attr = name

    @overload
    def __get__(self: _C, obj: None, owner: Any) -> _C: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> _UnsafeProxy: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self._attr)
        if obj._deleted:
            raise ValueError("The entity was deleted")
        cache = obj.__dict__.setdefault("_unsafe", {})
        proxy = cache.get(self._attr)
        if proxy is None:
            model = type(obj)
            conn = model._connection
            key = model._keyspace(conn).unsafe(obj._data[obj._pkey], self._attr)
            proxy = cache[self._attr] = _UnsafeProxy(conn, key)
        return proxy

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"Cannot assign to UnsafeColumn {self._attr!r}")

    def __delete__(self, obj: Any) -> None:
        model = type(obj)
        conn = model._connection
        conn.delete(model._keyspace(conn).unsafe(obj._data[obj._pkey], self._attr))


COLUMN_TYPES = [
    Column,
    Integer,
    Boolean,
    Float,
    Decimal,
    DateTime,
    SaferDateTime,
    Date,
    Time,
    String,
    Text,
    Json,
    PrimaryKey,
    ManyToOne,
    OneToOne,
    ForeignModel,
    OneToMany,
    IndexOnly,
    UnsafeColumn,
]
