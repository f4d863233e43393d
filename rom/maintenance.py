"""Index maintenance utilities (API.md §7.5, STORAGE.md §9).

* :func:`refresh_indices` rebuilds every index entry of a model's entities (after adding or
  changing indexes, or to upgrade rom < 1.0 bookkeeping); one atomic write per block.
* :func:`refresh_all_indexes` does it for every registered model, printing progress.
* :func:`clean_old_index` removes what rom < 1.0's bookkeeping hash ``<ns>::`` recorded for
  entities deleted since, and unique-index entries naming missing entities.
* :func:`clean_unsafe_cols` deletes :class:`~rom.UnsafeColumn` keys of missing entities.
* :func:`show_progress` prints the progress of those generators.

Every cleanup re-checks, inside a script, that the entity is still missing before removing
anything, so running them against a live database is safe.  They work with
``decode_responses=True`` clients, on namespaces containing ``:`` and on Redis Cluster.
"""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from . import writer
from .columns import MODELS
from .encoding import to_text
from .exceptions import DataRaceError, EntityDeletedError, ORMError
from .session import session

__all__ = [
    "clean_old_index",
    "clean_unsafe_cols",
    "refresh_all_indexes",
    "refresh_indices",
    "show_progress",
]


_MAX_ATTEMPTS = 8
_UNSAFE_RESERVED = frozenset({"idx", "uidx", "pre", "suf", "geo", ""})


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    block: list[Any] = []
    for item in items:
        block.append(item)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def _scan_keys(conn: Any, pattern: str, count: int) -> Iterator[bytes]:
    """Every key matching ``pattern``: SCAN until the cursor is 0 (all nodes of a cluster)."""
    for key in conn.scan_iter(match=pattern, count=count):
        yield _as_bytes(key)


def _entity_ids(conn: Any, prefix: str, block_size: int) -> Iterator[int]:
    """Ids of the keys ``<prefix>:<digits>`` (each once)."""
    head = _as_bytes(prefix + ":")
    seen: set[int] = set()
    for key in _scan_keys(conn, _glob_escape(prefix) + ":*", block_size):
        rest = key[len(head) :]
        if key.startswith(head) and rest.isdigit() and rest.isascii():
            pk = int(rest)
            if pk not in seen:
                seen.add(pk)
                yield pk


def _sync_session(state: writer.SaveState, old_last: dict[str, str]) -> None:
    """Tell a session copy of a rebuilt entity what is stored now."""
    fresh = state.entity
    known = session.get(fresh._pk)
    if known is None or known is fresh:
        return
    last = dict(known._last)
    for attr, text in fresh._last.items():
        if last.get(attr) == old_last.get(attr):
            last[attr] = text
    known._last = last
    known._last_bk = fresh._last_bk
    known._last_legacy = False


def _rebuild(model: Any, conn: Any, ids: list[int]) -> None:
    """Re-save one block of entities with every index entry rebuilt, in one atomic call."""
    ks = model._keyspace(conn)
    for _ in range(_MAX_ATTEMPTS):
        pipe = conn.pipeline(transaction=False)
        for pk in ids:
            pipe.hgetall(ks.entity(pk))
        loaded = [model._from_hash(raw, add=False) for raw in writer.run_pipeline(pipe) if raw]
        if not loaded:
            return
        states = [writer.SaveState(e, full=True) for e in loaded]
        old = [dict(e._last) for e in loaded]
        try:
            writer.execute(conn, states)
        except (DataRaceError, EntityDeletedError):
            continue  # another writer changed an entity of the block: reload and retry
        for state, old_last in zip(states, old, strict=True):
            _sync_session(state, old_last)
        return
    raise ORMError(f"Could not rebuild the indexes of {model.__name__}: entities keep changing")


