"""Faults: a killed server, dropped connections, timeouts, flushed scripts, a full memory and
a read-only replica never leave a half-written entity and always give a clear exception.

Every test starts its own ``redis-server`` (from PATH) on spare loopback ports, with
``--appendonly yes --appendfsync always``, and stops it by PID when done.  ``ROM_LONG=1``
runs more rounds.  Each test prints its figures.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

import rom
from rom import util

pytestmark = pytest.mark.fault

LONG = os.environ.get("ROM_LONG", "") not in ("", "0")
REDIS_SERVER = shutil.which("redis-server")
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A redis-server process of this test, in its own directory."""

    def __init__(self, folder: str, *args: str) -> None:
        self.folder = folder
        self.port = spare_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert REDIS_SERVER is not None
        os.makedirs(self.folder, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.folder,
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                os.path.join(self.folder, "redis.log"),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    break
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)
        while self.client().info("persistence").get("loading"):
            time.sleep(0.02)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client; redis-py's default retries are kept, with short back-offs."""
        kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=0.05, base=0.005), 3))
        return redis.Redis(port=self.port, socket_connect_timeout=2, **kwargs)

    def kill(self) -> None:
        """kill -9 (no chance to write anything more)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.kill()


@pytest.fixture
def servers(tmp_path: Any) -> Iterator[Any]:
    """Start redis-servers for the test: ``servers(*args)``; all are stopped by PID after."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH: the fault tests start their own servers")
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(str(tmp_path / f"redis{len(started)}"), *args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


def figures(capsys: Any, name: str, **numbers: Any) -> None:
    with capsys.disabled():
        print(f"\n[faults] {name}: " + " ".join(f"{k}={v}" for k, v in numbers.items()))


def note_model() -> Any:
    class Note(rom.Model):
        code = rom.Text(unique=True)
        body = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        n = rom.Integer(index=True)
        tag = rom.Text(index=True, keygen=rom.IDENTITY)

    return Note


def stored(client: Any, pk: int) -> dict[str, str] | None:
    """The entity's stored columns (without bookkeeping), or ``None`` when absent."""
    raw = client.hgetall(f"Note:{pk}")
    if not raw:
        return None
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    fields.pop("-index-data-", None)
    return fields


def texts(pk: int, code: str, body: str, n: int, tag: str) -> dict[str, str]:
    return {"id": str(pk), "code": code, "body": body, "n": str(n), "tag": tag}


class Workload:
    """Threads creating, updating and deleting Notes, recording what Redis acknowledged.

    ``acked[pk]`` is the stored state of every acknowledged write (``None`` = deleted);
    ``doubt[pk]`` the states (before, after) of a write whose outcome the client could not
    know because the connection failed during it.
    """

    def __init__(self, model: Any, threads: int, name: str = "r0") -> None:
        self.model = model
        self.name = name
        self.acked: dict[int, dict[str, str] | None] = {}
        self.doubt: dict[int, tuple[Any, Any]] = {}
        self.errors: list[str] = []
        self.raised: list[BaseException] = []
        self.ops = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(t,), daemon=True) for t in range(threads)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def acknowledged(self) -> int:
        with self.lock:
            return self.ops

    def run(self, tid: int) -> None:
        Note = self.model
        rng = random.Random(tid)
        mine: list[int] = []
        i = 0
        while not self.stop.is_set():
            i += 1
            rom.session.rollback()
            pk, before, after, writing = 0, None, None, False
            try:
                roll = rng.random()
                if roll < 0.6 or not mine:
                    body = f"word{i} shared thread{tid} " + " ".join(
                        f"w{rng.randint(0, 50)}" for _ in range(5)
                    )
                    x = Note(code=f"{self.name}t{tid}-{i}", body=body, n=i, tag=f"t{tid}")
                    pk = x.id
                    after = texts(pk, x.code, body, i, x.tag)
                    writing = True
                    x.save()
                    mine.append(pk)
                elif roll < 0.85:
                    pk = rng.choice(mine)
                    before = self.acked[pk]
                    x = Note.get(pk)
                    x.n = -i
                    x.body = f"changed{i} shared"
                    after = texts(pk, x.code, x.body, -i, x.tag)
                    writing = True
                    x.save()
                else:
                    pk = rng.choice(mine)
                    before = self.acked[pk]
                    entity = Note.get(pk)
                    writing = True
                    entity.delete()
                    mine.remove(pk)
            except (*CONNECTION_ERRORS, rom.DataRaceError) as err:
                # a connection error during a write leaves its outcome unknown; so does a
                # DataRaceError after redis-py resent an update whose first send was applied
                with self.lock:
                    self.raised.append(err)
                    if writing:
                        self.doubt[pk] = (before, after)
                if writing and pk in mine:
                    mine.remove(pk)  # never touched again: its state stays one of the two
                continue
            except BaseException as err:  # anything else is a failure of the test
                with self.lock:
                    self.errors.append(repr(err))
                return
            with self.lock:
                self.acked[pk] = after
                self.ops += 1

    def check(self, client: Any) -> int:
        """Compare Redis with what was acknowledged; returns the number of entities."""
        assert self.errors == []
        for pk, state in self.acked.items():
            if pk in self.doubt:
                assert stored(client, pk) in self.doubt[pk], pk
            else:
                assert stored(client, pk) == state, pk
        known = set(self.acked) | set(self.doubt)
        keys = client.keys("Note:*")
        entities = {int(k.split(b":")[1]) for k in keys if k.split(b":")[1].isdigit()}
        assert entities <= known
        for pk in set(self.doubt) - set(self.acked):
            assert stored(client, pk) in self.doubt[pk], pk
        return len(entities)


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_kill_9_mid_workload_loses_no_acknowledged_write(servers, capsys):
    """kill -9 during concurrent writes, restart from the AOF: every acknowledged write is
    there, nothing is half-written."""
    server = servers()
    Note = note_model()
    rounds = 6 if LONG else 2
    ops = doubt = 0
    workload: Workload | None = None
    for n in range(rounds):
        util.CONNECTION = server.client()
        workload = _resume(workload, f"r{n}") if workload else Workload(Note, threads=4)
        workload.start()
        target = workload.acknowledged() + (1000 if LONG else 400)
        wait_for(partial(_reached, workload, target))
        server.kill()
        workload.join()
        server.start()
        client = server.client()
        entities = workload.check(client)
        report = util.verify_indexes(Note)
        assert report.problems == 0, (report.summary(), report.examples)
        ops, doubt = workload.ops, len(workload.doubt)
    figures(
        capsys,
        "kill -9",
        faults=rounds,
        acknowledged=ops,
        in_doubt=doubt,
        entities=entities,
        problems=0,
    )


