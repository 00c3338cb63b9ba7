/*
 * report.c: the metrics module's part of the status document (the status module's JSON, so
 * its dashboard): the sections "servers" and "locations" (each status_zone), and the
 * latencies of each upstream server as members of its object in "upstreams".
 *
 * Latencies are in milliseconds: the mean from the histogram's sum and count, and the 50th
 * and 99th percentiles estimated from its buckets as Prometheus's histogram_quantile() does
 * (linear interpolation inside the bucket the rank falls in), so the page agrees with a
 * Grafana panel drawn from the same counters.  null when nothing was observed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "worker/http.h"
#include "worker/http_phase.h"
#include "core/text.h"
#include "modules/metrics/metrics.h"
#include "modules/upstream/upstream.h"
#include "worker/var.h"

/* The status module's writer, and whether memory ran out on the way (the document is then
 * answered with a 500 rather than cut short). */
struct out {
    void (*put)(void *w, const char *s, size_t n);
    void *w;
    int failed;
};

static uint64_t load(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static void put(struct out *o, const char *s, size_t n)
{
    o->put(o->w, s, n);
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct out *o, const char *fmt, ...)
{
    struct pt_text t = {0};
    va_list ap;

    va_start(ap, fmt);
    pt_text_vprintf(&t, fmt, ap);
    va_end(ap);
    o->failed |= t.failed;
    if (!t.failed)
        put(o, t.p, t.len);
    pt_text_free(&t);
}

/* A JSON string of the NUL-terminated <s>. */
static void put_str(struct out *o, const char *s)
{
    put(o, "\"", 1);
    for (; *s; s++) {
        char seq[8];
        size_t k = pt_escape_byte(PT_ESCAPE_JSON, (unsigned char)*s, seq);
        put(o, k ? seq : s, k ? k : 1);
    }
    put(o, "\"", 1);
}

/* The <q> quantile of the observations of <h> (<cum>: its cumulative bucket counts), in ms,
 * as histogram_quantile() estimates it: the bucket the rank q * count falls in, and a linear
 * interpolation between its bounds (0 below the first).  A rank in the +Inf bucket gives
 * the highest finite bound, as Prometheus answers. */
static double quantile(const uint64_t cum[METRICS_BUCKETS], double q)
{
    uint64_t count = cum[METRICS_BUCKETS - 1];
    double rank = q * (double)count, lower, below;
    int b = 0;

    while (b < METRICS_BUCKETS - 1 && (double)cum[b] < rank)
        b++;
    if (b == METRICS_BUCKETS - 1)
        return metrics_bucket_ms[METRICS_BUCKETS - 2];
    lower = b ? metrics_bucket_ms[b - 1] : 0;
    below = b ? (double)cum[b - 1] : 0;
    return lower + (metrics_bucket_ms[b] - lower) * (rank - below) / ((double)cum[b] - below);
}

/* {"count":N,"mean":ms,"p50":ms,"p99":ms} of <h>; the estimates null when it is empty. */
static void put_latency(struct out *o, const struct metrics_hist *h)
{
    static const char none[] = "{\"count\":0,\"mean\":null,\"p50\":null,\"p99\":null}";
    uint64_t cum[METRICS_BUCKETS], n = 0;

    for (int i = 0; i < METRICS_BUCKETS; i++)
        cum[i] = n += load(&h->b[i]);
    if (n == 0) {
        put(o, none, sizeof(none) - 1);
        return;
    }
    putf(o, "{\"count\":%llu,\"mean\":%.3f,\"p50\":%.3f,\"p99\":%.3f}", (unsigned long long)n,
         (double)load(&h->sum_ms) / (double)n, quantile(cum, 0.5), quantile(cum, 0.99));
}

static void put_zone(struct out *o, const struct metrics_zone_counters *z)
{
    uint64_t c[METRICS_CLASSES], total = 0;

    for (int i = 0; i < METRICS_CLASSES; i++)
        total += c[i] = load(&z->requests[i]);
    putf(o,
         "{\"requests\":%llu,\"responses\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,"
         "\"5xx\":%llu},",
         (unsigned long long)total, (unsigned long long)c[0], (unsigned long long)c[1],
         (unsigned long long)c[2], (unsigned long long)c[3], (unsigned long long)c[4]);
    putf(o, "\"bytes_in\":%llu,\"bytes_out\":%llu,\"request_ms\":",
         (unsigned long long)load(&z->bytes_in), (unsigned long long)load(&z->bytes_out));
    put_latency(o, &z->time);
    put(o, "}", 1);
}

/* {"name": {...}, ...} of the series of <kind> in <cycle>'s configuration. */
static int put_zones(struct pt_cycle *cycle, enum metrics_kind kind,
                     void (*write)(void *w, const char *s, size_t n), void *w)
{
    const struct metrics_main_conf *mc = cycle->main_conf[pt_metrics_module.index];
    struct out out = {write, w, 0}, *o = &out;
    int first = 1;

    put(o, "{", 1);
    for (int i = 0; i < mc->nseries; i++) {
        const struct metrics_series *s = &mc->series[i];
        if (s->kind != kind || s->e == NULL)
            continue;
        if (!first)
            put(o, ",", 1);
        first = 0;
        put_str(o, s->a);
        put(o, ":", 1);
        put_zone(o, &s->e->zone);
    }
    put(o, "}", 1);
    return o->failed ? PT_ERROR : PT_OK;
}

static int report_servers(struct pt_cycle *cycle, void (*write)(void *w, const char *s, size_t n),
                          void *w)
{
    return put_zones(cycle, METRICS_SERVER, write, w);
}

static int report_locations(struct pt_cycle *cycle, void (*write)(void *w, const char *s, size_t n),
                            void *w)
{
    return put_zones(cycle, METRICS_LOCATION, write, w);
}

/* The members "connect_ms", "header_ms" and "response_ms" of an upstream server's object:
 * from the try's start to connected, to the response head, to the whole response. */
static int report_peer(const struct pt_peer *peer, void (*write)(void *w, const char *s, size_t n),
                       void *w)
{
    const struct metrics_entry *e = peer->metrics;
    struct out out = {write, w, 0}, *o = &out;

    if (e == NULL)
        return PT_OK;
    put(o, ",\"connect_ms\":", 14);
    put_latency(o, &e->peer.connect);
    put(o, ",\"header_ms\":", 13);
    put_latency(o, &e->peer.header);
    put(o, ",\"response_ms\":", 15);
    put_latency(o, &e->peer.response);
    return o->failed ? PT_ERROR : PT_OK;
}

int metrics_report_add(struct pt_cycle *cycle)
{
    if (pt_report_add(cycle, "servers", report_servers) != PT_OK ||
        pt_report_add(cycle, "locations", report_locations) != PT_OK ||
        pt_peer_report_add(cycle, report_peer) != PT_OK)
        return PT_ERROR;
    return PT_OK;
}
