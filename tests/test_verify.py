"""rom.util.verify_indexes and ``python -m rom``: find and repair index damage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import redis
from conftest import CLUSTER, tag

import rom
from rom import util
from rom.index import GeoIndex
from rom.verify import VerifyReport, _Check, index_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def first_word(attr: str, data: dict[str, Any]) -> list[str] | None:
    """IndexOnly keygen2: the first word of ``w`` (a unique-only virtual column)."""
    words = (data.get("w") or "").split()
    return words[:1] or None


def full_model() -> Any:
    """A model with every kind of index key rom keeps."""

    class Thing(rom.Model):
        n = rom.Integer(index=True)
        f = rom.Float(index=True)
        e = rom.Text(unique=True)
        w = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True, suffix=True)
        s = rom.Text(index=True, keygen=rom.SIMPLE_CI, prefix=True)
        flag = rom.Boolean(index=True)
        a = rom.Integer()
        b = rom.Text()
        lon = rom.Float()
        lat = rom.Float()
        word = rom.IndexOnly(keygen2=first_word, unique=True)
        scratch = rom.UnsafeColumn()
        unique_together = [("a", "b")]
        geo_index = [GeoIndex("pt", lambda d: {"lon": d.lon or 0.0, "lat": d.lat or 0.0})]

    return Thing


def make(model: Any, count: int, start: int = 0) -> list[Any]:
    """Save ``count`` consistent entities."""
    out = []
    for i in range(start, start + count):
        x = model(
            n=i,
            f=i / 4,
            e=f"e{i}",
            w=f"w{i} hello world",
            s=f"S{i}",
            flag=i % 2 == 0,
            a=i,
            b="b",
            lon=2.0 + i / 100,
            lat=45.0,
        )
        x.save()
        out.append(x)
    return out


def test_consistent_model_has_no_problems(conn):
    """A model written only by rom verifies clean, with every entity counted."""
    Thing = full_model()
    things = make(Thing, 12)
    things[0].scratch.rpush("x")
    report = util.verify_indexes(Thing)
    assert isinstance(report, VerifyReport)
    assert (report.entities, report.problems, report.repaired) == (12, 0, 0)
    assert report.examples == []
    assert "problems=0" in report.summary()


def test_verify_indexes_is_in_util_but_not_in_all():
    """rom.util exposes verify_indexes while its __all__ keeps rom 1.x's list."""
    assert util.verify_indexes.__module__ == "rom.verify"
    assert "verify_indexes" not in util.__all__


def test_orphans_are_counted_and_removed(conn):
    """Members naming missing entities or entries not recorded are orphans; repair removes them."""
    Thing = full_model()
    things = make(Thing, 5)
    things[0].scratch.rpush("x")
    conn.sadd("Thing:w:ghost:idx", 99)  # entity 99 does not exist
    conn.sadd("Thing:w:hello:idx", "not-a-pk")
    conn.sadd("Thing:w:world:idx", 1, 2)  # fine: already there
    conn.zadd("Thing:w:pre", {"bogus\x002": 1.0})  # entity 2 never had 'bogus'
    conn.zadd("Thing:n:idx", {"77": 3})
    conn.geoadd("Thing:pt:geo", (1.0, 1.0, "55"))
    conn.hset("Thing:e:uidx", "nobody", 42)  # owner missing
    conn.hset("Thing:e:uidx", "stale", 3)  # entity 3 has e3
    conn.hset("Thing::", "42", '[["w:x"],{},{},{},{}]')  # legacy record of a missing entity
    gone = Thing(n=1, e="gone")
    gone.save()
    gone.scratch.rpush("y")
    conn.hset(f"Thing:{gone.id}:q", "k", "v")  # not an UnsafeColumn of Thing: left alone
    gone_id = gone.id
    conn.delete(f"Thing:{gone_id}")  # leaves its index entries and UnsafeColumn key behind
    report = util.verify_indexes(Thing)
    # ghost, not-a-pk, bogus, 77, 55, nobody, stale, legacy 42; and of the deleted hash:
    gone_entries = 4  # its n score, e unique field, pt geo member and scratch key
    assert report.orphans == 8 + gone_entries
    assert report.missing == report.mismatched == 0
    repaired = util.verify_indexes(Thing, repair=True)
    assert repaired.repaired == report.orphans
    assert util.verify_indexes(Thing).problems == 0
    assert conn.sismember("Thing:w:world:idx", 1)
    assert not conn.exists(f"Thing:{gone_id}:scratch")
    assert conn.exists(f"Thing:{gone_id}:q")
    assert conn.hget("Thing:e:uidx", "e3") == b"4"
    assert not conn.hexists("Thing:e:uidx", "stale")
    assert Thing.get_by(e="e3").id == 4