def _resume(old: Workload, name: str) -> Workload:
    """A new workload that keeps the acknowledged history of ``old``."""
    new = Workload(old.model, threads=len(old.threads), name=name)
    new.acked, new.doubt, new.ops = old.acked, old.doubt, old.ops
    return new


def _reached(workload: Workload, target: int) -> bool:
    return workload.acknowledged() >= target or bool(workload.errors)


def test_dropped_connections_leave_nothing_partial(servers, capsys):
    """CLIENT KILL of the writers' connections during the workload: clear exceptions or
    transparent retries, never a partial write."""
    server = servers()
    Note = note_model()
    util.CONNECTION = server.client()
    admin = server.client()
    workload = Workload(Note, threads=4)
    workload.start()
    kills = 0
    deadline = time.monotonic() + (10 if LONG else 2)
    while time.monotonic() < deadline and not workload.errors:
        kills += int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
        time.sleep(0.01)
    workload.join()
    entities = workload.check(admin)
    report = util.verify_indexes(Note)
    figures(
        capsys,
        "client kill",
        connections_killed=kills,
        acknowledged=workload.ops,
        errors_raised=len(workload.raised),
        in_doubt=len(workload.doubt),
        entities=entities,
        problems=report.problems,
    )
    assert kills > 0 and workload.ops > 0
    assert all(isinstance(e, (*CONNECTION_ERRORS, rom.DataRaceError)) for e in workload.raised)
    assert report.problems == 0, (report.summary(), report.examples)


def test_timeouts_leave_nothing_partial(servers, capsys):
    """A save that times out (server paused) raises TimeoutError; the entity is then either
    completely written or absent."""
    server = servers()
    Note = note_model()
    admin = server.client()
    # no retry: redis-py would otherwise resend the script until the pause ends
    util.CONNECTION = server.client(socket_timeout=0.05, retry=Retry(NoBackoff(), 0))
    outcomes = {"timeout": 0, "written": 0, "absent": 0}
    for i in range(6 if LONG else 3):
        x = Note(code=f"c{i}", body=f"paused write {i}", n=i, tag="p")
        resumed = time.monotonic() + 0.5
        admin.execute_command("CLIENT", "PAUSE", 500, "WRITE")
        with pytest.raises(redis.TimeoutError):
            x.save()
        outcomes["timeout"] += 1
        time.sleep(max(0.0, resumed - time.monotonic()) + 0.1)
        state = stored(admin, x.id)
        assert state in (None, texts(x.id, f"c{i}", f"paused write {i}", i, "p"))
        outcomes["written" if state else "absent"] += 1
        rom.session.rollback()
    report = util.verify_indexes(Note)
    figures(capsys, "timeouts", **outcomes, problems=report.problems)
    assert report.problems == 0, (report.summary(), report.examples)


