"""Failover: acknowledged writes survive a master's death on Redis Cluster and Sentinel.

These tests start their own ``redis-server`` processes on spare loopback ports, kill a
master by PID in the middle of a workload and check that the application keeps working
and that every write acknowledged under ``set_durability`` is still there afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import rom
from rom import util

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
needs_server = pytest.mark.skipif(
    not (REDIS_SERVER and REDIS_CLI), reason="needs redis-server and redis-cli on PATH"
)
RETRYABLE = (redis.RedisError, rom.ORMError, OSError)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _save_with_retry(make: Any, deadline: float) -> tuple[Any, bool]:
    """Build and save an entity, retrying through the failover; returns (entity, acked)."""
    entity = None
    while time.monotonic() < deadline:
        try:
            if entity is None:
                entity = make()  # allocating the id needs the server too
            entity.save()
            return entity, True
        except rom.exceptions.DurabilityError:
            return entity, False  # reached the master only: not acknowledged
        except RETRYABLE:
            time.sleep(0.1)
    return entity, False


@pytest.fixture
def cluster():
    """A private 3-master, 3-replica cluster on ports 7100..7105, stopped by PID."""
    if not (REDIS_SERVER and REDIS_CLI):
        pytest.skip("needs redis-server and redis-cli on PATH")
    folder = tempfile.mkdtemp(prefix="rom-failover-")
    env = dict(os.environ, ROM_CLUSTER_DIR=folder, PYTHON=sys.executable)
    script = str(ROOT / ".ci" / "redis-cluster.sh")
    subprocess.run([script, "start", "7100"], env=env, check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)
        for pidfile in Path(folder).glob("*.pid") if Path(folder).exists() else []:
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(folder, ignore_errors=True)


class Workload:
    """A background writer saving entities until stopped, recording acknowledged writes."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.attempted = 0
        self.acknowledged: list[tuple[int, int]] = []
        self.unacknowledged = 0
        self.stop_after: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rom.session.null_session = True
        i = 0
        deadline = time.monotonic() + 90
        try:
            while self.stop_after is None or len(self.acknowledged) < self.stop_after:
                if time.monotonic() > deadline:
                    raise AssertionError("the workload did not recover from the failover")
                self.attempted += 1
                entity, acked = _save_with_retry(lambda i=i: self.make(i), deadline)
                if acked:
                    self.acknowledged.append((entity.id, i))
                else:
                    self.unacknowledged += 1
                i += 1
        except BaseException as err:  # reported by the test thread
            self.error = err

    def finish(self, more: int) -> None:
        """Let ``more`` further writes be acknowledged, then stop."""
        self.stop_after = len(self.acknowledged) + more
        self.thread.join(120)
        if self.error is not None:
            raise self.error
        assert not self.thread.is_alive()


@needs_server
def test_cluster_master_killed_mid_workload(cluster, capsys):
    """Kill the master of a model's slot: the app recovers, acknowledged writes remain."""
    from redis.backoff import ExponentialBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry

    client = RedisCluster(
        host="127.0.0.1",
        port=7100,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=10),
        socket_timeout=2,
    )
    previous = util.CONNECTION
    util.CONNECTION = client
    try:

        class Order(rom.Model):
            ref = rom.Text(unique=True)
            amount = rom.Integer(index=True)

        util.set_durability(1, timeout=0.5)
        master = client.get_node_from_key("{Order}:1")
        pid = int(Path(cluster, f"{master.port}.pid").read_text())
        work = Workload(lambda i: Order(ref=f"r{i}", amount=i))
        work.thread.start()
        _wait(lambda: len(work.acknowledged) >= 20, 30, "the first writes")
        os.kill(pid, signal.SIGKILL)
        _wait(
            lambda: client.get_node_from_key("{Order}:1").port != master.port,
            30,
            "the replica's promotion",
        )
        # the old master comes back and rejoins as a replica of the promoted one
        subprocess.run(
            [str(ROOT / ".ci" / "redis-cluster.sh"), "node", str(master.port)],
            env=dict(os.environ, ROM_CLUSTER_DIR=cluster, PYTHON=sys.executable),
            check=True,
            capture_output=True,
        )
        promoted = client.get_node_from_key("{Order}:1")
        direct = redis.Redis(host=promoted.host, port=promoted.port)
        _wait(
            lambda: (direct.info("replication").get("slave0") or {}).get("state") == "online",
            30,
            "the old master to resync as a replica",
        )
        work.finish(more=20)
        found = 0
        for ident, i in work.acknowledged:
            raw = client.hgetall(f"{{Order}}:{ident}")
            assert raw[b"amount"] == str(i).encode(), ident
            assert client.hget("{Order}:ref:uidx", f"r{i}") == str(ident).encode()
            found += 1
        with capsys.disabled():
            print(
                f"\ncluster failover: writes attempted {work.attempted}, acknowledged "
                f"{len(work.acknowledged)}, not acknowledged {work.unacknowledged}, "
                f"found afterwards {found}"
            )
        assert found == len(work.acknowledged) >= 40
    finally:
        util.set_durability(0)
        util.CONNECTION = previous
        client.close()