def test_missing_entries_are_counted_and_restored(conn):
    """Entries an entity should have but its index lacks are missing; repair re-saves it."""
    Thing = full_model()
    make(Thing, 4)
    conn.srem("Thing:w:hello:idx", 1)
    conn.zrem("Thing:n:idx", 2)
    conn.zrem("Thing:w:pre", "world\x003")
    conn.zrem("Thing:pt:geo", 4)
    conn.hdel("Thing:e:uidx", "e1")  # entity 2 (pks start at 1, values at 0)
    conn.hdel("Thing:a:b:uidx", conn.hkeys("Thing:a:b:uidx")[0])
    conn.hdel("Thing:word:uidx", "w2")
    report = util.verify_indexes(Thing)
    assert (report.missing, report.orphans, report.mismatched) == (7, 0, 0)
    assert any(tag("Thing:w:hello:idx") in e for e in report.examples)
    fixed = util.verify_indexes(Thing, repair=True)
    assert fixed.repaired == 4  # one re-save per damaged entity
    assert util.verify_indexes(Thing).problems == 0
    assert {x.id for x in Thing.query.filter(w="hello").all()} == {1, 2, 3, 4}
    assert Thing.get_by(e="e1").id == 2
    assert [x.id for x in Thing.query.filter(n=(1, 1)).all()] == [2]


def test_mismatches_are_counted_and_fixed(conn):
    """Wrong scores, wrong unique owners and data changed behind rom's back are mismatches."""
    Thing = full_model()
    make(Thing, 4)
    conn.zadd("Thing:f:idx", {"1": 99.5})
    conn.zadd("Thing:w:pre", {"world\x002": 1.0})
    conn.geoadd("Thing:pt:geo", (10.0, 10.0, "3"), xx=True)
    conn.hset("Thing:4", "n", "1000")  # data changed outside rom: its index is stale
    report = util.verify_indexes(Thing)
    assert report.mismatched == 4
    assert report.missing == report.orphans == 0
    util.verify_indexes(Thing, repair=True)
    assert util.verify_indexes(Thing).problems == 0
    assert conn.zscore("Thing:n:idx", 4) == 1000
    assert [x.id for x in Thing.query.filter(n=(1000, 1000)).all()] == [4]


def test_unique_value_owned_by_the_wrong_entity(conn):
    """A unique field pointing at an entity with another value is an orphan for that entity
    and a mismatch for the real owner; repair gives it back to the owner."""
    Thing = full_model()
    make(Thing, 3)
    conn.hset("Thing:e:uidx", "e0", 3)
    report = util.verify_indexes(Thing)
    assert (report.orphans, report.mismatched, report.missing) == (1, 1, 0)
    util.verify_indexes(Thing, repair=True)
    assert conn.hget("Thing:e:uidx", "e0") == b"1"
    assert util.verify_indexes(Thing).problems == 0


