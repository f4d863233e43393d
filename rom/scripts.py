"""Lua scripts: loaded once from ``rom/lua/*.lua``, run by SHA, reloaded on NOSCRIPT.

Every script receives all the keys it touches through KEYS and all values through ARGV,
so it runs unchanged on Redis Cluster when its keys share one hash tag.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

__all__ = ["NO_SCRIPT_MESSAGES", "Script", "_script_load", "get_script"]

NO_SCRIPT_MESSAGES = ["NOSCRIPT", "No matching script."]


class Script:
    """A Lua script called with EVALSHA, loading itself again after ``SCRIPT FLUSH``."""

    def __init__(self, source: str, name: str = "<inline>") -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, conn: Any, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        """Run the script on ``conn`` (a client, cluster client or pipeline)."""
        try:
            return conn.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return conn.eval(self.source, len(keys), *keys, *args)
        except ResponseError as err:
            if any(m in str(err) for m in NO_SCRIPT_MESSAGES):
                return conn.eval(self.source, len(keys), *keys, *args)
            raise

    def load(self, conn: Any) -> None:
        """Make sure the server knows the script (before queueing it in a pipeline)."""
        conn.script_load(self.source)

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"


_CACHE: dict[str, Script] = {}


def get_script(name: str) -> Script:
    """The script ``rom/lua/<name>.lua``, read from the package once per process."""
    script = _CACHE.get(name)
    if script is None:
        folder = importlib.resources.files("rom").joinpath("lua")
        source = folder.joinpath(name + ".lua").read_text("utf-8")
        script = _CACHE[name] = Script(source, name)
    return script


def _script_load(script: str) -> Callable[..., Any]:
    """rom 1.x helper: a callable ``call(conn, keys=[], args=[], force_eval=False)``."""
    loaded = Script(script)

    def call(
        conn: Any, keys: Sequence[Any] = (), args: Sequence[Any] = (), force_eval: bool = False
    ) -> Any:
        if force_eval:
            return conn.eval(loaded.source, len(keys), *keys, *args)
        return loaded(conn, keys, args)

    call.__dict__["script"] = loaded  # rom 1.x's ``call.script``, set so checkers accept it
    return call