@pytest.fixture
def sentinel_setup():
    """A master (6480), a replica (6481) and one sentinel (26480), stopped by PID."""
    if not (REDIS_SERVER and REDIS_CLI):
        pytest.skip("needs redis-server and redis-cli on PATH")
    folder = Path(tempfile.mkdtemp(prefix="rom-sentinel-"))
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "yes"]
    for port, extra in ((6480, []), (6481, ["--replicaof", "127.0.0.1", "6480"])):
        subprocess.run(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--pidfile",
                str(folder / f"{port}.pid"),
                "--logfile",
                str(folder / f"{port}.log"),
                "--dir",
                str(folder),
                *common,
                *extra,
            ],
            check=True,
        )
    conf = folder / "sentinel.conf"
    conf.write_text(
        "port 26480\nbind 127.0.0.1\ndaemonize yes\n"
        f"pidfile {folder}/26480.pid\nlogfile {folder}/26480.log\ndir {folder}\n"
        "sentinel monitor mymaster 127.0.0.1 6480 1\n"
        "sentinel down-after-milliseconds mymaster 1000\n"
        "sentinel failover-timeout mymaster 5000\n"
    )
    subprocess.run([REDIS_SERVER, str(conf), "--sentinel"], check=True)
    try:
        _wait(
            lambda: redis.Redis(port=6481).info("replication")["master_link_status"] == "up",
            20,
            "replication",
        )
        _wait(
            lambda: redis.Redis(port=26480).sentinel_master("mymaster")["num-slaves"] >= 1,
            20,
            "the sentinel to see the replica",
        )
        yield folder
    finally:
        for pidfile in folder.glob("*.pid"):
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(folder, ignore_errors=True)


@needs_server
def test_sentinel_failover_mid_workload(sentinel_setup, capsys):
    """SENTINEL FAILOVER mid-workload: rom follows the new master, no acknowledged loss."""
    previous = util.CONNECTION
    util.set_connection_settings(
        sentinels=[("127.0.0.1", 26480)], service_name="mymaster", socket_timeout=2
    )
    client = util.get_connection()
    try:

        class Event(rom.Model):
            seq = rom.Integer(index=True)

        util.set_durability(1, timeout=0.5)
        sentinel = redis.Redis(port=26480)
        work = Workload(lambda i: Event(seq=i))
        work.thread.start()
        _wait(lambda: len(work.acknowledged) >= 20, 30, "the first writes")
        sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")
        _wait(
            lambda: sentinel.sentinel_get_master_addr_by_name("mymaster")[1] == 6481,
            20,
            "the promotion of 6481",
        )
        work.finish(more=20)
        acknowledged, attempted = work.acknowledged, work.attempted
        new_master = redis.Redis(port=6481)
        found = sum(
            1
            for ident, i in acknowledged
            if new_master.hget(f"Event:{ident}", "seq") == str(i).encode()
        )
        with capsys.disabled():
            print(
                f"\nsentinel failover: writes attempted {attempted}, acknowledged "
                f"{len(acknowledged)}, found afterwards {found}"
            )
        assert found == len(acknowledged) >= 40
        assert new_master.zcard("Event:seq:idx") >= len(acknowledged)
    finally:
        util.set_durability(0)
        util.CONNECTION = previous
        client.close()
