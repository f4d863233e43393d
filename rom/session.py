"""The per-thread identity map (API.md §7.4).

``rom.session`` is the single :class:`Session` object; each thread sees its own maps.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from .exceptions import ORMError

__all__ = ["Session", "session"]


def _flatten(objects: Iterable[Any]) -> Iterator[Any]:
    for obj in objects:
        if isinstance(obj, (list, tuple)):
            yield from _flatten(obj)
        else:
            yield obj


def _is_model(obj: Any) -> bool:
    from .model import Model

    return isinstance(obj, Model)


def _util() -> Any:
    """``rom.util`` (imported late: it imports this module)."""
    return sys.modules["rom.util"]


class Session(threading.local):
    """Identity map of the entities this thread has created or loaded.

    ``Model.get`` returns the session's object for a known id, so one thread sees one Python
    object per entity.  :meth:`commit` saves every modified entity and empties the map.

    Example::

        user = User(email='a@example.com')   # added to the session
        rom.session.commit()                 # saved
    """

    def __init__(self) -> None:
        self.known: dict[str, Any] = {}
        self.wknown: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    # -- null session ------------------------------------------------------------------------
    @property
    def null_session(self) -> bool:
        """Whether this thread keeps no identity map (default: ``rom.util.NULL_SESSION``)."""
        value = self.__dict__.get("_null_session")
        if value is None:
            return bool(_util().NULL_SESSION)
        return bool(value)

    @null_session.setter
    def null_session(self, value: bool) -> None:
        self.__dict__["_null_session"] = bool(value)

    @null_session.deleter
    def null_session(self) -> None:
        self.__dict__.pop("_null_session", None)

    # -- identity map ------------------------------------------------------------------------
    def add(self, obj: Any) -> None:
        """Remember ``obj`` (ignored in null-session mode or while it has no pk)."""
        null = self.__dict__.get("_null_session")
        if null or (null is None and _util().NULL_SESSION):
            return
        pk = obj._data.get(obj._pkey)
        if pk is None:
            return
        key = f"{obj._namespace}:{pk}"
        if self.known.get(key) is obj:
            return  # already known (the weak map then holds it too)
        self.known[key] = obj
        self.wknown[key] = obj

    def forget(self, obj: Any) -> None:
        """Drop ``obj`` from both maps."""
        key = f"{obj._namespace}:{obj._data.get(obj._pkey)}"
        self.known.pop(key, None)
        self.wknown.pop(key, None)

    def get(self, pk: str) -> Any:
        """The entity known as ``'<namespace>:<pk>'``, or ``None``."""
        obj = self.known.get(pk)
        if obj is None:
            obj = self.wknown.get(pk)
        return obj

    def rollback(self) -> None:
        """Forget every entity (nothing is written)."""
        self.known.clear()
        self.wknown.clear()

    def flush(self, full: bool = False, all: bool = False, force: bool = False) -> int:
        """Save every modified entity of this thread; returns the number of changed columns."""
        return self.save(*list(self.known.values()), full=full, all=all, force=force)

    def commit(self, full: bool = False, all: bool = False, force: bool = False) -> int:
        """:meth:`flush`, then forget the strongly held entities."""
        changes = self.flush(full=full, all=all, force=force)
        self.known.clear()
        return changes

    def save(
        self, *objects: Any, full: bool = False, all: bool = False, force: bool = False
    ) -> int:
        """Save the given entities (lists allowed) that are modified (or all, ``all=True``).

        Entities of one model namespace group are written in one atomic call where
        possible; the first error stops the rest.
        """
        entities = list(_flatten(objects))
        for obj in entities:
            if not _is_model(obj):
                raise ORMError(f"Cannot save an object that is not a model: {obj!r}")
        todo = [o for o in entities if not o._deleted and (all or o._modified)]
        if not todo:
            return 0
        from .writer import save_many

        return save_many(todo, full=full, force=force)

    def delete(self, *objects: Any, force: bool = False) -> None:
        """Delete many entities with one round trip per connection (no on_delete rules)."""
        from .writer import delete_many

        entities = list(_flatten(objects))
        for obj in entities:
            if not _is_model(obj):
                raise ORMError(f"Cannot delete an object that is not a model: {obj!r}")
            model = type(obj)
            if not model._no_fk or model._referenced():
                raise ORMError(
                    f"Cannot bulk delete entities of {model.__name__}: it has foreign key "
                    "relations; delete them one by one"
                )
        todo = [o for o in entities if force or not o._deleted]
        fresh = [o for o in todo if not o._deleted]
        for obj in fresh:
            obj._before_delete()
        delete_many([o for o in todo if not o._new])
        for obj in todo:
            obj._deleted = True
            obj._modified = True
            self.forget(obj)
            obj._after_delete()

    def refresh(self, *objects: Any, force: bool = False) -> None:
        """Reload the given entities from Redis (new ones are just re-added)."""
        for obj in _flatten(objects):
            if not _is_model(obj):
                raise ORMError(f"Cannot refresh an object that is not a model: {obj!r}")
            if obj._new:
                self.add(obj)
            else:
                obj.refresh(force=force)

    def refresh_all(self, force: bool = False) -> None:
        """Reload every strongly held entity."""
        self.refresh(*list(self.known.values()), force=force)


session = Session()