def test_script_flush_mid_run_is_invisible(servers, capsys):
    """SCRIPT FLUSH while saving, querying, committing and deleting: no caller notices."""
    server = servers()
    Note = note_model()
    util.CONNECTION = server.client()
    admin = server.client()
    stop = threading.Event()
    flushes = [0]

    def flusher() -> None:
        while not stop.is_set():
            admin.script_flush()
            flushes[0] += 1
            time.sleep(0.002)

    thread = threading.Thread(target=flusher, daemon=True)
    thread.start()
    rounds = 400 if LONG else 80
    try:
        for i in range(rounds):
            x = Note(code=f"c{i}", body=f"flush test {i}", n=i, tag=f"g{i % 3}")
            x.save()
            Note(code=f"d{i}", body="batch", n=i, tag="batch")
            rom.session.commit()
            x.n = -i
            x.save()
            assert Note.get_by(code=f"c{i}").n == -i
            assert Note.query.filter(tag=f"g{i % 3}").count() >= 1
            assert Note.query.startswith(body="flu").order_by("n").first() is not None
            if i % 2:
                x.delete()
            rom.session.rollback()
    finally:
        stop.set()
        thread.join(timeout=10)
    report = util.verify_indexes(Note)
    figures(
        capsys, "script flush", operations=rounds * 7, flushes=flushes[0], problems=report.problems
    )
    assert flushes[0] > 0
    assert Note.query.filter(tag="batch").count() == rounds
    assert report.problems == 0


def test_out_of_memory_is_a_clear_rom_error(servers, capsys):
    """With maxmemory and noeviction, a save that does not fit raises an ORMError and writes
    nothing; reads still work."""
    server = servers("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    Note = note_model()
    util.CONNECTION = server.client()
    pending = [Note(code=f"c{i}", body="x" * 20000 + f" w{i}", n=i, tag="m") for i in range(400)]
    saved: list[int] = []
    refused = None
    for x in pending:
        try:
            x.save()
            saved.append(x.id)
        except rom.ORMError as err:
            refused = (x, err)
            break
    assert refused is not None, "memory never ran out"
    x, err = refused
    assert "maxmemory" in str(err)
    assert stored(server.client(), x.id) is None  # nothing partial
    assert Note.get(saved[0]).code == "c0"  # reads still work
    later = pending[len(saved) + 1]
    with pytest.raises(rom.ORMError, match="maxmemory"):
        later.save()
    assert stored(server.client(), later.id) is None
    try:  # a query writes a temporary key: it may be refused, but only with a rom error
        Note.query.filter(tag="m").count()
    except rom.ORMError as query_err:
        assert "maxmemory" in str(query_err)
    server.client().config_set("maxmemory", "0")
    report = util.verify_indexes(Note)
    figures(capsys, "out of memory", saved=len(saved), refused=1, problems=report.problems)
    assert report.problems == 0


def test_constructing_an_entity_out_of_memory_is_a_rom_error(servers):
    """Allocating an id when Redis refuses writes for memory raises an ORMError."""
    server = servers("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    Note = note_model()
    util.CONNECTION = server.client()
    client = server.client()
    i = 0
    while True:  # fill the memory
        try:
            client.set(f"filler{i}", "x" * 50000)
        except redis.ResponseError:
            break
        i += 1
    with pytest.raises(rom.ORMError):
        Note(code="a", body="b", n=1)


def _replica(servers: Any) -> tuple[Server, Server]:
    master = servers("--repl-diskless-sync-delay", "0")
    replica = servers("--replicaof", "127.0.0.1", str(master.port))
    wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up")
    return master, replica


def test_read_only_replica_gives_a_clear_error(servers, capsys):
    """Writing through a read-only replica connection raises an ORMError and writes nothing;
    reading works."""
    master, replica = _replica(servers)
    Note = note_model()
    util.CONNECTION = master.client()
    x = Note(code="a", body="hello world", n=1, tag="r")
    x.save()
    y = Note(code="b", body="second", n=2, tag="r")  # id allocated on the master
    wait_for(lambda: replica.client().exists("Note:1") == 1)
    util.CONNECTION = replica.client()
    rom.session.rollback()
    assert Note.get(1).code == "a"
    with pytest.raises(rom.ORMError, match=r"(?i)read.only"):
        y.save()
    loaded = Note.get(1)
    loaded.n = 5
    with pytest.raises(rom.ORMError, match=r"(?i)read.only"):
        loaded.save()
    with pytest.raises(rom.ORMError, match=r"(?i)read.only"):
        loaded.delete()
    assert stored(master.client(), 2) is None
    assert master.client().hget("Note:1", "n") == b"1"
    util.CONNECTION = master.client()
    report = util.verify_indexes(Note)
    figures(capsys, "read-only replica", refused_writes=3, problems=report.problems)
    assert report.problems == 0


def test_constructing_an_entity_on_a_replica_is_a_rom_error(servers):
    """Allocating an id through a read-only replica raises an ORMError."""
    _master, replica = _replica(servers)
    Note = note_model()
    util.CONNECTION = replica.client()
    with pytest.raises(rom.ORMError):
        Note(code="a", body="b", n=1)
