"""Subprocess entry point: run benchmark families for ONE implementation.

    python benchmarks/worker.py --impl new|rom112|limit --url redis://127.0.0.1:6390/0 \
        --n 2000 --families insert,get,range [--cpu 0] [--repo /work/main]

Prints one line per family to stdout:  @@RESULT {json}
(plus one  @@INFO {json}  line first).  With --serve it stays alive and reads
commands on stdin (prepare <family> / chunk <i> / finish / flush / quit): run.py
uses that to interleave the implementations chunk by chunk, so that slow phases
of the machine hit all of them alike.  Errors are reported per family in the
"error" field; the process never raises for a failing family.

Measurements per family (only the timed part counts):
  ops_per_s         median over the timed chunks (20 per family, 10 bulks for
                    bulk*) of chunk operations / chunk wall time
  rt_per_op         client round trips / op (redis-py send_packed_command calls:
                    one per request/response exchange, a pipeline execute = 1)
  cmds_per_op       server commands / op (INFO commandstats total calls diff,
                    INFO itself excluded; includes commands run inside Lua and
                    MULTI/EXEC)
  cli_us_per_op     client CPU (time.process_time) microseconds / op
  srv_us_per_op     server CPU (INFO used_cpu_user + used_cpu_sys diff) us / op
  mem_per_entity    write families only: (used_memory - client buffers) diff /
                    entities written
  check             implementation independent result checksum (rows found etc.)
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import FAMILY_INFO, FAMILY_NAMES, GROUP_ORDER, Dataset, ops_for, warmup_for  # noqa: E402


def emit(tag, obj):
    sys.stdout.write(f"@@{tag} {json.dumps(obj, sort_keys=True)}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- round trips
class RT:
    enabled = False
    count = 0


def install_rt_counter():
    """Count request/response exchanges by wrapping send_packed_command on the
    class that actually defines it for redis.connection.Connection (redis-py
    4..8: AbstractConnection in >=5, Connection before).  A plain command and a
    pipeline execute each call it exactly once."""
    import redis.connection as rc

    for cls in rc.Connection.__mro__:
        if "send_packed_command" in cls.__dict__:
            orig = cls.__dict__["send_packed_command"]
            if getattr(orig, "_bench_wrapped", False):
                return cls.__name__

            def send_packed_command(self, *a, _orig=orig, **kw):
                if RT.enabled:
                    RT.count += 1
                return _orig(self, *a, **kw)

            send_packed_command._bench_wrapped = True
            cls.send_packed_command = send_packed_command
            return cls.__name__
    raise RuntimeError("redis.connection.Connection has no send_packed_command")


def rt_selftest(url):
    import redis

    r = redis.Redis.from_url(url)
    r.ping()
    out = {}
    RT.count = 0
    RT.enabled = True
    try:
        r.get("__bench_rt_x")
        out["get"] = RT.count
        RT.count = 0
        p = r.pipeline(transaction=False)
        for _ in range(10):
            p.get("__bench_rt_x")
        p.execute()
        out["pipeline10"] = RT.count
        RT.count = 0
        p = r.pipeline(transaction=True)
        for _ in range(10):
            p.get("__bench_rt_x")
        p.execute()
        out["multi10"] = RT.count
    finally:
        RT.enabled = False
        RT.count = 0
    out["ok"] = out == {"get": 1, "pipeline10": 1, "multi10": 1}
    return out


# ---------------------------------------------------------------- server stats
class Stats:
    def __init__(self, url):
        import redis

        self.r = redis.Redis.from_url(url)
        self.multi_info = True

    def _info(self):
        if self.multi_info:
            try:  # Redis >= 7: several sections in one INFO
                d = self.r.execute_command("INFO", "commandstats", "cpu", "memory")
                if isinstance(d, dict) and "used_memory" in d and "used_cpu_user" in d:
                    return d
            except Exception:
                pass
            self.multi_info = False
        d = {}
        for sec in ("commandstats", "cpu", "memory"):
            d.update(self.r.info(sec))
        return d

    def snap(self):
        was = RT.enabled
        RT.enabled = False
        try:
            d = self._info()
        finally:
            RT.enabled = was
        calls = 0
        for k, v in d.items():
            if k.startswith("cmdstat_") and k != "cmdstat_info" and isinstance(v, dict):
                calls += int(v["calls"])
        # client query/output buffers (large after a big pipeline) are not data
        used = (
            int(d["used_memory"])
            - int(d.get("mem_clients_normal", 0))
            - int(d.get("mem_clients_slaves", 0))
        )
        return {
            "calls": calls,
            "cpu": float(d["used_cpu_user"]) + float(d["used_cpu_sys"]),
            "mem": used,
        }

    def tidy(self):
        """Untimed: drop query result keys <ns>:<uuid4> that rom 1.1.2 leaves
        behind with a 30 s TTL, so their expiry does not burden later families."""
        was = RT.enabled
        RT.enabled = False
        try:
            pat = "*:????????-????-????-????-????????????"
            keys = list(self.r.scan_iter(match=pat, count=1000))
            for i in range(0, len(keys), 500):
                self.r.delete(*keys[i : i + 500])
            return len(keys)
        finally:
            RT.enabled = was

    def flush(self):
        was = RT.enabled
        RT.enabled = False
        try:
            self.r.flushdb()
        finally:
            RT.enabled = was


# ---------------------------------------------------------------- families
def chunks(seq, parts):
    size = max(1, (len(seq) + parts - 1) // parts)
    return [seq[i : i + size] for i in range(0, len(seq), size)]


CHUNKS = 20  # timed chunks per family
BULK_CHUNKS = 10  # bulk families: 10 bulks of n/10 entities


class Runner:
    """prepare(family) -> chunk(0..k-1) -> finish(); only chunks are timed.

    Server counters are snapshotted around every chunk, so chunks of different
    implementations (other processes, other DBs) may be interleaved by run.py."""

    def __init__(self, impl, stats, ds, args):
        self.impl = impl
        self.stats = stats
        self.ds = ds
        self.args = args
        self.n = args.n
        self.populated = {}  # kind -> None (ok) or error text; {} = DB not prepared
        self.cur = None

    def populate(self, kind):
        """Load records 0..n-1 of one model (ids 1..n) with the implementation's
        own bulk insert.  Untimed.  The first call after a write family flushes."""
        if kind in self.populated:
            if self.populated[kind]:
                raise RuntimeError(f"populating the {kind} model failed: {self.populated[kind]}")
            return
        if not self.populated:
            self.stats.flush()
        n = self.n
        try:
            step = 500
            for start in range(0, n, step):
                self.impl.bulk_insert(kind, self.ds.records(start, min(step, n - start)))
                self.impl.end_chunk()
        except Exception as e:
            self.populated[kind] = f"{type(e).__name__}: {str(e)[:200]}"
            raise RuntimeError(f"populating the {kind} model failed: {self.populated[kind]}") from e
        self.populated[kind] = None

    def prepare(self, fam):
        """Untimed set-up + warm-up; returns the number of timed chunks."""
        self.cur = None
        info = FAMILY_INFO[fam]
        kind = info["kind"]
        grp = info["group"]
        n = self.n
        ops = ops_for(fam, n)
        warm = warmup_for(fam, n)
        impl = self.impl

        if grp == "write":
            self.stats.flush()
            self.populated = {}
            # records n.. are distinct from the population records 0..n-1
            wrecs = self.ds.records(n, warm)
            recs = self.ds.records(n + warm, ops)
            if fam.startswith("bulk"):
                impl.bulk_insert(kind, wrecs)
                fn = lambda b: impl.bulk_insert(kind, b)  # noqa: E731
                batches = chunks(recs, BULK_CHUNKS)
            else:
                impl.insert_each(kind, wrecs)
                fn = lambda b: impl.insert_each(kind, b)  # noqa: E731
                batches = chunks(recs, CHUNKS)
            impl.end_chunk()
        else:
            self.populate(kind)
            if grp == "read":
                params = self.ds.params(fam, ops)
                fn = {
                    "get": lambda b: impl.get_each("idx", b),
                    "get_plain": lambda b: impl.get_each("plain", b),
                    "get100": lambda b: impl.get_many("idx", b),
                    "get100_plain": lambda b: impl.get_many("plain", b),
                    "get_by": impl.get_by_unique_each,
                    "range": impl.range_each,
                    "count": impl.count_each,
                    "prefix": impl.prefix_each,
                    "suffix": impl.suffix_each,
                    "pattern": impl.pattern_each,
                    "ft1": impl.ft1_each,
                    "ft2": impl.ft2_each,
                    "ft_or": impl.ft_or_each,
                }[fam]
                fn(params[:warm])
                impl.end_chunk()
                batches = chunks(params, CHUNKS)
            else:
                # update / delete: distinct ids for warm-up and timed ops
                r = self.ds.rng(fam)
                ids = r.sample(range(1, n + 1), min(n, ops + warm))
                wids, tids = ids[:warm], ids[warm:]
                if grp == "update":
                    nums = [r.randrange(1000000) for _ in ids]
                    impl.update_each(kind, impl.load(kind, wids), nums[:warm])
                    impl.end_chunk()
                    pairs = list(zip(impl.load(kind, tids), nums[warm:], strict=False))
                    fn = lambda b: impl.update_each(kind, [e for e, _ in b], [v for _, v in b])  # noqa
                    batches = chunks(pairs, CHUNKS)
                else:
                    impl.delete_each(kind, impl.load(kind, wids))
                    impl.end_chunk()
                    fn = lambda b: impl.delete_each(kind, b)  # noqa: E731
                    batches = chunks(impl.load(kind, tids), CHUNKS)
        gc.collect()
        self.cur = {
            "family": fam,
            "fn": fn,
            "batches": batches,
            "done": [],
            "wall": 0.0,
            "truncated": False,
            "error": None,
        }
        return len(batches)

    def chunk(self, i):
        """Run timed chunk i of the prepared family; returns its measurements."""
        c = self.cur
        if c is None or i >= len(c["batches"]):
            return {"skipped": True}
        if c["error"] or c["wall"] > self.args.family_timeout:
            c["truncated"] = c["truncated"] or not c["error"]
            return {"skipped": True}
        b = c["batches"][i]
        s0 = self.stats.snap()
        RT.count = 0
        RT.enabled = True
        c0 = time.process_time()
        t0 = time.perf_counter()
        try:
            check = c["fn"](b) or 0
        except Exception as e:
            c["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            c["traceback"] = traceback.format_exc(limit=6)
            raise
        finally:
            t1 = time.perf_counter()
            c1 = time.process_time()
            RT.enabled = False
            rts = RT.count
        s1 = self.stats.snap()
        self.impl.end_chunk()
        m = {
            "ops": len(b),
            "wall": t1 - t0,
            "cpu": c1 - c0,
            "rts": rts,
            "check": check,
            "calls": s1["calls"] - s0["calls"],
            "srv": s1["cpu"] - s0["cpu"],
            "mem": s1["mem"] - s0["mem"],
        }
        c["done"].append(m)
        c["wall"] += m["wall"]
        return {"ops": m["ops"], "wall": m["wall"]}

    def finish(self):
        """Untimed clean-up; aggregate the chunks into the family result."""
        c, self.cur = self.cur, None
        if c is None:
            raise RuntimeError("no family prepared")
        try:
            self.impl.end_chunk()
        except Exception:
            pass
        grp = FAMILY_INFO[c["family"]]["group"]
        if grp == "read":
            self.stats.tidy()
        elif grp == "write":
            self.stats.flush()
        if c["error"]:
            if grp in ("update", "delete"):
                self.populated = {}  # data may be half changed: repopulate next time
            return {"error": c["error"], "traceback": c.get("traceback")}
        done = c["done"]
        ops = sum(m["ops"] for m in done) or 1
        wall = sum(m["wall"] for m in done)
        rates = [m["ops"] / m["wall"] for m in done if m["wall"] > 0]
        res = {
            "ops": ops,
            "seconds": wall,
            # median of the per-chunk rates: robust against short VM hiccups
            "ops_per_s": statistics.median(rates) if rates else None,
            "ops_per_s_mean": ops / wall if wall > 0 else None,
            "chunks": len(done),
            "chunk_rates": [round(x, 1) for x in rates],
            "rt_per_op": sum(m["rts"] for m in done) / float(ops),
            "cmds_per_op": sum(m["calls"] for m in done) / float(ops),
            "cli_us_per_op": sum(m["cpu"] for m in done) * 1e6 / ops,
            "srv_us_per_op": sum(m["srv"] for m in done) * 1e6 / ops,
            "mem_diff": sum(m["mem"] for m in done),
            "check": sum(m["check"] for m in done),
            "truncated": c["truncated"],
        }
        if grp == "write":
            res["mem_per_entity"] = res["mem_diff"] / float(ops)
        return res

    def run(self, fam):
        """prepare + every chunk + finish (one-shot mode)."""
        k = self.prepare(fam)
        try:
            for i in range(k):
                self.chunk(i)
        except Exception:
            pass  # recorded in cur['error']
        return self.finish()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["new", "rom112", "limit"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--families", default=",".join(FAMILY_NAMES))
    ap.add_argument("--family", default=None, help="alias for a single family")
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to a core")
    ap.add_argument(
        "--repo", default=os.path.dirname(HERE), help="repo root put on sys.path for --impl new"
    )
    ap.add_argument(
        "--family-timeout",
        type=float,
        default=60.0,
        help="stop timing a family after this many timed seconds",
    )
    ap.add_argument(
        "--serve",
        action="store_true",
        help="stay alive and read commands on stdin (see the end of main())",
    )
    args = ap.parse_args()

    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError:
            pass

    fams = [f for f in (args.family or args.families).split(",") if f]
    unknown = [f for f in fams if f not in FAMILY_INFO]
    fams = [f for f in fams if f in FAMILY_INFO]
    fams.sort(key=lambda f: (GROUP_ORDER[FAMILY_INFO[f]["group"]], FAMILY_NAMES.index(f)))

    base = {"impl": args.impl, "n": args.n}
    for f in unknown:
        emit("RESULT", dict(base, family=f, error="unknown family"))

    def fail_all(msg):
        if args.serve:  # the runner sees the error in @@INFO and stops asking
            return
        for f in fams:
            emit("RESULT", dict(base, family=f, error=msg))

    info = dict(base, python=sys.version.split()[0], executable=sys.executable)
    try:
        import redis

        info["redis_py"] = redis.__version__
        try:
            import hiredis

            info["hiredis"] = getattr(hiredis, "__version__", "yes")
        except ImportError:
            info["hiredis"] = None
        info["rt_patch"] = install_rt_counter()
        info["rt_selftest"] = rt_selftest(args.url)
    except Exception as e:  # no redis-py at all, or server down
        info["error"] = f"redis-py unusable: {type(e).__name__}: {e}"
        emit("INFO", info)
        fail_all(info["error"])
        return 0

    try:
        if args.impl == "new":
            # this repository's package, never an installed rom
            sys.path.insert(0, os.path.abspath(args.repo))
        os.environ["ROM_REDIS_URI"] = args.url
        if args.impl == "limit":
            import limit as mod
        else:
            import workload as mod
        impl = mod.Impl(args.url)
        info["rom_file"] = impl.rom_file
        info["version"] = impl.version
        if getattr(mod, "MODEL_ERRORS", None):
            info["model_errors"] = mod.MODEL_ERRORS
        rf = impl.rom_file
        in_repo = os.path.dirname(os.path.abspath(rf)) == os.path.join(
            os.path.abspath(args.repo), "rom"
        )
        if args.impl == "new" and not rf.endswith("__init__.py"):
            raise ImportError(f"rom in {args.repo} is not a regular package yet (got {rf})")
        if args.impl == "new" and not in_repo:
            raise ImportError(f"imported rom from {impl.rom_file}, not from the repo {args.repo}")
        if args.impl == "rom112" and (in_repo or impl.version != "1.1.2"):
            raise ImportError(f"expected PyPI rom 1.1.2, got {impl.version} from {impl.rom_file}")
    except BaseException as e:
        info["error"] = f"setup failed: {type(e).__name__}: {e}"
        info["traceback"] = traceback.format_exc(limit=5)
        emit("INFO", info)
        fail_all(info["error"])
        return 0
    emit("INFO", info)

    stats = Stats(args.url)
    runner = Runner(impl, stats, Dataset(args.n, args.seed), args)

    def guarded(fn, f):
        out = dict(base, family=f)
        if f is not None and f not in FAMILY_INFO:
            out["error"] = "unknown family"
            return out
        try:
            out.update(fn())
        except Exception as e:
            out["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            out["traceback"] = traceback.format_exc(limit=6)
            RT.enabled = False
            try:
                impl.end_chunk()
            except Exception:
                pass
            if f is not None and FAMILY_INFO[f]["group"] in ("update", "delete"):
                runner.populated = {}
        return out

    if not args.serve:
        for f in fams:
            emit("RESULT", guarded(lambda f=f: runner.run(f), f))
        stats.flush()
        return 0

    # --serve: one command per line on stdin, one @@ reply line each:
    #   prepare <family> -> @@PREPARED {chunks | error}
    #   chunk <i>        -> @@CHUNK {ops, wall | skipped | error}
    #   finish           -> @@RESULT {...}
    #   run <family>     -> @@RESULT {...}   (prepare + all chunks + finish)
    #   flush            -> @@DONE {}
    #   quit
    fam = None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        op = cmd[0]
        if op == "prepare" and len(cmd) == 2:
            fam = cmd[1]
            out = guarded(lambda fam=fam: {"chunks": runner.prepare(fam)}, fam)
            if out.get("error"):
                runner.cur = None
            emit("PREPARED", out)
        elif op == "chunk" and len(cmd) == 2:
            emit("CHUNK", guarded(lambda cmd=cmd: runner.chunk(int(cmd[1])), fam))
        elif op == "finish":
            emit("RESULT", guarded(runner.finish, fam))
            fam = None
        elif op == "run" and len(cmd) == 2:
            emit("RESULT", guarded(lambda cmd=cmd: runner.run(cmd[1]), cmd[1]))
        elif op == "flush":
            stats.flush()
            runner.populated = {}
            emit("DONE", {"cmd": "flush"})
        elif op == "quit":
            break
        else:
            emit("DONE", {"cmd": line.strip(), "error": "unknown command"})
    stats.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