def test_bookkeeping_not_matching_the_data(conn):
    """A damaged or missing -index-data- field is a mismatch; repair rewrites it."""
    Thing = full_model()
    make(Thing, 3)
    conn.hset("Thing:1", "-index-data-", "not json")
    conn.hdel("Thing:2", "-index-data-")
    conn.hset("Thing:3", "-index-data-", '[["w:extra"],{},{},{},{}]')
    report = util.verify_indexes(Thing)
    assert report.mismatched == 3
    util.verify_indexes(Thing, repair=True)
    assert util.verify_indexes(Thing).problems == 0
    assert conn.hget("Thing:2", "-index-data-") is not None


def test_unreadable_entity_is_reported_and_left_alone(conn):
    """Data that cannot be loaded is a mismatch that repair reports and never deletes."""
    Thing = full_model()
    make(Thing, 2)
    conn.hset("Thing:2", "n", "not a number")
    report = util.verify_indexes(Thing, repair=True)
    assert report.mismatched == 1 and report.unrepaired == 1
    assert any(tag("Thing:2") in e for e in report.examples)
    assert conn.hget("Thing:2", "n") == b"not a number"
    assert conn.sismember("Thing:w:hello:idx", 2)  # its entries are not orphans either


def test_duplicate_unique_values_cannot_be_repaired(conn):
    """Two entities holding one unique value: reported as unrepaired, nothing raised."""
    Thing = full_model()
    make(Thing, 2)
    conn.hset("Thing:2", "e", "e0")
    report = util.verify_indexes(Thing, repair=True)
    assert report.problems >= 1
    assert report.unrepaired == 1
    assert conn.hget("Thing:e:uidx", "e0") == b"1"
    assert util.verify_indexes(Thing).problems >= 1


def test_expired_entities_are_pending_then_swept(conn):
    """Expired, unswept entities are counted apart from problems; repair sweeps them."""

    class Ticket(rom.Model):
        _ttl = None
        code = rom.Text(unique=True)
        n = rom.Integer(index=True)

    keep = Ticket(code="keep", n=1)
    keep.save()
    old = Ticket(code="old", n=2)
    old.expire(0.05)
    old.save()
    time.sleep(0.1)
    report = util.verify_indexes(Ticket)
    assert (report.entities, report.expired_pending, report.problems) == (2, 1, 0)
    conn.zadd("Ticket::expire", {"77": 1.0})  # expiry entry of a missing entity
    assert util.verify_indexes(Ticket).orphans == 1
    fixed = util.verify_indexes(Ticket, repair=True)
    assert fixed.repaired == 2
    assert not conn.exists(f"Ticket:{old.id}")
    again = util.verify_indexes(Ticket)
    assert (again.entities, again.expired_pending, again.problems) == (1, 0, 0)


def test_rom_1_0_legacy_bookkeeping_is_understood(conn):
    """An entity whose bookkeeping is still in rom < 1.0's ``<ns>::`` hash verifies clean."""
    Thing = full_model()
    make(Thing, 2)
    record = conn.hget("Thing:1", "-index-data-")
    conn.hdel("Thing:1", "-index-data-")
    conn.hset("Thing::", "1", record)
    report = util.verify_indexes(Thing)
    assert (report.entities, report.problems) == (2, 0)
    conn.hset("Thing::", "1", '[["w:other"],{},{},{},{}]')  # records what the data lacks
    assert util.verify_indexes(Thing).mismatched == 1


def test_keys_that_only_look_like_entities_are_ignored(conn):
    """``<ns>:007`` is not an entity key (rom writes canonical ids) and is left alone."""
    Thing = full_model()
    make(Thing, 1)
    conn.hset("Thing:007", "n", "x")
    conn.set("Thing:n:x", "unrelated")
    report = util.verify_indexes(Thing, repair=True)
    assert (report.entities, report.problems, report.repaired) == (1, 0, 0)
    assert conn.exists("Thing:007", "Thing:n:x") == 2


