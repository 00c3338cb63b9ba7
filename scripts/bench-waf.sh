# bench-waf.sh: scripts/bench's waf step, sourced by it (its functions and variables in
# scope).  portier's waf module and nginx with ModSecurity-nginx (Debian's
# libnginx-mod-http-modsecurity) on the same libmodsecurity and the same rules, the OWASP
# CRS at paranoia level 1 (test/bench/waf-*.conf.in), one worker each: a benign GET and a
# benign 4 KiB urlencoded form POST, each checked first (benign passes, an attack gets 403),
# req/s, p99 and CPU per request, and the ratio portier / nginx (target >= 1.00x on both).

waf_procs=(portier-waf nginx-waf)
waf_cases=(get post)
# A browser's request: without User-Agent and Accept the CRS counts anomalies already.
waf_headers=(-H "Host: localhost" -H "Accept: text/html,application/xhtml+xml"
             -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")

# waf_post_script: a wrk script POSTing a 4 KiB form of plain fields, written to $PT_TMP.
waf_post_script() {
    local body="" i=0
    while ((${#body} < 4096 - 40)); do
        body+="field$i=value+number+$i+of+the+form&"
        i=$((i + 1))
    done
    body+="end=$(printf '%*s' $((4096 - ${#body} - 4)) '' | tr ' ' x)"
    cat >"$PT_TMP/waf-post.lua" <<EOF
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF
}

# waf_args CASE: run_wrk's path and wrk arguments for CASE.
waf_args() {
    if [[ $1 == post ]]; then
        echo "/form"
    else
        echo "/products?id=42&sort=name"
    fi
}

# waf_probe NAME: a benign GET and form POST must pass, a SQL injection must get 403;
# prints each miss, nothing when all is right.
waf_probe() {
    local p=${port[$1]} code
    code=$(curl -s -o /dev/null -w '%{http_code}' "${waf_headers[@]}" \
        "http://127.0.0.1:$p/products?id=42&sort=name")
    [[ $code == 200 ]] || echo "a benign GET got $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' "${waf_headers[@]}" \
        --data 'user=alice&note=hello+there' "http://127.0.0.1:$p/form")
    [[ $code == 200 ]] || echo "a benign form POST got $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' "${waf_headers[@]}" \
        "http://127.0.0.1:$p/search?id=1%27%20OR%20%271%27%3D%271")
    [[ $code == 403 ]] || echo "a SQL injection got $code, not 403"
}

# waf_round ROUND: a wrk run of WAF_SECONDS per case on each proxy, the order rotating;
# appends "PROXY CASE REQ/S P50 P99 US_CPU ROUND" to $waf_results.
waf_round() {
    local round=$1 k j proc case worker t0 rps p50 p99 err total cpu note extra
    local n=${#waf_targets[@]}
    for ((k = 0; k < n; k++)); do
        proc=${waf_targets[$(((k + round - 1) % n))]}
        for ((j = 0; j < 2; j++)); do
            case=${waf_cases[$(((j + round - 1) % 2))]}
            kill -0 "${pid[$proc]}" 2>/dev/null || { echo "round $round: $proc has exited"; continue 2; }
            extra=()
            [[ $case == post ]] && extra=(-s "$PT_TMP/waf-post.lua")
            worker=$(busiest_child "${pid[$proc]}")
            t0=$(cpu_ticks "$worker")
            read -r rps p50 p99 err total < <(run_wrk "${port[$proc]}" "$WAF_SECONDS" \
                "$(waf_args "$case")" "${waf_headers[@]}" "${extra[@]}")
            cpu=$(awk -v t="$(($(cpu_ticks "$worker") - t0))" -v hz="$(getconf CLK_TCK)" \
                -v n="$total" 'BEGIN { printf "%.0f", n ? t * 1e6 / hz / n : 0 }')
            note=""
            ((err > 0)) && note="  ($err errors or non-2xx)"
            printf 'round %d: %-8s %-5s %8s req/s  p50 %8s ms  p99 %8s ms  %6s us CPU/req%s\n' \
                "$round" "${proc%-waf}" "$case" "$rps" "$p50" "$p99" "$cpu" "$note"
            echo "${proc%-waf} $case $rps $p50 $p99 $cpu $round" >>"$waf_results"
        done
    done
}

waf_report() {
    local name case med
    echo
    printf '%-8s %-5s %10s %10s %10s %12s\n' proxy case "req/s" "p50 ms" "p99 ms" "us CPU/req"
    for name in "${waf_targets[@]}"; do
        for case in "${waf_cases[@]}"; do
            printf '%-8s %-5s' "${name%-waf}" "$case"
            for f in 3 4 5 6; do
                med=$(awk -v n="${name%-waf}" -v c="$case" -v f="$f" \
                    '$1 == n && $2 == c { print $f }' "$waf_results" | median)
                printf ' %10s' "$med"
            done
            echo
        done
    done
    echo
    for case in "${waf_cases[@]}"; do
        awk -v c="$case" '$2 != c { next } $1 == "portier" { a[$7] = $3; x[$7] = $6 }
            $1 == "nginx" { b[$7] = $3; y[$7] = $6 }
            END { for (k in a) if (k in b && b[k] > 0) print a[k] / b[k], (y[k] > 0 ? x[k] / y[k] : 0) }' \
            "$waf_results" | sort -g | awk -v c="$case" '{ r[NR] = $1; u[NR] = $2 }
            END { if (NR == 0) { printf "portier vs nginx+ModSecurity, %s: n/a\n", c; exit }
                  m = r[int((NR + 1) / 2)]
                  printf "portier vs nginx+ModSecurity, %s: %.2fx req/s (median of per-round ratios;" \
                         " target >= 1.00x: %s), %.2fx CPU/req\n", c, m, (m >= 1 ? "met" : "NOT met"),
                         u[int((NR + 1) / 2)] }'
    done
}

if ((WAF_SECONDS > 0)); then
    pt_render "$PT_ROOT/test/bench/waf-rules.conf.in" "$PT_TMP/waf-rules.conf" "$backend" 0
    waf_post_script
    start_proxy portier-waf "$PT_ROOT/test/bench/waf-portier.conf.in" \
        "$PT_ROOT/build/portier" -c @CONF@
    if [[ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ]]; then
        start_proxy nginx-waf "$PT_ROOT/test/bench/waf-nginx.conf.in" \
            nginx -p "$PT_TMP/" -c @CONF@ -e "$PT_TMP/nginx-waf-error.log"
    else
        echo "nginx-waf: ModSecurity-nginx is not installed (scripts/deps --bench), left out"
    fi
    waf_targets=()
    for name in "${waf_procs[@]}"; do
        [[ -n ${pid[$name]:-} ]] || continue
        problems=$(waf_probe "$name")
        if [[ -n $problems ]]; then
            echo "${name%-waf}: the rules did not apply as they should, left out:"
            echo "$problems" | sed 's/^/  /'
            continue
        fi
        waf_targets+=("$name")
    done
    echo
    echo "== the waf: the OWASP CRS (paranoia level 1) through libmodsecurity, blocking, in" \
         "portier and in nginx with ModSecurity-nginx;"
    echo "   a benign GET and a benign 4 KiB form POST, wrk -c$CONNS, ${WAF_SECONDS}s x" \
         "$ROUNDS rounds per case, one worker each"
    for name in "${waf_targets[@]}"; do
        run_wrk "${port[$name]}" 1 "$(waf_args get)" "${waf_headers[@]}" >/dev/null
    done
    waf_results="$PT_TMP/waf-results"
    : >"$waf_results"
    for ((round = 1; round <= ROUNDS; round++)); do
        waf_round "$round"
    done
    waf_report
    for name in "${waf_procs[@]}"; do
        [[ -n ${pid[$name]:-} ]] && { kill -TERM "${pid[$name]}" 2>/dev/null || true; }
    done
fi
