"""What checkers infer for ``Model.query``: every builder and result method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from typing_extensions import assert_type

import rom


def _location(data: dict[str, Any]) -> dict[str, float]:
    return {"lon": data["lon"], "lat": data["lat"]}


class Place(rom.Model):
    """A model with token, score, prefix/suffix and geo indexes."""

    name = rom.Text(required=True, index=True, keygen=rom.SIMPLE_CI, prefix=True, suffix=True)
    tags = rom.Text(index=True, keygen=rom.FULL_TEXT)
    rating = rom.Float(default=0.0, index=True)
    lon = rom.Float()
    lat = rom.Float()
    geo_index = [rom.GeoIndex("loc", _location)]


def builders() -> None:
    """Every builder returns a ``Query`` of the same model."""
    q = Place.query
    assert_type(q, rom.Query[Place])
    assert_type(Place(name="x").query, rom.Query[Place])
    assert_type(rom.Query(Place), rom.Query[Place])
    assert_type(q.filter(tags="cafe", rating=(3, None)), rom.Query[Place])
    assert_type(q.filter(tags=["cafe", "bar"]), rom.Query[Place])
    assert_type(q.startswith(name="ca"), rom.Query[Place])
    assert_type(q.endswith(name="fe"), rom.Query[Place])
    assert_type(q.like(name="c?f*"), rom.Query[Place])
    assert_type(q.near("loc", 13.4, 52.5, 2, "km", count=10), rom.Query[Place])
    assert_type(q.order_by("-rating"), rom.Query[Place])
    assert_type(q.limit(0, 20), rom.Query[Place])
    assert_type(q.replace(order_by="rating"), rom.Query[Place])
    q.limit("0", 20)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    q.near("loc", 13.4, 52.5, 2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def results() -> None:
    """Results are entities of the model (or ``None`` / counts / key names)."""
    q = Place.query.filter(tags="cafe").order_by("-rating")
    assert_type(q.first(), Place | None)
    assert_type(q.all(), list[Place])
    assert_type(q.execute(), list[Place])
    assert_type(q.count(), int)
    assert_type(q.iter_result(timeout=10, pagesize=50), Iterator[Place])
    assert_type(iter(q), Iterator[Place])
    for place in q:
        assert_type(place, Place)
        assert_type(place.name, str)
        assert_type(place.rating, float)
    assert_type(q.cached_result(30), str)
    assert_type(q.delete(blocksize=50), None)
    first = q.first()
    first.name  # type: ignore[union-attr]  # pyright: ignore[reportOptionalMemberAccess]


def select() -> None:
    """``select()`` rows are ``Any``: their shape depends on the row factory."""
    rows = Place.query.filter(tags="cafe").select("name", "rating", include_pk=True)
    assert_type(rows, rom.Query[Any])
    assert_type(rows.all(), list[Any])
    assert_type(rows.first(), Any | None)
    assert_type(rows.limit(0, 5), rom.Query[Any])
    for row in rows:
        assert_type(row, Any)
