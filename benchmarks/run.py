#!/usr/bin/env python
"""Benchmark runner: this repo's rom ("new") vs PyPI rom 1.1.2 ("rom112") vs
hand-written redis-py ("limit").  See benchmarks/README.md.

    python benchmarks/run.py [--rounds 5] [--n 2000] [--url redis://...]
                             [--only family,...] [--json out.json]

Each implementation runs in its own subprocess (benchmarks/worker.py), so the
two rom packages are never imported into the same interpreter.  This runner
itself needs only the standard library.
"""

import argparse
import atexit
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from common import FAMILY_INFO, FAMILY_NAMES, GROUP_ORDER, TARGET_VS_LIMIT, TARGET_VS_ROM112  # noqa: E402

VENV = os.path.join(HERE, ".venv-rom112")
VENV_PY = os.path.join(VENV, "bin", "python")
IMPLS = ["new", "rom112", "limit"]
METRICS = [
    "ops_per_s",
    "rt_per_op",
    "cmds_per_op",
    "cli_us_per_op",
    "srv_us_per_op",
    "mem_per_entity",
    "check",
]


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ------------------------------------------------------------ tiny RESP client
def resp_cmd(url, *args, timeout=2.0):
    """Send one command over a fresh socket; return the first reply line."""
    u = urlparse(url)
    s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=timeout)
    try:

        def send(*a):
            out = b"*%d\r\n" % len(a)
            for x in a:
                x = x if isinstance(x, bytes) else str(x).encode()
                out += b"$%d\r\n%s\r\n" % (len(x), x)
            s.sendall(out)
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf.split(b"\r\n", 1)[0].decode("utf-8", "replace")

        if u.password:
            rep = send("AUTH", *([u.username] if u.username else []), u.password)
            if rep.startswith("-"):
                return rep
        db = (u.path or "/").lstrip("/")
        if db and db != "0":
            send("SELECT", db)
        return send(*args)
    finally:
        s.close()


def port_free(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return False
    except OSError:
        return True


# ------------------------------------------------------------ redis-server
class Server:
    def __init__(self, port, pin):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="rom-bench-redis-")
        exe = shutil.which("redis-server")
        if not exe:
            raise SystemExit("redis-server not found; install it or pass --url")
        cmd = [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            self.dir,
            "--loglevel",
            "warning",
        ]
        if pin is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(pin), *cmd]  # taskset execs: same PID
        self.log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        if pin is not None and not shutil.which("taskset") and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(self.proc.pid, {pin})
            except OSError:
                pass
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.time() + 10
        while True:
            try:
                if resp_cmd(self.url, "PING") == "+PONG":
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise SystemExit(f"could not start redis-server on port {port} (see {self.dir})")
            time.sleep(0.05)
        atexit.register(self.stop)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to our own child PID only
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        try:
            self.log.close()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------ interpreters
