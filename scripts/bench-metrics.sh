# bench-metrics.sh: scripts/bench's metrics step, sourced by it (its functions and variables
# in scope).  Two portiers proxy / to the same pt-backend, one worker each: one as in the main
# step (test/bench/portier.conf.in), one with a status_zone on the location and a metrics
# location (test/bench/metrics-portier.conf.in), so that every request is counted for its
# server, its zone and its upstream server.  wrk runs of METRICS_SECONDS on each, the order
# alternating; the median over the rounds of the per-round ratio on / off of req/s is the cost
# of the metrics (target: at most 2%, a ratio >= 0.98), and so is the ratio of the worker's
# CPU time per request, which a busy machine blurs less.

# metrics_round ROUND: a wrk run on each portier; appends "NAME REQ/S ROUND US_CPU" to
# $metrics_results.
metrics_round() {
    local round=$1 k name rps p50 p99 err total worker t0 cpu
    for ((k = 0; k < 2; k++)); do
        name=${metrics_targets[$(((k + round - 1) % 2))]}
        kill -0 "${pid[$name]}" 2>/dev/null || { echo "round $round: $name has exited"; continue; }
        worker=$(busiest_child "${pid[$name]}")
        t0=$(cpu_ticks "$worker")
        read -r rps p50 p99 err total < <(run_wrk "${port[$name]}" "$METRICS_SECONDS")
        cpu=$(awk -v t="$(($(cpu_ticks "$worker") - t0))" -v hz="$(getconf CLK_TCK)" \
            -v n="$total" 'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
        printf 'round %d: %-16s %8s req/s  p50 %8s ms  p99 %8s ms  %6s us CPU/req%s\n' \
            "$round" "$name" "$rps" "$p50" "$p99" "$cpu" \
            "$( ((err > 0)) && echo "  ($err errors or non-2xx)")"
        echo "$name $rps $round $cpu" >>"$metrics_results"
    done
}

if ((METRICS_SECONDS > 0)); then
    start_proxy portier-plain "$PT_ROOT/test/bench/portier.conf.in" "$PT_ROOT/build/portier" \
        -c @CONF@
    start_proxy portier-metrics "$PT_ROOT/test/bench/metrics-portier.conf.in" \
        "$PT_ROOT/build/portier" -c @CONF@
    metrics_targets=(portier-plain portier-metrics)
    if [[ -n ${pid[portier-plain]:-} && -n ${pid[portier-metrics]:-} ]]; then
        echo
        echo "== metrics: proxied req/s with a status_zone and a metrics location, against" \
             "without (wrk -c$CONNS, ${METRICS_SECONDS}s x $ROUNDS rounds each, one worker)"
        for name in "${metrics_targets[@]}"; do # warm-up: upstream connections
            run_wrk "${port[$name]}" 1 >/dev/null
        done
        metrics_results="$PT_TMP/metrics-results"
        : >"$metrics_results"
        for ((round = 1; round <= ROUNDS; round++)); do
            metrics_round "$round"
        done
        awk '$1 == "portier-metrics" { a[$3] = $2 } $1 == "portier-plain" { b[$3] = $2 }
            END { for (k in a) if (k in b && b[k] > 0) print a[k] / b[k] }' "$metrics_results" |
            sort -g | awk '{ r[NR] = $1 } END {
                if (NR == 0) { print "metrics on / off: n/a"; exit }
                m = r[int((NR + 1) / 2)]
                printf "metrics on / off: %.3fx req/s, a cost of %.1f%% (median of per-round" \
                       " ratios; target <= 2%%: %s)\n", m, (1 - m) * 100, (m >= 0.98 ? "met" : "NOT met") }'
        awk '$1 == "portier-metrics" { a[$3] = $4 } $1 == "portier-plain" { b[$3] = $4 }
            END { for (k in a) if (k in b && b[k] > 0) print a[k] / b[k] }' "$metrics_results" |
            sort -g | awk '{ r[NR] = $1 } END {
                if (NR == 0) exit
                m = r[int((NR + 1) / 2)]
                printf "metrics on / off: %.3fx CPU per request, a cost of %.1f%%\n", m, (m - 1) * 100 }'
        curl -s "http://127.0.0.1:${port[portier-metrics]}/metrics" |
            grep -E '^portier_server_requests_total\{.*code="2xx"' || true
    fi
    for name in "${metrics_targets[@]}"; do
        [[ -n ${pid[$name]:-} ]] && { kill -TERM "${pid[$name]}" 2>/dev/null || true; }
    done
fi
