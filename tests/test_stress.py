"""Concurrency stress: many processes writing the same entities and unique values at once.

Workers are started with the ``spawn`` method; each opens its own client to the test server
(``ROM_TEST_REDIS_URL``, or the embedded server's unix socket) and sets
``rom.util.CONNECTION``.  After each workload ``rom.util.verify_indexes`` must find no
problem.  ``ROM_LONG=1`` scales every workload up (the full-size run done by hand); the
default size keeps the file at a few seconds.  Each test prints its figures.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import traceback
from collections import Counter
from typing import Any

import pytest
import redis
from conftest import CLUSTER

import rom
from rom import columns, util

LONG = os.environ.get("ROM_LONG", "") not in ("", "0")
PROCESSES = 8 if LONG else 4
SCALE = 25 if LONG else 1


# -- connecting from a worker ----------------------------------------------------------------


def target_of(conn: Any) -> str:
    """The URL a worker connects to: the test server, or the embedded server's socket."""
    if CLUSTER:
        return os.environ["ROM_TEST_REDIS_URL"]
    kwargs = conn.connection_pool.connection_kwargs
    path = kwargs.get("path")
    if path:
        return f"unix://{path}?db={kwargs.get('db', 0)}"
    return os.environ.get("ROM_TEST_REDIS_URL") or (
        f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
    )


def connect(url: str) -> None:
    """Make rom use a new client of ``url`` in this process."""
    if CLUSTER:
        from redis.cluster import RedisCluster

        util.CONNECTION = RedisCluster.from_url(url)
    else:
        util.CONNECTION = redis.Redis.from_url(url)
    rom.session.rollback()


def _worker(target: Any, out: Any, barrier: Any, url: str, args: tuple[Any, ...]) -> None:
    try:
        connect(url)
        barrier.wait(timeout=60)
        out.put(("ok", target(*args)))
    except BaseException:
        out.put(("error", traceback.format_exc()))


def run_workers(conn: Any, target: Any, args_list: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Run ``target(*args)`` in one spawned process per item; return their results."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    barrier = ctx.Barrier(len(args_list))
    url = target_of(conn)
    procs = [ctx.Process(target=_worker, args=(target, out, barrier, url, a)) for a in args_list]
    for proc in procs:
        proc.start()
    results, errors = [], []
    try:
        for _ in procs:
            status, value = out.get(timeout=300)
            (results if status == "ok" else errors).append(value)
    except queue.Empty:  # pragma: no cover - reported below
        errors.append("a worker did not answer in time")
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():  # pragma: no cover
            proc.kill()
    assert errors == []
    return results


def figures(capsys: Any, name: str, **numbers: Any) -> None:
    """Print a test's figures even though pytest captures output."""
    with capsys.disabled():
        print(f"\n[stress] {name}: " + " ".join(f"{k}={v}" for k, v in numbers.items()))


def clean(model: Any) -> int:
    """Problems verify_indexes finds (printing its examples when there are any)."""
    report = util.verify_indexes(model)
    if report.problems:
        print(report.summary(), *report.examples, sep="\n")
    return report.problems


# -- models (defined once per process) -------------------------------------------------------


def account_model() -> Any:
    if "Account" in columns.MODELS:
        return columns.MODELS["Account"]

    class Account(rom.Model):
        email = rom.Text(required=True, unique=True)
        team = rom.Integer(index=True)
        seat = rom.Integer()
        owner = rom.Integer(index=True)
        name = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        unique_together = [("team", "seat")]

    return Account


def doc_model() -> Any:
    if "Doc" in columns.MODELS:
        return columns.MODELS["Doc"]

    class Doc(rom.Model):
        a = rom.Integer(index=True)
        b = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        c = rom.Text(unique=True)
        s = rom.Text(index=True, keygen=rom.SIMPLE_CI, prefix=True)
        hits = rom.Integer(index=True, default=0)
        pair = rom.IndexOnly(keygen2=lambda attr, data: [f"{data.get('a')}|{data.get('hits')}"])

    return Doc


def item_model() -> Any:
    if "Item" in columns.MODELS:
        return columns.MODELS["Item"]

    class Item(rom.Model):
        tag = rom.Text(index=True, keygen=rom.IDENTITY)
        n = rom.Integer(index=True)
        code = rom.Text(unique=True)
        words = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)
        batch = rom.Text(index=True, keygen=rom.IDENTITY)

    return Item