def _can_import(py, mods):
    try:
        r = subprocess.run(
            [py, "-c", "import " + ", ".join(mods)],
            cwd=tempfile.gettempdir(),
            env=clean_env(),
            capture_output=True,
            timeout=60,
        )
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_venv():
    """Create benchmarks/.venv-rom112 with PyPI rom==1.1.2 + hiredis if needed."""
    check = 'import rom, redis; assert rom.VERSION == "1.1.2", rom.VERSION'
    if os.path.exists(VENV_PY):
        r = subprocess.run(
            [VENV_PY, "-c", check], cwd=tempfile.gettempdir(), env=clean_env(), capture_output=True
        )
        if r.returncode == 0:
            return None
    log(f"creating {VENV} (python -m venv + pip install rom==1.1.2 hiredis) ...")
    try:
        if not os.path.exists(VENV_PY):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [VENV_PY, "-m", "pip", "install", "-q", "rom==1.1.2", "hiredis"],
            check=True,
            env=clean_env(),
        )
        r = subprocess.run(
            [VENV_PY, "-c", check],
            cwd=tempfile.gettempdir(),
            env=clean_env(),
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            return "rom 1.1.2 venv unusable: " + r.stderr.strip().splitlines()[-1]
    except (OSError, subprocess.CalledProcessError) as e:
        return f"could not create the rom 1.1.2 venv: {e}"
    return None


def clean_env():
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(k, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def resolve(py):
    return os.path.abspath(py) if os.sep in py else (shutil.which(py) or py)


# ------------------------------------------------------------ worker runs
def db_url(url, offset):
    """Same server, database number + offset (each implementation has its own DB)."""
    u = urlparse(url)
    db = int((u.path or "/").lstrip("/") or 0) + offset
    return u._replace(path=f"/{db}").geturl()


class WorkerProc:
    """A long-lived `worker.py --serve` process for one implementation."""

    def __init__(self, py, impl, url, args, cpu):
        self.impl = impl
        self.buf = b""
        self.proc = None
        self.errf = tempfile.TemporaryFile()
        cmd = [
            py,
            os.path.join(HERE, "worker.py"),
            "--serve",
            "--impl",
            impl,
            "--url",
            url,
            "--n",
            str(args.n),
            "--seed",
            str(args.seed),
            "--repo",
            args.repo,
            "--family-timeout",
            str(args.family_timeout),
        ]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.errf,
                cwd=tempfile.gettempdir(),
                env=clean_env(),
            )
        except OSError as e:
            self.info = {"error": f"cannot start worker with {py}: {e}"}
            return
        tag, obj = self._read(120)
        if tag == "INFO":
            self.info = obj
        else:
            self.info = {"error": "worker did not start: %s" % (obj or self.err_tail())}
        if self.info.get("error"):
            self.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def err_tail(self):
        try:
            self.errf.seek(0)
            lines = self.errf.read().decode("utf-8", "replace").strip().splitlines()
            return " | ".join(lines[-3:]) or "no stderr"
        except Exception:
            return "?"

    def _read(self, timeout):
        """Next '@@TAG {json}' line -> (tag, obj); (None, reason) on EOF/timeout."""
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.decode("utf-8", "replace")
                if line.startswith("@@"):
                    tag, _, body = line[2:].partition(" ")
                    return tag, json.loads(body)
            left = deadline - time.time()
            if left <= 0:
                return None, f"timed out after {timeout:.0f}s"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    return None, f"worker exited {self.proc.returncode}: {self.err_tail()}"
                self.buf += chunk

    def request(self, line, timeout):
        if not self.alive():
            return None, "worker is not running"
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:
            return None, f"worker pipe broken: {e}"
        tag, obj = self._read(timeout)
        if tag is None:
            self.close(kill=True)
        return tag, obj

    def call(self, line, want, timeout):
        """Send a command, expect reply tag `want`; returns the reply dict, which
        has an 'error' key on any failure (the worker is killed on timeout/death)."""
        tag, obj = self.request(line, timeout)
        if tag == want:
            return obj
        return {
            "impl": self.impl,
            "error": obj if tag is None else f"bad reply {tag!r} to {line!r}",
        }

    def flush(self, timeout=60):
        return self.request("flush", timeout)[0] == "DONE"

    def close(self, kill=False):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None and not kill:
            try:
                p.stdin.write(b"quit\n")
                p.stdin.flush()
                p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if p.poll() is None:
            p.kill()  # our own child, by PID
            p.wait(10)
        for f in (p.stdin, p.stdout):
            try:
                f.close()
            except OSError:
                pass


# ------------------------------------------------------------ formatting
def fmt(v, kind="f"):
    if v is None:
        return "-"
    if kind == "ops":
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    if kind == "us":
        return f"{v:.1f}"
    if kind == "int":
        return str(int(v))  # as '%d' did: floats are truncated
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def summarise(raw, impls, fams, rounds_done):
    summ = {}
    for f in fams:
        fs = summ[f] = {}
        for impl in impls:
            runs = [r for r in raw.get((impl, f), [])]
            ok = [r for r in runs if not r.get("error")]
            errs = [r["error"] for r in runs if r.get("error")]
            d = {"rounds_ok": len(ok), "rounds": len(runs)}
            if errs:
                d["error"] = errs[0]
            for m in METRICS:
                vals = [r[m] for r in ok if r.get(m) is not None]
                d[m] = statistics.median(vals) if vals else None
            d["truncated"] = any(r.get("truncated") for r in ok)
            fs[impl] = d
        g = FAMILY_INFO[f]["target"]
        new = fs.get("new", {}).get("ops_per_s")
        fs["new_vs_rom112"] = ratio(new, fs.get("rom112", {}).get("ops_per_s"))
        fs["new_vs_limit"] = ratio(new, fs.get("limit", {}).get("ops_per_s"))
        fs["target_vs_rom112"] = TARGET_VS_ROM112[g]
        fs["target_vs_limit"] = TARGET_VS_LIMIT
        checks = {impl: fs[impl]["check"] for impl in impls if fs[impl].get("check") is not None}
        fs["check_mismatch"] = len(set(checks.values())) > 1
        fs["checks"] = checks
    return summ


def print_tables(summ, impls, fams, out=sys.stdout):
    w = out.write
    for f in fams:
        fs = summ[f]
        fi = FAMILY_INFO[f]
        w("\n[{}] {}\n".format(f, fi["desc"]))
        w(
            "    targets: new >= {:.1f}x rom112, >= {:.2f}x limit\n".format(
                fs["target_vs_rom112"], fs["target_vs_limit"]
            )
        )
        w(
            "    {:<7} {:>9} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8}\n".format(
                "impl", "ops/s", "RT/op", "cmds/op", "cli us/op", "srv us/op", "mem B/ent", "check"
            )
        )
        for impl in impls:
            d = fs[impl]
            if d["rounds_ok"] == 0:
                w("    {:<7} error: {}\n".format(impl, d.get("error", "not run")))
                continue
            note = ""
            if d["rounds_ok"] < d["rounds"]:
                note += "  ({}/{} rounds failed: {})".format(
                    d["rounds"] - d["rounds_ok"], d["rounds"], d.get("error", "")[:80]
                )
            if d.get("truncated"):
                note += "  (truncated by --family-timeout)"
            w(
                "    {:<7} {:>9} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8}{}\n".format(
                    impl,
                    fmt(d["ops_per_s"], "ops"),
                    fmt(d["rt_per_op"]),
                    fmt(d["cmds_per_op"]),
                    fmt(d["cli_us_per_op"], "us"),
                    fmt(d["srv_us_per_op"], "us"),
                    fmt(d["mem_per_entity"], "int"),
                    fmt(d["check"], "int"),
                    note,
                )
            )
        rfmt = lambda x: "-" if x is None else f"{x:.3f}x"  # noqa: E731
        line = "    new/rom112: {}   new/limit: {}".format(
            rfmt(fs["new_vs_rom112"]), rfmt(fs["new_vs_limit"])
        )
        if fs["check_mismatch"]:
            line += "   CHECK MISMATCH {}".format(fs["checks"])
        w(line + "\n")

    # one-line-per-family summary
    w("\nSummary (medians; ratios are ops/s; PASS/FAIL vs targets)\n")
    hdr = "{:<13}".format("family") + "".join("{:>13}".format(i + " op/s") for i in impls)
    hdr += "{:>18} {:>17}  {}\n".format(
        "new/rom112 (tgt)", "new/limit (tgt)", "RT/op " + "/".join(impls)
    )
    w(hdr)
    for f in fams:
        fs = summ[f]
        row = f"{f:<13}"
        for impl in impls:
            d = fs[impl]
            row += "{:>13}".format(fmt(d["ops_per_s"], "ops") if d["rounds_ok"] else "error")

        def verdict(r, t):
            if r is None:
                return "-"
            return "{:.3f}x {}".format(r, "PASS" if r >= t else "FAIL")

        row += "{:>18} {:>17}  {}".format(
            verdict(fs["new_vs_rom112"], fs["target_vs_rom112"])
            + " ({:.1f})".format(fs["target_vs_rom112"])
            if fs["new_vs_rom112"] is not None
            else "- ({:.1f})".format(fs["target_vs_rom112"]),
            verdict(fs["new_vs_limit"], fs["target_vs_limit"]),
            "/".join(fmt(fs[i]["rt_per_op"]) for i in impls),
        )
        if fs["check_mismatch"]:
            row += "  CHECK MISMATCH"
        w(row + "\n")
    mems = []
    for f in ("insert", "bulk", "insert_plain", "bulk_plain"):
        if f in summ:
            mems.append(
                f"{f}: "
                + ", ".join(
                    "{} {} B".format(i, fmt(summ[f][i]["mem_per_entity"], "int")) for i in impls
                )
            )
    if mems:
        w("\nRedis memory per entity (used_memory diff / N):\n  " + "\n  ".join(mems) + "\n")


# ------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000, help="entities per model (population / inserts)")
    ap.add_argument(
        "--url",
        default=None,
        help="use this existing server instead of starting one; databases db, db+1, "
        "db+2 (new, rom112, limit) get FLUSHDB!",
    )
    ap.add_argument(
        "--port", type=int, default=6390, help="first port tried for our own redis-server"
    )
    ap.add_argument(
        "--only", default=None, help="comma separated families: " + ",".join(FAMILY_NAMES)
    )
    ap.add_argument("--impls", default=",".join(IMPLS), help="subset/order of new,rom112,limit")
    ap.add_argument("--json", default=None, help="write raw + median results to this file")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument(
        "--python-new",
        default=sys.executable,
        help='interpreter for "new" (default: this one); rom is imported from the repo',
    )
    ap.add_argument(
        "--python-limit",
        default=None,
        help='interpreter for "limit" (default: --python-new if it has redis-py, '
        "else the rom112 venv)",
    )
    ap.add_argument(
        "--family-timeout",
        type=float,
        default=60.0,
        help="max timed seconds per family before it is cut short",
    )
    ap.add_argument(
        "--worker-timeout",
        type=float,
        default=600.0,
        help="max seconds a worker may take for one family (incl. populating)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin server/client to cores")
    ap.add_argument(
        "--repo", default=REPO, help='import "new" rom from REPO/rom (default: this repo)'
    )
    args = ap.parse_args()

    fams = FAMILY_NAMES[:]
    if args.only:
        want = [f.strip() for f in args.only.split(",") if f.strip()]
        bad = [f for f in want if f not in FAMILY_INFO]
        if bad:
            ap.error("unknown families {}; valid: {}".format(bad, ", ".join(FAMILY_NAMES)))
        fams = [f for f in FAMILY_NAMES if f in want]
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for i in impls:
        if i not in IMPLS:
            ap.error(f"unknown implementation {i!r}")

    ncpu = os.cpu_count() or 1
    pin = not args.no_pin and ncpu >= 2
    server_cpu, client_cpu = (1, 0) if pin else (None, None)

    skip = {}
    new_has_redis = _can_import(resolve(args.python_new), ["redis"])
    if "rom112" in impls or ("limit" in impls and not args.python_limit and not new_has_redis):
        err = ensure_venv()
        if err:
            log("rom112 venv: " + err)
            skip["rom112"] = err
    args.python_new = resolve(args.python_new)
    if args.python_limit:
        args.python_limit = resolve(args.python_limit)
    args.repo = os.path.abspath(args.repo)
    pythons = {"new": args.python_new, "rom112": VENV_PY}
    if args.python_limit:
        pythons["limit"] = args.python_limit
    elif new_has_redis:
        pythons["limit"] = args.python_new
    elif os.path.exists(VENV_PY):
        pythons["limit"] = VENV_PY
        log(f'limit: {args.python_new} has no redis-py; running "limit" with {VENV_PY}')
    else:
        pythons["limit"] = args.python_new

    server = None
    if args.url:
        url = args.url
        log(
            "using existing server {}: databases {} get FLUSHDB; the server is not pinned".format(
                url, ", ".join(db_url(url, IMPLS.index(i)).rsplit("/", 1)[1] for i in impls)
            )
        )
        if resp_cmd(url, "PING") != "+PONG":
            raise SystemExit(f"server at {url} does not answer PING")
    else:
        port = args.port
        while not port_free(port):
            port += 1
        server = Server(port, server_cpu)
        url = server.url
        log(
            "started redis-server pid {} on {}{}".format(
                server.proc.pid, url, f" pinned to core {server_cpu}" if pin else ""
            )
        )

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)

    raw = {}
    infos = {}
    runs = []
    urls = {impl: db_url(url, IMPLS.index(impl)) for impl in impls}
    workers = {}
    # the order the worker needs (writes, reads, updates, deletes)
    order_fams = sorted(
        fams, key=lambda f: (GROUP_ORDER[FAMILY_INFO[f]["group"]], FAMILY_NAMES.index(f))
    )
    t_start = time.time()

    def start(impl):
        w = WorkerProc(pythons[impl], impl, urls[impl], args, client_cpu)
        infos.setdefault(impl, w.info)
        if w.info.get("error"):
            skip[impl] = w.info["error"]
            log("{}: skipped: {}".format(impl, w.info["error"]))
            if impl == "new":
                log(
                    '  ("new" runs with {} and imports rom from {}/rom; it needs redis-py '
                    "there -- or pass --python-new)".format(pythons["new"], args.repo)
                )
            return None
        if not w.info.get("rt_selftest", {}).get("ok", False):
            log(
                "WARNING {}: round-trip counter self-test failed: {}".format(
                    impl, w.info.get("rt_selftest")
                )
            )
        log(
            "{}: worker pid {} ({}, rom {})".format(
                impl, w.proc.pid, pythons[impl], w.info.get("version")
            )
        )
        return w

    try:
        for rnd in range(args.rounds):
            k = rnd % len(impls)
            order = impls[k:] + impls[:k]  # new, rom112, limit / rom112, limit, new / ...
            spent = dict.fromkeys(impls, 0.0)
            nerr = dict.fromkeys(impls, 0)
            for impl in impls:
                if impl in skip:
                    continue
                w = workers.get(impl)
                if w is None or not w.alive():
                    w = workers[impl] = start(impl)
                if w is not None and not w.flush():
                    log(f"{impl}: flush failed: {w.err_tail()}")
            for f in order_fams:
                # prepare (untimed) every implementation, then interleave the timed
                # chunks: chunk i of each implementation runs back to back, the
                # order rotating per chunk, so that slow phases of the VM hit all
                # implementations alike.  Then finish (untimed) and collect.
                res, nchunks, active = {}, {}, []
                for impl in order:
                    w = workers.get(impl)
                    if impl in skip or w is None or not w.alive():
                        res[impl] = {"error": skip.get(impl, "worker not running")}
                        continue
                    t0 = time.time()
                    p = w.call("prepare " + f, "PREPARED", args.worker_timeout)
                    spent[impl] += time.time() - t0
                    if p.get("error"):
                        res[impl] = p
                    else:
                        nchunks[impl] = p["chunks"]
                        active.append(impl)
                for i in range(max(nchunks.values() or [0])):
                    k2 = i % max(1, len(active))
                    for impl in active[k2:] + active[:k2]:
                        if impl in res or i >= nchunks[impl]:
                            continue
                        t0 = time.time()
                        c = workers[impl].call(f"chunk {i}", "CHUNK", args.worker_timeout)
                        spent[impl] += time.time() - t0
                        if c.get("error") and not workers[impl].alive():
                            res[impl] = c
                for impl in active:
                    if impl not in res:
                        t0 = time.time()
                        res[impl] = workers[impl].call("finish", "RESULT", args.worker_timeout)
                        spent[impl] += time.time() - t0
                for impl in order:
                    r = dict(res[impl], family=f, impl=impl, round=rnd)
                    raw.setdefault((impl, f), []).append(r)
                    runs.append(r)
                    if r.get("error"):
                        nerr[impl] += 1
            log(
                "round {}/{} ({})  {}".format(
                    rnd + 1,
                    args.rounds,
                    ",".join(order),
                    "  ".join(
                        "{} {:.1f}s{}".format(
                            i, spent[i], "" if not nerr[i] else f" {nerr[i]}/{len(fams)} failed"
                        )
                        for i in impls
                        if i not in skip
                    ),
                )
            )
    except KeyboardInterrupt:
        log("interrupted; reporting what was measured")
    finally:
        for w in workers.values():
            if w is not None:
                w.close()
        for impl in impls:
            try:
                resp_cmd(urls[impl], "FLUSHDB")
            except OSError:
                pass
        if server is not None:
            server.stop()

    summ = summarise(raw, impls, fams, args.rounds)
    out = sys.stdout
    out.write(
        "\nrom benchmark: n={}, rounds={}, {:.0f}s, server {}, pinned={}\n".format(
            args.n, args.rounds, time.time() - t_start, "own" if server else url, pin
        )
    )
    for impl in impls:
        i = infos.get(impl) or {}
        if impl in skip and not i:
            out.write(f"  {impl:<7} skipped: {skip[impl]}\n")
            continue
        out.write(
            "  {:<7} python {}, redis-py {}, hiredis {}, rom {}{}\n".format(
                impl,
                i.get("python", "?"),
                i.get("redis_py", "?"),
                i.get("hiredis"),
                i.get("version", "?"),
                ("  [{}]".format(i["error"])) if i.get("error") else "",
            )
        )
        for _k, v in sorted((i.get("model_errors") or {}).items()):
            out.write(f"          {v}\n")
    hv = {
        i: (infos.get(i) or {}).get("hiredis")
        for i in impls
        if (infos.get(i) or {}).get("redis_py")
    }
    if len(set(map(bool, hv.values()))) > 1:
        out.write(
            "  WARNING: hiredis is not installed for every implementation ({}); "
            "reply parsing speed differs\n".format(
                ", ".join("{}={}".format(*kv) for kv in sorted(hv.items()))
            )
        )
    print_tables(summ, impls, fams, out)

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "config": {
                        "n": args.n,
                        "rounds": args.rounds,
                        "url": args.url,
                        "families": fams,
                        "impls": impls,
                        "seed": args.seed,
                        "pinned": pin,
                    },
                    "info": infos,
                    "summary": summ,
                    "runs": runs,
                },
                fh,
                indent=1,
                sort_keys=True,
            )
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
