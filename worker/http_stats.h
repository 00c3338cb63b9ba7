/*
 * http_stats.h: the client connection and request counters every worker adds to, in shared
 * memory, behind nginx's stub_status and its $connections_* variables.
 */
#ifndef PT_HTTP_STATS_H
#define PT_HTTP_STATS_H

#include <stdint.h>

/* nginx's ngx_stat_* counters.  Totals only grow; the gauges go up and down. */
struct pt_http_stats {
    uint64_t accepted; /* connections accept() returned */
    uint64_t handled;  /* ... that were served (not closed at once for want of room) */
    uint64_t requests; /* requests begun (their first bytes read) */
    int64_t active;    /* client connections open, idle ones included */
    int64_t reading;   /* ... reading a request head */
    int64_t writing;   /* ... with a request past its head (being served, answering) */
};

enum pt_http_stat {
    PT_STAT_ACCEPTED,
    PT_STAT_HANDLED,
    PT_STAT_REQUESTS,
    PT_STAT_ACTIVE,
    PT_STAT_READING,
    PT_STAT_WRITING
};

/* Makes <s> (in a shared-memory zone mapped before the workers fork) the counters this
 * process adds to; NULL stops counting.  Called by the module that owns the zone. */
void pt_http_stats_use(struct pt_http_stats *s);

/* Adds <delta> to counter <which>: one relaxed atomic add, nothing when no zone is in use. */
void pt_http_stats_add(enum pt_http_stat which, int64_t delta);

/* Reads the counters into <out> (zeros when no zone is in use).  The gauges are read one by
 * one, not as one snapshot: Waiting, the rest of Active, is clamped at 0. */
void pt_http_stats_read(struct pt_http_stats *out);

#endif
