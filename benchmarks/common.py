"""Shared, implementation-independent pieces of the benchmark.

Nothing in here imports rom or redis: it is imported by the worker in every
interpreter (the current one for "new", the rom 1.1.2 venv, the "limit" one).

* deterministic data set (records and query parameters), identical for every
  implementation so that result sizes can be cross-checked;
* the family catalogue (names, descriptions, targets).
"""

import random

NS_IDX = "BenchIdx"  # model with all index kinds
NS_PLAIN = "BenchPlain"  # model without any index

LETTERS = "abcdefghijklmnopqrstuvwxyz"
NUM_MAX = 1000000  # Integer column values are uniform in [0, NUM_MAX)
GROUP = 10  # entities per name group (prefix / suffix / pattern hits)
WORDS_PER_BODY = 6
FT_TARGET_HITS = 15  # expected hits of a one-word full-text query
RANGE_TARGET_HITS = 100  # expected hits of a numeric range (limited to 10 / counted)


def _code(x, width=4):
    out = []
    for _ in range(width):
        x, r = divmod(x, 26)
        out.append(LETTERS[r])
    return "".join(reversed(out))


def name_prefix(g):
    """4-letter code that starts every name of group g (startswith / like)."""
    return _code(g)


def name_suffix(g):
    """4-letter code that ends every name of group g (endswith / like).

    A different bijection than the prefix (7919 is coprime to 26**4)."""
    return _code((g * 7919 + 13) % (26**4))


