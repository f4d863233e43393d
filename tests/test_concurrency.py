"""Several processes writing the same entities: uniqueness, lost updates, index consistency.

Each worker process connects on its own (a new client of the test server: the URL of
``ROM_TEST_REDIS_URL`` or the embedded server's unix socket) and sets
``rom.util.CONNECTION``.  The workers and models live at module level so the tests work
with both the ``fork`` and the ``spawn`` start methods.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import traceback
from typing import Any

import pytest
import redis

import rom
from rom import columns, util
from rom.encoding import _encode_unique_constraint
from rom.writer import BOOKKEEPING, index_entries

PROCESSES = 6
START_METHOD = os.environ.get("ROM_TEST_MP_START", "fork")


# -- connecting from a worker ----------------------------------------------------------------


def client_spec(conn: Any) -> dict[str, Any]:
    """What a worker needs to open its own client to the test server."""
    if not isinstance(conn, redis.Redis):  # a cluster client
        return {"cluster_url": os.environ["ROM_TEST_REDIS_URL"]}
    kwargs = conn.connection_pool.connection_kwargs
    spec: dict[str, Any] = {"db": kwargs.get("db", 0)}
    if "path" in kwargs:
        spec["unix_socket_path"] = kwargs["path"]
    else:
        spec.update(host=kwargs["host"], port=kwargs["port"])
    for key in ("username", "password"):
        if kwargs.get(key):
            spec[key] = kwargs[key]
    return spec


def connect(spec: dict[str, Any]) -> Any:
    """Open a new client from a :func:`client_spec` and make rom use it."""
    if "cluster_url" in spec:
        from redis.cluster import RedisCluster

        client: Any = RedisCluster.from_url(spec["cluster_url"])
    else:
        client = redis.Redis(**spec)
    util.CONNECTION = client
    rom.session.rollback()
    return client


# -- models (defined once per process) -------------------------------------------------------


def member_model() -> Any:
    if "Member" in columns.MODELS:
        return columns.MODELS["Member"]

    class Member(rom.Model):
        email = rom.Text(required=True, unique=True)
        nick = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True)
        a = rom.Integer()
        b = rom.Text()
        unique_together = [("a", "b")]

    return Member


def doc_model() -> Any:
    if "Doc" in columns.MODELS:
        return columns.MODELS["Doc"]

    class Doc(rom.Model):
        a = rom.Integer(index=True)
        b = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        c = rom.Text(unique=True)
        s = rom.Text(index=True, keygen=rom.SIMPLE_CI)
        d = rom.Integer()  # written alone by some workers (their index rebuild must merge)
        both = rom.IndexOnly(keygen2=lambda attr, data: [f"{data.get('a')}|{data.get('d')}"])

    return Doc


def note_model() -> Any:
    if "Note" in columns.MODELS:
        return columns.MODELS["Note"]

    class Note(rom.Model):
        a = rom.Integer(index=True)
        b = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)
        d = rom.Integer()

    return Note


def counter_model() -> Any:
    if "Counter" in columns.MODELS:
        return columns.MODELS["Counter"]

    class Counter(rom.Model):
        n = rom.Integer(index=True, default=0)
        tag = rom.Text(index=True, keygen=rom.IDENTITY)

    return Counter


# -- running workers -------------------------------------------------------------------------


def _run_worker(
    target: Any, out: Any, barrier: Any, spec: dict[str, Any], args: tuple[Any, ...]
) -> None:
    try:
        connect(spec)
        barrier.wait(timeout=30)
        out.put(("ok", target(*args)))
    except BaseException:
        out.put(("error", traceback.format_exc()))


def run_workers(
    conn: Any,
    target: Any,
    args_list: list[tuple[Any, ...]],
    method: str = START_METHOD,
    shared: Any = None,
) -> list[Any]:
    """Run ``target(*args)`` in one process per item of ``args_list``; return the results.

    ``shared(ctx)``, if given, makes objects shared by all workers (appended to each args).
    """
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    barrier = ctx.Barrier(len(args_list))
    spec = client_spec(conn)
    extra = tuple(shared(ctx)) if shared else ()
    procs = [
        ctx.Process(target=_run_worker, args=(target, out, barrier, spec, args + extra))
        for args in args_list
    ]
    for proc in procs:
        proc.start()
    results, errors = [], []
    try:
        for _ in procs:
            status, value = out.get(timeout=60)
            (results if status == "ok" else errors).append(value)
    except queue.Empty:  # pragma: no cover - reported by the assertion below
        errors.append("a worker did not answer in time")
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():  # pragma: no cover
            proc.kill()
    assert errors == []
    return results


# -- the keyspace checker --------------------------------------------------------------------


def check_index_consistency(conn: Any, model: Any) -> list[str]:
    """Problems found comparing a model's index keys with its entities' hashes.

    Every recorded entry (``-index-data-``) must exist, must be what the entity's data gives,
    and every member of every index, unique and prefix/suffix key must belong to an entity
    that records it.
    """
    ns = model._namespace
    problems: list[str] = []
    hashes: dict[str, dict[str, str]] = {}
    index_keys: dict[str, str] = {}
    for raw_key in conn.keys(f"{ns}:*"):
        key = raw_key.decode()
        rest = key[len(ns) + 1 :]
        kind = conn.type(raw_key).decode()
        if rest.isdigit() and kind == "hash":
            hashes[rest] = {k.decode(): v.decode() for k, v in conn.hgetall(raw_key).items()}
        elif rest != f"{model._pkey}:":
            index_keys[rest] = kind
    recorded: dict[str, list[list[Any]]] = {}
    for pk, fields in hashes.items():
        slots = json.loads(fields.get(BOOKKEEPING, "[[],[],[],[],[]]"))
        slots = [s if isinstance(s, list) else [] for s in slots]
        recorded[pk] = slots
        entity = model._from_hash({k.encode(): v.encode() for k, v in fields.items()}, add=False)
        want = json.loads(index_entries(model, entity._data).bookkeeping())
        for i, (have, should) in enumerate(zip(slots, want, strict=True)):
            if sorted(map(json.dumps, have)) != sorted(map(json.dumps, should)):
                problems.append(f"{ns}:{pk} slot {i} records {have} but its data gives {should}")
        for token in slots[0]:
            if not conn.sismember(f"{ns}:{token}:idx", pk):
                problems.append(f"{ns}:{pk} token {token} missing")
        for name in slots[1]:
            if conn.zscore(f"{ns}:{name}:idx", pk) is None:
                problems.append(f"{ns}:{pk} score {name} missing")
        for slot, suffix in ((2, "pre"), (3, "suf")):
            for attr, value in slots[slot]:
                if conn.zscore(f"{ns}:{attr}:{suffix}", f"{value}\0{pk}") is None:
                    problems.append(f"{ns}:{pk} {suffix} {attr}={value} missing")
        for attr in model._unique:
            text = fields.get(attr)
            if text and conn.hget(f"{ns}:{attr}:uidx", text) != pk.encode():
                problems.append(f"{ns}:{pk} unique {attr}={text} not owned")
        for group in model._cunique:
            texts = [fields.get(a) for a in group]
            if all(t is not None for t in texts):
                name = ":".join(group)
                if conn.hget(f"{ns}:{name}:uidx", _encode_unique_constraint(texts)) != pk.encode():
                    problems.append(f"{ns}:{pk} composite {name}={texts} not owned")
    for rest, kind in index_keys.items():
        key = f"{ns}:{rest}"
        if kind == "set" and rest.endswith(":idx"):
            token = rest[:-4]
            for member in conn.smembers(key):
                pk = member.decode()
                if token not in recorded.get(pk, [[]])[0]:
                    problems.append(f"stray token member {key} {pk}")
        elif kind == "zset" and rest.endswith(":idx"):
            name = rest[:-4]
            for member in conn.zrange(key, 0, -1):
                pk = member.decode()
                if name not in recorded.get(pk, [[], []])[1]:
                    problems.append(f"stray score member {key} {pk}")
        elif kind == "zset" and rest.endswith((":pre", ":suf")):
            attr, slot = rest[:-4], 2 if rest.endswith(":pre") else 3
            for member in conn.zrange(key, 0, -1):
                value, _, pk = member.decode().rpartition("\0")
                if [attr, value] not in recorded.get(pk, [[]] * 5)[slot]:
                    problems.append(f"stray {rest[-3:]} member {key} {member!r}")
        elif kind == "hash" and rest.endswith(":uidx"):
            name = rest[:-5]
            for field, owner in conn.hgetall(key).items():
                pk = owner.decode()
                fields = hashes.get(pk)
                if fields is None:
                    problems.append(f"unique {key} {field!r} points at missing {pk}")
                elif name in model._unique:
                    if fields.get(name) != field.decode():
                        problems.append(f"unique {key} {field!r} not the value of {pk}")
                else:
                    group = name.split(":")
                    texts = [fields.get(a) for a in group]
                    if None in texts or _encode_unique_constraint(texts) != field.decode():
                        problems.append(f"composite {key} {field!r} not the values of {pk}")
        else:
            problems.append(f"unexpected key {key} ({kind})")
    return problems


def test_checker_finds_problems(conn):
    """The checker reports stray, missing and wrong entries (so it can fail)."""
    Member = member_model()
    x = Member(email="a@x", nick="n", a=1, b="b")
    x.save()
    assert check_index_consistency(conn, Member) == []
    conn.sadd("Member:nick:ghost:idx", 99)
    conn.hset("Member:email:uidx", "b@x", 1)
    conn.zrem("Member:nick:pre", b"n\x001")
    conn.hset("Member:1", "nick", "changed")
    problems = check_index_consistency(conn, Member)
    assert any("stray token" in p for p in problems)
    assert any("b@x" in p for p in problems)
    assert any("pre nick=n missing" in p for p in problems)
    assert any("slot 0" in p for p in problems)


# -- workers ---------------------------------------------------------------------------------


def create_unique(worker: int, emails: list[str]) -> dict[str, Any]:
    """Try to create one Member per email (in a worker-specific order)."""
    Member = member_model()
    order = list(emails)
    random.Random(worker).shuffle(order)
    won, lost = [], 0
    for email in order:
        number = int(email.split("@")[0][1:])
        entity = Member(email=email, nick=f"w{worker}", a=number, b=f"{worker}")
        try:
            entity.save()
            won.append(email)
        except rom.UniqueKeyViolation:
            lost += 1
        rom.session.rollback()
    return {"won": won, "lost": lost}


def update_doc(worker: int, rounds: int) -> dict[str, int]:
    """Load Doc 1 and overwrite it; only DataRaceError may stop a save."""
    Doc = doc_model()
    saved = raced = 0
    rng = random.Random(worker)
    for i in range(rounds):
        rom.session.rollback()
        doc = Doc.get(1)
        if worker % 3 == 0:
            doc.d = worker * 1000 + i  # not indexed itself, but feeds IndexOnly `both`
        else:
            tag = f"w{worker}r{i}"
            doc.a = worker * 1000 + i
            doc.b = f"{tag} common word{rng.randint(0, 3)}"
            doc.c = tag
            doc.s = tag.upper()
        try:
            doc.save()
            saved += 1
        except rom.DataRaceError:
            raced += 1
    return {"saved": saved, "raced": raced}


def update_note(worker: int, rounds: int, finished: Any) -> dict[str, int]:
    """Worker 0 keeps one stale Note and writes only `d`; the others write `a` and `b`."""
    Note = note_model()
    saved = raced = 0
    if worker == 0:
        note = Note.get(1)  # loaded once: its a and b go stale
        while True:
            last_round = finished.value == PROCESSES - 1
            note.d = (note.d or 0) + 1
            try:
                note.save()
                saved += 1
            except rom.DataRaceError:  # replanned too often under contention
                raced += 1
            if last_round:
                return {"saved": saved, "raced": raced}
    for i in range(rounds):
        rom.session.rollback()
        note = Note.get(1)
        note.a = worker * 1000 + i
        note.b = f"w{worker} r{i}"
        try:
            note.save()
            saved += 1
        except rom.DataRaceError:
            raced += 1
    with finished.get_lock():
        finished.value += 1
    return {"saved": saved, "raced": raced}


def increment(worker: int, times: int) -> dict[str, int]:
    """Increment Counter 1 ``times`` times, retrying on DataRaceError."""
    Counter = counter_model()
    retries = 0
    done = 0
    while done < times:
        rom.session.rollback()
        counter = Counter.get(1)
        counter.n += 1
        counter.tag = f"w{worker}"
        try:
            counter.save()
            done += 1
        except rom.DataRaceError:
            retries += 1
    return {"retries": retries}


def churn(worker: int, rounds: int) -> dict[str, int]:
    """Randomly update, delete and recreate Docs 1..8."""
    Doc = doc_model()
    rng = random.Random(worker * 7919)
    stats = {"saved": 0, "deleted": 0, "raced": 0, "gone": 0, "created": 0, "taken": 0}
    for i in range(rounds):
        rom.session.rollback()
        doc = Doc.get(rng.randint(1, 8))
        if doc is None:
            fresh = Doc(a=i, b=f"new w{worker}", c=f"c{rng.randint(0, 5)}", s="x")
            try:
                fresh.save()
                stats["created"] += 1
            except rom.UniqueKeyViolation:
                stats["taken"] += 1
            continue
        if rng.random() < 0.3:
            doc.delete()
            stats["deleted"] += 1
            continue
        doc.a = worker * 1000 + i
        doc.b = f"w{worker} r{i}"
        doc.c = f"c{rng.randint(0, 5)}"
        try:
            doc.save()
            stats["saved"] += 1
        except rom.DataRaceError:
            stats["raced"] += 1
        except rom.EntityDeletedError:
            stats["gone"] += 1
        except rom.UniqueKeyViolation:
            stats["taken"] += 1
    return stats


# -- tests -----------------------------------------------------------------------------------


def test_racing_unique_creation(conn):
    """N processes creating the same unique values: exactly one wins each."""
    Member = member_model()
    emails = [f"e{i}@x" for i in range(30)]
    results = run_workers(conn, create_unique, [(w, emails) for w in range(PROCESSES)])
    won = [e for r in results for e in r["won"]]
    assert sorted(won) == sorted(emails)
    assert sum(r["lost"] for r in results) == len(emails) * (PROCESSES - 1)
    owners = conn.hgetall("Member:email:uidx")
    assert sorted(k.decode() for k in owners) == sorted(emails)
    for email, pk in owners.items():
        assert conn.hget(f"Member:{pk.decode()}", "email") == email
    assert len(conn.keys("Member:[0-9]*")) == len(emails)
    assert conn.hlen("Member:a:b:uidx") == len(emails)
    assert check_index_consistency(conn, Member) == []


def test_racing_updates_of_one_entity(conn):
    """Concurrent updates either succeed or raise DataRaceError; data and indexes agree."""
    Doc = doc_model()
    Doc(a=0, b="start", c="start", s="start", d=0).save()
    rounds = 25
    results = run_workers(conn, update_doc, [(w, rounds) for w in range(PROCESSES)])
    assert sum(r["saved"] + r["raced"] for r in results) == PROCESSES * rounds
    assert sum(r["saved"] for r in results) >= 1
    raw = {k.decode(): v.decode() for k, v in conn.hgetall("Doc:1").items()}
    worker, rnd = divmod(int(raw["a"]), 1000)
    tag = f"w{worker}r{rnd}"
    assert raw["c"] == tag and raw["s"] == tag.upper() and raw["b"].startswith(tag + " ")
    assert conn.hgetall("Doc:c:uidx") == {tag.encode(): b"1"}
    assert check_index_consistency(conn, Doc) == []


def test_unwritten_indexed_columns_follow_other_writers(conn):
    """A stale entity writing only `d` keeps the other columns' index entries in step."""
    Note = note_model()
    Note(a=0, b="start", d=0).save()
    results = run_workers(
        conn,
        update_note,
        [(w, 15) for w in range(PROCESSES)],
        shared=lambda ctx: [ctx.Value("i", 0)],
    )
    assert sum(r["saved"] for r in results) >= PROCESSES
    assert check_index_consistency(conn, Note) == []
    raw = conn.hgetall("Note:1")
    assert conn.zscore("Note:a:idx", 1) == float(raw[b"a"])


