""" "limit": hand-written redis-py doing the minimal Redis work for the workload.

Same key layout as STORAGE.md (entity hashes incl. the `-index-data-` field,
`<ns>:<attr>:idx` zset / token sets, `:uidx` hash, `:pre`/`:suf` zsets with
members `entry\\0pk` scored by the 7-byte prefix score, `<ns>:id:` counter), so
memory per entity is comparable.  No ORM, no session, no Lua.  What it does per
operation (RT = round trip):

* insert: INCR (the rom API hands out the id at construction) + one MULTI/EXEC
  with HSET, HSETNX uidx, ZADD idx, ZADD pre, ZADD suf, SADD per word  -> 2 RT
* bulk of N: N x INCR (id at construction), then every write of every entity in
  one MULTI/EXEC pipeline  -> N+1 RT
* get: HGETALL (1 RT); get of 100: 100 x HGETALL in one pipeline (1 RT)
* get_by unique: HGET uidx + HGETALL (2 RT)
* update indexed column: MULTI HSET + ZADD (1 RT) -- no race check (a floor)
* delete: MULTI DEL + ZREM/SREM/HDEL of the entries derived from the loaded
  entity (1 RT) -- uses the client's copy, not the stored bookkeeping (a floor)
* range+limit: ZRANGEBYSCORE LIMIT 0 10 + pipelined HGETALL (2 RT)
* count: ZCOUNT (1 RT)
* prefix / suffix / like: ZRANGEBYSCORE over the prefix-score range of the
  literal prefix, client-side match, pipelined HGETALL (2 RT)
* full text: SMEMBERS / SINTER / SUNION + pipelined HGETALL (2 RT)

Results are decoded into plain dicts with typed values (int id/num, str text).
"""

import json
import re
import string
import struct
from urllib.parse import urlparse

import redis
from common import NS_IDX, NS_PLAIN

NS = {"idx": NS_IDX, "plain": NS_PLAIN}
_PUNCT = string.punctuation


def prefix_score(v, next=False):
    """STORAGE.md 4.7: first 7 bytes as base-258 digits (byte+1), left aligned,
    mapped to the double whose bit pattern is n + 2**52."""
    b = v.encode("utf-8") if isinstance(v, str) else v
    L = len(b)
    n = 0
    for c in b[:7]:
        n = n * 258 + c + 1
    if next:
        n += 1
    if L < 7:
        n *= 258 ** (7 - L)
    return struct.unpack("<d", struct.pack("<Q", n + (1 << 52)))[0]


def full_text(val):
    """API.md 8.2 FULL_TEXT for str values."""
    if not val:
        return []
    out = set()
    for w in val.split():
        w = w.lower().strip(_PUNCT)
        if w:
            out.add(w)
    return sorted(out)


def like_regex(pattern):
    """API.md 6.3 like(): ? 0-1 char, * 0+ (shortest), + 1+, ! exactly one;
    anchored at the start, open at the end.  Returns (literal_prefix, regex)."""
    out = []
    lit = None
    for i, ch in enumerate(pattern):
        if ch in "?*+!":
            if lit is None:
                lit = pattern[:i]
            out.append({"?": ".?", "*": ".*?", "+": ".+", "!": "."}[ch])
        else:
            out.append(re.escape(ch))
    if lit is None:
        lit = pattern
    return lit, re.compile("".join(out).encode("utf-8"), re.S)


def _decode(h):
    if not h:
        return None
    d = {k.decode("utf-8"): v.decode("utf-8") for k, v in h.items()}
    d.pop("-index-data-", None)
    d["id"] = int(d["id"])
    if "num" in d:
        d["num"] = int(d["num"])
    return d


