"""Geo queries, the expiry-index filter, and results under concurrent writes."""

from __future__ import annotations

import threading
import time

import pytest

import rom


def ids(results):
    return [e.id for e in results]


def make_place():
    class Place(rom.Model):
        name = rom.Text(index=True, keygen=rom.IDENTITY)
        kind = rom.Text(index=True, keygen=rom.IDENTITY)
        lon = rom.Float()
        lat = rom.Float()
        rank = rom.Integer(index=True)
        geo_index = [rom.GeoIndex("loc", lambda d: {"lon": d["lon"], "lat": d["lat"]})]

    return Place


def seed_places(Place):
    # roughly 0, 11, 22, 33 and 111 km east of (0, 0)
    spots = [
        (0.0, "a", "cafe", 4),
        (0.1, "b", "bar", 3),
        (0.2, "c", "cafe", 2),
        (0.3, "d", "bar", 1),
        (1.0, "e", "cafe", 0),
    ]
    for lon, name, kind, rank in spots:
        Place(name=name, kind=kind, lon=lon, lat=0.0, rank=rank)
    rom.session.commit()
    rom.session.rollback()


# -- geo -------------------------------------------------------------------------------------
def test_near_orders_by_distance_and_counts(conn):
    """near() finds points within the radius, nearest first; count keeps the n nearest."""
    Place = make_place()
    seed_places(Place)
    assert ids(Place.query.near("loc", 0.31, 0, 25, "km").all()) == [4, 3, 2]
    assert ids(Place.query.near("loc", 0.31, 0, 25, "KM", count=2).all()) == [4, 3]
    assert Place.query.near("loc", 0, 0, 200, "km").count() == 5
    assert Place.query.near("loc", 0, 0, 200000, "m", count=3).count() == 3
    assert Place.query.near("loc", 0, 0, 1, "mi").count() == 1
    assert Place.query.near("loc", 50, 50, 1, "ft").all() == []


def test_near_combined_with_filters_and_order(conn):
    """Geo filters intersect with other filters; order_by wins over distance."""
    Place = make_place()
    seed_places(Place)
    q = Place.query.near("loc", 0, 0, 50, "km").filter(kind="cafe")
    assert sorted(ids(q.all())) == [1, 3]
    assert ids(q.order_by("rank").all()) == [3, 1]
    assert ids(
        Place.query.filter(kind="bar").near("loc", 0, 0, 200, "km", count=2).order_by("-rank").all()
    ) == [2]


def test_near_skips_and_purges_stale_geo_members(conn):
    """Geo members without an entity hash (rom 1.x leftovers) are skipped and removed
    (bug 11), also from count(); with count, the n nearest live points are returned."""
    Place = make_place()
    seed_places(Place)
    conn.geoadd("Place:loc:geo", (0.05, 0.0, "99"))
    assert Place.query.near("loc", 0, 0, 50, "km").count() == 4
    assert conn.zscore("Place:loc:geo", "99") is None
    conn.geoadd("Place:loc:geo", (0.05, 0.0, "98"))
    conn.geoadd("Place:loc:geo", (0.06, 0.0, "97"))
    assert ids(Place.query.near("loc", 0, 0, 50, "km", count=2).all()) == [1, 2]
    assert conn.zcard("Place:loc:geo") == 5
    Place.get(1).delete()
    assert ids(Place.query.near("loc", 0, 0, 15, "km").all()) == [2]


def test_near_errors(conn):
    """Unknown geo index, unit or bad numbers raise ValueError."""
    Place = make_place()
    with pytest.raises(ValueError):
        Place.query.near("nope", 0, 0, 1, "km")
    with pytest.raises(ValueError):
        Place.query.near("loc", 0, 0, 1, "yd")
    with pytest.raises(ValueError):
        Place.query.near("loc", 0, 0, -1, "km")
    with pytest.raises(ValueError):
        Place.query.near("loc", 200, 0, 1, "km")
    with pytest.raises(ValueError):
        Place.query.near("loc", "x", 0, 1, "km")
    with pytest.raises(ValueError):
        Place.query.near("loc", 0, 0, 1, "km", count=-1)


# -- expiry index ----------------------------------------------------------------------------
def make_item(monkeypatch, indexed_pk=False):
    class Item(rom.Model):
        id = rom.PrimaryKey(index=indexed_pk)
        n = rom.Integer(index=True)
        tag = rom.Text(index=True, keygen=rom.IDENTITY, prefix=True)

    for i in range(1, 6):
        Item(n=i, tag=f"t{i}")
    rom.session.commit()
    rom.session.rollback()
    monkeypatch.setattr(Item, "_has_expiry", True)
    return Item


