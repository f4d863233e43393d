"""The benchmark workload written against the public rom API (API.md).

Used unchanged for both "new" (this repo's rom) and "rom112" (PyPI rom 1.1.2):
the worker decides which `rom` gets imported (sys.path), then imports this module.

Every method runs a whole batch of operations (the worker times the call) and
returns a number that must be identical across implementations (found entities,
result rows, counts) so the runner can cross-check correctness.
"""

from urllib.parse import urlparse

import rom
from rom import util as rom_util


def _define_idx():
    class BenchIdx(rom.Model):
        num = rom.Integer(index=True)
        uname = rom.Text(unique=True)
        name = rom.Text(keygen=rom.IDENTITY_CI, prefix=True, suffix=True)
        body = rom.Text(index=True, keygen=rom.FULL_TEXT)

    return BenchIdx


def _define_plain():
    class BenchPlain(rom.Model):
        num = rom.Integer()
        uname = rom.Text()
        name = rom.Text()
        body = rom.Text()

    return BenchPlain


# Each model is defined separately so that a package which cannot yet define
# one of them (e.g. a missing keygen) can still run the other model's families.
MODELS = {}
MODEL_ERRORS = {}
for _kind, _define in (("idx", _define_idx), ("plain", _define_plain)):
    try:
        MODELS[_kind] = _define()
    except Exception as _e:
        MODEL_ERRORS[_kind] = f"defining the {_kind} model failed: {type(_e).__name__}: {_e}"


def model(kind):
    m = MODELS.get(kind)
    if m is None:
        raise RuntimeError(MODEL_ERRORS[kind])
    return m


def _conn_kwargs(url):
    u = urlparse(url)
    kw = {"host": u.hostname or "127.0.0.1", "port": u.port or 6379}
    db = (u.path or "/").lstrip("/")
    kw["db"] = int(db) if db else 0
    if u.password:
        kw["password"] = u.password
    if u.username:
        kw["username"] = u.username
    return kw


class Impl:
    def __init__(self, url):
        rom_util.set_connection_settings(**_conn_kwargs(url))
        self.session = rom.session
        self.rom_file = getattr(rom, "__file__", None) or repr(list(getattr(rom, "__path__", [])))
        self.version = getattr(rom, "VERSION", "?")

    def end_chunk(self):
        """Called (untimed) after every timed chunk."""
        self.session.rollback()

    # ---------------- writes ----------------
    def insert_each(self, kind, recs):
        M = model(kind)
        rollback = self.session.rollback
        n = 0
        for rec in recs:
            e = M(**rec)
            e.save()
            rollback()
            n += 1
        return n

    def bulk_insert(self, kind, recs):
        M = model(kind)
        ents = [M(**rec) for rec in recs]
        self.session.commit()
        return len(ents)

    # ---------------- reads ----------------
    def get_each(self, kind, ids):
        M = model(kind)
        rollback = self.session.rollback
        found = 0
        for i in ids:
            if M.get(i) is not None:
                found += 1
            rollback()
        return found

    def get_many(self, kind, idlists):
        M = model(kind)
        rollback = self.session.rollback
        found = 0
        for ids in idlists:
            found += len(M.get(ids))
            rollback()
        return found

    def get_by_unique_each(self, unames):
        rollback = self.session.rollback
        found = 0
        for u in unames:
            if model("idx").get_by(uname=u) is not None:
                found += 1
            rollback()
        return found

    def range_each(self, ranges):
        rollback = self.session.rollback
        total = 0
        for lo, hi in ranges:
            total += len(model("idx").query.filter(num=(lo, hi)).limit(0, 10).all())
            rollback()
        return total

    def count_each(self, ranges):
        total = 0
        for lo, hi in ranges:
            total += model("idx").query.filter(num=(lo, hi)).count()
        return total

    def prefix_each(self, prefixes):
        rollback = self.session.rollback
        total = 0
        for p in prefixes:
            total += len(model("idx").query.startswith(name=p).all())
            rollback()
        return total

    def suffix_each(self, suffixes):
        rollback = self.session.rollback
        total = 0
        for s in suffixes:
            total += len(model("idx").query.endswith(name=s).all())
            rollback()
        return total

    def pattern_each(self, patterns):
        rollback = self.session.rollback
        total = 0
        for p in patterns:
            total += len(model("idx").query.like(name=p).all())
            rollback()
        return total

    def ft1_each(self, words):
        rollback = self.session.rollback
        total = 0
        for w in words:
            total += len(model("idx").query.filter(body=w).all())
            rollback()
        return total

    def ft2_each(self, pairs):
        rollback = self.session.rollback
        total = 0
        for a, b in pairs:
            total += len(model("idx").query.filter(body=a).filter(body=b).all())
            rollback()
        return total

    def ft_or_each(self, pairs):
        rollback = self.session.rollback
        total = 0
        for a, b in pairs:
            total += len(model("idx").query.filter(body=[a, b]).all())
            rollback()
        return total

    # ---------------- update / delete ----------------
    def load(self, kind, ids):
        """Untimed: fetch the entities an update/delete family will work on."""
        ents = model(kind).get(list(ids))
        if len(ents) != len(ids):
            raise RuntimeError(f"load: expected {len(ids)} entities, got {len(ents)}")
        return ents

    def update_each(self, kind, ents, nums):
        n = 0
        for e, v in zip(ents, nums, strict=False):
            e.num = v
            e.save()
            n += 1
        return n

    def delete_each(self, kind, ents):
        n = 0
        for e in ents:
            e.delete()
            n += 1
        return n