class Impl:
    def __init__(self, url):
        u = urlparse(url)
        db = (u.path or "/").lstrip("/")
        self.r = redis.Redis(
            host=u.hostname or "127.0.0.1",
            port=u.port or 6379,
            db=int(db) if db else 0,
            password=u.password,
            username=u.username,
        )
        self.rom_file = "-"
        self.version = "redis-py " + redis.__version__

    def end_chunk(self):
        pass

    # ---------------- writes ----------------
    def _queue_insert(self, p, kind, pk, rec):
        ns = NS[kind]
        spk = str(pk)
        num = str(rec["num"])
        if kind == "plain":
            p.hset(
                f"{ns}:{spk}",
                mapping={
                    "id": spk,
                    "num": num,
                    "uname": rec["uname"],
                    "name": rec["name"],
                    "body": rec["body"],
                    "-index-data-": "[[],[],[],[],[]]",
                },
            )
            return 0
        name = rec["name"].lower()  # IDENTITY_CI
        rev = name[::-1]
        words = full_text(rec["body"])
        idata = json.dumps(
            [["body:" + w for w in words], ["num"], [["name", name]], [["name", rev]], []],
            separators=(",", ":"),
        )
        p.hset(
            f"{ns}:{spk}",
            mapping={
                "id": spk,
                "num": num,
                "uname": rec["uname"],
                "name": rec["name"],
                "body": rec["body"],
                "-index-data-": idata,
            },
        )
        p.hsetnx(ns + ":uname:uidx", rec["uname"], spk)
        p.zadd(ns + ":num:idx", {spk: rec["num"]})
        p.zadd(ns + ":name:pre", {name + "\0" + spk: prefix_score(name)})
        p.zadd(ns + ":name:suf", {rev + "\0" + spk: prefix_score(rev)})
        for w in words:
            p.sadd(f"{ns}:body:{w}:idx", spk)
        return 1  # index of the HSETNX reply in this entity's replies

    def _check_unique(self, replies, pos, kind, recs, pks):
        if kind != "idx":
            return
        for k, (rec, pk) in enumerate(zip(recs, pks, strict=False)):
            if not replies[pos[k]]:
                # someone else owns the value: undo this entity, report the violation
                owner = self.r.hget(NS_IDX + ":uname:uidx", rec["uname"])
                if owner != str(pk).encode():
                    self._delete_one(kind, dict(rec, id=pk), keep_unique=True)
                    raise ValueError("unique violation for {!r}".format(rec["uname"]))

    def insert_each(self, kind, recs):
        r = self.r
        ctr = NS[kind] + ":id:"
        n = 0
        for rec in recs:
            pk = r.incr(ctr)
            p = r.pipeline(transaction=True)
            pos = self._queue_insert(p, kind, pk, rec)
            res = p.execute()
            self._check_unique(res, [pos], kind, [rec], [pk])
            n += 1
        return n

    def bulk_insert(self, kind, recs):
        r = self.r
        ctr = NS[kind] + ":id:"
        pks = [r.incr(ctr) for _ in recs]  # the rom API assigns ids at construction
        p = r.pipeline(transaction=True)
        pos = []
        off = 0
        for pk, rec in zip(pks, recs, strict=False):
            before = len(p.command_stack)
            k = self._queue_insert(p, kind, pk, rec)
            pos.append(off + k)
            off += len(p.command_stack) - before
        res = p.execute()
        self._check_unique(res, pos, kind, recs, pks)
        return len(recs)

    # ---------------- reads ----------------
    def _fetch(self, ns, pks):
        if not pks:
            return []
        p = self.r.pipeline(transaction=False)
        for pk in pks:
            p.hgetall(f"{ns}:{pk.decode() if isinstance(pk, bytes) else pk}")
        return [d for d in map(_decode, p.execute()) if d is not None]

    def get_each(self, kind, ids):
        ns = NS[kind]
        hgetall = self.r.hgetall
        found = 0
        for i in ids:
            if _decode(hgetall(f"{ns}:{i}")) is not None:
                found += 1
        return found

    def get_many(self, kind, idlists):
        ns = NS[kind]
        found = 0
        for ids in idlists:
            found += len(self._fetch(ns, ids))
        return found

    def get_by_unique_each(self, unames):
        r = self.r
        found = 0
        for u in unames:
            pk = r.hget(NS_IDX + ":uname:uidx", u)
            if pk is not None and _decode(r.hgetall(NS_IDX + ":" + pk.decode())) is not None:
                found += 1
        return found

    def range_each(self, ranges):
        z = self.r.zrangebyscore
        total = 0
        for lo, hi in ranges:
            total += len(self._fetch(NS_IDX, z(NS_IDX + ":num:idx", lo, hi, start=0, num=10)))
        return total

    def count_each(self, ranges):
        zc = self.r.zcount
        total = 0
        for lo, hi in ranges:
            total += zc(NS_IDX + ":num:idx", lo, hi)
        return total

    def _scan_prefix(self, key, lit, match):
        """pks of members of a :pre/:suf zset whose entry starts with lit
        (and matches `match`, a compiled bytes regex, if given)."""
        lo = repr(prefix_score(lit))
        hi = "(" + repr(prefix_score(lit, next=True))
        blit = lit.encode("utf-8")
        pks = []
        seen = set()
        for m in self.r.zrangebyscore(key, lo, hi):
            entry, _, pk = m.rpartition(b"\0")
            if not entry.startswith(blit):
                continue
            if match is not None and not match.match(entry):
                continue
            if pk not in seen:
                seen.add(pk)
                pks.append(pk)
        return pks

    def prefix_each(self, prefixes):
        total = 0
        for p in prefixes:
            total += len(
                self._fetch(NS_IDX, self._scan_prefix(NS_IDX + ":name:pre", p.lower(), None))
            )
        return total

    def suffix_each(self, suffixes):
        total = 0
        for s in suffixes:
            total += len(
                self._fetch(NS_IDX, self._scan_prefix(NS_IDX + ":name:suf", s.lower()[::-1], None))
            )
        return total

    def pattern_each(self, patterns):
        total = 0
        for pat in patterns:
            lit, rx = like_regex(pat.lower())
            total += len(self._fetch(NS_IDX, self._scan_prefix(NS_IDX + ":name:pre", lit[:7], rx)))
        return total

    def ft1_each(self, words):
        sm = self.r.smembers
        total = 0
        for w in words:
            total += len(self._fetch(NS_IDX, sm(f"{NS_IDX}:body:{w.lower()}:idx")))
        return total

    def ft2_each(self, pairs):
        si = self.r.sinter
        total = 0
        for a, b in pairs:
            total += len(
                self._fetch(
                    NS_IDX, si(f"{NS_IDX}:body:{a.lower()}:idx", f"{NS_IDX}:body:{b.lower()}:idx")
                )
            )
        return total

    def ft_or_each(self, pairs):
        su = self.r.sunion
        total = 0
        for a, b in pairs:
            total += len(
                self._fetch(
                    NS_IDX, su(f"{NS_IDX}:body:{a.lower()}:idx", f"{NS_IDX}:body:{b.lower()}:idx")
                )
            )
        return total

    # ---------------- update / delete ----------------
    def load(self, kind, ids):
        ents = self._fetch(NS[kind], list(ids))
        if len(ents) != len(ids):
            raise RuntimeError(f"load: expected {len(ids)} entities, got {len(ents)}")
        return ents

    def update_each(self, kind, ents, nums):
        ns = NS[kind]
        r = self.r
        n = 0
        for e, v in zip(ents, nums, strict=False):
            e["num"] = v
            spk = str(e["id"])
            p = r.pipeline(transaction=True)
            p.hset(f"{ns}:{spk}", "num", str(v))
            if kind == "idx":
                p.zadd(ns + ":num:idx", {spk: v})
            p.execute()
            n += 1
        return n

    def _delete_one(self, kind, e, keep_unique=False):
        ns = NS[kind]
        spk = str(e["id"])
        p = self.r.pipeline(transaction=True)
        p.delete(f"{ns}:{spk}")
        if kind == "idx":
            name = e["name"].lower()
            rev = name[::-1]
            if not keep_unique:
                p.hdel(ns + ":uname:uidx", e["uname"])
            p.zrem(ns + ":num:idx", spk)
            p.zrem(ns + ":name:pre", name + "\0" + spk)
            p.zrem(ns + ":name:suf", rev + "\0" + spk)
            for w in full_text(e["body"]):
                p.srem(f"{ns}:body:{w}:idx", spk)
        p.execute()

    def delete_each(self, kind, ents):
        n = 0
        for e in ents:
            self._delete_one(kind, e)
            n += 1
        return n
