# lib.sh: helpers shared by scripts/run and scripts/bench (sourced, not run).
# Every process started with pt_spawn and the temp dir from pt_tmpdir are cleaned up on exit.

PT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PT_PIDS=()
PT_TMP=

# Stops what pt_spawn started (TERM, then KILL after 5 s) and removes the temp dir.
pt_cleanup() {
    local pid i
    for pid in "${PT_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 50; i++)); do
        for pid in "${PT_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && break
            pid=
        done
        [[ -z ${pid:-} ]] && break
        sleep 0.1
    done
    for pid in "${PT_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [[ -n $PT_TMP ]] && rm -rf "$PT_TMP"
    return 0
}
trap pt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Creates the run's temp dir, readable by workers that dropped privileges; sets PT_TMP.
pt_tmpdir() {
    PT_TMP=$(mktemp -d "/tmp/portier-$1.XXXXXX")
    chmod 755 "$PT_TMP"
}

# pt_spawn LOG CMD...: starts CMD in the background with output to LOG; sets PT_LAST_PID.
pt_spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    PT_LAST_PID=$!
    PT_PIDS+=("$PT_LAST_PID")
}

# pt_free_port [FIRST]: prints a free 127.0.0.1 port, the first from FIRST on, else an ephemeral one.
pt_free_port() {
    python3 - "${1:-0}" <<'PY'
import socket, sys
first = int(sys.argv[1])
for port in ([0] if first == 0 else range(first, first + 200)):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(s.getsockname()[1])
    sys.exit(0)
sys.exit("no free port from %d" % first)
PY
}

# pt_wait_port PORT PID: waits (10 s at most) until PORT accepts connections; fails if PID dies.
pt_wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# pt_start_backend NAME: starts build/pt-backend on an ephemeral port; sets BACKEND_PORT.
pt_start_backend() {
    local out="$PT_TMP/backend-$1.out" i word
    pt_spawn "$out" "$PT_ROOT/build/pt-backend" --listen 127.0.0.1:0 --name "$1"
    for ((i = 0; i < 100; i++)); do
        if [[ -s $out ]] && read -r word BACKEND_PORT <"$out" && [[ $word == READY ]]; then
            return 0
        fi
        kill -0 "$PT_LAST_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "pt-backend did not start:" >&2
    cat "$out" >&2
    return 1
}

# pt_render TEMPLATE OUT BACKEND LISTEN: fills @BACKEND@ (host:port), @LISTEN@ (port) and
# @PREFIX@ (the temp dir) in TEMPLATE.
pt_render() {
    sed -e "s|@BACKEND@|$3|g" -e "s|@LISTEN@|$4|g" -e "s|@PREFIX@|$PT_TMP|g" "$1" >"$2"
}
