/* http_stats.c: the shared client counters (see http_stats.h). */
#include "worker/http_stats.h"

#include <stddef.h>
#include <string.h>

static struct pt_http_stats *stats;

void pt_http_stats_use(struct pt_http_stats *s)
{
    stats = s;
}

void pt_http_stats_add(enum pt_http_stat which, int64_t delta)
{
    /* Relaxed: each counter stands alone; a reader wants a count, not an order. */
    switch (stats ? which : (enum pt_http_stat) - 1) {
    case PT_STAT_ACCEPTED:
        __atomic_add_fetch(&stats->accepted, (uint64_t)delta, __ATOMIC_RELAXED);
        break;
    case PT_STAT_HANDLED:
        __atomic_add_fetch(&stats->handled, (uint64_t)delta, __ATOMIC_RELAXED);
        break;
    case PT_STAT_REQUESTS:
        __atomic_add_fetch(&stats->requests, (uint64_t)delta, __ATOMIC_RELAXED);
        break;
    case PT_STAT_ACTIVE: __atomic_add_fetch(&stats->active, delta, __ATOMIC_RELAXED); break;
    case PT_STAT_READING: __atomic_add_fetch(&stats->reading, delta, __ATOMIC_RELAXED); break;
    case PT_STAT_WRITING: __atomic_add_fetch(&stats->writing, delta, __ATOMIC_RELAXED); break;
    default: break;
    }
}

void pt_http_stats_read(struct pt_http_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (stats == NULL)
        return;
    out->accepted = __atomic_load_n(&stats->accepted, __ATOMIC_RELAXED);
    out->handled = __atomic_load_n(&stats->handled, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&stats->requests, __ATOMIC_RELAXED);
    out->active = __atomic_load_n(&stats->active, __ATOMIC_RELAXED);
    out->reading = __atomic_load_n(&stats->reading, __ATOMIC_RELAXED);
    out->writing = __atomic_load_n(&stats->writing, __ATOMIC_RELAXED);
}