def test_decode_responses_client(decoded_conn):
    """Checks and repairs work with a decode_responses=True connection."""
    Thing = full_model()
    make(Thing, 3)
    decoded_conn.sadd("Thing:w:ghost:idx", 9)
    decoded_conn.srem("Thing:w:hello:idx", 1)
    report = util.verify_indexes(Thing, repair=True)
    assert (report.orphans, report.missing) == (1, 1)
    assert util.verify_indexes(Thing).problems == 0


def test_namespaces_with_colons_and_glob_characters(conn):
    """A namespace with ':' and glob characters is matched exactly; models whose namespace
    extends another's are not mistaken for its keys."""

    class Outer(rom.Model):
        _namespace = "app"
        n = rom.Integer(index=True)
        t = rom.Text(index=True, keygen=rom.IDENTITY)

    class Inner(rom.Model):
        _namespace = "app:v[1]*"
        n = rom.Integer(index=True)
        t = rom.Text(index=True, keygen=rom.IDENTITY)

    for i in range(3):
        Outer(n=i, t="x").save()
        Inner(n=i, t="x").save()
    assert util.verify_indexes(Outer).entities == 3
    assert util.verify_indexes(Inner).entities == 3
    assert util.verify_indexes(Outer).problems == util.verify_indexes(Inner).problems == 0
    conn.sadd(Inner._keyspace(util.CONNECTION).token("t:ghost"), 1)
    assert util.verify_indexes(Outer).problems == 0
    assert util.verify_indexes(Inner, repair=True).orphans == 1
    assert util.verify_indexes(Inner).problems == 0


def test_scans_in_pages_and_never_blocks(conn, monkeypatch):
    """Only SCAN-family commands walk keys and members, page by page: never KEYS, SMEMBERS,
    whole-zset ZRANGE or an index HGETALL."""
    Thing = full_model()
    make(Thing, 60)
    for i in range(300):
        conn.sadd("Thing:w:hello:idx", 1000 + i)
    sent: list[str] = []

    def spy(original: Any) -> Any:
        def pack(self: Any, *args: Any) -> Any:
            name = args[0] if isinstance(args[0], str) else args[0].decode()
            sent.append(name.upper())
            if name.upper() == "HGETALL":
                key = args[1] if isinstance(args[1], str) else args[1].decode()
                assert key.split(":")[-1].isdigit(), key
            return original(self, *args)

        return pack

    for packer in (redis.connection.HiredisRespSerializer, redis.connection.PythonRespSerializer):
        monkeypatch.setattr(packer, "pack", spy(packer.pack))
    report = util.verify_indexes(Thing, repair=True, block_size=20)
    assert report.orphans == 300 and report.repaired == 300
    assert not {"KEYS", "SMEMBERS", "ZRANGE", "HKEYS", "HVALS"} & set(sent)
    assert sent.count("SCAN") >= 2
    assert sent.count("SSCAN") >= 2
    assert sent.count("EVALSHA") + sent.count("EVAL") >= 300 // 20


def test_removal_is_rechecked_atomically(conn):
    """An orphan that a writer made valid after the check is not removed by the repair."""
    Thing = full_model()
    (x,) = make(Thing, 1)
    check = _Check(Thing, True, 100)
    state = check.states({"1"})["1"]
    conn.sadd("Thing:w:later:idx", 1)
    x.w = "later"
    x.save()  # the entity now records w:later: the member is no longer an orphan
    check.remove("SREM", tag("Thing:w:later:idx"), "1", check.entity_checks("1", state))
    check.flush()
    assert check.report.repaired == 0
    assert conn.sismember("Thing:w:later:idx", 1)
    fresh = check.states({"1"})["1"]
    check.remove("SREM", tag("Thing:w:ghost:idx"), "1", check.entity_checks("1", fresh))
    conn.sadd("Thing:w:ghost:idx", 1)
    check.flush()
    assert check.report.repaired == 1 and not conn.exists("Thing:w:ghost:idx")


