"""util.Lock and util.EntityLock: advisory locks with a time to live (API.md §7.6)."""

from __future__ import annotations

import multiprocessing
import re
import time

import pytest
from conftest import CLUSTER, make_client

import rom
from rom import util
from rom.scripts import get_script


def test_acquire_and_release(conn):
    """A free lock is taken with a TTL and an identifier like rom's, then released."""
    lock = util.Lock(conn, "job", 1, 10)
    assert lock.acquire() is True
    value = conn.get("lock:job").decode()
    assert value == lock.identifier
    assert re.fullmatch(r"b'[0-9a-f]{32}'", value)
    assert 0 < conn.ttl("lock:job") <= 10
    assert lock.release() is True
    assert not conn.exists("lock:job")
    assert lock.release() is False


def test_first_attempt_counts_with_zero_timeout(conn, round_trips):
    """acquire_timeout=0 succeeds with one attempt ([BUG] 23 of rom 1.x fixed)."""
    conn.script_load(get_script("lock_acquire").source)
    lock = util.Lock(conn, "once", 0, 5)
    round_trips.reset()
    assert lock.acquire() is True
    assert round_trips.count == 1


def test_contention_and_release_by_non_holder(conn):
    """A held lock cannot be taken or released by another holder."""
    first = util.Lock(conn, "shared", 0, 10)
    second = util.Lock(conn, "shared", 0, 10)
    assert first.acquire()
    started = time.monotonic()
    assert second.acquire() is False
    assert time.monotonic() - started < 0.5
    assert second.release() is False
    assert conn.get("lock:shared").decode() == first.identifier
    assert first.acquire() is True  # re-acquiring extends
    assert first.release()
    assert second.acquire()


def test_timeouts_round_up_to_whole_seconds(conn):
    """Fractional timeouts are rounded up; a lock always lives at least one second."""
    lock = util.Lock(conn, "round", 0.2, 0.3)
    assert (lock.acquire_timeout, lock.lock_timeout) == (1, 1)
    assert lock.acquire()
    assert conn.pttl("lock:round") > 500


def test_lock_expires(conn):
    """An unrefreshed lock expires; the former holder's refresh then fails and forgets it."""
    holder = util.Lock(conn, "ttl", 0, 1)
    assert holder.acquire()
    other = util.Lock(conn, "ttl", 0, 5)
    assert not other.acquire()
    conn.pexpire("lock:ttl", 50)  # shorten the wait instead of sleeping a whole second
    time.sleep(0.1)
    assert other.acquire()
    assert holder.refresh() is False
    assert holder.identifier is None
    assert holder.release() is False
    assert conn.get("lock:ttl").decode() == other.identifier


def test_refresh_extends(conn):
    """refresh() extends the TTL of a held lock."""
    lock = util.Lock(conn, "ext", 0, 30)
    assert lock.acquire()
    conn.expire("lock:ext", 2)
    assert lock.refresh() is True
    assert conn.ttl("lock:ext") > 2


def test_acquire_waits_for_the_holder(conn):
    """acquire() retries until the holder releases within acquire_timeout."""
    holder = util.Lock(conn, "wait", 0, 10)
    assert holder.acquire()
    conn.pexpire("lock:wait", 200)
    waiter = util.Lock(conn, "wait", 2, 10)
    started = time.monotonic()
    assert waiter.acquire()
    assert 0.1 < time.monotonic() - started < 1.5


def test_context_manager(conn):
    """The context manager releases on exit and raises DataRaceError when held."""
    with util.Lock(conn, "ctx", 0, 10) as lock:
        assert conn.get("lock:ctx").decode() == lock.identifier
        with pytest.raises(rom.DataRaceError, match="already held"):
            with util.Lock(conn, "ctx", 0, 10):
                pass
    assert not conn.exists("lock:ctx")


def test_entity_lock_key(conn):
    """EntityLock locks lock:<namespace>:<pk> on the entity's connection."""

    class Thing(rom.Model):
        _namespace = "app:thing"

    thing = Thing()
    thing.save()
    lock = util.EntityLock(thing, 0, 10)
    assert isinstance(lock, util.Lock)
    assert lock.conn is Thing._connection is util.get_connection()
    with lock:
        assert conn.exists(f"lock:app:thing:{thing.id}")
    assert not conn.exists(f"lock:app:thing:{thing.id}")


def test_decode_responses_lock(decoded_conn):
    """Locks work with a decode_responses=True client."""
    lock = util.Lock(decoded_conn, "dec", 0, 10)
    assert lock.acquire() and lock.refresh() and lock.release()
    assert not decoded_conn.exists("lock:dec")


def test_wrong_type_key_is_an_orm_error(conn):
    """A lock key holding another Redis type gives ORMError, not a redis error."""
    conn.hset("lock:odd", "x", "1")
    with pytest.raises(rom.ORMError):
        util.Lock(conn, "odd", 0, 10).acquire()


def count_under_lock(url, cluster, rounds, queue):
    """Increment a counter non-atomically, guarded by the lock."""
    conn = make_client(url, cluster)
    got = 0
    for _ in range(rounds):
        with util.Lock(conn, "counter", 10, 5):
            value = int(conn.get("counter") or 0)
            time.sleep(0.001)
            conn.set("counter", value + 1)
            got += 1
    queue.put(got)


def test_mutual_exclusion_across_processes(conn, server_url):
    """Processes incrementing under one lock lose no update."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=count_under_lock, args=(server_url, CLUSTER, 25, queue))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    done = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert done == [25] * 4
    assert int(conn.get("counter")) == 100
    assert not conn.exists("lock:counter")


def hold_then_die(url, cluster, ready):
    """Take a lock with a 1 s TTL and exit without releasing it."""
    conn = make_client(url, cluster)
    lock = util.Lock(conn, "crash", 0, 1)
    assert lock.acquire()
    ready.set()


def test_lock_of_a_dead_process_expires(conn, server_url):
    """A lock left by a process that died is free once its TTL has passed."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=hold_then_die, args=(server_url, CLUSTER, ready))
    proc.start()
    assert ready.wait(10)
    proc.join(10)
    mine = util.Lock(conn, "crash", 0, 10)
    assert mine.acquire() is False
    started = time.monotonic()
    assert util.Lock(conn, "crash", 3, 10).acquire()
    assert time.monotonic() - started < 1.5
