"""Advisory locks (API.md §7.6)."""

from __future__ import annotations

__all__ = ["EntityLock", "Lock"]


class Lock:
    pass


def EntityLock(entity, acquire_timeout, lock_timeout):  # noqa: N802
    raise NotImplementedError