# -- workers ---------------------------------------------------------------------------------


def create_accounts(worker: int, count: int) -> dict[str, Any]:
    """Create Account i (email e<i>) and a composite-unique twin (team i, seat 1) for every i,
    in a worker-specific order; losers must get UniqueKeyViolation."""
    Account = account_model()
    order = list(range(count))
    random.Random(worker).shuffle(order)
    won: list[str] = []
    lost = 0
    for i in order:
        for kind, fields in (
            ("email", {"email": f"e{i}@x", "team": i, "seat": 0}),
            ("pair", {"email": f"w{worker}-{i}@x", "team": i, "seat": 1}),
        ):
            entity = Account(owner=worker, name=f"worker {worker} item {i}", **fields)
            try:
                entity.save()
                won.append(f"{kind}{i}")
            except rom.UniqueKeyViolation:
                lost += 1
            rom.session.rollback()
    return {"won": won, "lost": lost}


def update_doc(worker: int, rounds: int) -> dict[str, int]:
    """Odd workers overwrite a, b, c, s of Doc 1 as one coherent tuple (DataRaceError allowed);
    even workers increment ``hits`` with retries (no increment may be lost)."""
    Doc = doc_model()
    saved = raced = retries = 0
    for i in range(rounds):
        while True:
            rom.session.rollback()
            doc = Doc.get(1)
            if worker % 2:
                tag = f"w{worker}r{i}"
                doc.a = worker * 100000 + i
                doc.b = f"{tag} common word{i % 4}"
                doc.c = tag
                doc.s = tag.upper()
            else:
                doc.hits += 1
            try:
                doc.save()
                saved += 1
                break
            except rom.DataRaceError:
                raced += 1
                if worker % 2:
                    break  # an overwrite that lost the race is simply dropped
                retries += 1
    return {"saved": saved, "raced": raced, "retries": retries}


def mixed(worker: int, rounds: int, pool: int) -> dict[str, int]:
    """Random creates, updates, deletes, unit-of-work commits and checked queries."""
    Item = item_model()
    rng = random.Random(worker * 7919)
    stats = Counter(ops=0, conflicts=0, violations=0, queries=0)
    batches: dict[str, bool] = {}
    for r in range(rounds):
        rom.session.rollback()
        stats["ops"] += 1
        roll = rng.random()
        try:
            if roll < 0.15:
                tag = f"t{rng.randint(0, 4)}"
                found = Item.query.filter(tag=tag).all()
                stats["queries"] += 1
                stats["violations"] += sum(1 for x in found if x.tag != tag)
            elif roll < 0.25:
                lo = rng.randint(0, 50)
                found = Item.query.filter(n=(lo, lo + 10)).order_by("-n").limit(0, 20).all()
                stats["queries"] += 1
                values = [x.n for x in found]
                stats["violations"] += sum(1 for v in values if not lo <= v <= lo + 10)
                stats["violations"] += values != sorted(values, reverse=True)
            elif roll < 0.32:
                prefix = rng.choice("abcw")
                found = Item.query.startswith(words=prefix).all()
                stats["queries"] += 1
                stats["violations"] += sum(
                    1 for x in found if not any(w.startswith(prefix) for w in x.words.split())
                )
            elif roll < 0.38:
                code = f"c{rng.randint(0, pool * 2)}"
                found = Item.get_by(code=code)
                stats["queries"] += 1
                stats["violations"] += found is not None and found.code != code
            elif roll < 0.55:
                Item(
                    tag=f"t{rng.randint(0, 4)}",
                    n=rng.randint(0, 60),
                    code=f"c{rng.randint(0, pool * 2)}",
                    words=rng.choice(["alpha beta", "west wind", "bravo charlie", "ant"]),
                ).save()
            elif roll < 0.65:
                name = f"w{worker}r{r}"
                # a batch may claim one code twice: then none of it is written
                for code in [rng.randint(0, pool * 2) for _ in range(3)]:
                    Item(tag="b", n=1, code=f"c{code}", batch=name)
                try:
                    rom.session.commit()
                    batches[name] = True
                except rom.UniqueKeyViolation:
                    batches[name] = False
                    raise
            else:
                item = Item.get(rng.randint(1, pool))
                if item is None:
                    continue
                if roll < 0.8:
                    item.delete()
                else:
                    item.n = rng.randint(0, 60)
                    item.tag = f"t{rng.randint(0, 4)}"
                    if rng.random() < 0.5:
                        item.code = f"c{rng.randint(0, pool * 2)}"
                    item.save()
        except (rom.UniqueKeyViolation, rom.DataRaceError, rom.EntityDeletedError):
            stats["conflicts"] += 1
    return {**stats, "batches": batches}


