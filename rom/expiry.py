"""Expiring entities whose indexes stay right (issue #9).

A model opts in by declaring ``_ttl``: the default lifetime in seconds of new entities, or
``None`` for no default (entities then expire only when asked to)::

    class Session(rom.Model):
        _ttl = 3600
        token = rom.Text(unique=True)

    s = Session(token='abc')
    s.save()              # expires an hour from now (server time)
    s.expire(60)          # ... or in a minute
    s.ttl()               # seconds left, None without expiry
    s.persist()           # never

How it works: expiry times live in one sorted set per model (``<ns>::expire``, pk -> unix
time, under the model's hash tag on a cluster).  The entity hash gets no Redis TTL, because
removing its index entries needs the bookkeeping stored in the hash.  Every read path checks
the expiry index in the same Lua call, against the server's clock, so an expired entity is
never returned by ``get``, ``get_by``, a query or ``count()`` from the moment it expires.
Saving an expired entity raises :class:`~rom.exceptions.EntityDeletedError` (``force=True``
recreates it), and a unique value whose holder expired is free for others.  The data and
index entries of expired entities are removed by :func:`expire_sweep`, in bounded batches of
single atomic calls; writes run a short sweep themselves whenever the write script reports
expired entries.  Updates keep an entity's expiry; only new entities get the default.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from .encoding import dt2ts, to_text
from .exceptions import EntityDeletedError, InvalidOperation
from .session import session

__all__ = ["expire_sweep", "fetch", "plan_fields"]

#: entities an opportunistic sweep after a write removes at most
OPPORTUNISTIC_SWEEP = 50


def _check(entity: Any) -> None:
    if not type(entity)._has_expiry:
        raise InvalidOperation(
            f"{type(entity).__name__} does not support expiry: declare _ttl on the model "
            "(None for no default lifetime)"
        )


def _timestamp(when: Any) -> float:
    if isinstance(when, datetime.datetime):
        return dt2ts(when)
    return float(when)


def _default(model: Any) -> tuple[str, float | None]:
    """The expiry request of a new entity: the model's ``_ttl`` (None: no expiry)."""
    ttl_ = model._ttl
    return ("persist", None) if ttl_ is None else ("in", float(ttl_))


def _request(entity: Any) -> tuple[str, float | None] | None:
    """The expiry a save of ``entity`` applies: ``(how, value)``, or ``None`` to keep it.

    ``how`` is ``"in"`` (seconds from now), ``"at"`` (unix time) or ``"persist"``.  A new
    entity without an explicit request gets the model's ``_ttl``.
    """
    pending: tuple[str, float | None] | None = vars(entity).get("_pending_expiry")
    if pending is not None:
        return pending
    return _default(type(entity)) if entity._new else None


def _local_time(how: str, value: float | None) -> float | None:
    """The unix time (client clock) an expiry request ends at, ``None`` for persist."""
    if how == "persist" or value is None:
        return None
    return time.time() + value if how == "in" else value


def _run(entity: Any, *args: str) -> Any:
    """Run expiry.lua for a saved entity (its expiry index and hash as KEYS)."""
    from .writer import run_script

    model = type(entity)
    conn = model._connection
    ks = model._keyspace(conn)
    pk = str(entity._data[model._pkey])
    return run_script(conn, "expiry", [ks.expiry(), ks.entity(pk)], [args[0], pk, *args[1:]])


def _gone(entity: Any) -> EntityDeletedError:
    pk = str(entity._data[entity._pkey])
    return EntityDeletedError(
        f"Entity {entity._pk} does not exist or expired", entity._namespace, pk
    )


def set_expiry(entity: Any, how: str, value: float | None = None) -> None:
    """Change the expiry of a saved entity now, or of a new one at its first save."""
    _check(entity)
    if how != "persist" and (value is None or value != value):
        raise ValueError("an expiry needs a number")
    if entity._new:
        entity._pending_expiry = (how, value)
        return
    if entity._deleted:
        raise _gone(entity)
    extra = [repr(float(value))] if value is not None else []
    if not int(_run(entity, "set", how, *extra)):
        raise _gone(entity)
    entity._expires_at = _local_time(how, value)


def expire(entity: Any, seconds: float) -> None:
    """Make the entity expire ``seconds`` from now (server time)."""
    set_expiry(entity, "in", float(seconds))


def expire_at(entity: Any, when: Any) -> None:
    """Make the entity expire at ``when`` (unix time, or a naive UTC / aware datetime)."""
    set_expiry(entity, "at", _timestamp(when))


def persist(entity: Any) -> None:
    """Remove the entity's expiry."""
    set_expiry(entity, "persist")