class Dataset:
    """Deterministic records: record(i) depends only on (seed, n, i)."""

    def __init__(self, n, seed=12345):
        self.n = n
        self.seed = seed
        self.vocab_size = max(20, int(n * WORDS_PER_BODY / FT_TARGET_HITS))
        self.vocab = ["w" + _code(k, 4) for k in range(self.vocab_size)]
        self.range_width = max(1, int(NUM_MAX * RANGE_TARGET_HITS / max(n, 1)))
        self._cache = {}

    def rng(self, tag):
        return random.Random(f"{self.seed}/{self.n}/{tag}")

    def record(self, i):
        rec = self._cache.get(i)
        if rec is not None:
            return dict(rec)
        r = random.Random(self.seed * 1000003 + i)
        g = i // GROUP
        tail = "".join(r.choice(LETTERS) for _ in range(3))
        name = name_prefix(g) + LETTERS[i % GROUP] + tail + name_suffix(g)
        words = r.sample(self.vocab, min(WORDS_PER_BODY, len(self.vocab)))
        # a little punctuation / case so that FULL_TEXT actually has to normalise
        body = words[0].capitalize() + " " + " ".join(words[1:-1]) + ", " + words[-1] + "."
        rec = {
            "num": r.randrange(NUM_MAX),
            "uname": f"user{i}@example.com",
            "name": name,
            "body": body,
        }
        self._cache[i] = rec
        return dict(rec)

    def records(self, start, count):
        return [self.record(i) for i in range(start, start + count)]

    def words_of(self, i):
        return sorted(set(w.strip(".,").lower() for w in self.record(i)["body"].split()))

    # ---- query parameters (population = records 0..n-1, ids 1..n) ----
    def groups(self):
        return max(1, self.n // GROUP)

    def params(self, family, count):
        r = self.rng(family)
        n = self.n
        if family in ("get", "get_plain"):
            return [r.randint(1, n) for _ in range(count)]
        if family in ("get100", "get100_plain"):
            k = min(100, n)
            return [r.sample(range(1, n + 1), k) for _ in range(count)]
        if family == "get_by":
            return [self.record(r.randrange(n))["uname"] for _ in range(count)]
        if family in ("range", "count"):
            w = self.range_width
            out = []
            for _ in range(count):
                lo = r.randrange(max(1, NUM_MAX - w))
                out.append((lo, lo + w))
            return out
        if family == "prefix":
            return [name_prefix(r.randrange(self.groups())) for _ in range(count)]
        if family == "suffix":
            return [name_suffix(r.randrange(self.groups())) for _ in range(count)]
        if family == "pattern":
            out = []
            for _ in range(count):
                g = r.randrange(self.groups())
                out.append(name_prefix(g) + "*" + name_suffix(g))
            return out
        if family == "ft1":
            return [r.choice(self.words_of(r.randrange(n))) for _ in range(count)]
        if family == "ft2":
            return [tuple(r.sample(self.words_of(r.randrange(n)), 2)) for _ in range(count)]
        if family == "ft_or":
            return [
                (r.choice(self.words_of(r.randrange(n))), r.choice(self.words_of(r.randrange(n))))
                for _ in range(count)
            ]
        raise KeyError(family)


# name -> (model kind, group, description)
#   group: 'write' (empty DB, measures memory), 'read' (populated DB, read-only),
#          'update', 'delete' (populated DB, run after the reads)
#   target: 'insert' (>=1.5x rom112), 'query' (>=3x rom112), 'other' (>=1.2x rom112)
FAMILIES = [
    ("insert", "idx", "write", "insert", "insert one: construct + save"),
    ("insert_plain", "plain", "write", "insert", "insert one (no indexes): construct + save"),
    ("bulk", "idx", "write", "insert", "bulk insert: construct N + session.commit() (per entity)"),
    ("bulk_plain", "plain", "write", "insert", "bulk insert (no indexes) (per entity)"),
    ("get", "idx", "read", "other", "Model.get(id)"),
    ("get_plain", "plain", "read", "other", "Model.get(id) (no indexes)"),
    ("get100", "idx", "read", "other", "Model.get([100 ids]) (per call)"),
    ("get100_plain", "plain", "read", "other", "Model.get([100 ids]) (no indexes) (per call)"),
    ("get_by", "idx", "read", "other", "Model.get_by(uname=...) unique"),
    ("range", "idx", "read", "query", "filter(num=(lo, hi)).limit(0, 10).all()  (~100 in range)"),
    ("count", "idx", "read", "query", "filter(num=(lo, hi)).count()  (~100 in range)"),
    ("prefix", "idx", "read", "query", "startswith(name=4 letters).all()  (10 hits)"),
    ("suffix", "idx", "read", "query", "endswith(name=4 letters).all()  (10 hits)"),
    ("pattern", "idx", "read", "query", "like(name='abcd*wxyz').all()  (10 hits)"),
    ("ft1", "idx", "read", "query", "filter(body='word').all()  (~15 hits)"),
    ("ft2", "idx", "read", "query", "filter(body='a').filter(body='b').all()  (AND)"),
    ("ft_or", "idx", "read", "query", "filter(body=['a', 'b']).all()  (OR)"),
    ("update", "idx", "update", "other", "e.num = v; e.save()  (entity loaded untimed)"),
    ("update_plain", "plain", "update", "other", "e.num = v; e.save()  (no indexes)"),
    ("delete", "idx", "delete", "other", "e.delete()  (entity loaded untimed)"),
    ("delete_plain", "plain", "delete", "other", "e.delete()  (no indexes)"),
]
FAMILY_NAMES = [f[0] for f in FAMILIES]
FAMILY_INFO = {f[0]: {"kind": f[1], "group": f[2], "target": f[3], "desc": f[4]} for f in FAMILIES}
GROUP_ORDER = {"write": 0, "read": 1, "update": 2, "delete": 3}

# minimum speed-ups new must reach
TARGET_VS_ROM112 = {"insert": 1.5, "query": 3.0, "other": 1.2}
TARGET_VS_LIMIT = 0.77


def ops_for(family, n):
    """How many timed operations a family performs for population size n."""
    grp = FAMILY_INFO[family]["group"]
    if grp == "write":
        return n
    if family in ("get100", "get100_plain"):
        return max(10, n // 20)
    if family in ("get", "get_plain", "get_by"):
        return n
    if grp in ("update", "delete"):
        return max(10, n // 2)
    return max(50, n // 8)  # queries


def warmup_for(family, n):
    return max(5, min(50, ops_for(family, n) // 20))