def refresh_indices(
    model: Any, block_size: int = 100, scan: bool = True
) -> Iterator[tuple[int, int]]:
    """Rebuild every index entry (and the index bookkeeping) of ``model``'s entities.

    A generator: each block of entities is loaded with one pipelined round trip and
    re-saved with ``full=True`` in **one** atomic write, then ``(progress, total)`` is
    yielded; the last value yielded is ``(total, total)``.  Unlike rom 1.x, the session is
    not committed: saving unrelated session entities was a rom 1.x wart (it wrote whatever
    the application had modified).  Session copies of rebuilt entities learn the new stored
    state.

    :param block_size: entities per block (at least 10)
    :param scan: find entities by SCANning ``<ns>:*`` (every page, until the cursor is 0);
        ``False`` walks the ids 1 to the id counter instead
    :returns: an iterator of ``(progress, total)``: entity keys processed (with ``scan``)
        or ids examined, and the id counter value
    """
    block_size = max(int(block_size), 10)
    conn = model._connection
    ks = model._keyspace(conn)
    total = int(conn.get(ks.counter(model._pkey)) or 0)
    ids: Iterable[int] = _entity_ids(conn, ks.prefix, block_size) if scan else range(1, total + 1)
    progress = 0
    for block in _chunks(ids, block_size):
        _rebuild(model, conn, block)
        progress += len(block)
        total = max(total, progress)
        if progress < total:
            yield progress, total
    yield total, total


def refresh_all_indexes() -> None:
    """:func:`refresh_indices` for every registered model (each once), with progress."""
    from .model import Model

    seen: set[int] = set()
    for model in list(MODELS.values()):
        if model is Model or id(model) in seen:
            continue
        seen.add(id(model))
        print("updating", model._namespace)
        show_progress(refresh_indices(model))


def _unique_names(model: Any) -> list[str]:
    names = sorted(model._unique)
    names += sorted(":".join(group) for group in model._cunique)
    return names


def _clean_legacy(model: Any, conn: Any, items: list[tuple[Any, Any]]) -> int:
    """Clean one page of ``<ns>::`` records whose entity is missing; returns how many."""
    ks = model._keyspace(conn)
    records: list[tuple[str, Any]] = []
    for field, record in items:
        raw = _as_bytes(field)
        if raw.isdigit() and raw.isascii():
            records.append((raw.decode(), record))
    if not records:
        return 0
    pipe = conn.pipeline(transaction=False)
    for pk, _record in records:
        pipe.exists(ks.entity(pk))
    missing = [r for r, found in zip(records, writer.run_pipeline(pipe), strict=True) if not found]
    batch = writer.Batch()
    todo: list[dict[str, Any]] = []
    for pk, record in missing:
        try:
            text = to_text(record)
        except UnicodeDecodeError:
            continue  # cannot be passed through JSON; rom < 1.0 never wrote such records
        old = writer.parse_bookkeeping(text)
        ops = writer._index_ops(batch, ks, pk, old, None, False)
        todo.append(
            {
                "e": batch.key(ks.entity(pk)),
                "l": batch.key(ks.legacy()),
                "pk": pk,
                "rec": text,
                "rm": ops.get("rm", []),
            }
        )
    if not todo:
        return 0
    args = [json.dumps(todo, separators=(",", ":"))]
    return int(writer.run_script(conn, "maint_legacy", batch.keys, args))


def _clean_unique(model: Any, conn: Any, key: str, items: list[tuple[Any, Any]]) -> int:
    """Remove unique-index fields of one page naming missing entities; returns how many."""
    ks = model._keyspace(conn)
    pairs: list[tuple[Any, str]] = []
    for field, value in items:
        raw = _as_bytes(value)
        if raw.isdigit() and raw.isascii():
            pairs.append((field, raw.decode()))
    if not pairs:
        return 0
    pipe = conn.pipeline(transaction=False)
    for _field, pk in pairs:
        pipe.exists(ks.entity(pk))
    missing = [p for p, found in zip(pairs, writer.run_pipeline(pipe), strict=True) if not found]
    if not missing:
        return 0
    keys = [key]
    args: list[Any] = []
    for field, pk in missing:
        keys.append(ks.entity(pk))
        args += [field, len(keys)]
    return int(writer.run_script(conn, "maint_unique", keys, args))


def _hash_pages(conn: Any, key: str, block_size: int, hscan: bool) -> Iterator[list[Any]]:
    if not hscan:
        yield from _chunks(conn.hgetall(key).items(), block_size)
        return
    cursor = 0
    while True:
        cursor, data = conn.hscan(key, cursor, count=block_size)
        if data:
            yield list(data.items())
        if int(cursor) == 0:
            return


