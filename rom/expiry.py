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


def set_expiry(entity: Any, how: str, value: float | None = None) -> None:
    """Change the expiry of a saved entity now, or of a new one at its first save."""
    _check(entity)
    if how != "persist" and (value is None or value != value):
        raise ValueError("an expiry needs a number")
    if entity._new:
        entity._pending_expiry = (how, value)
        return
    if entity._deleted:
        raise EntityDeletedError(f"Entity {entity._pk} was deleted", entity._namespace, "")
    model = type(entity)
    conn = model._connection
    ks = model._keyspace(conn)
    pk = str(entity._data[model._pkey])
    args = ["set", pk, how] + ([repr(float(value))] if value is not None else [])
    from .writer import run_script

    if not int(run_script(conn, "expiry", [ks.expiry(), ks.entity(pk)], args)):
        raise EntityDeletedError(
            f"Entity {entity._pk} does not exist or expired", model._namespace, pk
        )
    if how == "persist" or value is None:  # value is None only for "persist" (checked above)
        entity._expires_at = None
    elif how == "in":
        entity._expires_at = time.time() + float(value)
    else:
        entity._expires_at = float(value)


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
        pending = getattr(entity, "_pending_expiry", None)
        if pending is None:
            return None if type(entity)._ttl is None else float(type(entity)._ttl)
        how, value = pending
        if how == "persist":
            return None
        return float(value) if how == "in" else float(value) - time.time()
    model = type(entity)
    conn = model._connection
    ks = model._keyspace(conn)
    pk = str(entity._data[model._pkey])
    from .writer import run_script

    left = run_script(conn, "expiry", [ks.expiry(), ks.entity(pk)], ["ttl", pk])
    if isinstance(left, int):
        if left == -2:
            raise EntityDeletedError(
                f"Entity {entity._pk} does not exist or expired", model._namespace, pk
            )
        return None
    return float(to_text(left))


def plan_fields(state: Any, batch: Any, delete: bool) -> dict[str, Any]:
    """The expiry part of an entity's write plan (see rom/lua/write.lua)."""
    model = state.model
    if not model._has_expiry:
        return {}
    fields: dict[str, Any] = {"x": batch.key(state.ks.expiry())}
    if delete:
        if getattr(state, "sweep", False):
            fields["xe"] = 1
        return fields
    entity = state.entity
    pending = getattr(entity, "_pending_expiry", None)
    if pending is not None:
        how, value = pending
        if how == "persist":
            fields["xr"] = 1
        elif how == "in":
            fields["xs"] = repr(float(value))
        else:
            fields["xa"] = repr(float(value))
    elif state.as_new:
        if model._ttl is not None:
            fields["xs"] = repr(float(model._ttl))
        else:
            fields["xr"] = 1
    return fields


def written(state: Any) -> None:
    """Update an entity's local expiry view after its save went through."""
    entity = state.entity
    if not state.model._has_expiry:
        return
    pending = getattr(entity, "_pending_expiry", None)
    entity.__dict__.pop("_pending_expiry", None)
    if pending is not None:
        how, value = pending
        entity._expires_at = (
            None if how == "persist" else time.time() + value if how == "in" else value
        )
    elif state.as_new:
        ttl_ = state.model._ttl
        entity._expires_at = None if ttl_ is None else time.time() + float(ttl_)


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