# -- tests -----------------------------------------------------------------------------------


def test_racing_unique_creation(conn, capsys):
    """N processes create the same unique and composite-unique values: exactly one wins each."""
    Account = account_model()
    count = 60 * SCALE
    results = run_workers(conn, create_accounts, [(w, count) for w in range(PROCESSES)])
    wins = Counter(v for r in results for v in r["won"])
    assert sorted(wins) == sorted(
        [f"email{i}" for i in range(count)] + [f"pair{i}" for i in range(count)]
    )
    assert set(wins.values()) == {1}
    lost = sum(r["lost"] for r in results)
    assert lost == 2 * count * (PROCESSES - 1)
    assert conn.hlen("Account:email:uidx") == 2 * count
    assert conn.hlen("Account:seat:team:uidx") == 2 * count
    problems = clean(Account)
    figures(
        capsys,
        "unique race",
        processes=PROCESSES,
        attempts=2 * count * PROCESSES,
        wins=len(wins),
        conflicts=lost,
        problems=problems,
    )
    assert problems == 0


def test_racing_updates_of_one_entity(conn, capsys):
    """Concurrent updates of one entity: each either succeeds or raises DataRaceError, the
    stored values form one writer's tuple, and no increment is lost."""
    Doc = doc_model()
    Doc(a=0, b="start", c="start", s="start").save()
    rounds = 30 * SCALE
    results = run_workers(conn, update_doc, [(w, rounds) for w in range(PROCESSES)])
    raw = {k.decode(): v.decode() for k, v in conn.hgetall("Doc:1").items()}
    incrementers = len([w for w in range(PROCESSES) if w % 2 == 0])
    assert int(raw["hits"]) == incrementers * rounds
    if raw["a"] != "0":
        worker, rnd = divmod(int(raw["a"]), 100000)
        tag = f"w{worker}r{rnd}"
        assert (raw["c"], raw["s"]) == (tag, tag.upper())
        assert raw["b"].startswith(tag + " ")
        assert conn.hgetall("Doc:c:uidx") == {tag.encode(): b"1"}
    problems = clean(Doc)
    figures(
        capsys,
        "update race",
        processes=PROCESSES,
        saves=sum(r["saved"] for r in results),
        conflicts=sum(r["raced"] for r in results),
        retries=sum(r["retries"] for r in results),
        problems=problems,
    )
    assert problems == 0


def test_mixed_saves_deletes_queries(conn, capsys):
    """Random creates, updates, deletes, commits and queries from many processes: queries
    only return matching entities, commits are all-or-nothing, indexes stay exact."""
    Item = item_model()
    pool = 30
    for i in range(pool):
        Item(tag=f"t{i % 5}", n=i, code=f"c{i}", words="alpha west").save()
    rounds = 200 * SCALE
    results = run_workers(conn, mixed, [(w, rounds, pool) for w in range(PROCESSES)])
    totals = Counter()
    for r in results:
        totals.update({k: v for k, v in r.items() if k != "batches"})
    assert totals["violations"] == 0
    batches = {name: ok for r in results for name, ok in r["batches"].items()}
    rom.session.rollback()
    for name, ok in batches.items():
        stored = Item.query.filter(batch=name).count()
        assert stored == (3 if ok else 0), (name, stored)  # a commit is all or nothing
    problems = clean(Item)
    figures(
        capsys,
        "mixed",
        processes=PROCESSES,
        operations=totals["ops"],
        queries=totals["queries"],
        conflicts=totals["conflicts"],
        commits=len(batches),
        problems=problems,
    )
    assert problems == 0


def test_one_commit_claiming_a_value_twice(conn):
    """A commit in which two new entities claim one unique value raises UniqueKeyViolation
    and writes nothing."""
    Item = item_model()
    Item(code="same", n=1)
    Item(code="same", n=2)
    with pytest.raises(rom.UniqueKeyViolation):
        rom.session.commit()
    rom.session.rollback()
    assert Item.query.filter(n=(0, 10)).count() == 0
    assert util.verify_indexes(Item).problems == 0