def clean_old_index(
    model: Any, block_size: int = 100, force_hscan: bool | None = False
) -> Iterator[tuple[int, int]]:
    """Remove leftovers of rom < 1.0 index bookkeeping for entities deleted since.

    A generator yielding ``(progress, total)`` per page and finally ``(max, max)``.  For
    every record of ``<ns>::`` whose entity hash no longer exists, the recorded index
    entries and the record are removed (atomically per page, re-checking that the entity
    is still missing).  Then, unless ``force_hscan is None``, unique-index fields naming a
    missing entity are removed too.

    :param block_size: fields per page
    :param force_hscan: ``None`` skips the unique-index cleanup (with a ``UserWarning`` if
        the model has unique indexes); any other value uses HSCAN (every server rom
        supports has it)
    """
    block_size = max(int(block_size), 1)
    conn = model._connection
    ks = model._keyspace(conn)
    uniques = _unique_names(model)
    hscan = force_hscan is not None
    if not hscan and uniques:
        warnings.warn(
            f"Unique indexes of {model.__name__} are not cleaned without HSCAN",
            UserWarning,
            stacklevel=2,
        )
    legacy = ks.legacy()
    total = int(conn.hlen(legacy))
    if hscan:
        total += sum(int(conn.hlen(ks.unique(name))) for name in uniques)
    progress = 0
    for page in _hash_pages(conn, legacy, block_size, hscan):
        _clean_legacy(model, conn, page)
        progress += len(page)
        yield progress, max(progress, total)
    if hscan:
        for name in uniques:
            key = ks.unique(name)
            for page in _hash_pages(conn, key, block_size, True):
                _clean_unique(model, conn, key, page)
                progress += len(page)
                yield progress, max(progress, total)
    done = max(progress, total)
    yield done, done


def clean_unsafe_cols(*models: Any, block_size: int = 1000) -> tuple[int, int]:
    """Delete :class:`~rom.UnsafeColumn` keys ``<ns>:<pk>:<attr>`` whose entity is missing.

    SCANs ``<ns>:*`` of each model to the end (every page, every model); a key is a
    candidate when, after the namespace, it is ``<digits>:<attr>`` with ``attr`` an
    identifier that is not ``idx``, ``uidx``, ``pre``, ``suf`` or ``geo``.  Each page is
    cleaned by one script that deletes a candidate only if its entity is still missing.

    :returns: ``(keys_examined, keys_deleted)``
    :raises ValueError: no model given
    """
    if not models:
        raise ValueError("missing models")
    block_size = max(int(block_size), 1)
    examined = deleted = 0
    for model in models:
        conn = model._connection
        ks = model._keyspace(conn)
        head = _as_bytes(ks.prefix + ":")
        pattern = _glob_escape(ks.prefix) + ":*"
        for page in _chunks(_scan_keys(conn, pattern, block_size), block_size):
            examined += len(page)
            keys: list[Any] = []
            for key in page:
                parts = key[len(head) :].split(b":")
                if len(parts) != 2 or not (parts[0].isdigit() and parts[0].isascii()):
                    continue
                attr = parts[1].decode("utf-8", "replace")
                if attr in _UNSAFE_RESERVED or not attr.isidentifier():
                    continue
                keys += [key, ks.entity(parts[0].decode())]
            if keys:
                deleted += int(writer.run_script(conn, "maint_unsafe", keys, []))
    return examined, deleted


def _progress_line(progress: int, total: int, elapsed: float) -> str:
    pct = 100.0 * progress / total if total else 100.0
    remaining = elapsed * (total - progress) / progress if progress and total else 0.0
    return (
        f"{pct:.1f}% complete, {elapsed:.1f} seconds elapsed, "
        f"{max(remaining, 0.0):.1f} seconds remaining"
    )


def show_progress(job: Iterable[tuple[int, int]]) -> None:
    """Consume a ``(progress, total)`` iterator, printing its progress.

    Prints ``"<pct>% complete, <s> seconds elapsed, <s> seconds remaining"`` followed by
    ``\\r`` at most every 0.1 s, then the final state and a newline.
    """
    start = last = time.monotonic()
    printed = False
    progress = total = 0
    for progress, total in job:
        now = time.monotonic()
        if not printed or now - last >= 0.1:
            sys.stdout.write(_progress_line(progress, total, now - start) + "\r")
            sys.stdout.flush()
            printed = True
            last = now
    sys.stdout.write(_progress_line(progress, total, time.monotonic() - start) + "\r\n")
    sys.stdout.flush()
