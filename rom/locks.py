"""Advisory locks (API.md §7.6, STORAGE.md §9).

A lock is the Redis string ``lock:<name>`` holding the holder's random identifier, with a
time to live.  Taking, extending and releasing it are single-key scripts, so they are atomic
and run unchanged on Redis Cluster.  Saves do not look at locks: they are advisory.

Example::

    with rom.util.EntityLock(account, acquire_timeout=5, lock_timeout=10):
        account.balance += 10
        account.save()
"""

from __future__ import annotations

import binascii
import math
import os
import time
from types import TracebackType
from typing import Any

from .exceptions import DataRaceError
from .writer import run_script

__all__ = ["EntityLock", "Lock"]

#: pause between two attempts of :meth:`Lock.acquire`
_RETRY_DELAY = 0.001


def _new_identifier() -> str:
    # rom 1.x's identifier is the text of a bytes object: "b'<32 hex digits>'"
    return str(binascii.hexlify(os.urandom(16)))


class Lock:
    """A named advisory lock with a time to live.

    :param conn: the Redis connection
    :param lockname: the lock's name (key ``lock:<lockname>``)
    :param acquire_timeout: seconds :meth:`acquire` keeps trying (rounded up; 0: one try)
    :param lock_timeout: seconds the lock lives unless refreshed (rounded up, at least 1)

    Example::

        lock = Lock(conn, 'nightly-report', acquire_timeout=0, lock_timeout=60)
        if lock.acquire():
            try:
                ...
            finally:
                lock.release()
    """

    def __init__(
        self, conn: Any, lockname: str, acquire_timeout: float, lock_timeout: float
    ) -> None:
        self.conn = conn
        self.lockname = lockname
        self.acquire_timeout = math.ceil(acquire_timeout)
        self.lock_timeout = max(math.ceil(lock_timeout), 1)
        self.identifier: str | None = _new_identifier()

    @property
    def key(self) -> str:
        """The Redis key of the lock: ``lock:<lockname>``."""
        return f"lock:{self.lockname}"

    def _attempt(self) -> bool:
        if self.identifier is None:
            self.identifier = _new_identifier()
        result = run_script(
            self.conn, "lock_acquire", [self.key], [self.lock_timeout, self.identifier]
        )
        return bool(int(result))

    def acquire(self) -> bool:
        """Take the lock (or extend it if already held), retrying about every millisecond
        until ``acquire_timeout`` seconds have passed.

        :returns: whether the lock is held now
        """
        deadline = time.monotonic() + self.acquire_timeout
        while True:
            if self._attempt():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_RETRY_DELAY)

    def refresh(self) -> bool:
        """Extend a lock still held (or take it again if it expired and is free).

        :returns: whether the lock is held; on failure the identifier is forgotten
        """
        if self.identifier is None:
            return False
        if self._attempt():
            return True
        self.identifier = None
        return False

    def release(self) -> bool:
        """Delete the lock if it is still held by this object.

        :returns: whether it was held (and is now released)
        """
        if self.identifier is None:
            return False
        result = run_script(self.conn, "lock_release", [self.key], [self.identifier])
        return bool(int(result))

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise DataRaceError("Lock is already held")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"


class EntityLock(Lock):
    """A :class:`Lock` named after an entity: key ``lock:<namespace>:<pk>``.

    :param entity: the entity (its model's connection is used)
    """

    def __init__(self, entity: Any, acquire_timeout: float, lock_timeout: float) -> None:
        super().__init__(entity._connection, entity._pk, acquire_timeout, lock_timeout)
