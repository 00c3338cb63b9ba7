# bench-static.sh: scripts/bench's static-file step, sourced by it (its functions and
# variables in scope).  portier and nginx serving the same directory with root, one worker
# each, no access log (test/bench/static-*.conf.in), both with sendfile, tcp_nopush and
# open_file_cache.  A 1 KiB and a 1 MiB file, each checked first (200 and the file's bytes), then
# req/s, MB/s, p50, p99 and CPU per request of each, the ratio portier / nginx, and syscalls
# per request of each file.

static_procs=(portier-static nginx-static)
static_cases=(1k 1m)
declare -A static_ok

# static_size CASE: the size in bytes of CASE's file (1k: 1024, 1m: 1048576).
static_size() {
    case $1 in
        *k) echo $((${1%k} * 1024)) ;;
        *m) echo $((${1%m} * 1024 * 1024)) ;;
    esac
}

# static_files: $PT_TMP/static with each case's file of random bytes (CASE.bin) and an
# index.html holding what start_proxy expects at "/", readable by the workers.
static_files() {
    local case
    mkdir -p "$PT_TMP/static"
    printf '%s' "$expected" >"$PT_TMP/static/index.html"
    for case in "${static_cases[@]}"; do
        head -c "$(static_size "$case")" /dev/urandom >"$PT_TMP/static/$case.bin"
    done
    chmod 755 "$PT_TMP/static"
    chmod 644 "$PT_TMP/static"/*
}

# static_probe NAME CASE: one GET of CASE's file from NAME, which must answer 200 with the
# file's bytes; sets static_ok[NAME.CASE] when it does, else says what came back.
static_probe() {
    local got="$PT_TMP/static-got" want out status bytes
    want=$(static_size "$2")
    rm -f "$got"
    out=$(curl -s --max-time 10 -o "$got" -w '%{http_code} %{size_download}' \
        "http://127.0.0.1:${port[$1]}/$2.bin" || true)
    read -r status bytes <<<"${out:-000 0}"
    if [[ $status == 200 && $bytes == "$want" ]] && cmp -s "$got" "$PT_TMP/static/$2.bin"; then
        static_ok[$1.$2]=1
        return 0
    fi
    if [[ $status == 200 && $bytes == "$want" ]]; then
        echo "${1%-static} $2: 200 and $bytes bytes, but not the file's, left out"
    else
        echo "${1%-static} $2: status $status and $bytes bytes instead of 200 and $want," \
             "left out"
    fi
    show_logs "$1"
}

# static_round ROUND: a wrk run of STATIC_SECONDS on each file against each server, the order
# rotating; appends "SERVER CASE REQ/S P50 P99 US_CPU ROUND MB/S" to $static_results.
static_round() {
    local round=$1 k case name worker t0 rps p50 p99 err total cpu mbs note
    local n=${#static_targets[@]}
    for case in "${static_cases[@]}"; do
        for ((k = 0; k < n; k++)); do
            name=${static_targets[$(((k + round - 1) % n))]}
            [[ -n ${static_ok[$name.$case]:-} ]] || continue
            if ! kill -0 "${pid[$name]}" 2>/dev/null; then
                echo "round $round: ${name%-static} has exited"
                continue
            fi
            worker=$(busiest_child "${pid[$name]}")
            t0=$(cpu_ticks "$worker")
            read -r rps p50 p99 err total < <(run_wrk "${port[$name]}" "$STATIC_SECONDS" \
                "/$case.bin")
            cpu=$(cpu_per_request "$worker" "$t0" "$total")
            mbs=$(awk -v r="$rps" -v s="$(static_size "$case")" \
                'BEGIN { printf "%.0f", r * s / 1e6 }')
            note=""
            ((err > 0)) && note="  ($err errors)"
            printf 'round %d: %-3s %-8s %8s req/s  %6s MB/s  p50 %7s ms  p99 %7s ms' "$round" \
                "$case" "${name%-static}" "$rps" "$mbs" "$p50" "$p99"
            printf '  %6s us CPU/req%s\n' "$cpu" "$note"
            echo "${name%-static} $case $rps $p50 $p99 $cpu $round $mbs" >>"$static_results"
        done
    done
}

# static_median SERVER CASE FIELD: the median of FIELD (3: req/s, 4: p50, 5: p99, 6: CPU,
# 8: MB/s) over the rounds.
static_median() {
    awk -v n="$1" -v c="$2" -v f="$3" '$1 == n && $2 == c && $f != "-" { print $f }' \
        "$static_results" | median
}

# static_paired CASE: the median over the rounds of portier's req/s over nginx's in the same round.
static_paired() {
    awk -v c="$1" '$2 != c { next } $1 == "portier" { a[$7] = $3 } $1 == "nginx" { b[$7] = $3 }
        END { for (k in a) if (k in b && b[k] > 0) print a[k] / b[k] }' "$static_results" | median
}

static_report() {
    local case name f
    declare -A med
    echo
    printf '%-4s %-8s %10s %8s %10s %10s %12s\n' case server "req/s" "MB/s" "p50 ms" "p99 ms" \
        "us CPU/req"
    for case in "${static_cases[@]}"; do
        for name in portier nginx; do
            [[ -n ${static_ok[$name-static.$case]:-} ]] || continue
            for f in 3 4 5 6 8; do
                med[$name.$case.$f]=$(static_median "$name" "$case" "$f")
            done
            printf '%-4s %-8s %10s %8s %10s %10s %12s\n' "$case" "$name" "${med[$name.$case.3]}" \
                "${med[$name.$case.8]}" "${med[$name.$case.4]}" "${med[$name.$case.5]}" \
                "${med[$name.$case.6]}"
        done
    done
    echo "(MB/s: the file's bytes, 10^6 a second, without the headers)"
    echo
    for case in "${static_cases[@]}"; do
        if [[ -z ${med[portier.$case.3]:-} || -z ${med[nginx.$case.3]:-} ]]; then
            echo "portier vs nginx (static), $case: n/a (one of them was left out)"
            continue
        fi
        awk -v c2="$case" -v a="${med[portier.$case.3]}" -v b="${med[nginx.$case.3]}" \
            -v p="$(static_paired "$case")" -v c="${med[portier.$case.5]}" \
            -v d="${med[nginx.$case.5]}" -v e="${med[portier.$case.6]}" \
            -v f="${med[nginx.$case.6]}" '
            function r(x, y) { return (x + 0 > 0 && y + 0 > 0) ? sprintf("%.2fx", x / y) : "n/a" }
            BEGIN { printf "portier vs nginx (static), %s: %s req/s, per-round %s,", c2, r(a, b),
                           (p == "-") ? "n/a" : sprintf("%.2fx", p)
                    printf " %s p99, %s CPU/req\n", r(c, d), r(e, f) }'
    done
}

# static_syscalls: syscalls per request of each file on each server, with the calls per
# request of the commonest syscalls (from strace -c -f on the worker).
static_syscalls() {
    local case name value requests tag
    echo
    echo "== syscalls per static-file request (strace -c -f on the worker," \
         "wrk -d${STRACE_SECONDS}s; calls per request of each syscall)"
    for case in "${static_cases[@]}"; do
        for name in "${static_targets[@]}"; do
            [[ -n ${static_ok[$name.$case]:-} ]] || continue
            tag="static-$name-$case"
            read -r value _ requests < <(syscalls_per_request "$name" "/$case.bin" "$tag")
            printf '%-4s %-8s %6s syscalls/request\n' "$case" "${name%-static}" "$value"
            strace_breakdown "$tag" "$requests"
        done
    done
}

if ((STATIC_SECONDS > 0)); then
    static_files
    start_proxy portier-static "$PT_ROOT/test/bench/static-portier.conf.in" \
        "$PT_ROOT/build/portier" -c @CONF@
    start_proxy nginx-static "$PT_ROOT/test/bench/static-nginx.conf.in" \
        nginx -p "$PT_TMP/" -c @CONF@ -e "$PT_TMP/nginx-static-error.log"
    echo
    echo "== static files: a 1 KiB and a 1 MiB file under root, wrk -c$CONNS," \
         "${STATIC_SECONDS}s x $ROUNDS rounds per file, one worker each, no access log;"
    echo "   nginx: sendfile on, tcp_nopush on, open_file_cache max=1000 inactive=60s," \
         "open_file_cache_valid 60s"
    echo "   portier: the same (its tcp_nopush is always on: MSG_MORE, no setsockopt)"
    static_targets=()
    for name in "${static_procs[@]}"; do
        [[ -n ${pid[$name]:-} ]] || continue
        static_targets+=("$name")
        for case in "${static_cases[@]}"; do
            static_probe "$name" "$case" || true
            if [[ -n ${static_ok[$name.$case]:-} ]]; then # warm-up: connections, page cache
                run_wrk "${port[$name]}" 1 "/$case.bin" >/dev/null
            fi
        done
    done
    static_results="$PT_TMP/static-results"
    : >"$static_results"
    for ((round = 1; round <= ROUNDS; round++)); do
        static_round "$round"
    done
    static_report
    static_syscalls
    for name in "${static_procs[@]}"; do
        if [[ -n ${pid[$name]:-} ]]; then
            kill -TERM "${pid[$name]}" 2>/dev/null || true
        fi
    done
fi
