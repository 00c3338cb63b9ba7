/*
 * exposition.c: the answer of a `metrics` location: the counters of the zone (metrics.h) in
 * Prometheus's text exposition format 0.0.4, or in OpenMetrics 1.0.0 when the request's
 * Accept field names application/openmetrics-text (as Prometheus's scraper sends it).
 *
 * Names follow Prometheus's conventions: the portier_ prefix, base units (_seconds,
 * _bytes), _total on counters, and the labels server, location, upstream, peer, code (the
 * status class, "2xx") and kind.  Both formats are the same text but for four points:
 * OpenMetrics names a counter's family without its _total in HELP and TYPE, writes a
 * histogram's bounds as floats ("1.0"), has an info type for portier_build_info, and ends
 * with "# EOF".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker/http.h"
#include "core/pool.h"
#include "core/shm.h"
#include "core/text.h"
#include "core/times.h"
#include "modules/metrics/metrics.h"
#include "modules/upstream/upstream.h"
#include "worker/http_stats.h"

#define CT_PROMETHEUS  "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* The exposition being written. */
struct out {
    struct pt_text t;
    int om; /* OpenMetrics */
};

static const char *const le_text[2][METRICS_BUCKETS] = {
    {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
     "+Inf"},
    {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
     "+Inf"},
};

static void put(struct out *o, const char *s, size_t n)
{
    pt_text_put(&o->t, s, n);
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct out *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pt_text_vprintf(&o->t, fmt, ap);
    va_end(ap);
}

static void puts_(struct out *o, const char *s)
{
    pt_text_puts(&o->t, s);
}

/* A label: name="value", the value escaped as both formats ask (\\, \", \n). */
static void put_label(struct out *o, const char *name, const char *v)
{
    putf(o, "%s=\"", name);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(o, "\\", 1);
        if (*v == '\n')
            put(o, "\\n", 2);
        else
            put(o, v, 1);
    }
    put(o, "\"", 1);
}

/* The # HELP and # TYPE lines of family <name> (a counter's name with its _total). */
static void family(struct out *o, const char *name, const char *type, const char *help)
{
    size_t n = strlen(name);

    if (o->om && strcmp(type, "counter") == 0 && n > 6 && strcmp(name + n - 6, "_total") == 0)
        n -= 6;
    putf(o, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, name, help, (int)n, name, type);
}

/* A sample's name and labels up to the closing brace, which the caller writes. */
static void sample_start(struct out *o, const char *name, const char *suffix,
                         const struct metrics_series *s)
{
    putf(o, "%s%s{", name, suffix);
    if (s->kind == METRICS_PEER) {
        put_label(o, "upstream", s->a);
        put(o, ",", 1);
        put_label(o, "peer", s->b);
    } else {
        put_label(o, s->kind == METRICS_SERVER ? "server" : "location", s->a);
    }
}

