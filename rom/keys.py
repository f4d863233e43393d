"""The one key builder: every Redis key rom uses is named here (STORAGE.md §2).

On a standalone server the prefix is the model namespace, giving rom 1.x's exact layout.
On Redis Cluster it is ``{namespace}``, a hash tag, so all of a model's keys live in one
slot and every save, delete and query is one script on one node.
"""

from __future__ import annotations

import uuid

from redis.cluster import ClusterPipeline, RedisCluster

__all__ = ["KeySpace", "is_cluster"]

_CLUSTER_TYPES = (RedisCluster, ClusterPipeline)
_KNOWN: dict[type, bool] = {}


def is_cluster(conn: object) -> bool:
    """Whether ``conn`` is a redis-py cluster client (or a pipeline of one)."""
    kind = type(conn)
    known = _KNOWN.get(kind)
    if known is None:
        known = _KNOWN[kind] = issubclass(kind, _CLUSTER_TYPES)
    return known


class KeySpace:
    """Key names of one model under one prefix."""

    __slots__ = ("namespace", "prefix")

    def __init__(self, namespace: str, cluster: bool = False) -> None:
        self.namespace = namespace
        self.prefix = "{" + namespace + "}" if cluster else namespace

    def entity(self, pk: object) -> str:
        """The entity hash ``<ns>:<pk>``."""
        return f"{self.prefix}:{pk}"

    def counter(self, pkattr: str) -> str:
        """The id counter ``<ns>:<pkattr>:``."""
        return f"{self.prefix}:{pkattr}:"

    def legacy(self) -> str:
        """rom < 1.0 index bookkeeping hash ``<ns>::``."""
        return f"{self.prefix}::"

    def score(self, name: str) -> str:
        """Score index ``<ns>:<attr>[:<sub>]:idx``."""
        return f"{self.prefix}:{name}:idx"

    def token(self, entry: str) -> str:
        """Token set ``<ns>:<attr>:<token>:idx`` (``entry`` is ``attr:token``)."""
        return f"{self.prefix}:{entry}:idx"

    def prefix_index(self, attr: str) -> str:
        """Prefix index ``<ns>:<attr>:pre``."""
        return f"{self.prefix}:{attr}:pre"

    def suffix_index(self, attr: str) -> str:
        """Suffix index ``<ns>:<attr>:suf``."""
        return f"{self.prefix}:{attr}:suf"

    def unique(self, name: str) -> str:
        """Unique index ``<ns>:<name>:uidx`` (composite names joined with ``:``)."""
        return f"{self.prefix}:{name}:uidx"

    def geo(self, name: str) -> str:
        """Geo index ``<ns>:<name>:geo``."""
        return f"{self.prefix}:{name}:geo"

    def unsafe(self, pk: object, attr: str) -> str:
        """UnsafeColumn structure ``<ns>:<pk>:<attr>``."""
        return f"{self.prefix}:{pk}:{attr}"

    def expiry(self) -> str:
        """Expiry index (zset pk -> expiry time) of entities with a TTL."""
        return f"{self.prefix}::expire"

    def temp(self) -> str:
        """A fresh temporary key ``<ns>:<uuid4>`` (query results)."""
        return f"{self.prefix}:{uuid.uuid4()}"
