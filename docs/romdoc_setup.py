"""Doctest support for the rom docs: one embedded Redis for the whole build.

``reset()`` runs before every page's doctests (``doctest_global_setup`` in ``conf.py``):
it connects rom to the server, empties the database, forgets every model the previous
page defined and clears the session, so each page starts from nothing and its ids
start at 1.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import redis

import rom
from rom import columns, util

_STATE: dict[str, Any] = {}


def connection() -> Any:
    """The doctest server's client (started on first use)."""
    if "conn" not in _STATE:
        url = os.environ.get("ROM_DOCS_REDIS_URL")
        if url:
            _STATE["conn"] = redis.Redis.from_url(url)
        else:
            folder = tempfile.mkdtemp(prefix="rom-docs-")
            _STATE["conn"] = util.use_embedded(os.path.join(folder, "docs.db"))
    return _STATE["conn"]


def reset() -> None:
    """Empty database, empty model registry, empty session, rom connected to the server."""
    conn = connection()
    util.CONNECTION = conn
    conn.flushdb()
    base = columns.MODELS["Model"]
    columns.MODELS.clear()
    columns.MODELS["Model"] = base
    columns.MODELS_REFERENCED.clear()
    rom.session.rollback()
    util.NULL_SESSION = False
    del rom.session.null_session


def cleanup() -> None:
    """Forget what the page left in the session."""
    rom.session.rollback()