def ttl(entity: Any) -> float | None:
    """Seconds until the entity expires, or ``None`` when it has no expiry.

    Raises :class:`EntityDeletedError` when it no longer exists (or already expired).
    """
    _check(entity)
    if entity._new:
        how, value = _request(entity) or ("persist", None)
        if how == "in":
            return value  # counted from the first save
        at = _local_time(how, value)
        return None if at is None else at - time.time()
    left = _run(entity, "ttl")
    if isinstance(left, int):
        if left == -2:
            raise _gone(entity)
        return None
    return float(to_text(left))


def plan_fields(state: Any, batch: Any, delete: bool) -> dict[str, Any]:
    """The expiry part of an entity's write plan (see rom/lua/write.lua)."""
    if not state.model._has_expiry:
        return {}
    fields: dict[str, Any] = {"x": batch.key(state.ks.expiry())}
    if delete:
        if getattr(state, "sweep", False):
            fields["xe"] = 1
        return fields
    request = _request(state.entity)
    if request is None and state.as_new:  # force=True re-save: as new, model default
        request = _default(state.model)
    if request is not None:
        how, value = request
        if how == "persist" or value is None:
            fields["xr"] = 1
        else:
            fields["xs" if how == "in" else "xa"] = repr(float(value))
    return fields


def written(state: Any) -> None:
    """Update an entity's local expiry view after its save went through."""
    if not state.model._has_expiry:
        return
    entity = state.entity
    request: tuple[str, float | None] | None = vars(entity).pop("_pending_expiry", None)
    if request is None and state.as_new:
        request = _default(state.model)
    if request is not None:
        how, value = request
        entity._expires_at = _local_time(how, value)


def fetch(model: Any, conn: Any, pks: list[int]) -> list[tuple[dict[Any, Any], float | None]]:
    """``(raw hash, expiry time)`` of each pk (``{}`` when missing or expired): one call."""
    ks = model._keyspace(conn)
    from .writer import run_script

    keys = [ks.expiry()] + [ks.entity(pk) for pk in pks]
    rows = run_script(conn, "expiry", keys, ["get"] + [str(pk) for pk in pks])
    out = []
    for flat, at in rows:
        raw = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        out.append((raw, float(to_text(at)) if at else None))
    return out


def load(model: Any, conn: Any, pks: list[int], add: bool = True) -> list[Any]:
    """Entities of ``pks`` that exist and have not expired (``None`` for the others)."""
    out = []
    for raw, at in fetch(model, conn, pks):
        entity = model._from_hash(raw, add=add)
        if entity is not None:
            entity._expires_at = at
        out.append(entity)
    return out


def is_expired(entity: Any) -> bool:
    """Whether a cached entity's known expiry time has passed (client clock)."""
    at = entity.__dict__.get("_expires_at")
    return at is not None and at <= time.time()


def expire_sweep(model: Any, limit: int | None = None, batch: int = 100) -> int:
    """Delete expired entities of ``model`` with their index and unique entries.

    Works in batches of ``batch`` entities, each one atomic call that first checks the
    entities are still expired; returns how many were removed.  Safe to run from several
    processes at once.
    """
    from .writer import DeleteState, ReferencesChanged, execute, run_script

    if not model._has_expiry:
        return 0
    conn = model._connection
    ks = model._keyspace(conn)
    removed = 0
    while limit is None or removed < limit:
        size = batch if limit is None else min(batch, limit - removed)
        due = run_script(conn, "expiry", [ks.expiry()], ["due", str(size)])
        if not due:
            break
        pks = [int(to_text(pk)) for pk in due]
        pipe = conn.pipeline(transaction=False)
        for pk in pks:
            pipe.hgetall(ks.entity(pk))
        states = []
        for pk, raw in zip(pks, pipe.execute(), strict=False):
            entity = model._from_hash(raw, add=False) if raw else _stub(model, pk)
            state = DeleteState(entity)
            state.sweep = True
            states.append(state)
        try:
            execute(conn, states, sweeping=True)
        except ReferencesChanged:
            continue  # one of them was extended meanwhile: look again
        for state in states:
            known = session.get(f"{model._namespace}:{state.pk}")
            if known is not None:
                known._deleted = True
                session.forget(known)
        removed += len(states)
    return removed


def _stub(model: Any, pk: int) -> Any:
    """An entity with only its pk, standing for a hash that is already gone."""
    entity = model.__new__(model)
    entity._data = {model._pkey: pk}
    entity._last = {}
    entity._last_bk = None
    entity._last_legacy = False
    entity._new = entity._modified = False
    entity._deleted = False
    return entity