def test_progress_is_printed(conn, capsys):
    """progress=True prints a progress line with the time remaining."""
    Thing = full_model()
    make(Thing, 3)
    util.verify_indexes(Thing, progress=True)
    out = capsys.readouterr().out
    assert "100.0% complete" in out and "seconds remaining" in out


def test_index_stats_counts_every_kind(conn):
    """index_stats reports entities and the keys and members of each index kind."""
    Thing = full_model()
    make(Thing, 4)
    stats = index_stats(Thing)
    assert stats["entities"] == 4 and stats["id_counter"] == 4
    for kind in ("token", "score", "pre", "suf", "geo", "uidx"):
        assert stats[f"{kind}_keys"] >= 1, kind
    assert stats["uidx_members"] == 12  # e, word, a:b for 4 entities


def test_model_without_indexes(conn):
    """A model with no index verifies its entities and nothing else."""

    class Plain(rom.Model):
        x = rom.Text()

    Plain(x="a").save()
    Plain(x="b").save()
    report = util.verify_indexes(Plain)
    assert (report.entities, report.problems) == (2, 0)


# -- the command line ------------------------------------------------------------------------

CLI_MODULE = """
import rom


class Gadget(rom.Model):
    name = rom.Text(unique=True)
    n = rom.Integer(index=True)
"""


def cli_url(conn: Any) -> str:
    """A URL the command line can use to reach the test database."""
    if CLUSTER:
        return "redis+cluster://" + os.environ["ROM_TEST_REDIS_URL"].split("://", 1)[1]
    kw = conn.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def run_cli(tmp_path: Any, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "gadgets.py").write_text(textwrap.dedent(CLI_MODULE))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path)]))
    return subprocess.run(
        [sys.executable, "-m", "rom", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_check_repair_stats(conn, tmp_path):
    """check exits 0 when clean and 1 with problems; repair fixes them; stats counts."""

    class Gadget(rom.Model):
        name = rom.Text(unique=True)
        n = rom.Integer(index=True)

    for i in range(5):
        Gadget(name=f"g{i}", n=i).save()
    url = cli_url(conn)
    ok = run_cli(tmp_path, "check", "--url", url, "gadgets:Gadget")
    assert ok.returncode == 0, ok.stderr
    assert "entities=5" in ok.stdout and "problems=0" in ok.stdout
    conn.zadd("Gadget:n:idx", {"40": 1})
    conn.zrem("Gadget:n:idx", 2)
    bad = run_cli(tmp_path, "check", "--examples", "--url", url, "gadgets:Gadget")
    assert bad.returncode == 1, bad.stderr
    assert "orphans=1" in bad.stdout and "missing=1" in bad.stdout
    assert tag("Gadget:n:idx") in bad.stdout
    fixed = run_cli(tmp_path, "repair", "--progress", "--url", url, "gadgets:Gadget")
    assert fixed.returncode == 0, fixed.stderr
    assert "after repair" in fixed.stdout and "complete" in fixed.stdout
    assert run_cli(tmp_path, "check", "--url", url, "gadgets:Gadget").returncode == 0
    stats = run_cli(tmp_path, "stats", "--url", url, "gadgets:Gadget")
    assert stats.returncode == 0 and "entities=5" in stats.stdout
    assert "uidx_members=5" in stats.stdout


def test_cli_errors(conn, tmp_path):
    """Bad model names and unknown commands exit with status 2 and a message."""
    url = cli_url(conn)
    for spec in ("gadgets", "gadgets:Nope", "nomodule:Gadget", "gadgets:rom"):
        result = run_cli(tmp_path, "check", "--url", url, spec)
        assert result.returncode == 2, spec
        assert "error:" in result.stderr
    assert run_cli(tmp_path, "explode", "gadgets:Gadget").returncode == 2
    down = run_cli(tmp_path, "check", "--url", "redis://127.0.0.1:1/0", "gadgets:Gadget")
    assert down.returncode == 2 and "ConnectionError" in down.stderr