def test_concurrent_counters(conn):
    """Load-increment-save with retries on DataRaceError loses no increment."""
    Counter = counter_model()
    Counter(n=0).save()
    times = 15
    results = run_workers(conn, increment, [(w, times) for w in range(PROCESSES)])
    assert conn.hget("Counter:1", "n") == str(PROCESSES * times).encode()
    assert conn.zscore("Counter:n:idx", 1) == PROCESSES * times
    assert len(results) == PROCESSES
    assert check_index_consistency(conn, Counter) == []


def test_churn_keeps_indexes_consistent(conn):
    """Racing updates, deletes and re-creations never leave stray or missing index entries."""
    Doc = doc_model()
    for i in range(8):
        Doc(a=i, b=f"doc {i}", c=f"start{i}", s="s").save()
    results = run_workers(conn, churn, [(w, 40) for w in range(PROCESSES)])
    assert sum(r["deleted"] for r in results) > 0
    assert check_index_consistency(conn, Doc) == []


def test_spawned_workers(conn):
    """The worker helper also works with the spawn start method."""
    Counter = counter_model()
    Counter(n=0).save()
    results = run_workers(conn, increment, [(w, 3) for w in range(4)], method="spawn")
    assert len(results) == 4
    assert conn.hget("Counter:1", "n") == b"12"
    assert check_index_consistency(conn, Counter) == []