@pytest.mark.parametrize("indexed_pk", [False, True])
def test_expired_entities_are_left_out(conn, monkeypatch, indexed_pk):
    """Entities whose expiry time passed are excluded from every query form and count."""
    Item = make_item(monkeypatch, indexed_pk)
    now = time.time()
    conn.zadd("Item::expire", {"2": now - 5, "4": now - 1, "5": now + 100})
    assert ids(Item.query.filter(n=(None, None)).all()) == [1, 3, 5]
    assert Item.query.filter(n=(None, None)).count() == 3
    assert Item.query.filter(n=(1, 3)).count() == 2
    assert Item.query.order_by("n").count() == 3
    assert ids(Item.query.order_by("n").all()) == [1, 3, 5]
    assert ids(Item.query.order_by("-n").all()) == [5, 3, 1]
    assert Item.query.startswith(tag="t").count() == 3
    assert Item.query.filter(tag="t2").first() is None
    assert Item.query.filter(n=(2, None)).first().id == 3
    assert ids(Item.query.all()) == [1, 3, 5]
    assert ids(Item.query.limit(1, 5).all()) == [3, 5]
    assert Item.query.limit(1, 1).first().id == 3
    assert Item.query.select("n").all() == [{"n": 1}, {"n": 3}, {"n": 5}]
    key = Item.query.filter(n=(None, None)).cached_result(5)
    assert conn.zrange(key, 0, -1) == [b"1", b"3", b"5"]


def test_entities_expiring_during_iteration(conn, monkeypatch):
    """An entity that expires between two pages is not yielded by the later page."""
    Item = make_item(monkeypatch)
    it = Item.query.order_by("n").iter_result(pagesize=2)
    assert ids([next(it), next(it)]) == [1, 2]
    conn.zadd("Item::expire", {"4": time.time() - 1})
    assert ids(it) == [3, 5]
    bare = Item.query.iter_result(pagesize=2)
    assert ids([next(bare)]) == [1]
    conn.zadd("Item::expire", {"3": time.time() - 1})
    assert ids(bare) == [2, 5]


def test_short_expiry_uses_the_server_clock(conn, monkeypatch):
    """An entity is visible until its expiry time and hidden right after."""
    Item = make_item(monkeypatch)
    conn.zadd("Item::expire", {"1": time.time() + 0.3})
    assert Item.query.filter(n=1).count() == 1
    time.sleep(0.4)
    assert Item.query.filter(n=1).count() == 0
    assert Item.query.filter(n=1).all() == []


# -- concurrency -----------------------------------------------------------------------------
def test_results_are_consistent_under_concurrent_writes(conn):
    """Each returned entity is in the state that made it match: ids and data come from one
    snapshot, while another thread keeps moving entities between groups."""

    class Box(rom.Model):
        group = rom.Integer(index=True)
        label = rom.Text(index=True, keygen=rom.IDENTITY)

    for i in range(40):
        Box(group=i % 2, label=f"g{i % 2}")
    rom.session.commit()
    rom.session.rollback()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        local = rom.session
        try:
            n = 0
            while not stop.is_set():
                box = Box.get(1 + n % 40)
                new = 1 - box.group
                box.group = new
                box.label = f"g{new}"
                box.save()
                local.rollback()
                n += 1
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.time() + 0.7
        checked = 0
        while time.time() < deadline:
            for box in Box.query.filter(group=1).all():
                assert box.group == 1 and box.label == "g1"
                checked += 1
            for box in Box.query.filter(label="g0").order_by("group").all():
                assert box.group == 0
            assert Box.query.filter(group=(0, 1)).count() == 40
            rom.session.rollback()
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert checked > 0


def test_single_range_pages_read_from_the_index(conn, round_trips):
    """A lone range filter pages straight from its index: same rows, one round trip."""

    class Reading(rom.Model):
        v = rom.Integer(index=True)

    for i in range(12):
        Reading(v=i % 6)  # ties: ordered by pk text
    rom.session.commit()
    rom.session.rollback()
    query = Reading.query.filter(v=(1, 4))
    expected = sorted(
        (r for r in Reading.get(list(range(1, 13))) if 1 <= r.v <= 4),
        key=lambda r: (r.v, str(r.id)),
    )
    round_trips.reset()
    assert [r.id for r in query.limit(2, 3).all()] == [r.id for r in expected[2:5]]
    assert round_trips.count == 1
    assert [r.id for r in query.iter_result(pagesize=3)] == [r.id for r in expected]
    assert [r.id for r in query.limit(7, 5).all()] == [r.id for r in expected[7:]]
    assert query.filter(v=(9, None)).all() == []
    assert Reading.query.filter(v=(100, 200)).all() == []
    assert conn.keys("Reading:*-*") == []  # no temp key left behind


def test_single_token_pages_read_from_the_set(conn, round_trips):
    """A lone token filter pages straight from its set, in pk-as-text order."""

    class Tagged(rom.Model):
        tag = rom.Text(index=True, keygen=rom.IDENTITY)

    for i in range(12):
        Tagged(tag="a" if i % 3 else "b")
    rom.session.commit()
    rom.session.rollback()
    expected = sorted(str(t.id) for t in Tagged.get(list(range(1, 13))) if t.tag == "a")
    query = Tagged.query.filter(tag="a")
    round_trips.reset()
    assert [str(t.id) for t in query.limit(1, 4).all()] == expected[1:5]
    assert round_trips.count == 1
    assert [str(t.id) for t in query.iter_result(pagesize=3)] == expected
    assert [str(t.id) for t in query.all()] == expected
    assert Tagged.query.filter(tag="zzz").all() == []
    assert conn.keys("Tagged:*-*") == []  # no temp key left behind