static uint64_t load(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static void sample(struct out *o, const char *name, const struct metrics_series *s,
                   const char *label, const char *value, uint64_t v)
{
    sample_start(o, name, "", s);
    if (label) {
        put(o, ",", 1);
        put_label(o, label, value);
    }
    putf(o, "} %llu\n", (unsigned long long)v);
}

/* Samples of one status class counter per class: code="1xx" ... "5xx". */
static void classes(struct out *o, const char *name, const struct metrics_series *s,
                    const uint64_t *c)
{
    static const char *const names[METRICS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

    for (int i = 0; i < METRICS_CLASSES; i++)
        sample(o, name, s, "code", names[i], load(&c[i]));
}

static void histogram(struct out *o, const char *name, const struct metrics_series *s,
                      const struct metrics_hist *h)
{
    uint64_t cum = 0, sum = load(&h->sum_ms);

    for (int i = 0; i < METRICS_BUCKETS; i++) {
        cum += load(&h->b[i]);
        sample_start(o, name, "_bucket", s);
        putf(o, ",le=\"%s\"} %llu\n", le_text[o->om][i], (unsigned long long)cum);
    }
    sample_start(o, name, "_sum", s);
    putf(o, "} %llu.%03llu\n", (unsigned long long)(sum / 1000), (unsigned long long)(sum % 1000));
    sample_start(o, name, "_count", s);
    putf(o, "} %llu\n", (unsigned long long)cum);
}

/* What a family shows of one series. */
enum what {
    REQUESTS,
    BYTES_IN,
    BYTES_OUT,
    DURATION,
    TRIES,
    RETRIES,
    RESPONSES,
    FAILURES,
    ACTIVE,
    IDLE,
    STATE,
    CONNECT_TIME,
    HEADER_TIME,
    RESPONSE_TIME
};

struct family {
    const char *name, *type, *help;
    enum what what;
};

static void zone_sample(struct out *o, const struct family *f, const struct metrics_series *s)
{
    const struct metrics_zone_counters *z = &s->e->zone;

    switch (f->what) {
    case REQUESTS: classes(o, f->name, s, z->requests); break;
    case BYTES_IN: sample(o, f->name, s, NULL, NULL, load(&z->bytes_in)); break;
    case BYTES_OUT: sample(o, f->name, s, NULL, NULL, load(&z->bytes_out)); break;
    default: /* DURATION */ histogram(o, f->name, s, &z->time); break;
    }
}

/* The families of servers or of location zones (<kind>), each with every series of it. */
static void zones(struct out *o, const struct metrics_main_conf *mc, enum metrics_kind kind)
{
    static const struct family server[] = {
        {"portier_server_requests_total", "counter", "Requests a server answered, by status class.",
         REQUESTS},
        {"portier_server_received_bytes_total", "counter",
         "Bytes of requests a server read (heads and bodies).", BYTES_IN},
        {"portier_server_sent_bytes_total", "counter",
         "Bytes of responses a server sent (heads and bodies).", BYTES_OUT},
        {"portier_server_request_duration_seconds", "histogram",
         "Time from a request's first byte to its log line.", DURATION},
    };
    static const struct family location[] = {
        {"portier_location_requests_total", "counter",
         "Requests of the locations of a status_zone, by status class.", REQUESTS},
        {"portier_location_received_bytes_total", "counter",
         "Bytes of requests the locations of a status_zone read.", BYTES_IN},
        {"portier_location_sent_bytes_total", "counter",
         "Bytes of responses the locations of a status_zone sent.", BYTES_OUT},
        {"portier_location_request_duration_seconds", "histogram",
         "Time from a request's first byte to its log line, in a status_zone.", DURATION},
    };
    const struct family *fs = kind == METRICS_SERVER ? server : location;
    int any = 0;

    for (int i = 0; i < mc->nseries; i++)
        any |= mc->series[i].kind == kind && mc->series[i].e;
    if (!any)
        return;
    for (size_t f = 0; f < pt_nelems(server); f++) {
        family(o, fs[f].name, fs[f].type, fs[f].help);
        for (int i = 0; i < mc->nseries; i++)
            if (mc->series[i].kind == kind && mc->series[i].e)
                zone_sample(o, &fs[f], &mc->series[i]);
    }
}

static void peer_sample(struct out *o, const struct family *f, const struct metrics_series *s,
                        uint64_t now)
{
    static const char *const fails[METRICS_NFAILS] = {"connect", "timeout", "invalid_header",
                                                      "error", "http_5xx"};
    static const char *const states[] = {"up", "down", "draining", "checking"};
    const struct metrics_peer_counters *c = &s->e->peer;
    struct pt_peer_view v;

    switch (f->what) {
    case TRIES: sample(o, f->name, s, NULL, NULL, load(&c->requests)); break;
    case RETRIES: sample(o, f->name, s, NULL, NULL, load(&c->retries)); break;
    case RESPONSES: classes(o, f->name, s, c->responses); break;
    case FAILURES:
        for (int i = 0; i < METRICS_NFAILS; i++)
            sample(o, f->name, s, "kind", fails[i], load(&c->fails[i]));
        break;
    case IDLE:
        sample(o, f->name, s, NULL, NULL,
               (uint64_t)pt_max(__atomic_load_n(&c->idle, __ATOMIC_RELAXED), 0));
        break;
    case ACTIVE:
        pt_peer_view(s->peer, now, &v);
        sample(o, f->name, s, NULL, NULL, (uint64_t)pt_max(v.active, 0));
        break;
    case STATE:
        pt_peer_view(s->peer, now, &v);
        for (size_t i = 0; i < pt_nelems(states); i++)
            sample(o, f->name, s, "state", states[i], strcmp(v.state, states[i]) == 0);
        break;
    case CONNECT_TIME: histogram(o, f->name, s, &c->connect); break;
    case HEADER_TIME: histogram(o, f->name, s, &c->header); break;
    default: histogram(o, f->name, s, &c->response); break;
    }
}

/* The families of upstream servers, each with every server of every group. */
static void peers(struct out *o, const struct metrics_main_conf *mc)
{
    static const struct family fs[] = {
        {"portier_upstream_requests_total", "counter",
         "Tries of requests on an upstream server (a retry on another server counts there).",
         TRIES},
        {"portier_upstream_retries_total", "counter",
         "Tries on an upstream server that retried a request another try had failed.", RETRIES},
        {"portier_upstream_responses_total", "counter",
         "Response heads an upstream server sent, by status class.", RESPONSES},
        {"portier_upstream_failures_total", "counter",
         "Failed tries on an upstream server by kind, and its answers of 5xx.", FAILURES},
        {"portier_upstream_active_connections", "gauge",
         "Requests in progress on an upstream server, all workers together.", ACTIVE},
        {"portier_upstream_idle_connections", "gauge",
         "Kept-alive connections to an upstream server waiting in the workers' pools.", IDLE},
        {"portier_upstream_peer_state", "gauge",
         "1 for the state an upstream server is in (up, down, draining, checking).", STATE},
        {"portier_upstream_connect_duration_seconds", "histogram",
         "Time to connect to an upstream server (TLS handshake included).", CONNECT_TIME},
        {"portier_upstream_header_duration_seconds", "histogram",
         "Time from a try's start to the upstream server's response head.", HEADER_TIME},
        {"portier_upstream_response_duration_seconds", "histogram",
         "Time from a try's start to the upstream server's last response byte.", RESPONSE_TIME},
    };
    uint64_t now = pt_now_ms();
    int any = 0;

    for (int i = 0; i < mc->nseries; i++)
        any |= mc->series[i].kind == METRICS_PEER && mc->series[i].e;
    if (!any)
        return;
    for (size_t f = 0; f < pt_nelems(fs); f++) {
        family(o, fs[f].name, fs[f].type, fs[f].help);
        for (int i = 0; i < mc->nseries; i++)
            if (mc->series[i].kind == METRICS_PEER && mc->series[i].e)
                peer_sample(o, &fs[f], &mc->series[i], now);
    }
}

#if PORTIER_WITH_WAF
/* Requests the waf refused, by rule group: slots of one name added up. */
static void waf(struct out *o, const struct metrics_root *rt)
{
    const struct metrics_waf_group *g = rt->waf;

    family(o, "portier_waf_blocked_requests_total", "counter",
           "Requests the waf refused, by the rules file of the rule that refused them.");
    for (int i = 0; i < METRICS_WAF - 1; i++) {
        uint64_t n = 0;
        int seen = 0;
        if (__atomic_load_n(&g[i].state, __ATOMIC_ACQUIRE) != 2)
            continue;
        for (int k = 0; k < i && !seen; k++)
            seen = __atomic_load_n(&g[k].state, __ATOMIC_ACQUIRE) == 2 &&
                   strcmp(g[k].name, g[i].name) == 0;
        if (seen)
            continue;
        for (int k = i; k < METRICS_WAF - 1; k++)
            if (__atomic_load_n(&g[k].state, __ATOMIC_ACQUIRE) == 2 &&
                strcmp(g[k].name, g[i].name) == 0)
                n += load(&g[k].n);
        puts_(o, "portier_waf_blocked_requests_total{");
        put_label(o, "group", g[i].name);
        putf(o, "} %llu\n", (unsigned long long)n);
    }
    putf(o, "portier_waf_blocked_requests_total{group=\"other\"} %llu\n",
         (unsigned long long)load(&g[METRICS_WAF - 1].n));
}
#endif

/* A family of one counter per value of the label <label>. */
static void labelled(struct out *o, const char *name, const char *help, const char *label,
                     const char *const *values, const uint64_t *c, size_t n, size_t stride)
{
    family(o, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        putf(o, "%s{", name);
        put_label(o, label, values[i]);
        putf(o, "} %llu\n", (unsigned long long)load(&c[i * stride]));
    }
}

/* TLS handshakes, compression and the cache, all servers together. */
static void globals(struct out *o, const struct metrics_main_conf *mc)
{
    static const char *const results[] = {"full", "resumed"};
    static const char *const reasons[] = {"closed",      "protocol",     "cipher",
                                          "certificate", "http_request", "other"};
    static const char *const codings[METRICS_CODINGS] = {"br", "zstd", "gzip"};
    const struct metrics_root *rt = mc->root;

    labelled(o, "portier_tls_handshakes_total", "TLS handshakes with clients that succeeded.",
             "result", results, rt->tls, 2, 1);
    labelled(o, "portier_tls_handshake_failures_total",
             "TLS handshakes with clients that failed, by reason.", "reason", reasons, rt->tls + 2,
             pt_nelems(reasons), 1);
    labelled(o, "portier_compressed_responses_total", "Responses compressed, by coding.", "coding",
             codings, &rt->compressed[0][0], METRICS_CODINGS, 3);
    labelled(o, "portier_compression_input_bytes_total",
             "Body bytes that went into a compressor, by coding.", "coding", codings,
             &rt->compressed[0][1], METRICS_CODINGS, 3);
    labelled(o, "portier_compression_output_bytes_total",
             "Body bytes that came out of a compressor, by coding.", "coding", codings,
             &rt->compressed[0][2], METRICS_CODINGS, 3);
    if (mc->cache_status)
        labelled(o, "portier_cache_requests_total",
                 "Requests that used a cache, by $upstream_cache_status.", "cache_status",
                 metrics_cache_names, rt->cache, METRICS_CACHE, 1);
#if PORTIER_WITH_WAF
    waf(o, rt);
#endif
}

/* The client connection counters stub_status shows (its zone counts them; without the
 * stub_status module nothing does, and they are left out). */
static void connections(struct out *o)
{
#if PORTIER_WITH_STUB_STATUS
    struct pt_http_stats st;
    int64_t waiting;

    pt_http_stats_read(&st);
    waiting = st.active - st.reading - st.writing;
    family(o, "portier_connections_accepted_total", "counter",
           "Client connections accepted, all workers.");
    putf(o, "portier_connections_accepted_total %llu\n", (unsigned long long)st.accepted);
    family(o, "portier_connections_handled_total", "counter",
           "Client connections served (not closed at once for want of room).");
    putf(o, "portier_connections_handled_total %llu\n", (unsigned long long)st.handled);
    family(o, "portier_http_requests_total", "counter", "Client requests begun, all workers.");
    putf(o, "portier_http_requests_total %llu\n", (unsigned long long)st.requests);
    family(o, "portier_connections", "gauge",
           "Client connections open, by state (active is all of them: reading a head, "
           "writing an answer, or waiting idle).");
    putf(o,
         "portier_connections{state=\"active\"} %lld\nportier_connections{state=\"reading\"} "
         "%lld\nportier_connections{state=\"writing\"} %lld\n"
         "portier_connections{state=\"waiting\"} %lld\n",
         (long long)st.active, (long long)st.reading, (long long)st.writing,
         (long long)(waiting > 0 ? waiting : 0));
#else
    (void)o;
#endif
}

static void process(struct out *o, const struct metrics_main_conf *mc)
{
    connections(o);
    family(o, "portier_config_loads_total", "counter",
           "Configurations loaded over the running one (reloads and binary upgrades).");
    putf(o, "portier_config_loads_total %llu\n", (unsigned long long)load(&mc->root->loads));
    family(o, "portier_worker_starts_total", "counter",
           "Worker processes started (at start, reload and after one died).");
    putf(o, "portier_worker_starts_total %llu\n",
         (unsigned long long)load(&mc->root->worker_starts));
    family(o, "portier_worker_restarts_total", "counter",
           "Worker processes started in the place of one that died.");
    putf(o, "portier_worker_restarts_total %llu\n",
         (unsigned long long)load(&mc->root->worker_restarts));
    /* OpenMetrics has a type for it, named without its _info; Prometheus's text a gauge. */
    if (o->om)
        puts_(o, "# HELP portier_build The version of portier answering.\n"
                 "# TYPE portier_build info\n");
    else
        family(o, "portier_build_info", "gauge", "The version of portier answering, always 1.");
    puts_(o, "portier_build_info{version=\"" PORTIER_VERSION "\"} 1\n");
}

/* Whether the client asked for OpenMetrics (Prometheus sends both types, this one first). */
static int wants_openmetrics(const struct pt_request *r)
{
    const struct pt_http_header *h = pt_http_find_header(r->h.headers, r->h.nheaders, "Accept");
    static const char type[] = "application/openmetrics-text";

    if (h == NULL)
        return 0;
    for (size_t i = 0; i + sizeof(type) - 1 <= h->value.len; i++)
        if (strncasecmp(h->value.p + i, type, sizeof(type) - 1) == 0)
            return 1;
    return 0;
}

/* Sends <o>'s text as <r>'s answer with <status> and <type>, and finishes the request. */
static int respond(struct pt_request *r, int status, const char *type, struct out *o)
{
    int rc;

    if (o->t.failed) {
        pt_text_free(&o->t);
        return PT_ERROR;
    }
    r->status = status;
    r->out_length = (int64_t)o->t.len;
    rc = pt_header_add(r, &r->out, PT_STR("Content-Type"), pt_str_c(type)) == PT_OK &&
                 pt_header_add(r, &r->out, PT_STR("Cache-Control"), PT_STR("no-store")) == PT_OK &&
                 pt_http_send_header(r) == PT_OK &&
                 pt_http_send_body(r, o->t.p, o->t.len, 1) == PT_OK
             ? PT_OK
             : PT_ERROR;
    pt_text_free(&o->t);
    pt_http_finalize(r, rc);
    return PT_DONE;
}

int metrics_handler(struct pt_request *r)
{
    struct metrics_main_conf *mc = r->main_conf[pt_metrics_module.index];
    struct out o = {.om = wants_openmetrics(r)};

    if (r->h.method_id != PT_HTTP_GET && r->h.method_id != PT_HTTP_HEAD) {
        if (pt_header_add(r, &r->out, PT_STR("Allow"), PT_STR("GET, HEAD")) != PT_OK)
            return PT_ERROR;
        puts_(&o, "use GET or HEAD to read the metrics\n");
        return respond(r, 405, "text/plain; charset=utf-8", &o);
    }
    if (mc->root == NULL)
        return 500;
    zones(&o, mc, METRICS_SERVER);
    zones(&o, mc, METRICS_LOCATION);
    peers(&o, mc);
    globals(&o, mc);
    process(&o, mc);
    if (o.om)
        puts_(&o, "# EOF\n");
    return respond(r, 200, o.om ? CT_OPENMETRICS : CT_PROMETHEUS, &o);
}
