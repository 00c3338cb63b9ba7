/*
 * metrics.h: what the two files of the metrics module share: the counters' layout in the
 * shared-memory zone "metrics" (metrics.c counts into it, exposition.c reads it out).
 *
 * Every counter is a 64-bit word that workers add to with a relaxed atomic, so the hot path
 * takes no lock; a scrape sums nothing, it reads each word once (a reader may see one
 * request's counters half added, which the next scrape settles).  Histograms keep one word
 * per bucket, not cumulative, so that an observation is two additions; the exposition makes
 * them cumulative and derives _count from them, which keeps each scrape's buckets and
 * _count in agreement.
 *
 * An entry is one labelled set of counters: a server, a location's status_zone, or an
 * upstream server.  Entries are found by kind and name, so a reload or a binary upgrade
 * that keeps a name keeps its counters.  Only the master adds entries (when the zone is
 * mapped, before workers fork), so workers never write anything but counters.
 */
#ifndef PT_METRICS_H
#define PT_METRICS_H

#include <stdint.h>

#include "core/module.h"

struct pt_request;
struct pt_shm_zone;
struct pt_template;

/* Layout version of the zone: bump it when anything below changes. */
#define METRICS_LAYOUT 4

#define METRICS_NAME_MAX 64 /* with the NUL; longer names are cut */
#define METRICS_BUCKETS  13 /* 1 ms ... 10 s, then +Inf */
#define METRICS_CLASSES  5  /* 1xx ... 5xx */
#define METRICS_CODINGS  3  /* gzip.h's enum pt_coding: br, zstd, gzip */
#define METRICS_CACHE    7  /* $upstream_cache_status: MISS ... HIT (metrics_cache_names) */
#define METRICS_TLS      8  /* http.h's enum pt_tls_outcome */
#define METRICS_WAF      16 /* rule groups counted apart; the others count as "other" */

/* Upper bounds of the finite buckets, in ms. */
extern const uint32_t metrics_bucket_ms[METRICS_BUCKETS - 1];

struct metrics_hist {
    uint64_t b[METRICS_BUCKETS]; /* observations per bucket, not cumulative */
    uint64_t sum_ms;
};

enum metrics_kind { METRICS_SERVER = 1, METRICS_LOCATION, METRICS_PEER };

/* Upstream failures by kind: the proxy's (enum pt_upstream_failure), then answers of 5xx. */
#define METRICS_FAIL_HTTP_5XX 4
#define METRICS_NFAILS        5

struct metrics_zone_counters {
    uint64_t requests[METRICS_CLASSES];
    uint64_t bytes_in, bytes_out;
    struct metrics_hist time;
};

struct metrics_peer_counters {
    uint64_t requests, retries;
    uint64_t responses[METRICS_CLASSES];
    uint64_t fails[METRICS_NFAILS];
    struct metrics_hist connect, header, response;
    int64_t idle; /* kept-alive connections in the workers' pools (gauge) */
};

struct metrics_entry {
    uint32_t kind; /* enum metrics_kind; 0: free */
    uint32_t spare;
    char a[METRICS_NAME_MAX]; /* server, location zone, or upstream */
    char b[METRICS_NAME_MAX]; /* the upstream server; "" otherwise */
    union {
        struct metrics_zone_counters zone;
        struct metrics_peer_counters peer;
    };
};

/* Requests the waf refused on the rules of one group.  A worker claims a free slot for a
 * group it meets first (state 0 to 1 by compare-and-swap), writes the name, then publishes
 * it (state 2); two workers meeting a new group at once may claim a slot each, which the
 * exposition adds up. */
struct metrics_waf_group {
    uint32_t state; /* 0 free, 1 being named, 2 named */
    char name[52];
    uint64_t n;
};

/* The zone's root object. */
struct metrics_root {
    uint64_t magic;
    uint32_t cap, n;  /* entries allocated, in use */
    uint64_t entries; /* offset of the entry array */
    uint64_t loads;   /* configurations taken over: reloads and binary upgrades */
    uint64_t worker_starts;
    uint64_t worker_restarts; /* ... of them in the place of one that died */
    uint64_t tls[METRICS_TLS];
    uint64_t compressed[METRICS_CODINGS][3]; /* responses, bytes in, bytes out */
    uint64_t cache[METRICS_CACHE];
    struct metrics_waf_group waf[METRICS_WAF];
};

/* The values of $upstream_cache_status, in the order of metrics_root's cache counters. */
extern const char *const metrics_cache_names[METRICS_CACHE];

/* One series of the running configuration: what a scrape reports, in the order found. */
struct metrics_series {
    enum metrics_kind kind;
    const char *a, *b;
    const void *peer;        /* the struct pt_peer of a METRICS_PEER series */
    struct metrics_entry *e; /* in the zone; NULL when it was full */
};

struct metrics_main_conf {
    int used; /* a metrics location or a status_zone: counting is on */
    struct metrics_series *series;
    int nseries, cap;
    struct pt_shm_zone *zone;
    struct metrics_root *root;        /* in the zone, set when it is mapped */
    struct pt_template *cache_status; /* $upstream_cache_status; NULL without the cache */
};

extern struct pt_module pt_metrics_module;

/* The content handler of a `metrics` location (exposition.c). */
int metrics_handler(struct pt_request *r);

/* Adds the counters' sections to <cycle>'s status document (report.c).  PT_OK or PT_ERROR
 * when the status sections are full. */
int metrics_report_add(struct pt_cycle *cycle);

#endif
